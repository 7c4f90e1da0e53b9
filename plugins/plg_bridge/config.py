"""Typed settings, loaded and validated once.

Sources, later ones winning: the dataclass defaults below, a YAML file (`PLG_BRIDGE_CONFIG`, else
`include/config/plg_bridge.yaml` when present), then environment variables named
`PLG_BRIDGE__<SECTION>__<FIELD>` (e.g. `PLG_BRIDGE__EXPORTS__LOCATION=s3://bucket/posthog`).
Every section is checked here, so a typo fails at load time with the key's full name and where the
value came from (the YAML file and key, or the environment variable), not mid-run inside a task.
Secrets never live here: tokens come from Airflow connections.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """Invalid configuration; the message names the offending key (and, from `load_settings`, its source)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# Slack: a public/private channel name (lowercase letters, digits, - and _, at most 80) or an id.
_SLACK_CHANNEL = re.compile(r"#[a-z0-9][a-z0-9_-]{0,79}|[CGD][A-Z0-9]{8,}")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a CRM property / field API name


def _nonempty(value: str, key: str) -> None:
    _require(bool(value and value.strip()), key, "must not be empty")


def _names(values: tuple[str, ...], key: str) -> None:
    _require(all(v and v.strip() for v in values), key, f"must not contain empty names: {list(values)}")
    dupes = sorted({v for v in values if values.count(v) > 1})
    _require(not dupes, key, f"lists {dupes} more than once")


def _channel(value: str, key: str) -> None:
    _require(
        bool(_SLACK_CHANNEL.fullmatch(value)),
        key,
        f"{value!r} is not a Slack channel: use #name (lowercase letters, digits, - and _) or a channel id "
        "such as C0123456789",
    )


@dataclass(frozen=True)
class ExportSettings:
    """Where the PostHog batch export lands and how its events name the organization."""

    location: str = ".demo/bucket/posthog"
    endpoint_url: str | None = None  # S3-compatible endpoint; None = AWS (or AWS_ENDPOINT_URL)
    group_index: int = 0  # properties.$group_<index> holds the organization key
    group_type: str = "organization"  # fallback: properties.$groups[<group_type>]
    placeholder_ids: tuple[str, ...] = ("", "null", "undefined", "anonymous", "0", "none", "nan")
    batch_rows: int = 131_072  # record batch size when streaming a file
    # Completeness: how PostHog cuts and names the export (see exports/completeness.py).
    interval: str = "day"  # hour | day | week | 5min | 15min
    key_template: str = ""  # PostHog's prefix template, e.g. "{table}/{year}/{month}/{day}"
    table: str = "events"
    manifests: bool = False  # true when the export sets a max file size (then a manifest marks completion)
    check_hours: int = 24  # export intervals ending in (T - check_hours, T] must be complete
    wait_minutes: int = 180  # how long the DAG waits for missing intervals before failing
    on_unreadable: str = "fail"  # corrupt or schema-less file: fail its task, or quarantine it
    # PostHog clamps future timestamps (23 h), so files that ended before the window are left out
    # exactly; the margin is for events sent late (offline clients, mobile batches, retries)
    late_event_margin_hours: int = 168  # pruned `score` skips files whose interval starts this long after T
    max_line_bytes: int = 16 << 20  # a longer JSON Lines line is quarantined unread (file, line)

    def validate(self) -> None:
        from datetime import UTC, datetime

        from plg_bridge.ingest.completeness import INTERVALS, interval_prefix

        _nonempty(self.location, "exports.location")
        _require(
            self.endpoint_url is None or self.endpoint_url.startswith(("http://", "https://")),
            "exports.endpoint_url",
            f"must be an http(s):// URL or null, got {self.endpoint_url!r}",
        )
        _nonempty(self.table, "exports.table")
        try:
            moment = datetime(2026, 1, 2, tzinfo=UTC)
            interval_prefix(self.key_template, moment, moment, self.table)
        except ValueError as exc:
            raise ConfigError(
                f"invalid setting exports.key_template: {exc}", "exports.key_template"
            ) from None
        _require(self.interval in INTERVALS, "exports.interval", f"must be one of {', '.join(INTERVALS)}")
        _require(self.check_hours >= 0, "exports.check_hours", "must not be negative")
        _require(
            self.on_unreadable in ("fail", "quarantine"),
            "exports.on_unreadable",
            "must be fail or quarantine",
        )
        _require(self.wait_minutes >= 0, "exports.wait_minutes", "must not be negative")
        _require(
            0 <= self.group_index <= 4, "exports.group_index", "must be 0..4 (PostHog has 5 group slots)"
        )
        _require(bool(self.group_type), "exports.group_type", "must not be empty")
        _require(self.batch_rows > 0, "exports.batch_rows", "must be positive")
        _require(self.late_event_margin_hours >= 0, "exports.late_event_margin_hours", "must not be negative")
        _require(self.max_line_bytes >= 1024, "exports.max_line_bytes", "must be at least 1024")


