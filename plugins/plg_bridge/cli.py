"""The `plg-bridge` command: the same functions the DAG runs, for on-call engineers and scripts.

Exit codes: 0 success, 1 the input or a destination failed, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path

from plg_bridge.config import ConfigError, load_settings
from plg_bridge.redact import strip_secrets
from plg_bridge.report.escape import to_csv
from plg_bridge.storage import StorageError, location

log = logging.getLogger("plg_bridge")


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _write_text(target: str, text: str, endpoint_url: str | None) -> str:
    """Write to a local path or an s3:// URI; returns where it went."""
    if target.startswith("s3://"):
        parent, _, name = target.rpartition("/")
        loc = location(parent, endpoint_url)
        loc.write_bytes(name, text.encode())
        return target
    path = Path(target)
    if path.parent and not path.parent.exists():
        raise UsageError(f"output folder {path.parent} does not exist")
    path.write_text(text)
    return str(path)


def cmd_generate(args: argparse.Namespace) -> int:
    from plg_bridge.synthetic.generate import generate

    summary = generate(
        args.out,
        args.rows,
        args.end,
        days=args.days,
        interval=args.interval,
        seed=args.seed,
        endpoint_url=args.endpoint_url,
        malformed_fraction=args.malformed_fraction,
        payload=args.payload,
        naming=args.naming,
        redelivery_fraction=args.redelivery_fraction,
        dirty_fraction=args.dirty_fraction,
    )
    print(
        f"wrote {summary.rows:,} rows ({summary.duplicates:,} duplicates in the same file, "
        f"{summary.redeliveries:,} re-delivered in a later file) for {summary.orgs} organizations "
        f"and {summary.persons} persons in {len(summary.files)} files under {args.out}"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from plg_bridge.models.pql import as_of_time
    from plg_bridge.pipeline import score_export

    settings = load_settings(args.config)
    exports = location(args.events, args.endpoint_url or settings.exports.endpoint_url)
    as_of = as_of_time(args.as_of.isoformat())
    if not exports.list():
        raise UsageError(f"no objects under {args.events}: nothing to score (check the location)")
    result = score_export(exports, as_of, settings, prune=not args.full_read)
    written = _write_text(args.output, to_csv(result.scores), exports.endpoint_url)
    if args.quality:
        _write_text(args.quality, json.dumps(result.quality, indent=2, sort_keys=True), exports.endpoint_url)
    q = result.quality
    print(
        f"scored {q['organizations_scored']} organizations as of {as_of:%Y-%m-%d} ({q['pqls']} PQLs) -> {written}\n"
        f"data quality: {json.dumps(q, sort_keys=True)}",
        file=sys.stderr,
    )
    return 0


def _read_export(args: argparse.Namespace):
    """(settings, exports, T, merged partial with the person tables) of a model command: every data
    file of the location rolled up in this process, like `score`."""
    from plg_bridge.ingest import rollup
    from plg_bridge.models.pql import as_of_time
    from plg_bridge.pipeline import discover

    settings = load_settings(args.config)
    exports = location(args.events, args.endpoint_url or settings.exports.endpoint_url)
    as_of = as_of_time(args.as_of.isoformat())
    if not exports.list():
        raise UsageError(f"no objects under {args.events}: nothing to read (check the location)")
    files = discover(exports)
    partials = []
    for i, file in enumerate(files, 1):
        partials.append(rollup.rollup_file(exports, file.key, settings))
        log.info("read %d/%d files (%s)", i, len(files), file.label)
    return settings, exports, as_of, rollup.merge(partials)


def _write_table(args: argparse.Namespace, exports, frame, what: str, extra: str = "") -> int:
    written = _write_text(args.output, to_csv(frame), exports.endpoint_url)
    print(f"{what}: {len(frame)} rows as of {args.as_of:%Y-%m-%d} -> {written}{extra}", file=sys.stderr)
    return 0


def cmd_attribution(args: argparse.Namespace) -> int:
    from plg_bridge.models import attribution

    settings, exports, as_of, partial = _read_export(args)
    result = attribution.run(partial, as_of, settings)
    frame = result.first_touch if args.table == "first_touch" else result.revenue
    return _write_table(args, exports, frame, f"attribution {args.table}", f"\n{json.dumps(result.quality)}")


def cmd_activation(args: argparse.Namespace) -> int:
    from plg_bridge.models import activation

    settings, exports, as_of, partial = _read_export(args)
    result = activation.run(partial, as_of, settings)
    frame = getattr(result, args.table)
    return _write_table(args, exports, frame, f"activation {args.table}", f"\n{json.dumps(result.quality)}")


def cmd_signals(args: argparse.Namespace) -> int:
    from plg_bridge.models import pql
    from plg_bridge.models.signals import raise_signals

    settings, exports, as_of, partial = _read_export(args)
    frame = raise_signals(
        partial,
        pql.score(partial, as_of, settings.pql, placeholder_ids=settings.exports.placeholder_ids),
        as_of,
        settings,
    )
    counts = frame["signal"].value_counts().sort_index().to_dict()
    return _write_table(args, exports, frame, "signals of the day before T", f"\n{json.dumps(counts)}")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from plg_bridge.models import calibration

    settings, exports, as_of, partial = _read_export(args)
    result = calibration.run(partial, as_of, settings)
    frame = result.curve if args.table == "thresholds" else getattr(result, args.table)
    note = (
        f"\nrecommended threshold: {result.recommended if result.recommended is not None else 'none'} "
        f"(current {settings.pql.threshold}): {result.reason}"
    )
    return _write_table(args, exports, frame, f"calibration {args.table}", note)


def _options(args: argparse.Namespace, **override: bool):
    from plg_bridge.controls import RunOptions

    params = {
        "dry_run": args.dry_run,
        "full_resync": args.full_resync,
        "retry_dead_letters_only": args.retry_dead_letters_only,
        "orgs": args.orgs or [],
        "destinations": args.destinations or [],
    }
    return RunOptions.from_params({**params, **override})


def _print_run(result: dict) -> int:
    """Per-target counts, then the failed targets named: exit 2 when a target's configuration is
    missing (an Airflow connection), 1 when a target failed or left rows rejected, else 0."""
    failed = 0
    broken: dict[str, list[str]] = {}  # error kind -> target names
    for d in result["deliveries"]:
        if "skipped" in d:
            print(f"{d['target']:<24} skipped ({d['skipped']})")
            continue
        if "error" in d:
            print(f"{d['target']:<24} FAILED: {strip_secrets(d['error']).splitlines()[0]}")
            broken.setdefault(d.get("error_kind", "delivery"), []).append(d["target"])
            continue
        p = d["plan"]
        line = f"{d['target']:<24} plan: {p['create']} create, {p['update']} update, {p['retry']} retry, {p['unchanged']} unchanged"
        if p.get("unconfirmed"):
            line += f", {p['unconfirmed']} unconfirmed"
        if not d.get("dry_run"):
            line += f" | sent: {d['created']} created, {d['updated']} updated, {d['failed']} failed"
            failed += d["failed"]
        print(line)
    print(f"report: {result['report']}")
    if broken.get("configuration"):
        messages = {
            _config_problem(d) for d in result["deliveries"] if d.get("error_kind") == "configuration"
        }
        for message in sorted(messages):
            print(f"plg-bridge: configuration error: {message}", file=sys.stderr)
        return 2
    if broken.get("delivery"):
        print(f"plg-bridge: failed targets: {', '.join(broken['delivery'])}", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _config_problem(delivery: dict) -> str:
    """One line for a configuration failure: a missing connection is named once for its targets."""
    import re

    found = re.search(
        r"conn(?:ection)?[_ ]id [`'\"]?([\w.-]+)[`'\"]? is(?:n't| not) defined", delivery["error"]
    )
    if found:
        name = found.group(1)
        return f"Airflow connection {name!r} is not defined (set AIRFLOW_CONN_{name.upper()} or add it in Airflow)"
    return f"{delivery['target']}: {delivery['error'].splitlines()[0]}"


def cmd_sync(args: argparse.Namespace, **override: bool) -> int:
    from plg_bridge.models.pql import as_of_time
    from plg_bridge.pipeline import run_window
    from plg_bridge.workspace import Workspace

    # every target runs even when one fails: the report is written, then the exit code names the
    # failed targets (_print_run)
    ws, as_of, options = Workspace.load(args.config), as_of_time(_as_of(args)), _options(args, **override)
    return _print_run(run_window(ws, as_of, options))


def cmd_plan(args: argparse.Namespace) -> int:
    return cmd_sync(args, dry_run=True)


def cmd_status(args: argparse.Namespace) -> int:
    from plg_bridge.delivery.deadletter import waiting
    from plg_bridge.report.summary import recent_runs
    from plg_bridge.workspace import Workspace

    ws = Workspace.load(args.config)
    runs = recent_runs(ws, args.limit)
    if not runs:
        print(f"no runs under {ws.work.uri}/runs yet")
    for run in runs:
        print(
            f"as of {run['as_of']}: {run['rows_read']:,} rows read, {run['organizations']} organizations, {run['pqls']} PQLs"
        )
        for target, counts in run["deliveries"].items():
            print(
                f"    {target:<24} {counts if isinstance(counts, str) else ', '.join(f'{v} {k}' for k, v in counts.items())}"
            )
    rows = waiting(ws)
    for status, label in (("failed", "dead letters waiting"), ("unconfirmed", "unconfirmed deliveries")):
        found = rows[rows["status"] == status]
        if status == "unconfirmed" and found.empty:
            continue
        by_target = found.groupby("target").size().to_dict() if len(found) else {}
        print(f"{label}: {len(found)}" + (f" ({by_target})" if by_target else ""))
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from plg_bridge.delivery.deadletter import confirm, waiting
    from plg_bridge.workspace import Workspace

    if args.action == "confirm":
        if not args.targets:
            raise UsageError("dead-letters confirm needs --targets: the targets you checked at the vendor")
        done = confirm(Workspace.load(args.config), tuple(args.targets))
        print(f"{done} unconfirmed deliveries marked delivered")
        return 0
    if args.action == "replay":
        if not args.as_of:
            raise UsageError("dead-letters replay needs --as-of (the window whose inputs to use)")
        args.destinations = args.targets
        args.orgs, args.dry_run, args.full_resync, args.retry_dead_letters_only = None, False, False, True
        return cmd_sync(args)
    dead = waiting(Workspace.load(args.config), tuple(args.targets or ()))
    if dead.empty:
        print("no dead letters waiting")
    else:
        print(dead.to_string(index=False, max_colwidth=80))
    return 0


def _as_of(args: argparse.Namespace):
    from plg_bridge.models.pql import as_of_time

    return as_of_time(args.as_of.isoformat())


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plg-bridge", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a deterministic PostHog-shaped sample export")
    gen.add_argument("--out", required=True, help="local folder or s3://bucket/prefix")
    gen.add_argument("--rows", required=True, type=_positive, help="events to write (duplicates included)")
    gen.add_argument("--end", required=True, type=_date, help="end of the last export interval (YYYY-MM-DD)")
    gen.add_argument("--days", type=_positive, default=28, help="days of events before --end (default 28)")
    gen.add_argument("--interval", choices=("day", "hour"), default="day", help="export interval")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--malformed-fraction", type=float, default=0.0, help="share of rows with broken JSON")
    gen.add_argument(
        "--payload",
        choices=("compact", "realistic"),
        default="compact",
        help="realistic: posthog-js-sized, ~2 KB",
    )
    gen.add_argument(
        "--naming", choices=("interval", "opaque"), default="interval", help="PostHog's file names or part-N"
    )
    gen.add_argument(
        "--redelivery-fraction",
        type=float,
        default=0.005,
        help="events ingested again in a later file (on top of --rows)",
    )
    gen.add_argument(
        "--dirty-fraction", type=float, default=0.0, help="share of rows whose properties are not an object"
    )
    gen.add_argument("--endpoint-url", help="S3-compatible endpoint (else AWS_ENDPOINT_URL or AWS)")
    gen.set_defaults(func=cmd_generate)

    score = sub.add_parser("score", help="PQL score per organization from an export location")
    score.add_argument("--events", required=True, help="export location: local folder or s3://bucket/prefix")
    score.add_argument(
        "--as-of", required=True, type=_date, help="T: scores use events before YYYY-MM-DD 00:00 UTC"
    )
    score.add_argument("--output", required=True, help="CSV to write (local path or s3://...)")
    score.add_argument("--quality", help="also write the data-quality summary (JSON) here")
    score.add_argument(
        "--full-read",
        action="store_true",
        help="read every row group of every file (default: only the PQL window [T-14d, T), plus group"
        " and identity events before T; files starting exports.late_event_margin_hours after T are skipped)",
    )
    score.add_argument("--config", help="settings YAML (default: $PLG_BRIDGE_CONFIG or include/config)")
    score.add_argument("--endpoint-url", help="S3-compatible endpoint (else AWS_ENDPOINT_URL or AWS)")
    score.set_defaults(func=cmd_score)

    models = (
        (
            "attribution",
            cmd_attribution,
            "first touch per person or revenue by original source",
            ("revenue", "first_touch"),
        ),
        (
            "activation",
            cmd_activation,
            "time-to-value per milestone and cohort, cohorts, Aha candidates, odds ratios",
            ("milestones", "cohorts", "aha", "correlation", "persons", "pre_existing"),
        ),
        ("signals", cmd_signals, "the signals raised for the day before T (aha, usage ceiling, ...)", ()),
        (
            "calibrate",
            cmd_calibrate,
            "PQL threshold calibration: precision, recall and lift per threshold, the recommended one",
            ("thresholds", "observations", "dates"),
        ),
    )
    for name, func, text, tables in models:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument(
            "--events", required=True, help="export location: local folder or s3://bucket/prefix"
        )
        cmd.add_argument("--as-of", required=True, type=_date, help="T: models use events before YYYY-MM-DD")
        cmd.add_argument("--output", required=True, help="CSV to write (local path or s3://...)")
        if tables:
            cmd.add_argument(
                "--table",
                choices=tables,
                default=tables[0],
                help=f"which table to write (default {tables[0]})",
            )
        cmd.add_argument("--config", help="settings YAML (default: $PLG_BRIDGE_CONFIG or include/config)")
        cmd.add_argument("--endpoint-url", help="S3-compatible endpoint (else AWS_ENDPOINT_URL or AWS)")
        cmd.set_defaults(func=func)

    for name, func, text in (
        ("sync", cmd_sync, "run one window end to end: roll up new files, score, deliver to every target"),
        ("plan", cmd_plan, "what a sync would send (creates, updates, retries), without sending"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--as-of", required=True, type=_date, help="window end T (YYYY-MM-DD)")
        cmd.add_argument("--orgs", type=_names, help="only these organization ids (comma-separated)")
        cmd.add_argument("--destinations", type=_names, help="only these destinations or targets")
        cmd.add_argument("--dry-run", action="store_true", help="plan only, send nothing")
        cmd.add_argument("--full-resync", action="store_true", help="send every record, changed or not")
        cmd.add_argument(
            "--retry-dead-letters-only", action="store_true", help="send only rows that failed before"
        )
        cmd.add_argument("--config", help="settings YAML")
        cmd.set_defaults(func=func)

    status = sub.add_parser("status", help="the last runs and the dead letters waiting")
    status.add_argument("--limit", type=_positive, default=7)
    status.add_argument("--config", help="settings YAML")
    status.set_defaults(func=cmd_status)

    dead = sub.add_parser(
        "dead-letters",
        help="list or replay rows a destination rejected; confirm or replay unconfirmed deliveries",
        description=(
            "replay resends dead letters, and the unconfirmed deliveries (sent, outcome unknown) of "
            "the targets named with --targets; confirm marks those targets' unconfirmed deliveries "
            "delivered after you found them at the vendor"
        ),
    )
    dead.add_argument("action", choices=("list", "replay", "confirm"))
    dead.add_argument("--targets", type=_names, help="only these targets, e.g. hubspot_companies")
    dead.add_argument("--as-of", type=_date, help="replay: the window whose inputs to use")
    dead.add_argument("--config", help="settings YAML")
    dead.set_defaults(func=cmd_dead_letters)
    return parser


def main(argv: list[str] | None = None) -> int:
    from plg_bridge.delivery.deliver import RejectedRowsError
    from plg_bridge.ingest.reader import ExportReadError
    from plg_bridge.ingest.schema import ExportSchemaError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        if args.command in _DELIVERING or getattr(args, "action", None) == "replay":
            _guard_secrets(args)
        return args.func(args)
    except (UsageError, ConfigError, ValueError) as exc:
        if isinstance(exc, ExportSchemaError):
            print(f"plg-bridge: bad input: {exc}", file=sys.stderr)
            return 1
        print(f"plg-bridge: error: {exc}", file=sys.stderr)
        return 2
    except (ExportReadError, StorageError) as exc:
        print(f"plg-bridge: bad input: {exc}", file=sys.stderr)
        return 1
    except RejectedRowsError as exc:
        print(f"plg-bridge: delivery: {strip_secrets(str(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _missing_connection(exc):
            print(
                f"plg-bridge: error: {exc}: define the Airflow connection (an AIRFLOW_CONN_<ID> variable, "
                "`airflow connections add` or a secrets backend; see docs/configuration.md)",
                file=sys.stderr,
            )
            return 2
        raise


# Commands that load connections (and `dead-letters replay`): their logs get Airflow's secrets
# masker. The others touch no connection and skip Airflow's import (seconds on a busy machine).
# `plan` (a dry run) loads one only to post a volume alert: its masking waits for that (redact.py).
_DELIVERING = ("sync", "plan")
_DEFERRED = ("plan",)


def _guard_secrets(args: argparse.Namespace) -> None:
    """Airflow's secrets masker on this process's log handlers (task logs have it; the CLI did
    not), every connection the settings name registered for masking, slack_sdk's retry log quiet."""
    from plg_bridge.redact import defer_log_masking, install_log_masking, register_connections

    level = logging.INFO if args.verbose else logging.WARNING
    s = load_settings(args.config)
    conn_ids = (
        s.hubspot.conn_id,
        s.salesforce.conn_id,
        s.intercom.conn_id,
        s.slack.conn_id,
        s.alerts.slack_conn_id,
    )
    if args.command in _DEFERRED:
        defer_log_masking(level, conn_ids)
        return
    install_log_masking(level)
    register_connections(conn_ids)


def _missing_connection(exc: BaseException) -> bool:
    """An Airflow connection that is not defined (only possible once Airflow is imported)."""
    found = [sys.modules.get(m) for m in ("airflow.sdk.exceptions", "airflow.exceptions")]
    kinds = tuple(k for k in (getattr(m, "AirflowNotFoundException", None) for m in found if m) if k)
    return bool(kinds) and isinstance(exc, kinds)


if __name__ == "__main__":
    sys.exit(main())
