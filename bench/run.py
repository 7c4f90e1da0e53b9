"""`make bench`: plg-bridge against DuckDB on generated exports, cold CLI and the DAG's daily path.

    .venv/bin/python bench/run.py            # the full run; writes docs/benchmarks.md
    .venv/bin/python bench/run.py --quick    # small sizes, smoke test (~2 min); writes .bench/quick.md

1. Data: generate(rows, end=2026-11-20, days, payload, default seed) into .bench/data/<name>, cached:
   a marker records the parameters (and the generator's source hash); regenerated when they differ.
2. Cold CLI, per payload size and row count (5 M and 20 M, 28 daily files): `plg-bridge score` and
   DuckDB (bench/duckdb_pql.py, the tuned query), each its own process, alternated, `--repeat` times;
   wall seconds, CPU and peak RSS (the child's own rusage from wait4) -> medians; the two CSVs are
   compared row by row after sorting by org_id.
3. The DAG path (bench/steady.py) on a 28-day export of DAG_ROWS events and on a 56-day export of
   twice as many (the same days at the same rate, twice the history): the cold run and the daily
   increment as `plg-bridge plan` processes, against `plg-bridge score` (cold) and DuckDB's full
   recompute over the same files; the increment's scores compared with DuckDB's.
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
QUICK_SIZES = (200_000, 800_000)
DAG_ROWS = 7_000_000  # the held-apart export: 28 daily files, 7 M events
QUICK_DAG_ROWS = 400_000
PAYLOADS = ("compact", "realistic")  # the generator's payload sizes (realistic: posthog-js-sized)
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
# targets of issue 9 (benchmark, not timed tests)
TARGET_RATIO = 1.0  # cold CLI / DuckDB
TARGET_RSS_MB = 1024
FLAT_RSS = 1.25  # "flat": peak RSS at the largest size at most this times the smallest's
TARGET_INCREMENT = 0.5  # daily increment / DuckDB's full recompute
TARGET_DOUBLING = 0.20  # doubling the history adds at most this to the increment
TARGET_COLD_DAG = 1.5  # cold DAG path / CLI score


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


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Child:
    """Run `cmd` to completion; its wall time and peak RSS from wait4 (this child only)."""
    LOADS.append(os.getloadavg()[0])
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=env)
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


def payload_kwargs(payload: str) -> dict | None:
    """generate() arguments for a payload size; None when the generator cannot make it."""
    from plg_bridge.synthetic import generate as gen

    if payload == "compact":
        return {}
    params = inspect.signature(gen.generate).parameters
    return {"payload": payload} if "payload" in params else None


def data_params(rows: int, days: int = DAYS, payload: str = "compact") -> dict:
    from plg_bridge.synthetic import generate as gen

    seed = inspect.signature(gen.generate).parameters["seed"].default
    sources = sorted(Path(gen.__file__).parent.glob("*.py"))
    source = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    return {
        "rows": rows,
        "end": END.isoformat(),
        "days": days,
        "payload": payload,
        "seed": seed,
        "generator": source,
    }


def data_name(rows: int, days: int = DAYS, payload: str = "compact") -> str:
    return f"{rows}-{days}d-{payload}"


def code_hash() -> str:
    """Of the package sources and the settings file: the partials in a work folder depend on them."""
    digest = hashlib.sha256()
    sources = sorted((REPO / "plugins" / "plg_bridge").rglob("*.py"))
    for path in [*sources, REPO / "include" / "config" / "plg_bridge.yaml"]:
        if path.exists():
            digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_data(rows: int, days: int = DAYS, payload: str = "compact") -> tuple[Path, dict]:
    """The export folder for these parameters, generated unless the marker says it is current."""
    from plg_bridge.synthetic.generate import generate

    name = data_name(rows, days, payload)
    folder = BENCH / "data" / name
    marker = BENCH / "data" / f"{name}.json"
    params = data_params(rows, days, payload)
    if marker.exists() and folder.is_dir():
        stored = json.loads(marker.read_text())
        if stored.get("params") == params:
            log(f"{name}: cached in {folder.relative_to(REPO)} (generated in {stored['seconds']:.1f}s)")
            return folder, stored
    shutil.rmtree(folder, ignore_errors=True)
    marker.unlink(missing_ok=True)
    folder.mkdir(parents=True)
    log(f"{name}: generating into {folder.relative_to(REPO)} ...")
    started = time.perf_counter()
    summary = generate(str(folder), rows, END, days=days, seed=params["seed"], **payload_kwargs(payload))
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
    log(f"{name}: generated {rows:,} rows in {seconds:.1f}s ({rows / seconds:,.0f} rows/s)")
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
    payload: str = "compact"
    plg: list[Child] = field(default_factory=list)
    duck: list[Child] = field(default_factory=list)
    duck_threads: int = 0
    equal: bool = False
    detail: str = ""
    data: dict = field(default_factory=dict)

    @staticmethod
    def median(children: list[Child], attr: str) -> float:
        return statistics.median(getattr(c, attr) for c in children)

    @property
    def label(self) -> str:
        return f"{fmt_rows(self.rows)}, {self.payload}"


def full_runs(rows: int, payload: str, folder: Path, repeat: int, out: Path) -> Result:
    result = Result(rows, payload)
    name = folder.name
    plg_csv, duck_csv = out / f"plg-{name}.csv", out / f"duckdb-{name}.csv"
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
        log(f"{name}: plg-bridge score run {i + 1}/{repeat}: {child.seconds:.2f}s, {child.rss_mb:.0f} MB")
        child = measure([*duck_cmd, "--output", str(duck_csv)])
        result.duck.append(child)
        result.duck_threads = json.loads(child.stdout.strip().splitlines()[-1])["threads"]
        log(f"{name}: duckdb run {i + 1}/{repeat}: {child.seconds:.2f}s, {child.rss_mb:.0f} MB")
    result.equal, result.detail = compare(plg_csv, duck_csv)
    log(f"{name}: tables {'equal' if result.equal else 'DIFFER'}: {result.detail}")
    return result


@dataclass
class DagResult:
    rows: int
    days: int
    payload: str
    full: Result  # plg-bridge score and DuckDB over the same files
    dag: dict  # bench/steady.py dag_path
    equal: bool = False
    detail: str = ""

    @property
    def duck_seconds(self) -> float:
        return Result.median(self.full.duck, "seconds")


def dag_runs(rows: int, days: int, payload: str, repeat: int, out: Path) -> DagResult:
    import steady

    folder, data = ensure_data(rows, days, payload)
    full = full_runs(rows, payload, folder, repeat, out)
    full.data = data
    key = {"data": data_params(rows, days, payload), "code": code_hash()}
    dag = steady.dag_path(
        folder, BENCH / "work" / folder.name, END, repeat=repeat, measure=measure, cache_key=key, log=log
    )
    equal, detail = compare(Path(dag["scores_csv"]), out / f"duckdb-{folder.name}.csv")
    log(f"{folder.name}: DAG increment's scores {'equal' if equal else 'DIFFER from'} DuckDB's: {detail}")
    return DagResult(rows, days, payload, full, dag, equal, detail)


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


def report(results: list[Result], dags: list[DagResult], command: str, repeat: int, box: dict) -> str:
    payloads = sorted({r.payload for r in results})
    missing = [p for p in PAYLOADS if p not in payloads]
    lines = [
        f"Command: `{command}` ({repeat} runs per tool and size, medians; run {box['date']}, "
        f"tree `{box['commit']}`).",
        "",
        f"Machine: {box['nproc']} cores ({box['cpu']}), {box['ram_gb']:.1f} GiB RAM, {box['os']}; "
        f"Python {box['python']}, pyarrow {box['pyarrow']}, pandas {box['pandas']}, numpy {box['numpy']}, "
        f"DuckDB {box['duckdb']} ({[*results, *(d.full for d in dags)][0].duck_threads} threads). 1-minute load average during the "
        f"run: {min(LOADS):.1f} to {max(LOADS):.1f} (the machine is shared with other sessions; on 2 cores "
        "anything above ~2 means the tools waited for CPU).",
        "",
        f"Data: `plg_bridge/synthetic` (default seed), daily export files (Parquet, zstd) ending {AS_OF}, "
        f"scored as of {AS_OF} (14-day window); payloads: {', '.join(payloads)}"
        + (
            f" (not measured: {', '.join(missing)}: the generator has no such option in this tree)"
            if missing
            else ""
        )
        + ". "
        + "; ".join(
            f"{r.label}: {r.data['bytes'] / 2**20:,.0f} MiB, {r.data['orgs']:,} organizations"
            for r in [*results, *(d.full for d in dags)]
        )
        + ".",
        "",
        "### Cold: `plg-bridge score` vs DuckDB (bench/duckdb_pql.py, tuned query), 28 daily files",
        "",
        "Each tool is a separate process; seconds are wall clock from spawn to exit (interpreter start-up "
        "included), peak RSS is the process's own maximum resident set (wait4 rusage), CPU = user + system.",
        "",
        "| rows, payload | tool | seconds | rows/s | CPU s | peak RSS MB | plg / DuckDB | tables equal |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        plg_s, duck_s = Result.median(r.plg, "seconds"), Result.median(r.duck, "seconds")
        ratio = plg_s / duck_s
        for name, children, secs in (("plg-bridge score", r.plg, plg_s), ("DuckDB", r.duck, duck_s)):
            lines.append(
                f"| {r.label} | {name} | {secs:.2f} | {r.rows / secs:,.0f} | "
                f"{Result.median(children, 'cpu_seconds'):.1f} | {Result.median(children, 'rss_mb'):.0f} | "
                f"{f'{ratio:.2f}x' if children is r.plg else ''} | "
                f"{('yes' if r.equal else 'NO') if children is r.plg else ''} |"
            )
    lines += ["", "Runs (seconds / MB):", ""]
    for r in [*results, *(d.full for d in dags)]:
        for name, children in (("plg-bridge score", r.plg), ("DuckDB", r.duck)):
            runs = ", ".join(f"{c.seconds:.2f}/{c.rss_mb:.0f}" for c in children)
            lines.append(f"- {r.label} {name}: {runs}")
    for r in results:
        if not r.equal:
            lines += ["", f"Differences at {r.label}: {r.detail}"]

    if dags:
        lines += [
            "",
            "### The DAG path: cold run and daily increment (`plg-bridge plan`, bench/steady.py)",
            "",
            "Cold = `plg-bridge plan --as-of T` on an empty work folder: one process that discovers, rolls "
            "up every file with the person tables, merges, runs every model and plans every enabled target "
            "(what the DAG's tasks do, serially; its peak RSS bounds each task's). Increment = the same "
            "command the day after: the partials of every earlier file and the history snapshot of T-1d "
            "in place (ingest/history.py), so it rolls up the one new file, folds it into the snapshot and "
            "recomputes; median of the runs. Start-up = a process doing only the plan command's imports and "
            "log masking (what the CLI does before any work; `plan` defers Airflow's secrets masker until a "
            "connection is needed, a DAG task has Airflow loaded already). DuckDB = its full PQL recompute over every file (tuned query); CLI = "
            "`plg-bridge score` over every file.",
            "",
            "| export | new file rows | cold DAG s | CLI score s | cold DAG / CLI | cold peak RSS MB | "
            "increment s | of which start-up s | increment CPU s | increment peak RSS MB | DuckDB full s | "
            "increment / DuckDB | equals DuckDB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for d in dags:
            g, cli = d.dag, Result.median(d.full.plg, "seconds")
            lines.append(
                f"| {fmt_rows(d.rows)}, {d.days} days, {d.payload} | {g['new_rows']:,} | {g['cold']['seconds']:.1f}"
                f"{' (cached: an earlier run)' if g['cold'].get('cached') else ''} | "
                f"{cli:.1f} | {g['cold']['seconds'] / cli:.2f}x | {g['cold']['rss_mb']:.0f} | {g['seconds']:.2f} | "
                f"{g.get('startup_seconds', float('nan')):.2f} | {g['cpu_seconds']:.1f} | {g['rss_mb']:.0f} | {d.duck_seconds:.2f} | "
                f"{g['seconds'] / d.duck_seconds:.2f}x | {'yes' if d.equal else 'NO: ' + d.detail} |"
            )
        lines += ["", "Increment runs (seconds / MB): "]
        lines += [
            f"- {fmt_rows(d.rows)}, {d.days} days: "
            + ", ".join(f"{r['seconds']:.2f}/{r['rss_mb']:.0f}" for r in d.dag["increments"])
            + f"; history fold: {d.dag['history']}"
            for d in dags
        ]

    lines += ["", "### Against the targets (issue 9)", ""]
    lines += verdicts(results, dags)
    return "\n".join(lines) + "\n"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def verdicts(results: list[Result], dags: list[DagResult]) -> list[str]:
    out = []
    for payload in sorted({r.payload for r in results}):
        rs = [r for r in results if r.payload == payload]
        ratios = {r.rows: Result.median(r.plg, "seconds") / Result.median(r.duck, "seconds") for r in rs}
        out.append(
            f"- Cold, {payload} payloads: plg-bridge score / DuckDB = "
            + ", ".join(f"{ratio:.2f}x at {fmt_rows(n)}" for n, ratio in ratios.items())
            + f" (target <= {TARGET_RATIO}x): {verdict(max(ratios.values()) <= TARGET_RATIO)}."
        )
        peaks = {r.rows: Result.median(r.plg, "rss_mb") for r in rs}
        growth = peaks[rs[-1].rows] / peaks[rs[0].rows]
        out.append(
            f"- Peak RSS, {payload}: "
            + ", ".join(f"{fmt_rows(n)} {mb:.0f} MB" for n, mb in peaks.items())
            + f" (<= {TARGET_RSS_MB} MB: {verdict(max(peaks.values()) <= TARGET_RSS_MB)}); "
            f"x{growth:.2f} from {fmt_rows(rs[0].rows)} to {fmt_rows(rs[-1].rows)} "
            f"(flat = at most x{FLAT_RSS}: {verdict(growth <= FLAT_RSS)})."
        )
    for d in dags:
        g, cli = d.dag, Result.median(d.full.plg, "seconds")
        ratio = g["seconds"] / d.duck_seconds
        out.append(
            f"- Daily increment, {fmt_rows(d.rows)} over {d.days} days: {g['seconds']:.2f}s = {ratio:.2f}x "
            f"DuckDB's full recompute (target <= {TARGET_INCREMENT}x): {verdict(ratio <= TARGET_INCREMENT)}."
        )
        cold = g["cold"]["seconds"] / cli
        out.append(
            f"- Cold DAG path, {fmt_rows(d.rows)} over {d.days} days: {cold:.2f}x the CLI's score "
            f"(target <= {TARGET_COLD_DAG}x): {verdict(cold <= TARGET_COLD_DAG)}; peak RSS "
            f"{g['cold']['rss_mb']:.0f} MB cold, {g['rss_mb']:.0f} MB increment (no task above "
            f"{TARGET_RSS_MB} MB: {verdict(max(g['cold']['rss_mb'], g['rss_mb']) <= TARGET_RSS_MB)})."
        )
    if len(dags) == 2:
        short, long = dags
        added = long.dag["seconds"] / short.dag["seconds"] - 1
        out.append(
            f"- Doubling the history ({short.days} -> {long.days} days): the increment takes {added:+.0%} "
            f"(target <= +{TARGET_DOUBLING:.0%}): {verdict(added <= TARGET_DOUBLING)}."
        )
    equal = all(r.equal for r in results) and all(d.equal and d.full.equal for d in dags)
    out.append(
        "- Identical tables (CLI, DAG increment and DuckDB): "
        + (
            "**met** everywhere."
            if equal
            else "**missed**: "
            + "; ".join([r.detail for r in results if not r.equal] + [d.detail for d in dags if not d.equal])
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
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    parser.add_argument(
        "--sizes", help="comma-separated row counts of the cold runs (default 5000000,20000000; none: skip)"
    )
    parser.add_argument("--dag-rows", type=int, help=f"events of the 28-day DAG export (default {DAG_ROWS})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and size (median reported)")
    parser.add_argument("--no-dag", action="store_true", help="skip the DAG path")
    parser.add_argument(
        "--docs", help="markdown file to update (default: docs/benchmarks.md; --quick: .bench/quick.md)"
    )
    args = parser.parse_args(argv)

    if args.sizes == "none":  # the DAG path only
        sizes = ()
    elif args.sizes:
        sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(","))
    else:
        sizes = QUICK_SIZES if args.quick else SIZES
    dag_rows = args.dag_rows or (QUICK_DAG_ROWS if args.quick else DAG_ROWS)
    docs = Path(args.docs) if args.docs else (BENCH / "quick.md" if args.quick else DOCS)
    raw = sys.argv[1:] if argv is None else argv
    command = ".venv/bin/python bench/run.py " + " ".join(raw) if raw else "make bench"
    out = BENCH / "out"
    out.mkdir(parents=True, exist_ok=True)
    payloads = [p for p in PAYLOADS if payload_kwargs(p) is not None]
    dag_payload = payloads[-1]  # the most realistic one the generator makes

    started = time.perf_counter()
    results = []
    for payload in payloads:
        for rows in sizes:
            folder, data = ensure_data(rows, DAYS, payload)
            result = full_runs(rows, payload, folder, args.repeat, out)
            result.data = data
            results.append(result)
    dags = []
    if not args.no_dag:
        for rows, days in ((dag_rows, DAYS), (2 * dag_rows, 2 * DAYS)):
            dags.append(dag_runs(rows, days, dag_payload, args.repeat, out))

    block = report(results, dags, command, args.repeat, machine())
    print("\n" + block)
    write_docs(docs, block)
    log(f"wrote {docs} ({time.perf_counter() - started:.0f}s in all)")
    ok = all(r.equal for r in results) and all(d.equal for d in dags)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