@dataclass(frozen=True)
class PqlSettings:
    """The seed's PQL formula; every number is a setting so teams can calibrate."""

    velocity_event: str = "core_feature_used"
    breadth_event: str = "creation_event"
    integration_event: str = "integration_connected"
    velocity_ratio: float = 1.5
    velocity_points: int = 40
    breadth_min_creators: int = 3
    breadth_points: int = 35
    points_per_creator: int = 10
    integration_points: int = 25
    threshold: int = 75
    week_days: int = 7

    @property
    def events(self) -> tuple[str, str, str]:
        return (self.velocity_event, self.breadth_event, self.integration_event)

    def validate(self) -> None:
        names = ("velocity_event", "breadth_event", "integration_event")
        for n, name in enumerate(names):
            _nonempty(getattr(self, name), f"pql.{name}")
            earlier = [other for other in names[:n] if getattr(self, other) == getattr(self, name)]
            _require(not earlier, f"pql.{name}", f"must differ from pql.{earlier[0]}" if earlier else "")
        for name in ("velocity_points", "breadth_points", "points_per_creator", "integration_points"):
            _require(getattr(self, name) >= 0, f"pql.{name}", "must not be negative")
        _require(self.velocity_ratio > 0, "pql.velocity_ratio", "must be positive")
        _require(self.week_days > 0, "pql.week_days", "must be positive")
        _require(self.breadth_min_creators > 0, "pql.breadth_min_creators", "must be positive")
        top = self.velocity_points + self.breadth_points + self.integration_points
        _require(0 < self.threshold <= top, "pql.threshold", f"must be in 1..{top} (the maximum score)")


@dataclass(frozen=True)
class CalibrationSettings:
    """PQL threshold calibration (models/calibration.py): the score's past flags against conversions."""

    horizon_days: int = 30  # converted = the organization converts in [D, D + horizon_days)
    date_step_days: int = 1  # as-of dates D every this many days, back from T - horizon_days
    lookback_days: int = 90  # earliest D: T - horizon_days - lookback_days (and 2 PQL weeks into the data)
    threshold_step: int = 5  # thresholds tried: 0, step, 2 * step, ... up to the maximum score
    min_flagged: int = 20  # a threshold qualifies when it flags at least this many organization-days ...
    min_lift: float = 1.5  # ... with lift (precision / base rate) >= this; best F1 wins, ties: higher

    def validate(self) -> None:
        _require(self.horizon_days > 0, "calibration.horizon_days", "must be positive")
        _require(self.date_step_days > 0, "calibration.date_step_days", "must be positive")
        _require(self.lookback_days >= 0, "calibration.lookback_days", "must not be negative")
        _require(self.threshold_step > 0, "calibration.threshold_step", "must be positive")
        _require(self.min_flagged >= 1, "calibration.min_flagged", "must be at least 1")
        _require(
            self.min_lift >= 1,
            "calibration.min_lift",
            "must be at least 1 (below 1 a flag converts worse than an unflagged organization on average)",
        )


