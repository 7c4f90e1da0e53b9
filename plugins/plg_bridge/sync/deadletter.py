"""Rows a destination rejected, waiting in each target's state to be retried.

They live in the state (so a commit records deliveries and failures atomically); this module
is the read side for on-call: list them, and count them for `plg-bridge status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plg_bridge.sync import state

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.workspace import Workspace

COLUMNS = ["target", "record_key", "error_code", "error_message", "attempts", "as_of"]


def waiting(ws: Workspace, targets: tuple[str, ...] = ()) -> pd.DataFrame:
    """Dead letters of every target (or the given ones), oldest failure first."""
    import pandas as pd

    from plg_bridge.sync.targets import TARGETS

    frames = []
    for name in targets or tuple(TARGETS):
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r} (known: {', '.join(TARGETS)})")
        frame = state.load(ws.work, name).frame
        dead = frame[frame["status"] == "failed"].assign(target=name)
        frames.append(dead[COLUMNS])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return out.sort_values(["as_of", "target", "record_key"], kind="stable").reset_index(drop=True)
