"""The merged history a daily run keeps, so the next run folds in only its new partials.

A run as of T needs the merge of the partials of every export file it may see (rollup.merge).
That merge is a pure function of the set of files (key + fingerprint): partials never depend on
T, and T is applied by the models afterwards. So a run stores its merge as a *snapshot*

    history/as_of=<T>/<digest of its files>/   merged/ (the merged Partial, rollup.write layout),
                                                keys.parquet and contacts.parquet (the person keys
                                                and contacts as of T), manifest.json (written
                                                last: the commit mark)

and the next run starts from the newest snapshot as of <= T whose files it may all still see
with the same fingerprints, and merges only the partials of the other files into it. Any
snapshot that qualifies gives the same answer as merging every partial from scratch (cold), so
reruns and backfills reproduce: a snapshot built from a file the run may not see (a later
interval) or from an older version of a file (a re-exported interval, whose partial was replaced)
never qualifies, and with none left the run rebuilds cold. The settings the partials depend on are
part of the digest, so changing them rebuilds too.

The fold itself follows the new data, not the history: person tables are re-reduced only for the
keys (distinct ids, organizations) that the new partials touch; the rest of the snapshot passes
through unchanged. The person-level models then recompute only the persons the new data touched
(ingest/touched.py), taking every other person's contact from the snapshot.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from plg_bridge.ingest import rollup

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.layout import ExportFile
    from plg_bridge.storage import Location

log = logging.getLogger(__name__)

ROOT = "history"
FORMAT = 2  # bump when the snapshot layout or the merge changes meaning
CHUNK = 8  # partials read and merged at a time when many are new (a cold run)
KEEP = 7  # snapshots kept (newest as-of first); older ones are deleted after a successful write
PER_DAY = 3  # snapshots kept per as-of date (the most complete): a rerun of an older instant rebuilds
# the columns a person table is reduced by first: rows of a snapshot whose value there is not
# among the new partials' pass through the fold untouched (reduce groups by a superset of it)
FOLD_KEYS = {
    "links": "a",
    "firsts": "distinct_id",
    "touches": "distinct_id",
    "conversions": "uuid",
    "profiles": "distinct_id",
    "memberships": "distinct_id",
    "occurrences": "org_id",
    "spans": "distinct_id",
}


@dataclass(frozen=True)
class Snapshot:
    prefix: str  # under the work location
    as_of: datetime
    files: dict[str, str]  # export key -> fingerprint of the version merged
    settings: str  # settings_digest of the run that built it


def files_of(files: list[ExportFile]) -> dict[str, str]:
    return {f.key: f.fingerprint or "unversioned" for f in files}


def settings_digest(settings: Settings) -> str:
    """Of the settings the partials depend on (what is read, how ids and orgs are found) and of
    the partials' format: a snapshot folded from partials of an older layout is not built on."""
    parts = (FORMAT, rollup.PARTIAL_FORMAT, settings.exports, settings.pql, settings.models, settings.signals)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def snapshot_prefix(as_of: datetime, files: dict[str, str], settings: Settings) -> str:
    body = json.dumps(sorted(files.items())) + settings_digest(settings)
    return f"{ROOT}/as_of={as_of:%Y-%m-%d}/{hashlib.sha256(body.encode()).hexdigest()[:16]}"


def snapshots(work: Location) -> list[Snapshot]:
    """Committed snapshots (those with a manifest), newest as-of first."""
    found = []
    for obj in work.child(ROOT).list():
        if not obj.key.endswith("/manifest.json"):
            continue
        prefix = f"{ROOT}/{obj.key.removesuffix('/manifest.json')}"
        manifest = json.loads(work.read_bytes(f"{prefix}/manifest.json"))
        if manifest.get("format") != FORMAT:
            continue
        as_of = datetime.fromisoformat(manifest["as_of"])
        found.append(Snapshot(prefix, as_of, manifest["files"], manifest["settings"]))
    return sorted(found, key=lambda s: (s.as_of, len(s.files), s.prefix), reverse=True)


def base_for(work: Location, files: list[ExportFile], as_of: datetime, settings: Settings) -> Snapshot | None:
    """The snapshot to start from: the newest as of <= T built only from these files' versions."""
    visible = files_of(files)
    digest = settings_digest(settings)
    for snap in snapshots(work):
        if snap.as_of > as_of:
            continue
        if snap.settings != digest:
            continue  # built under other settings
        if all(visible.get(key) == fp for key, fp in snap.files.items()):
            return snap
    return None


@dataclass
class Folded:
    partial: rollup.Partial  # the merge of every visible file's partial
    info: dict  # {"base": as-of of the snapshot started from or None (cold), "folded": partials merged}
    save: Callable[[], None]  # stores the merged tables (may run on another thread while models run)
    commit: Callable[[pd.DataFrame | None, pd.DataFrame | None], None]  # (keys, contacts) as of T
    added: rollup.Partial | None = None  # the merge of the new partials alone (None when cold)
    since: datetime | None = None  # as-of of the snapshot started from
    keys: pd.DataFrame | None = None  # its person keys (identity.stitch output)
    contacts: pd.DataFrame | None = None  # its contacts