@dataclass(frozen=True)
class ModelSettings:
    """Person-level models: identity, first touch, activation / time-to-value, exclusions.

    The property names (`contract_value_property`, `email_property`, `opt_out_property`) are read
    when a file is rolled up, so changing them takes effect for files rolled up afterwards; every
    other value applies at model time to partials already stored.
    """

    signup_event: str = "$identify"  # signup = first occurrence of this event in the stitched identity
    milestones: tuple[str, ...] = (
        "first_api_call_completed",
        "first_report_generated",
        "first_team_member_invited",
        "first_automated_workflow_triggered",
        "integration_connected",
        "first_successful_deployment",
    )
    conversion_event: str = "subscription_started"
    contract_value_property: str = "contract_value"
    conversion_horizon_days: int = 14  # converted = conversion event within this many days of signup
    cohort_days: int = 90  # activation looks at persons who signed up in [T - cohort_days, T)
    correlation_exclude_events: tuple[str, ...] = ()  # besides the signup and conversion events
    revenue_window_days: int = 90  # revenue by source counts conversions in [T - window, T)
    paid_mediums: tuple[str, ...] = ("cpc", "ppc", "cpm", "paid", "paid_search", "paid_social", "display")
    email_property: str = "email"  # person property ($set) holding the email
    internal_email_domains: tuple[str, ...] = ()  # e.g. ["plgapp.io"]: persons with such emails are excluded
    opt_out_property: str = "analytics_opt_out"  # person property ($set); a truthy value excludes the person
    correlation_window: str = "posthog"  # posthog (PostHog's funnel window) or first_seen: docs/models.md
    test_org_ids: tuple[str, ...] = ()  # organizations (and their members) left out of every model

    def validate(self) -> None:
        names = ("signup_event", "conversion_event", "contract_value_property", "email_property")
        for key in (*names, "opt_out_property"):
            _require(bool(getattr(self, key)), f"models.{key}", "must not be empty")
        _require(
            self.opt_out_property != self.email_property,
            "models.opt_out_property",
            f"must differ from models.email_property ({self.email_property})",
        )
        _require(bool(self.milestones), "models.milestones", "needs at least one event")
        _require(
            len(set(self.milestones)) == len(self.milestones) and all(self.milestones),
            "models.milestones",
            f"must be distinct, non-empty event names: {self.milestones}",
        )
        _require(
            self.correlation_window in ("posthog", "first_seen"),
            "models.correlation_window",
            f"must be posthog or first_seen, not {self.correlation_window!r}",
        )
        steps = {self.signup_event, self.conversion_event}
        _require(
            self.signup_event != self.conversion_event,
            "models.conversion_event",
            "must differ from models.signup_event",
        )
        _require(
            not steps & set(self.milestones),
            "models.milestones",
            f"must not contain the signup or conversion event ({sorted(steps & set(self.milestones))})",
        )
        _require(self.conversion_horizon_days > 0, "models.conversion_horizon_days", "must be positive")
        _require(
            self.cohort_days > self.conversion_horizon_days,
            "models.cohort_days",
            f"must exceed models.conversion_horizon_days ({self.conversion_horizon_days}): "
            "only persons whose horizon has passed are compared",
        )
        _require(self.revenue_window_days > 0, "models.revenue_window_days", "must be positive")
        _require(bool(self.paid_mediums), "models.paid_mediums", "needs at least one medium")
        _require(
            all(m and m == m.strip().lower() for m in self.paid_mediums),
            "models.paid_mediums",
            "must be lowercase, non-empty (mediums are compared case-insensitively)",
        )
        _require(
            all(d and "@" not in d and d == d.strip().lower() for d in self.internal_email_domains),
            "models.internal_email_domains",
            "must be lowercase domains without '@', e.g. example.com",
        )
        _names(self.correlation_exclude_events, "models.correlation_exclude_events")
        _names(self.test_org_ids, "models.test_org_ids")


def _in_flight(value: int | None, key: str) -> None:
    """Requests in flight per delivery target: None (derived) or 1..64."""
    _require(value is None or (isinstance(value, int) and 1 <= value <= 64), key, "must be null or 1..64")


@dataclass(frozen=True)
class HubSpotSettings:
    conn_id: str = "hubspot_default"
    company_id_property: str = "posthog_group_id"
    batch_size: int = 100
    calls_per_10s: int = 100  # the app's rolling limit: 100 (Free/Starter), 190 (Pro/Enterprise), 250 (pack)
    max_in_flight: int | None = None  # requests in flight per target; None: from the limit and latency

    def validate(self) -> None:
        _nonempty(self.conn_id, "hubspot.conn_id")
        _in_flight(self.max_in_flight, "hubspot.max_in_flight")
        _require(
            bool(re.fullmatch(r"[a-z][a-z0-9_]*", self.company_id_property)),
            "hubspot.company_id_property",
            f"{self.company_id_property!r} is not a HubSpot property name (lowercase letters, digits, _)",
        )
        _require(1 <= self.batch_size <= 100, "hubspot.batch_size", "HubSpot accepts 1..100 inputs per call")
        _require(
            1 <= self.calls_per_10s <= 250,
            "hubspot.calls_per_10s",
            "must be 1..250 (HubSpot's highest limit, with the API limit increase, is 250 per 10 s)",
        )


