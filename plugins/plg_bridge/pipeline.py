"""The data's way through plg-bridge as plain functions, shared by the DAG tasks and the CLI.

discover -> rollup (one call per export file) -> merge partials up to T -> score. Airflow maps
`rollup_to` over files; the CLI runs the same functions in one process, so both give one answer.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from plg_bridge.ingest import history, rollup
from plg_bridge.ingest.layout import ExportFile, is_data_file, parse_key
from plg_bridge.models import pql
from plg_bridge.storage import Location

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.controls import RunOptions
    from plg_bridge.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    scores: pd.DataFrame
    quality: dict[str, int]
    quarantine: pd.DataFrame
    signals: pd.DataFrame | None = None  # when the partials carry the person tables
    contacts: pd.DataFrame | None = None  # idem
    history: dict | None = None  # the DAG path: snapshot started from, partials folded in
    keys: pd.DataFrame | None = None  # person keys (identity.stitch) when the person tables were read


def discover(exports: Location, as_of: datetime | None = None) -> list[ExportFile]:
    """Data files under the location; with `as_of`, only export intervals that ended by then
    (files whose name carries no interval are kept: we cannot tell, and the score filters on
    event time anyway)."""
    files = [parse_key(o.key, o.size, o.fingerprint) for o in exports.list() if is_data_file(o.key)]
    if as_of is not None:
        files = [f for f in files if f.end is None or f.end <= as_of]
    return files


def partial_prefix(file: ExportFile) -> str:
    """Where a file's partial lives: keyed by the export object and its fingerprint, so a file
    is rolled up once, and re-exporting an interval replaces its partial instead of adding to it.
    The partial format is part of it: after an upgrade that changes the tables, files are rolled
    up again rather than read in a format the code no longer understands."""
    return f"partials/{file.key}/{file.fingerprint or 'unversioned'}-v{rollup.PARTIAL_FORMAT}"


def pending(work: Location, files: list[ExportFile]) -> list[ExportFile]:
    """Files whose current version has no sound partial yet (one LIST, not one request per file);
    a damaged partial is quarantined there, so it is rolled up again (rollup.finished)."""
    done = rollup.finished(work)
    return [f for f in files if partial_prefix(f) not in done]


def rollup_or_quarantine(
    exports: Location,
    key: str,
    settings: Settings,
    people: bool = True,
    window: tuple[datetime, datetime] | None = None,
) -> rollup.Partial:
    """rollup_file, or with `exports.on_unreadable: quarantine` an empty partial that records the
    object and the reader's error (counted as `quarantined_files`; the run report alerts on it)."""
    from plg_bridge.ingest.reader import ExportReadError
    from plg_bridge.ingest.schema import ExportSchemaError

    try:
        return rollup.rollup_file(exports, key, settings, people=people, window=window)
    except (ExportReadError, ExportSchemaError) as exc:
        if settings.exports.on_unreadable != "quarantine":
            raise
        log.error("quarantined export object %s: %s", key, exc)
        empty = replace(rollup.merge([]), people=people)  # an unreadable file takes no person tables away
        empty.quarantine.loc[0] = [exports.uri_of(key), -1, None, None, "unreadable_file", str(exc)[:2000]]
        empty.quality.update({"quarantined_files": 1})
        return empty


def rollup_to(exports: Location, work: Location, file: ExportFile, settings: Settings) -> dict[str, int]:
    """Roll one export file up into its partial under `work`; returns its quality counters."""
    started = time.monotonic()
    partial = rollup_or_quarantine(exports, file.key, settings)
    rollup.write(partial, work, partial_prefix(file))
    seconds = time.monotonic() - started
    rows = partial.quality["rows_read"]
    log.info(
        "rolled up %s: %d rows in %.1fs (%.0f rows/s)", file.label, rows, seconds, rows / max(seconds, 1e-9)
    )
    return dict(partial.quality)


def quality_summary(partial: rollup.Partial, scores: pd.DataFrame, as_of: datetime) -> dict[str, int]:
    """Counters of a run: what was read, dropped, set aside, and how many organizations scored."""
    import pandas as pd

    quality = {k: int(v) for k, v in sorted(partial.quality.items())}
    later = partial.counts[partial.counts["day"] >= pd.Timestamp(as_of)]["n"].sum()
    quality["events_after_as_of"] = int(later)
    quality["organizations_scored"] = len(scores)
    quality["pqls"] = int(scores["is_pql"].sum())
    return quality


