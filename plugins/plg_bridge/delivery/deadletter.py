"""Rows a destination rejected, waiting in each target's state to be retried, and create-once
rows whose delivery is unconfirmed (sent, outcome unknown, and no lookup at the vendor could
settle it: journal.py), waiting for on-call to check.

They live in the state (so a commit records deliveries and failures atomically); this module
is on-call's side: list them, count them for `plg-bridge status`, and confirm unconfirmed
rows that on-call found at the vendor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plg_bridge.delivery import state

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.workspace import Workspace

# sent_at: when an unconfirmed row's request left (where to look at the vendor)
COLUMNS = ["target", "record_key", "status", "error_code", "error_message", "attempts", "as_of", "sent_at"]
WAITING = ("failed", "unconfirmed")


def waiting(ws: Workspace, targets: tuple[str, ...] = ()) -> pd.DataFrame:
    """Dead letters (status failed) and unconfirmed rows of every target (or the given ones),
    oldest first."""
    import pandas as pd

    from plg_bridge.delivery.targets import TARGETS

    frames = []
    for name in targets or tuple(TARGETS):
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r} (known: {', '.join(TARGETS)})")
        frame = state.load(ws.work, name).frame
        dead = frame[frame["status"].isin(WAITING)].assign(target=name)
        frames.append(dead[COLUMNS])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return out.sort_values(["as_of", "target", "record_key"], kind="stable").reset_index(drop=True)


def confirm(ws: Workspace, targets: tuple[str, ...]) -> int:
    """Mark the unconfirmed rows of `targets` delivered (on-call found them at the vendor);
    returns how many. A conditional commit, like a run's."""
    from plg_bridge.delivery.targets import TARGETS

    done = 0
    for name in targets:
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r} (known: {', '.join(TARGETS)})")
        snapshot = state.load(ws.work, name)
        frame = snapshot.frame.copy()
        found = frame["status"] == "unconfirmed"
        if not found.any():
            continue
        frame.loc[found, "status"] = "delivered"
        frame.loc[found, ["payload", "error_code", "error_message", "sent_at"]] = None
        frame.loc[found, "attempts"] = 0
        state.commit(ws.work, name, frame, snapshot.version)
        done += int(found.sum())
    return done