@dataclass(frozen=True)
class SalesforceSettings:
    conn_id: str = (
        "salesforce_default"  # HTTP connection: host = My Domain URL, login/password = client id/secret
    )
    api_version: str | None = None  # None: the connection's extra, else v67.0
    external_id_field: str = "PostHog_Group_Id__c"  # Account external id holding the PostHog group key
    bulk_threshold: int = 2000  # above this many rows, Bulk API 2.0 instead of sObject Collections
    pql_lead_status: str = "PQL"  # Lead.Status set when an organization crosses the PQL threshold
    lead_org_field: str = "PostHog_Group_Id__c"  # Lead field holding the organization key
    max_in_flight: int | None = None  # Collections calls in flight; None: the default (10)
    api_reserve: float = 0.05  # share of the daily API limit kept for other integrations (below it: stop)

    def validate(self) -> None:
        _nonempty(self.conn_id, "salesforce.conn_id")
        _require(
            isinstance(self.api_reserve, int | float) and 0 <= self.api_reserve < 0.5,
            "salesforce.api_reserve",
            f"must be a fraction of the daily limit in [0, 0.5), e.g. 0.05, got {self.api_reserve!r}",
        )
        _in_flight(self.max_in_flight, "salesforce.max_in_flight")
        _require(
            self.api_version is None or bool(re.fullmatch(r"v\d+\.\d+", self.api_version)),
            "salesforce.api_version",
            f"must look like v67.0 (or null), got {self.api_version!r}",
        )
        for key in ("external_id_field", "lead_org_field"):
            value = getattr(self, key)
            _require(
                bool(_NAME.fullmatch(value)),
                f"salesforce.{key}",
                f"{value!r} is not a Salesforce field API name (e.g. PostHog_Group_Id__c)",
            )
        _require(self.bulk_threshold > 0, "salesforce.bulk_threshold", "must be positive")
        _nonempty(self.pql_lead_status, "salesforce.pql_lead_status")


SIGNALS = ("aha_reached", "usage_ceiling", "enterprise_interest", "pql_crossed", "integration_connected")
DESTINATIONS = ("hubspot", "salesforce", "intercom", "slack")


@dataclass(frozen=True)
class SignalSettings:
    """The seed's signal table: which signals exist, what raises them, where each one goes.

    A signal is keyed by (signal, organization or person, detail, window day), so a rerun or a
    backfill raises it again with the same key and the delivery state sends it once.
    """

    enabled: tuple[str, ...] = SIGNALS
    aha_event: str = "first_successful_deployment"  # first occurrence per person = Aha reached
    usage_ceiling_event: str = "hits_80_percent_of_tier_limit"
    enterprise_event: str = "enterprise_feature_clicked"
    enterprise_detail: str = "feature_name"  # event property shown with the signal
    integration_detail: str = "provider"  # property of pql.integration_event
    cooldown_days: int = 7  # one usage_ceiling / enterprise_interest / PQL alert per account within this
    pql_rearm_below: int = 50  # pql_crossed re-alerts only after the score was below this mark
    pql_lookback_days: int = 28  # daily PQL scores evaluated to derive the earlier alerts (no clock)
    detail_placeholders: tuple[str, ...] = (  # feature / provider names that name nothing (dropped)
        "-",
        "--",
        "n/a",
        "na",
        "none",
        "null",
        "undefined",
        "unknown",
    )
    aha_reached_to: tuple[str, ...] = ("intercom", "hubspot")
    usage_ceiling_to: tuple[str, ...] = ("hubspot", "slack")
    enterprise_interest_to: tuple[str, ...] = ("intercom", "hubspot", "slack")
    pql_crossed_to: tuple[str, ...] = ("salesforce", "hubspot", "slack")
    integration_connected_to: tuple[str, ...] = ("intercom", "hubspot")

    def routes(self, signal: str) -> tuple[str, ...]:
        return getattr(self, f"{signal}_to")

    def validate(self) -> None:
        for name in self.enabled:
            _require(
                name in SIGNALS, "signals.enabled", f"unknown signal {name!r} (known: {', '.join(SIGNALS)})"
            )
        _names(self.enabled, "signals.enabled")
        for key in ("aha_event", "usage_ceiling_event", "enterprise_event"):
            _nonempty(getattr(self, key), f"signals.{key}")
        for key in ("enterprise_detail", "integration_detail"):
            _nonempty(getattr(self, key), f"signals.{key}")
        _require(self.cooldown_days >= 1, "signals.cooldown_days", "must be at least 1")
        _require(self.pql_rearm_below >= 0, "signals.pql_rearm_below", "must not be negative")
        _require(self.pql_lookback_days >= 1, "signals.pql_lookback_days", "must be at least 1")
        for name in SIGNALS:
            for dest in self.routes(name):
                _require(
                    dest in DESTINATIONS,
                    f"signals.{name}_to",
                    f"unknown destination {dest!r} (known: {', '.join(DESTINATIONS)})",
                )
            _names(self.routes(name), f"signals.{name}_to")