def score_partials(partials: list[rollup.Partial], as_of: datetime, settings: Settings) -> ScoreResult:
    return score_merged(rollup.merge(partials, keep_seen=False), as_of, settings)  # not merged again


def score_merged(
    merged: rollup.Partial, as_of: datetime, settings: Settings, folded: history.Folded | None = None
) -> ScoreResult:
    """Every model on one merged Partial; identity is stitched and exclusions found once.

    With `folded` carrying the contacts of an earlier snapshot, the person models run only on the
    persons the new data touched (ingest/touched.py); everyone else keeps the snapshot's contact.
    """
    import pandas as pd

    from plg_bridge.ingest import touched
    from plg_bridge.models import exclusions
    from plg_bridge.models.contacts import COLUMNS, contacts
    from plg_bridge.models.identity import persons
    from plg_bridge.models.signals import raise_signals

    as_of = pql.as_of_time(as_of)
    ids = settings.exports.placeholder_ids
    keys = persons(merged, as_of, ids) if merged.people else None  # creators count per person too
    scores = pql.score(merged, as_of, settings.pql, placeholder_ids=ids, keys=keys)
    quality = quality_summary(merged, scores, as_of)
    if keys is None:
        return ScoreResult(scores, quality, merged.quarantine)
    subset, kept, narrowed = merged, None, None
    if folded is not None and folded.contacts is not None:
        since = min(folded.since, as_of - timedelta(days=1))  # the signals' day, even on a rerun
        recompute = touched.distinct_ids(
            merged, folded.added, since, keys, folded.keys, email_key=settings.models.email_property
        )
        if recompute is not None:
            subset = touched.restrict(merged, recompute)
            persons = keys.loc[touched.isin(keys["distinct_id"], recompute), "person_key"]
            before = folded.keys.loc[touched.isin(folded.keys["distinct_id"], recompute), "person_key"]
            gone = pd.Index(persons).union(pd.Index(before)).union(recompute)
            kept = folded.contacts[~touched.isin(folded.contacts["person_key"], gone)]
            narrowed = {"persons_recomputed": persons.nunique(), "persons": keys["person_key"].nunique()}
            log.info("person models: %(persons_recomputed)d of %(persons)d persons recomputed", narrowed)
    excluded = exclusions.find(subset, keys, as_of, settings)
    signals = raise_signals(subset, scores, as_of, settings, keys=keys, excluded=excluded)
    quality.update({f"signals_{k}": int(v) for k, v in signals["signal"].value_counts().sort_index().items()})
    people = contacts(subset, as_of, settings, keys=keys, excluded=excluded)
    if kept is not None:
        people = pd.concat([kept, people], ignore_index=True)
        people = people.astype(object).where(people.notna(), None).astype(COLUMNS)  # as contacts() does
        people = people.sort_values("email", kind="stable").reset_index(drop=True)
    return ScoreResult(scores, quality, merged.quarantine, signals, people, history=narrowed, keys=keys)


