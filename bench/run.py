"""`make bench`: plg-bridge score against DuckDB running the same PQL model, on generated exports.

    .venv/bin/python bench/run.py            # 5 M and 20 M events, 3 runs each; writes docs/benchmarks.md
    .venv/bin/python bench/run.py --quick    # 200 k events, smoke test (< 1 min); writes .bench/quick.md

1. Data: generate(rows, end=2026-11-20, days=28, default seed) into .bench/data/<rows>, cached: a
   marker .bench/data/<rows>.json records the parameters (and the generator's source hash); the
   data is regenerated only when they differ.
2. Full scoring, per size, in the same run: `plg-bridge score` and DuckDB over
   include/sql/duckdb/pql.sql (bench/duckdb_pql.py), each as its own process, alternated, `--repeat`
   times; wall seconds and peak RSS (the child's own rusage from wait4) -> medians. The two CSVs are
   compared row by row after sorting by org_id.
3. Steady state (the DAG path): partials of every file but the newest in a work folder
   (pipeline.rollup_to), then the daily increment: pending + rollup_to(newest) + score_from_work
   (bench/steady.py), timed against the full run.
4. A markdown report, printed and written between the markers of docs/benchmarks.md (the text
   around the markers is kept).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
DOCS = REPO / "docs" / "benchmarks.md"
BIN = Path(sys.executable).parent
END = dt.date(2026, 11, 20)
AS_OF = END.isoformat()
DAYS = 28
SIZES = (5_000_000, 20_000_000)
QUICK_SIZES = (200_000,)
BEGIN_MARK = "<!-- bench:begin (written by bench/run.py; edit outside the markers) -->"
END_MARK = "<!-- bench:end -->"
KEY = ["org_id"]
COMPARED = [
    "org_id",
    "events_this_week",
    "events_last_week",
    "active_creators",
    "integrations_connected",
    "pql_score",
    "is_pql",
    "org_name",
]
# targets of issue 3 (benchmark, not timed tests)
TARGET_RATIO = 0.8
TARGET_RSS_MB = 1024
FLAT_RSS = 1.25  # "flat": peak RSS at the largest size at most this times the smallest's


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- measuring a child process ------------------------------------------------------------------


@dataclass
class Child:
    seconds: float  # wall clock, spawn to exit
    rss_mb: float  # peak resident set size of the child (its own rusage)
    cpu_seconds: float  # user + system
    stdout: str
    stderr: str


LOADS: list[float] = []  # 1-minute load average at each child's start and end


def measure(cmd: list[str]) -> Child:
    """Run `cmd` to completion; its wall time and peak RSS from wait4 (this child only)."""
    LOADS.append(os.getloadavg()[0])
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        LOADS.append(os.getloadavg()[0])
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed with exit {proc.returncode}:\n{stderr[-4000:]}")
    return Child(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, stdout, stderr)


# -- data -----------------------------------------------------------------------------------------


def data_params(rows: int) -> dict:
    from plg_bridge.synthetic import generate as gen

    seed = inspect.signature(gen.generate).parameters["seed"].default
    source = hashlib.sha256(Path(gen.__file__).read_bytes()).hexdigest()[:16]
    return {"rows": rows, "end": END.isoformat(), "days": DAYS, "seed": seed, "generator": source}


def code_hash() -> str:
    """Of the package sources and the settings file: the partials in a work folder depend on them."""
    digest = hashlib.sha256()
    sources = sorted((REPO / "plugins" / "plg_bridge").rglob("*.py"))
    for path in [*sources, REPO / "include" / "config" / "plg_bridge.yaml"]:
        if path.exists():
            digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_data(rows: int) -> tuple[Path, dict]:
    """The export folder for `rows` events, generated unless the marker says it is current."""
    from plg_bridge.synthetic.generate import generate

    folder = BENCH / "data" / str(rows)
    marker = BENCH / "data" / f"{rows}.json"
    params = data_params(rows)
    if marker.exists() and folder.is_dir():
        stored = json.loads(marker.read_text())
        if stored.get("params") == params:
            log(
                f"{rows:,} rows: cached in {folder.relative_to(REPO)} (generated in {stored['seconds']:.1f}s)"
            )
            return folder, stored
    shutil.rmtree(folder, ignore_errors=True)
    marker.unlink(missing_ok=True)
    folder.mkdir(parents=True)
    log(f"{rows:,} rows: generating into {folder.relative_to(REPO)} ...")
    started = time.perf_counter()
    summary = generate(str(folder), rows, END, days=DAYS, seed=params["seed"])
    seconds = time.perf_counter() - started
    stored = {
        "params": params,
        "seconds": seconds,
        "files": len(summary.files),
        "rows": summary.rows,
        "duplicates": summary.duplicates,
        "orgs": summary.orgs,
        "bytes": sum(p.stat().st_size for p in folder.iterdir()),
    }
    marker.write_text(json.dumps(stored, indent=2))
    print(f"generated {rows:,} rows in {seconds:.1f}s ({rows / seconds:,.0f} rows/s)", flush=True)
    return folder, stored


# -- comparing the two tables ---------------------------------------------------------------------


def read_scores(path: Path):
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["is_pql"] = frame["is_pql"].str.lower()
    return frame[COMPARED].sort_values(KEY, kind="stable").reset_index(drop=True)


def compare(plg_csv: Path, duck_csv: Path) -> tuple[bool, str]:
    """Equal row by row after sorting by org_id? With a short account of the first differences."""
    a, b = read_scores(plg_csv), read_scores(duck_csv)
    if a.equals(b):
        return True, f"{len(a)} organizations, identical"
    only_a = sorted(set(a["org_id"]) - set(b["org_id"]))
    only_b = sorted(set(b["org_id"]) - set(a["org_id"]))
    both = a.merge(b, on="org_id", suffixes=("_plg", "_duckdb"))
    lines = [f"{len(a)} vs {len(b)} organizations; only plg: {only_a[:5]}; only duckdb: {only_b[:5]}"]
    for column in COMPARED[1:]:
        diff = both[both[f"{column}_plg"] != both[f"{column}_duckdb"]]
        if len(diff):
            first = diff.iloc[0]
            lines.append(
                f"{column}: {len(diff)} orgs differ, e.g. {first['org_id']}: "
                f"plg={first[f'{column}_plg']!r} duckdb={first[f'{column}_duckdb']!r}"
            )
    return False, "; ".join(lines)


# -- the runs -------------------------------------------------------------------------------------


@dataclass
class Result:
    rows: int
    plg: list[Child] = field(default_factory=list)
    duck: list[Child] = field(default_factory=list)
    duck_threads: int = 0
    equal: bool = False
    detail: str = ""
    data: dict = field(default_factory=dict)
    steady: dict = field(default_factory=dict)
    prototypes: list[dict] = field(default_factory=list)

    @staticmethod
    def median(children: list[Child], attr: str) -> float:
        return statistics.median(getattr(c, attr) for c in children)


def full_runs(rows: int, folder: Path, repeat: int, out: Path) -> Result:
    result = Result(rows)
    plg_csv, duck_csv = out / f"plg-{rows}.csv", out / f"duckdb-{rows}.csv"
    plg_cmd = [str(BIN / "plg-bridge"), "score", "--events", str(folder), "--as-of", AS_OF]
    duck_cmd = [
        sys.executable,
        str(REPO / "bench" / "duckdb_pql.py"),
        "--events",
        str(folder),
        "--as-of",
        AS_OF,
    ]
    for i in range(repeat):  # alternate, so neither side gets a systematically warmer machine
        child = measure([*plg_cmd, "--output", str(plg_csv)])
        result.plg.append(child)
        log(
            f"{rows:,} rows: plg-bridge score run {i + 1}/{repeat}: {child.seconds:.2f}s, {child.rss_mb:.0f} MB"
        )
        child = measure([*duck_cmd, "--output", str(duck_csv)])
        result.duck.append(child)
        result.duck_threads = json.loads(child.stdout.strip().splitlines()[-1])["threads"]
        log(f"{rows:,} rows: duckdb run {i + 1}/{repeat}: {child.seconds:.2f}s, {child.rss_mb:.0f} MB")
    result.equal, result.detail = compare(plg_csv, duck_csv)
    log(f"{rows:,} rows: tables {'equal' if result.equal else 'DIFFER'}: {result.detail}")
    return result


def steady_state(rows: int, folder: Path, repeat: int, out: Path) -> dict:
    """Old partials in place, then the daily increment, `repeat` times (the newest partial is
    removed before each)."""
    work = BENCH / "work" / str(rows)
    script = [sys.executable, str(REPO / "bench" / "steady.py")]
    args = ["--events", str(folder), "--work", str(work), "--as-of", AS_OF]
    marker = BENCH / "work" / f"{rows}.json"
    key = {"data": data_params(rows), "code": code_hash()}
    stored = json.loads(marker.read_text()) if marker.exists() else {}
    if stored.get("key") == key and work.is_dir():
        prepared, prepare_rss = stored["prepared"], stored["rss_mb"]
        log(
            f"{rows:,} rows: steady state: old partials cached in {work.relative_to(REPO)} (same data and code)"
        )
    else:
        log(f"{rows:,} rows: steady state: rolling up every file but the newest (pipeline.rollup_to) ...")
        marker.unlink(missing_ok=True)
        prepare = measure([*script, "prepare", *args])
        prepared, prepare_rss = json.loads(prepare.stdout.strip().splitlines()[-1]), prepare.rss_mb
        marker.write_text(json.dumps({"key": key, "prepared": prepared, "rss_mb": prepare_rss}))
    increments = []
    dag_csv = out / f"dag-{rows}.csv"
    for i in range(repeat):
        child = measure([*script, "increment", *args, "--output", str(dag_csv)])
        info = json.loads(child.stdout.strip().splitlines()[-1])
        increments.append((child, info))
        log(
            f"{rows:,} rows: daily increment {i + 1}/{repeat}: {child.seconds:.2f}s process, "
            f"{info['seconds']:.2f}s in-process, pending={info['pending']}"
        )
    equal, detail = compare(dag_csv, out / f"duckdb-{rows}.csv")
    mid = sorted(increments, key=lambda ci: ci[1]["seconds"])[len(increments) // 2]
    return {
        "files": prepared["files"],
        "newest": prepared["newest"],
        "newest_rows": prepared["newest_rows"],
        "old_rollup_seconds": prepared["rollup_seconds"],
        "old_rows": sum(f["rows"] for f in prepared["rolled_up"]),
        "prepare_rss_mb": prepare_rss,
        "pending": mid[1]["pending"],
        "pending_seconds": statistics.median(i["pending_seconds"] for _, i in increments),
        "rollup_seconds": statistics.median(i["rollup_seconds"] for _, i in increments),
        "score_seconds": statistics.median(i["score_seconds"] for _, i in increments),
        "score_pql_tables_seconds": statistics.median(i["score_pql_tables_seconds"] for _, i in increments),
        "score_pql_tables_equal": all(i["score_pql_tables_equal"] for _, i in increments),
        "seconds": statistics.median(i["seconds"] for _, i in increments),
        "process_seconds": statistics.median(c.seconds for c, _ in increments),
        "rss_mb": statistics.median(c.rss_mb for c, _ in increments),
        "equal_duckdb": equal,
        "detail": detail,
    }


PROTOTYPES = ("people", "json-fast", "row-groups", "row-groups-2t", "stream-32k")
PEOPLE_MAX_ROWS = 5_000_000  # the old people=True path is slow: only on the smaller sizes


def prototypes(rows: int, folder: Path, out: Path) -> list[dict]:
    """bench/prototype.py variants, once each, as separate processes; tables checked against DuckDB."""
    found = []
    for variant in PROTOTYPES:
        if variant == "people" and rows > PEOPLE_MAX_ROWS:
            continue
        csv = out / f"proto-{variant}-{rows}.csv"
        cmd = [sys.executable, str(REPO / "bench" / "prototype.py"), variant, "--events", str(folder)]
        child = measure([*cmd, "--as-of", AS_OF, "--output", str(csv)])
        equal, detail = compare(csv, out / f"duckdb-{rows}.csv")
        info = json.loads(child.stdout.strip().splitlines()[-1])
        found.append(
            {
                "variant": variant,
                "seconds": child.seconds,
                "cpu_seconds": child.cpu_seconds,
                "rss_mb": child.rss_mb,
                "inner_seconds": info["seconds"],
                "equal": equal,
                "detail": detail,
            }
        )
        log(
            f"{rows:,} rows: prototype {variant}: {child.seconds:.2f}s, CPU {child.cpu_seconds:.1f}s, {child.rss_mb:.0f} MB, equal={equal}"
        )
    return found


# -- report ---------------------------------------------------------------------------------------


def machine() -> dict:
    import duckdb
    import numpy
    import pandas
    import psutil
    import pyarrow

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": psutil.virtual_memory().total / 2**30,
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "duckdb": duckdb.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_rows(n: int) -> str:
    return f"{n / 1e6:g} M" if n >= 1_000_000 else f"{n / 1e3:g} k"


def report(results: list[Result], command: str, repeat: int, box: dict) -> str:
    lines = [
        f"Command: `{command}` ({repeat} runs per tool and size, medians; run {box['date']}, "
        f"tree `{box['commit']}`).",
        "",
        f"Machine: {box['nproc']} cores ({box['cpu']}), {box['ram_gb']:.1f} GiB RAM, {box['os']}; "
        f"Python {box['python']}, pyarrow {box['pyarrow']}, pandas {box['pandas']}, numpy {box['numpy']}, "
        f"DuckDB {box['duckdb']} ({results[0].duck_threads} threads). 1-minute load average during the "
        f"run: {min(LOADS):.1f} to {max(LOADS):.1f} (the machine is shared with other sessions; on 2 cores "
        "anything above ~2 means the tools waited for CPU).",
        "",
        "Data: `plugins/plg_bridge/synthetic/generate.py`, 28 daily export files (Parquet, zstd) ending 2026-11-20, "
        "default seed; scored as of 2026-11-20 (14-day window). "
        + "; ".join(
            f"{fmt_rows(r.rows)}: {r.data['bytes'] / 2**20:.0f} MiB, {r.data['orgs']:,} organizations, "
            f"generated in {r.data['seconds']:.1f}s"
            for r in results
        )
        + ".",
        "",
        "### Full scoring: `plg-bridge score` vs DuckDB (`include/sql/duckdb/pql.sql`)",
        "",
        "Each tool is a separate process; seconds are wall clock from spawn to exit (interpreter start-up "
        "included), peak RSS is the process's own maximum resident set (wait4 rusage), CPU = user + system.",
        "",
        "| rows | tool | seconds | rows/s | CPU s | peak RSS MB | plg / DuckDB | tables equal |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        plg_s, duck_s = Result.median(r.plg, "seconds"), Result.median(r.duck, "seconds")
        ratio = plg_s / duck_s
        for name, children, secs in (("plg-bridge score", r.plg, plg_s), ("DuckDB", r.duck, duck_s)):
            lines.append(
                f"| {fmt_rows(r.rows)} | {name} | {secs:.2f} | {r.rows / secs:,.0f} | "
                f"{Result.median(children, 'cpu_seconds'):.1f} | {Result.median(children, 'rss_mb'):.0f} | "
                f"{f'{ratio:.2f}x' if children is r.plg else ''} | "
                f"{('yes' if r.equal else 'NO') if children is r.plg else ''} |"
            )
    lines += ["", "Runs (seconds / MB):", ""]
    for r in results:
        for name, children in (("plg-bridge score", r.plg), ("DuckDB", r.duck)):
            runs = ", ".join(f"{c.seconds:.2f}/{c.rss_mb:.0f}" for c in children)
            lines.append(f"- {fmt_rows(r.rows)} {name}: {runs}")
    for r in results:
        if not r.equal:
            lines += ["", f"Differences at {fmt_rows(r.rows)}: {r.detail}"]

    steady = [r for r in results if r.steady]
    if steady:
        lines += [
            "",
            "### Steady state: the daily increment of the DAG path",
            "",
            "Partials of every export file but the newest already in the work folder (pipeline.rollup_to); "
            "the increment is `pipeline.pending` + `rollup_to(newest)` + `score_from_work` (merges all "
            "partials and scores), timed in-process, median of the runs. Full run = `plg-bridge score` "
            "over every file (table above); cold DAG path = rollup_to of all files + the increment's score. "
            "The DAG's rollup_to also builds the person tables (people=True), so it does more per row than "
            "the CLI. The old partials are cached in .bench/work/<rows> while the data and the package "
            "sources are unchanged.",
            "",
            "| rows | new file rows | share of rows | pending s | rollup_to(new) s | score_from_work s | "
            "increment s | full run s | increment / full | cold DAG path s | peak RSS MB | equals DuckDB | "
            "score, PQL tables only (prototype) s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in steady:
            s = r.steady
            full = Result.median(r.plg, "seconds")
            cold = s["old_rollup_seconds"] + s["rollup_seconds"] + s["score_seconds"]
            lines.append(
                f"| {fmt_rows(r.rows)} | {s['newest_rows']:,} | {s['newest_rows'] / r.rows:.1%} | "
                f"{s['pending_seconds']:.3f} | {s['rollup_seconds']:.2f} | {s['score_seconds']:.2f} | "
                f"{s['seconds']:.2f} | {full:.2f} | {s['seconds'] / full:.1%} | {cold:.1f} | "
                f"{s['rss_mb']:.0f} | {'yes' if s['equal_duckdb'] else 'NO: ' + s['detail']} | "
                f"{s['score_pql_tables_seconds']:.2f}{'' if s['score_pql_tables_equal'] else ' (DIFFERENT scores)'} |"
            )
        lines += [
            "",
            "Increment processes: "
            + "; ".join(
                f"{fmt_rows(r.rows)}: {r.steady['process_seconds']:.2f}s wall including interpreter start-up, "
                f"pending found {r.steady['pending']}"
                for r in steady
            )
            + ".",
        ]

    protos = [r for r in results if r.prototypes]
    if protos:
        lines += [
            "",
            "### Prototypes (bench/prototype.py, outside plugins/; one run each)",
            "",
            "Proposed changes to the CLI path, applied by monkeypatching in a separate process; see "
            "bench/prototype.py for each variant. CPU = user + system seconds (less disturbed by other "
            "load on the machine than wall seconds). Compared with the medians of the table above.",
            "",
            "| rows | variant | seconds | CPU s | peak RSS MB | CPU vs cli | seconds / DuckDB | tables equal |",
            "|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in protos:
            cli_cpu = Result.median(r.plg, "cpu_seconds")
            duck = Result.median(r.duck, "seconds")
            lines.append(
                f"| {fmt_rows(r.rows)} | cli (`plg-bridge score`, median) | {Result.median(r.plg, 'seconds'):.2f} | "
                f"{cli_cpu:.1f} | {Result.median(r.plg, 'rss_mb'):.0f} | 1.00 | "
                f"{Result.median(r.plg, 'seconds') / duck:.2f}x | {'yes' if r.equal else 'NO'} |"
            )
            for p in r.prototypes:
                lines.append(
                    f"| {fmt_rows(r.rows)} | {p['variant']} | {p['seconds']:.2f} | {p['cpu_seconds']:.1f} | "
                    f"{p['rss_mb']:.0f} | {p['cpu_seconds'] / cli_cpu:.2f} | {p['seconds'] / duck:.2f}x | "
                    f"{'yes' if p['equal'] else 'NO: ' + p['detail']} |"
                )

    lines += ["", "### Against the targets (issue 3)", ""]
    lines += verdicts(results)
    return "\n".join(lines) + "\n"


def verdicts(results: list[Result]) -> list[str]:
    largest, smallest = results[-1], results[0]
    ratio = Result.median(largest.plg, "seconds") / Result.median(largest.duck, "seconds")
    out = []
    ok = ratio <= TARGET_RATIO
    out.append(
        f"- Time, {fmt_rows(largest.rows)}: plg-bridge score / DuckDB = {ratio:.2f}x (target <= {TARGET_RATIO}x): "
        + (
            "**met**."
            if ok
            else f"**missed** by {ratio / TARGET_RATIO - 1:.0%} ({ratio:.2f}x vs {TARGET_RATIO}x)."
        )
    )
    peaks = {r.rows: Result.median(r.plg, "rss_mb") for r in results}
    worst = max(peaks.values())
    ok = worst <= TARGET_RSS_MB
    out.append(
        f"- Peak RSS <= {TARGET_RSS_MB} MB: "
        + ", ".join(f"{fmt_rows(n)} {mb:.0f} MB" for n, mb in peaks.items())
        + (": **met**." if ok else f": **missed** by {worst - TARGET_RSS_MB:.0f} MB.")
    )
    if len(results) > 1:
        growth = peaks[largest.rows] / peaks[smallest.rows]
        out.append(
            f"- Flat from {fmt_rows(smallest.rows)} to {fmt_rows(largest.rows)} ({largest.rows // smallest.rows}x the rows): "
            f"peak RSS x{growth:.2f} (flat = at most x{FLAT_RSS}): "
            + ("**met**." if growth <= FLAT_RSS else "**missed**.")
        )
    equal = all(r.equal for r in results)
    out.append(
        "- Identical tables: "
        + (
            "**met** at every size."
            if equal
            else "**missed**: " + "; ".join(r.detail for r in results if not r.equal)
        )
    )
    return out


def write_docs(path: Path, block: str) -> None:
    """Replace the block between the markers, keeping the hand-written text around it."""
    section = f"{BEGIN_MARK}\n{block}{END_MARK}\n"
    if path.exists() and BEGIN_MARK in path.read_text():
        text = path.read_text()
        head, rest = text.split(BEGIN_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n") if END_MARK in rest else ""
        path.write_text(head + section + ("\n" + tail if tail else ""))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# Benchmarks\n\n`make bench` (bench/run.py); figures below are from the last full run.\n\n"
            + section
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 k rows only (smoke test, < 1 min)")
    parser.add_argument("--sizes", help="comma-separated row counts (default 5000000,20000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and size (median reported)")
    parser.add_argument("--no-steady", action="store_true", help="skip the steady-state increment")
    parser.add_argument("--prototypes", action="store_true", help="also run bench/prototype.py's variants")
    parser.add_argument(
        "--docs", help="markdown file to update (default: docs/benchmarks.md; --quick: .bench/quick.md)"
    )
    args = parser.parse_args(argv)

    if args.sizes:
        sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(","))
    else:
        sizes = QUICK_SIZES if args.quick else SIZES
    docs = Path(args.docs) if args.docs else (BENCH / "quick.md" if args.quick else DOCS)
    raw = sys.argv[1:] if argv is None else argv
    command = ".venv/bin/python bench/run.py " + " ".join(raw) if raw else "make bench"
    out = BENCH / "out"
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results = []
    for rows in sizes:
        folder, data = ensure_data(rows)
        result = full_runs(rows, folder, args.repeat, out)
        result.data = data
        if not args.no_steady:
            result.steady = steady_state(rows, folder, args.repeat, out)
        if args.prototypes:
            result.prototypes = prototypes(rows, folder, out)
        results.append(result)

    block = report(results, command, args.repeat, machine())
    print("\n" + block)
    write_docs(docs, block)
    log(f"wrote {docs} ({time.perf_counter() - started:.0f}s in all)")
    return 0 if all(r.equal for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