@dataclass(frozen=True)
class IntercomSettings:
    conn_id: str = (
        "intercom_default"  # HTTP connection: password = access token; extra {"region", "intercom_version"}
    )
    aha_event_name: str = "aha-moment-reached"  # Intercom data event for aha_reached (fires series)
    max_in_flight: int | None = None  # calls in flight per target; None: from the limit and latency

    def validate(self) -> None:
        _nonempty(self.conn_id, "intercom.conn_id")
        _in_flight(self.max_in_flight, "intercom.max_in_flight")
        _nonempty(self.aha_event_name, "intercom.aha_event_name")
        _require(
            self.aha_event_name == self.aha_event_name.strip() and len(self.aha_event_name) <= 255,
            "intercom.aha_event_name",
            "must have no leading or trailing spaces and at most 255 characters",
        )


@dataclass(frozen=True)
class SlackSettings:
    conn_id: str = "slack_default"  # `slack` (bot token) or `slackwebhook` connection
    channel: str = "#plg-alerts"

    def validate(self) -> None:
        _nonempty(self.conn_id, "slack.conn_id")
        _channel(self.channel, "slack.channel")


@dataclass(frozen=True)
class DeliverySettings:
    """How delivery behaves across destinations."""

    destinations: tuple[str, ...] = ("hubspot",)  # the destinations this deployment delivers to
    max_rejected_share: float = 0.05  # fail the run (after committing) when more rows are rejected
    paused: tuple[str, ...] = ()  # destinations to skip entirely, e.g. during a vendor incident

    def validate(self) -> None:
        for key in ("destinations", "paused"):
            for name in getattr(self, key):
                _require(
                    name in DESTINATIONS,
                    f"delivery.{key}",
                    f"unknown destination {name!r} (known: {', '.join(DESTINATIONS)})",
                )
            _names(getattr(self, key), f"delivery.{key}")
        _require(0 <= self.max_rejected_share <= 1, "delivery.max_rejected_share", "must be between 0 and 1")


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (task failures, unusual input volume)."""

    enabled: bool = True
    slack_conn_id: str = "slack_default"
    channel: str = "#plg-alerts"
    volume_factor: float = (
        3.0  # alert when rows read differ from the trailing median by more than this factor
    )
    trailing_runs: int = 7

    def validate(self) -> None:
        _nonempty(self.slack_conn_id, "alerts.slack_conn_id")
        _channel(self.channel, "alerts.channel")
        _require(self.volume_factor >= 1, "alerts.volume_factor", "must be at least 1")
        _require(self.trailing_runs >= 3, "alerts.trailing_runs", "must be at least 3")


@dataclass(frozen=True)
class FastSettings:
    """The fast path (dags/plg_fast_signals.py): create-once alerts minutes after an export lands."""

    poll_seconds: float = 30.0  # how often the triggerer lists the export location for new objects
    signals: tuple[str, ...] = ("pql_crossed", "usage_ceiling", "enterprise_interest", "aha_reached")
    paused: bool = False  # true: fast runs deliver nothing (the daily run still alerts, once)

    def validate(self) -> None:
        _require(self.poll_seconds >= 1, "fast.poll_seconds", "must be at least 1 second")
        unknown = sorted(set(self.signals) - set(SIGNALS))
        _require(not unknown, "fast.signals", f"unknown signal(s) {unknown}; known: {list(SIGNALS)}")


@dataclass(frozen=True)
class Settings:
    exports: ExportSettings = field(default_factory=ExportSettings)
    pql: PqlSettings = field(default_factory=PqlSettings)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    hubspot: HubSpotSettings = field(default_factory=HubSpotSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    signals: SignalSettings = field(default_factory=SignalSettings)
    salesforce: SalesforceSettings = field(default_factory=SalesforceSettings)
    intercom: IntercomSettings = field(default_factory=IntercomSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    fast: FastSettings = field(default_factory=FastSettings)
    work_location: str = ".demo/bucket/plg-bridge"  # partials, outputs, reports and delivery state: s3://bucket/prefix or an absolute folder
    demo: bool = False  # true only for make demo and tests: allows a relative or .demo work location
    # Where each value came from (dotted key -> source), for error messages; not a setting.
    sources: dict[str, str] = field(
        default_factory=dict, compare=False, repr=False, metadata={"internal": True}
    )

    def validate(self) -> Settings:
        """Every section (each dataclass field), then the top-level values."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.validate()
        _nonempty(self.work_location, "work_location")
        return self

    def source(self, key: str) -> str:
        """Where the value of `key` (e.g. "work_location", "slack.channel") came from, in words."""
        return self.sources.get(key) or "the default value"