def fold(work: Location, files: list[ExportFile], as_of: datetime, settings: Settings) -> Folded:
    """The merge of the partials of `files` (stored by the rollup step), from the best snapshot.

    The caller runs `save()` (possibly on another thread while the models run), then
    `commit(keys, contacts)` with the run's results: that writes them and the manifest which
    makes the snapshot usable, then prunes old snapshots.
    """
    from plg_bridge.pipeline import partial_prefix
    from plg_bridge.storage import StorageError

    visible = files_of(files)
    target = snapshot_prefix(as_of, visible, settings)
    base = base_for(work, files, as_of, settings)
    state = None
    if base is not None:
        try:
            state = rollup.read(work, f"{base.prefix}/merged")
        except (rollup.PartialError, StorageError) as exc:  # e.g. written by an older partial format
            log.warning("history snapshot %s unusable (%s): merging every partial", base.prefix, exc)
            base = None
    new = [f for f in files if base is None or base.files.get(f.key) != visible[f.key]]
    added = None
    for i in range(0, len(new), CHUNK):  # a few partials in memory at a time, folded as they come
        partials = [rollup.read(work, partial_prefix(f)) for f in new[i : i + CHUNK]]
        added = rollup.merge(partials) if added is None else fold_into(added, partials)
    if state is None:
        merged = added or rollup.merge([])
    else:
        merged = fold_into(state, [added] if added is not None else [])
    info = {"base": base.as_of.isoformat() if base else None, "folded": len(new)}
    log.info("history as of %s: %s", f"{as_of:%Y-%m-%d}", info)
    manifest = {
        "format": FORMAT,
        "as_of": as_of.isoformat(),
        "files": visible,
        "settings": settings_digest(settings),
    }
    same = base is not None and base.prefix == target  # a rerun over the same files: nothing to store

    def save() -> None:
        if not same:
            rollup.write(merged, work, f"{target}/merged")

    def commit(keys: pd.DataFrame | None, contacts: pd.DataFrame | None) -> None:
        if same:
            return
        for name, frame in (("keys", keys), ("contacts", contacts)):
            if frame is not None:
                work.write_frame(f"{target}/{name}.parquet", frame)
        work.write_bytes(f"{target}/manifest.json", json.dumps(manifest, sort_keys=True).encode())
        prune(work)

    folded = Folded(merged, info, save, commit)
    if base is not None and work.exists(f"{base.prefix}/contacts.parquet"):
        folded.added = added if added is not None else rollup.merge([])
        folded.since = base.as_of
        folded.keys = work.read_frame(f"{base.prefix}/keys.parquet")
        folded.contacts = work.read_frame(f"{base.prefix}/contacts.parquet")
    return folded


def fold_into(state: rollup.Partial, partials: list[rollup.Partial]) -> rollup.Partial:
    """rollup.merge([state, *partials]), re-reducing only the person rows the partials touch."""
    import pandas as pd

    from plg_bridge.ingest import people
    from plg_bridge.ingest.touched import isin

    if not partials:
        return state
    added = rollup.merge(partials)
    small = rollup.Partial(
        **{name: getattr(state, name) for name in rollup.Partial.TABLES},
        quality=state.quality,
        people=state.people,
    )
    # PQL tables, quality, quarantine: the merge's own rules; the person tables are folded below
    # (the new ones passed in without their rows: reducing them here too would be thrown away)
    bare = rollup.Partial(
        **{name: getattr(added, name) for name in rollup.Partial.TABLES},
        quality=added.quality,
        people=added.people,
    )
    if not (state.people and added.people):
        return rollup.merge([small, added])
    merged = rollup.merge([small, bare])
    for name in rollup.Partial.PEOPLE_TABLES:
        old, new = getattr(state, name), getattr(added, name)
        if not len(new):
            setattr(merged, name, old)
            continue
        key = FOLD_KEYS[name]
        touched = isin(old[key], new[key])
        folded = people.merge(name, [old[touched], new])
        setattr(merged, name, _concat(name, old[~touched], folded, pd))
    return merged


def _concat(name: str, untouched: pd.DataFrame, folded: pd.DataFrame, pd) -> pd.DataFrame:
    from plg_bridge.ingest import people

    if not len(untouched):
        return folded.reset_index(drop=True)
    frame = pd.concat([untouched, folded], ignore_index=True)
    return frame.astype(people.TABLES[name])


def prune(work: Location, keep: int | None = None) -> None:
    """Delete snapshots beyond the `keep` (KEEP) newest as-of dates (a backfill further back rebuilds cold),
    and within a date all but the PER_DAY most complete: the fast path folds each landing into the
    window of the next midnight, one snapshot per landing, each superseding the one before."""
    found = snapshots(work)  # newest as-of, then most files, first
    dates = sorted({s.prefix.split("/")[1] for s in found}, reverse=True)
    for day in dates[KEEP if keep is None else keep :]:
        for obj in work.child(ROOT, day).list():
            work.delete(f"{ROOT}/{day}/{obj.key}")
    kept = Counter()
    for snap in found:
        day = snap.prefix.split("/")[1]
        kept[day] += 1
        if kept[day] > PER_DAY and day in dates[: KEEP if keep is None else keep]:
            folder = snap.prefix.removeprefix(f"{ROOT}/")
            for obj in work.child(ROOT, folder).list():
                work.delete(f"{snap.prefix}/{obj.key}")
