"""The DAG path for `make bench`: its cold run and its daily increment, as `plg-bridge plan` processes.

Imported by bench/run.py (which owns data generation, process measurement and the report). For
one export folder ending at T (daily files) and a work folder:

1. cold: an empty work folder, then `plg-bridge plan --as-of T`, one process doing what the DAG
   does on its first run (discover, roll up every file with the person tables, merge, every model,
   plan every enabled target; nothing sent). Its peak RSS bounds every task of the DAG from above.
2. previous day: the newest file's partial and every snapshot deleted, `plg-bridge plan --as-of
   T-1d` (untimed): the state the daily run finds, partials of every earlier file and the
   history snapshot of T-1d.
3. increment, `repeat` times: the newest partial and the snapshot of T deleted, then `plg-bridge
   plan --as-of T` timed: roll up the one new file, fold it into the snapshot of T-1d, score, plan.
   The scores it writes are compared with DuckDB's over the same files.

Steps 2-3 are cached in .bench/work/<name> while the data and the package sources are unchanged
(then step 1 is skipped too and reported from the cache).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

# what a `plg-bridge plan` process does before any work: its imports and its log masking (plan
# defers Airflow's secrets masker until a connection is needed: redact.defer_log_masking)
STARTUP = (
    "import logging, pandas, pyarrow, plg_bridge.cli, plg_bridge.pipeline, plg_bridge.delivery.deliver; "
    "from plg_bridge.redact import defer_log_masking; defer_log_masking(logging.WARNING, ())"
)


def plan_env(events: Path, work: Path) -> dict[str, str]:
    """The environment of a `plg-bridge plan` over this export and work folder (no secrets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLG_BRIDGE")}
    env.update({"PLG_BRIDGE__EXPORTS__LOCATION": str(events), "PLG_BRIDGE__WORK_LOCATION": str(work)})
    return env


def newest_file(events: Path) -> tuple[str, int]:
    """Key and rows of the export's newest file (by interval end)."""
    import pyarrow.parquet as pq

    from plg_bridge.pipeline import discover
    from plg_bridge.storage import location

    files = [f for f in discover(location(str(events))) if f.end is not None]
    newest = max(files, key=lambda f: (f.end, f.key))
    return newest.key, pq.ParquetFile(events / newest.key).metadata.num_rows


def forget(work: Path, key: str, as_of: dt.date | None = None) -> None:
    """Delete the partial of export `key` and the history snapshots (of `as_of` only, if given)."""
    shutil.rmtree(work / "partials" / key, ignore_errors=True)
    history = work / "history"
    for snap in history.glob("as_of=*") if history.is_dir() else []:
        if as_of is None or snap.name == f"as_of={as_of.isoformat()}":
            shutil.rmtree(snap)


def dag_path(
    events: Path,
    work: Path,
    as_of: dt.date,
    *,
    repeat: int,
    measure: Callable,
    cache_key: dict,
    log: Callable[[str], None],
) -> dict:
    """Cold run and daily increments of the DAG path (module docstring); seconds and peak RSS."""
    plg = [str(Path(sys.executable).parent / "plg-bridge"), "plan"]
    env = plan_env(events, work)
    key, new_rows = newest_file(events)
    marker = work.with_suffix(".json")
    stored = json.loads(marker.read_text()) if marker.exists() else {}
    if stored.get("key") == cache_key and work.is_dir():
        cold = {**stored["cold"], "cached": True}
        log(f"{events.name}: DAG path: cold run cached in {work} (same data and code)")
    else:
        marker.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        child = measure([*plg, "--as-of", as_of.isoformat()], env=env)
        cold = {"seconds": child.seconds, "rss_mb": child.rss_mb, "cpu_seconds": child.cpu_seconds}
        log(f"{events.name}: DAG path cold run: {child.seconds:.1f}s, {child.rss_mb:.0f} MB")
        forget(work, key)
        child = measure([*plg, "--as-of", (as_of - dt.timedelta(days=1)).isoformat()], env=env)
        log(f"{events.name}: DAG path previous day (untimed state): {child.seconds:.1f}s")
        marker.write_text(json.dumps({"key": cache_key, "cold": cold}))
    runs = []
    for i in range(repeat):
        forget(work, key, as_of)
        child = measure([*plg, "--as-of", as_of.isoformat()], env=env)
        history = json.loads((work / "runs" / f"as_of={as_of.isoformat()}" / "history.json").read_text())
        runs.append({"seconds": child.seconds, "rss_mb": child.rss_mb, "cpu_seconds": child.cpu_seconds})
        log(f"{events.name}: daily increment {i + 1}/{repeat}: {child.seconds:.2f}s, {child.rss_mb:.0f} MB")
    startup = measure([sys.executable, "-c", STARTUP], env=env)
    log(f"{events.name}: start-up of a plan process (imports, secrets masker): {startup.seconds:.2f}s")
    return {
        "startup_seconds": startup.seconds,
        "new_file": key,
        "new_rows": new_rows,
        "cold": cold,
        "increments": runs,
        "seconds": statistics.median(r["seconds"] for r in runs),
        "rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "history": history,
        "scores_csv": str(work / "runs" / f"as_of={as_of.isoformat()}" / "scores.csv"),
    }