def _require(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"invalid setting {key}: {why}", key)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML/env value to the field's type, or raise naming the key."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        blank = value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))
        if blank and type(None) in args:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"invalid setting {key}: expected a list, got {value!r}", key)
        return tuple(_coerce(v, args[0], key) for v in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"invalid setting {key}: expected true/false, got {value!r}", key)
    if hint in (int, float, str):
        if isinstance(value, bool) and hint is not str:
            raise ConfigError(f"invalid setting {key}: expected {hint.__name__}, got {value!r}", key)
        if hint is str and isinstance(value, dict | list):
            raise ConfigError(f"invalid setting {key}: expected text, got {value!r}", key)
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"invalid setting {key}: expected {hint.__name__}, got {value!r}", key
            ) from None
    return value


def _settable(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = _settable(cls)
    unknown = sorted(set(data) - names)
    if unknown:
        known = ", ".join(sorted(names))
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"unknown setting {key} (known in this section: {known})", key)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"invalid setting {prefix}{name}: expected a mapping", f"{prefix}{name}")
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    return cls(**kwargs)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def env_name(key: str) -> str:
    """The environment variable of a dotted setting key: slack.channel -> PLG_BRIDGE__SLACK__CHANNEL."""
    return "PLG_BRIDGE__" + key.upper().replace(".", "__")


def _env_overrides(env: typing.Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The PLG_BRIDGE__* variables as a settings tree, and each dotted key's variable name."""
    tree: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith("PLG_BRIDGE__"):
            continue
        *parents, leaf = name[len("PLG_BRIDGE__") :].lower().split("__")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} sets a key inside a value", ".".join(parents))
        node[leaf] = value
        names[".".join([*parents, leaf])] = name
    return tree, names


def _leaves(data: dict[str, Any], prefix: str = "") -> typing.Iterator[str]:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def default_config_path() -> Path | None:
    """The deployment's YAML: $PLG_BRIDGE_CONFIG, else include/config/plg_bridge.yaml of this checkout."""
    explicit = os.environ.get("PLG_BRIDGE_CONFIG")
    if explicit:
        return Path(explicit)
    here = Path(__file__).resolve().parents
    # plugins/plg_bridge (a checkout, Astronomer) or dags/plg_bridge (MWAA) beside include/
    for base in (here[2], here[1]):
        candidate = base / "include" / "config" / "plg_bridge.yaml"
        if candidate.exists():
            return candidate
    return None


def _source_of(key: str | None, sources: dict[str, str], path: Path | None) -> str:
    """Where a bad key came from: its own source, else that of a key under it, else the file/default."""
    if key:
        if key in sources:
            return sources[key]
        below = sorted(v for k, v in sources.items() if k.startswith(f"{key}."))
        if below:
            return below[0]
        return f"the default value ({env_name(key)} and {path or 'the YAML file'} do not set it)"
    return f"from {path}" if path else "from the environment"


def load_settings(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None) -> Settings:
    """Defaults <- YAML <- environment, validated. Raises ConfigError naming the bad key and where its
    value came from: `(from <file>, key <key>)` or `(from environment variable PLG_BRIDGE__...)`."""
    import yaml

    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = Path(path) if path else default_config_path()
    if path is not None:
        if not path.exists():
            raise ConfigError(f"configuration file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
        data = loaded
        sources.update({key: f"from {path}, key {key}" for key in _leaves(data)})
    overrides, names = _env_overrides(env)
    for key in list(sources):  # a variable replaces the file's value (or the whole subtree under it)
        if any(key == k or key.startswith(f"{k}.") for k in names):
            del sources[key]
    sources.update({key: f"from environment variable {name}" for key, name in names.items()})
    data = _merge(data, overrides)
    try:
        settings = _build(Settings, data, "")
        settings.sources.update(sources)
        return settings.validate()
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({_source_of(exc.key, sources, path)})", exc.key) from None