def score_window(as_of: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """The event time the PQL score reads: this week and last week, [T - 2 weeks, T)."""
    as_of = pql.as_of_time(as_of)
    return as_of - 2 * timedelta(days=settings.pql.week_days), as_of


def score_export(
    exports: Location, as_of: datetime, settings: Settings, *, prune: bool = True
) -> ScoreResult:
    """Score every data file of a location in one process (the CLI path), files read on the
    machine's cores (rollup.rollup_files: same partials as one by one).

    `prune` reads only what the score needs (score_window; reader.iter_batches): files whose export
    interval cannot hold its events, and Parquet row groups whose timestamp statistics lie outside
    it, are left out, except for the rows of `$groupidentify` and the identity events before T
    (organization names and persons need all history). Same scores; the quality counters then
    describe what was read (`events_after_as_of` counts only events the read came across)."""
    files = discover(exports)
    partials = []
    window = score_window(as_of, settings) if prune else None
    read = rollup.rollup_files(
        exports,
        [f.key for f in files],
        lambda key: rollup_or_quarantine(exports, key, settings, people=False, window=window),
    )
    for i, (file, partial) in enumerate(zip(files, read, strict=True), 1):
        partials.append(partial)
        log.info("read %d/%d files (%s)", i, len(files), file.label)
    return score_partials(partials, as_of, settings)


def score_from_work(
    work: Location, files: list[ExportFile], as_of: datetime, settings: Settings
) -> ScoreResult:
    """Score from the partials the mapped rollup tasks stored (the DAG path): the kept history
    (ingest/history.py) of an earlier run plus the partials of the files it had not seen."""
    from concurrent.futures import ThreadPoolExecutor

    folded = history.fold(work, files, pql.as_of_time(as_of), settings)
    with ThreadPoolExecutor(1, thread_name_prefix="history") as pool:  # store while the models run
        saving = pool.submit(folded.save)
        result = score_merged(folded.partial, as_of, settings, folded)
        saving.result()
    folded.commit(result.keys, result.contacts)
    return replace(result, history={**folded.info, **(result.history or {})})


def score_run(ws: Workspace, files: list[ExportFile], as_of: datetime) -> dict:
    """The DAG's score step: fold the new partials into the history, score, write outputs;
    returns URIs, quality and what the fold started from (`history`)."""
    from plg_bridge.window import run_prefix

    result = score_from_work(ws.work, files, as_of, ws.settings)
    outputs = write_outputs(result, ws.work, run_prefix(as_of))
    outputs["history"] = ws.work.uri_of(f"{run_prefix(as_of)}/history.json")
    ws.work.write_bytes(f"{run_prefix(as_of)}/history.json", json.dumps(result.history).encode())
    return {"outputs": outputs, "quality": result.quality, "history": result.history}


def write_outputs(result: ScoreResult, out: Location, prefix: str) -> dict[str, str]:
    """Scores (CSV + Parquet), quarantined rows and the data-quality summary under `prefix`."""
    from plg_bridge.report.escape import to_csv  # org names starting like a formula made inert

    written = {"scores": out.write_frame(f"{prefix}/scores.parquet", result.scores)}
    out.write_bytes(f"{prefix}/scores.csv", to_csv(result.scores).encode())
    written["scores_csv"] = out.uri_of(f"{prefix}/scores.csv")
    for name in ("signals", "contacts"):
        frame = getattr(result, name)
        if frame is not None:
            written[name] = out.write_frame(f"{prefix}/{name}.parquet", frame)
    if len(result.quarantine):
        written["quarantine"] = out.write_frame(f"{prefix}/quarantine.parquet", result.quarantine)
    out.write_bytes(f"{prefix}/quality.json", json.dumps(result.quality, indent=2, sort_keys=True).encode())
    written["quality"] = out.uri_of(f"{prefix}/quality.json")
    return written


def rollup_new(ws: Workspace, files: list[ExportFile]) -> int:
    """Roll up the files that have no partial yet, on the machine's cores (rollup.rollup_files:
    each file's partial is its own, as in the DAG's mapped tasks); returns how many."""
    todo = pending(ws.work, files)
    by_key = {f.key: f for f in todo}
    done = rollup.rollup_files(
        ws.exports, list(by_key), lambda key: rollup_to(ws.exports, ws.work, by_key[key], ws.settings)
    )
    for i, _ in enumerate(done, 1):
        log.info("rolled up %d/%d new export files", i, len(todo))
    return len(todo)


def run_window(ws: Workspace, as_of: datetime, options: RunOptions) -> dict:
    """The whole DAG in one process (the CLI's `sync` and `plan`): same functions, same outputs.
    Every target runs even when one fails (its result carries `error`), as the DAG's tasks do."""
    from plg_bridge.delivery.deliver import deliver_targets
    from plg_bridge.report.summary import write_run_summary

    as_of = pql.as_of_time(as_of)
    files = discover(ws.exports, as_of)
    rollup_new(ws, files)
    scored = score_run(ws, files, as_of)
    deliveries = deliver_targets(as_of, options, ws)
    return {"scored": scored, "deliveries": deliveries, **write_run_summary(ws, as_of, scored, deliveries)}
