"""Deterministic PostHog-like batch-export files for demos, tests and load runs.

The pipeline reads PostHog's S3 batch exports (events model, Parquet). This writes files with the same
names, columns and quirks -- cut by `_inserted_at` so late events land in later files, at-least-once
duplicates, `$groups` without `$group_0`, anonymous visitors who later `$identify` -- from a seeded model
of B2B organizations, so scoring and syncs can run end to end without PostHog. Rows are built chunk by
chunk with numpy/pyarrow and streamed as Parquet row groups, so memory stays flat whatever `rows` is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plg_bridge.storage import Location, StorageError, location

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

US = 1_000_000
HOUR_US = 3_600 * US
DAY_US = 24 * HOUR_US
INTERVALS = {"day": DAY_US, "hour": HOUR_US}

ROWS_PER_ORG = 3_000
MIN_ROWS = 1_000
BATCH_ROWS = 65_536  # rows turned into Arrow text at a time (bounds memory); row groups hold more
DUPLICATE_FRACTION = 0.005  # rows delivered twice (same uuid, same content, same file)
LATE_FRACTION = 0.02  # events whose _inserted_at falls in a later interval than their timestamp
VERY_LATE_SHARE = 0.15  # of the late ones: one to three days later
GROUPS_ONLY_FRACTION = 0.03  # identified events with `$groups` but no `$group_0`
GROWING_SHARE = 0.2
ESTABLISHED_SHARE = 0.4  # organizations whose members all signed up before the window
ORG_GROUP_TYPE = "organization"

SITE = "www.plgapp.io"
APP = "app.plgapp.io"

# Event codes: index into EVENT_NAMES. The first three are anonymous (pre-identify) page views.
(
    E_LANDING,
    E_ANON_PV,
    E_RETURN_PV,
    E_IDENTIFY,
    E_GROUPIDENTIFY,
    E_PV,
    E_CORE,
    E_CREATE,
    E_INTEGRATION,
    E_SUBSCRIPTION,
    E_MS_API,
    E_MS_REPORT,
    E_MS_INVITE,
    E_MS_WORKFLOW,
    E_MS_DEPLOY,
    E_LIMIT,
    E_ENTERPRISE,
) = range(17)
EVENT_NAMES = [
    "$pageview",
    "$pageview",
    "$pageview",
    "$identify",
    "$groupidentify",
    "$pageview",
    "core_feature_used",
    "creation_event",
    "integration_connected",
    "subscription_started",
    "first_api_call_completed",
    "first_report_generated",
    "first_team_member_invited",
    "first_automated_workflow_triggered",
    "first_successful_deployment",
    "hits_80_percent_of_tier_limit",
    "enterprise_feature_clicked",
]
ANON_CODES = (E_LANDING, E_ANON_PV, E_RETURN_PV)
# milestone code -> (probability for a member, mean hours after identify)
MILESTONES = {
    E_MS_API: (0.6, 6.0),
    E_MS_REPORT: (0.55, 18.0),
    E_MS_INVITE: (0.2, 30.0),  # 0.85 for the first member of an org
    E_MS_WORKFLOW: (0.3, 72.0),
    E_MS_DEPLOY: (0.4, 48.0),
}

# (utm_source, utm_medium, utm_campaign, referring_domain, weight); None = no utm on the landing URL
CHANNELS: list[tuple[str | None, str | None, str | None, str, float]] = [
    ("google", "cpc", "brand_search", "www.google.com", 0.17),
    ("google", "cpc", "competitor_keywords", "www.google.com", 0.06),
    ("linkedin", "paid_social", "abm_enterprise_q4", "www.linkedin.com", 0.13),
    ("facebook", "paid_social", "retargeting", "l.facebook.com", 0.04),
    ("newsletter", "email", "weekly_digest", "$direct", 0.06),
    ("zapier", "referral", "zapier_marketplace", "zapier.com", 0.05),
    (None, None, None, "www.google.com", 0.2),
    (None, None, None, "news.ycombinator.com", 0.05),
    (None, None, None, "github.com", 0.06),
    (None, None, None, "$direct", 0.18),
]
PAID_MEDIUMS = {"cpc", "paid_social"}
PLANS = ["free", "starter", "pro", "enterprise"]
PLAN_WEIGHTS = [0.35, 0.3, 0.25, 0.1]
SEATS = {"free": (1, 4), "starter": (3, 11), "pro": (10, 51), "enterprise": (50, 501)}
PRICE_PER_SEAT = {"free": 0.0, "starter": 15.0, "pro": 39.0, "enterprise": 89.0}
PROVIDERS = ["stripe", "salesforce", "zapier", "slack"]
FEATURES = ["dashboards", "reports", "workflows", "api", "alerts", "exports", "sql_editor", "notebooks"]
CREATED_OBJECTS = ["dashboard", "report", "workflow", "alert"]
ENTERPRISE_FEATURES = ["sso", "audit_logs", "rbac", "scim", "data_residency"]
LIMITS = ["events", "seats", "api_calls"]
MARKETING_PAGES = ["/", "/pricing", "/docs", "/blog/plg-metrics", "/customers", "/signup"]
APP_PAGES = ["/home", "/dashboards", "/reports", "/workflows", "/settings/billing", "/integrations", "/team"]
ELEMENT_CHAINS = [
    'button.btn.btn-primary:attr__class="btn btn-primary"nth-child="2"nth-of-type="1"text="Save"',
    'a:attr__href="/reports/new"href="/reports/new"nth-child="1"nth-of-type="1"text="New report"',
    'button:attr__data-attr="run-query"nth-child="3"nth-of-type="2"text="Run"',
]
ORG_WORDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Soylent", "Cyberdyne",
    "Tyrell", "Wonka", "Pied Piper", "Aperture", "Monarch", "Oceanic", "Zürich", "O'Hare", "Nakatomi",
    "Bluth", "Sterling", "Prestige", "Massive", "Gekko", "Dunder", "Kramerica", "Sirius", "Ollivander",
]  # fmt: skip
ORG_SUFFIXES = [
    "Labs", "Analytics", "Systems", "Health", "Logistics", "Cloud", "Studio", "Foods", "Capital",
    "Robotics", '& "Sons"', "Café & Co", "GmbH", "Inc.",
]  # fmt: skip
FIRST_NAMES = [
    "ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kofi", "lena", "mateo",
    "nia", "omar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "vik", "wen", "yara", "zoe",
]  # fmt: skip
LAST_NAMES = [
    "silva", "nguyen", "okafor", "smith", "kowalski", "tanaka", "garcia", "muller", "haddad", "obrien",
    "rossi", "singh", "larsen", "moreau", "kim", "novak", "duarte", "ibrahim", "costa", "weber",
]  # fmt: skip
BROWSERS = [("Chrome", "Mac OS X", "Desktop"), ("Chrome", "Windows", "Desktop"), ("Safari", "Mac OS X", "Desktop"),
            ("Firefox", "Linux", "Desktop"), ("Microsoft Edge", "Windows", "Desktop"),
            ("Mobile Safari", "iOS", "Mobile"), ("Chrome", "Android", "Mobile")]  # fmt: skip

PARQUET_DICTIONARY_COLUMNS = ["event", "distinct_id", "elements_chain", "person_properties", "person_id"]


@dataclass(frozen=True)
class GenerateSummary:
    files: list[str]  # object keys written, relative to `out`, in interval order
    rows: int  # all rows written, duplicates included
    duplicates: int  # rows that repeat an earlier row (same uuid and content)
    orgs: int
    persons: int  # organization members identified by `end` (anonymous-only visitors not counted)


def export_schema() -> pa.Schema:
    """The column layout of PostHog's default S3 export of the events model."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("uuid", pa.string()),
            ("timestamp", ts),
            ("_inserted_at", ts),
            ("created_at", ts),
            ("event", pa.string()),
            ("properties", pa.string()),
            ("distinct_id", pa.string()),
            ("elements_chain", pa.string()),
            ("person_properties", pa.string()),
            ("person_id", pa.string()),
        ]
    )


def export_file_name(start: dt.datetime, end: dt.datetime) -> str:
    """PostHog's key for one interval: `{data_interval_start}-{data_interval_end}.parquet.zst`."""
    return f"{start.isoformat()}-{end.isoformat()}.parquet.zst"


def generate(
    out: str,
    rows: int,
    end: dt.date,
    *,
    days: int = 28,
    interval: str = "day",
    seed: int = 7,
    endpoint_url: str | None = None,
    malformed_fraction: float = 0.0,
    chunk_rows: int = 250_000,
    groups_only_fraction: float = GROUPS_ONLY_FRACTION,
) -> GenerateSummary:
    """Write `rows` exported events covering the `days` days before `end` (00:00 UTC) under `out`.

    One file per export interval ("day" or "hour"), every interval present even when empty. The same
    arguments always give the same rows. `malformed_fraction` breaks that share of `properties` values
    (truncated JSON or null) for bad-input tests.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {sorted(INTERVALS)}, not {interval!r}")
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS}, not {rows}")
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if not 0.0 <= malformed_fraction < 1.0:
        raise ValueError(f"malformed_fraction must be in [0, 1), not {malformed_fraction}")
    if not 0.0 <= groups_only_fraction <= 1.0:
        raise ValueError(f"groups_only_fraction must be in [0, 1], not {groups_only_fraction}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, not {chunk_rows}")

    import numpy as np

    end_dt = dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)
    end_us = _epoch_us(end_dt)
    start_us = end_us - days * DAY_US
    rng = np.random.Generator(np.random.PCG64(seed))
    n_dup = int(rows * DUPLICATE_FRACTION)
    n_base = rows - n_dup
    world = _World(rng, n_base, start_us, end_us, days, groups_only_fraction=groups_only_fraction)
    n_recurring = n_base - world.n_scheduled
    if n_recurring < 0:
        raise ValueError(f"rows={rows} is too few for {world.n_orgs} organizations; ask for more rows")

    writer = _IntervalWriter(location(out, endpoint_url), start_us, INTERVALS[interval], end_us, chunk_rows)
    try:
        per_day = _allocate(n_recurring, world.day_weights())
        done_base = done_dup = done_bad = 0
        for day, n_day in enumerate(per_day):
            d0 = start_us + day * DAY_US
            pieces = max(1, math.ceil(n_day / chunk_rows))
            bounds = [d0 + DAY_US * i // pieces for i in range(pieces + 1)]
            weights = [
                float(world.recurring_rates(day, bounds[i], bounds[i + 1]).sum()) for i in range(pieces)
            ]
            counts = _allocate(n_day, weights)
            for i in range(pieces):
                s0, s1 = bounds[i], bounds[i + 1]
                base = world.base_rows(rng, s0, s1, counts[i], world.recurring_rates(day, s0, s1))
                n = len(base["t"])
                done_base += n
                dups = round(n_dup * done_base / n_base) - done_dup
                bad = round(malformed_fraction * done_base) - done_bad
                done_dup += dups
                done_bad += bad
                for table, slots, done in world.chunk_tables(
                    rng,
                    base,
                    dups=dups,
                    bad=bad,
                    slot_of=writer.slot_of,
                    complete_before=s1,
                    batch_rows=min(chunk_rows, BATCH_ROWS),
                ):
                    writer.add(table, slots, complete_before=done)
        files = writer.finish()
    except OSError as exc:
        raise StorageError(f"cannot write the export under {out}: {exc}") from exc
    finally:
        writer.abort()
    return GenerateSummary(
        files=files,
        rows=writer.rows,
        duplicates=done_dup,
        orgs=world.n_orgs,
        persons=int((world.member_t_id < end_us).sum()),
    )


# -- helpers ---------------------------------------------------------------------------------


def _epoch_us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * US + moment.microsecond


def _from_us(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder; deterministic)."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    exact = [total * w / s for w in weights]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _frag(obj: dict[str, Any], lead: str = ",") -> str:
    """Members of a JSON object as text (properly escaped), to be spliced into a bigger object."""
    return lead + _json(obj)[1:-1] if obj else ""


def _strings_from_fixed(buf: np.ndarray) -> pa.Array:
    """An Arrow string array over an (n, width) uint8 matrix of ASCII, without per-row Python."""
    import numpy as np
    import pyarrow as pa

    n, width = buf.shape
    data = np.ascontiguousarray(buf)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


_UUID_HEX_POS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def _uuid_strings(raw: np.ndarray) -> pa.Array:
    """Format an (n, 16) uint8 matrix as canonical lowercase UUID text."""
    import numpy as np

    hexdig = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    buf = np.full((raw.shape[0], 36), ord("-"), dtype=np.uint8)
    buf[:, _UUID_HEX_POS[0::2]] = hexdig[raw >> 4]
    buf[:, _UUID_HEX_POS[1::2]] = hexdig[raw & 0x0F]
    return _strings_from_fixed(buf)


def _uuid7_bytes(rng: np.random.Generator, ts_us: np.ndarray) -> np.ndarray:
    """UUIDv7 (what PostHog uses for event ids): 48-bit unix milliseconds, then random bits."""
    import numpy as np

    n = len(ts_us)
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    ms = (ts_us // 1000).astype(np.uint64)
    for i, shift in enumerate(range(40, -8, -8)):
        raw[:, i] = ((ms >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def _uuid4_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    import numpy as np

    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def _slug(text: str) -> str:
    import re
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


# -- the simulated world ---------------------------------------------------------------------


class _World:
    """Organizations, their members and anonymous visitors, plus every one-off event, as numpy arrays.

    Entities 0..n_members-1 are organization members (they identify at `t_id`); the rest are visitors
    who never sign up. Recurring product events are drawn per time slice from member rates; one-off
    events (landing page views, `$identify`, `$groupidentify`, milestones, integrations,
    subscriptions) are scheduled up front.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        n_base: int,
        start_us: int,
        end_us: int,
        days: int,
        *,
        groups_only_fraction: float,
    ) -> None:
        import numpy as np

        self.start_us, self.end_us, self.days = start_us, end_us, days
        self.groups_only_fraction = groups_only_fraction
        self._orgs(rng, n_base)
        self._members(rng)
        self._entities(rng)
        self._schedule(rng)
        self._tables()
        day_starts = start_us + np.arange(days, dtype=np.int64) * DAY_US
        weekday = np.array([_from_us(int(d)).weekday() for d in day_starts])
        self.weekday_factor = np.where(weekday >= 5, 0.35, 1.0)

    # organizations ------------------------------------------------------------------------

    def _orgs(self, rng: np.random.Generator, n_base: int) -> None:
        import numpy as np

        n = self.n_orgs = max(5, round(n_base / ROWS_PER_ORG))
        width = max(4, len(str(n)))
        self.org_keys = [f"org_{i + 1:0{width}d}" for i in range(n)]
        names: list[str] = []
        domains: list[str] = []
        seen_names: set[str] = set()
        seen_domains: set[str] = set()
        for i in range(n):
            name = (
                f"{ORG_WORDS[rng.integers(len(ORG_WORDS))]} {ORG_SUFFIXES[rng.integers(len(ORG_SUFFIXES))]}"
            )
            if name in seen_names:
                name = f"{name} {i + 1}"
            seen_names.add(name)
            domain = f"{_slug(name) or 'org'}.{'io' if rng.random() < 0.5 else 'com'}"
            if domain in seen_domains:
                domain = f"{i + 1}-{domain}"
            seen_domains.add(domain)
            names.append(name)
            domains.append(domain)
        self.org_names, self.org_domains = names, domains
        self.org_plan = rng.choice(len(PLANS), size=n, p=PLAN_WEIGHTS)
        self.org_seats = np.array([rng.integers(*SEATS[PLANS[p]]) for p in self.org_plan])
        self.org_age_days = rng.integers(20, 720, size=n)
        self.org_activity = rng.lognormal(0.0, 0.5, size=n)
        n_growing = max(1, round(GROWING_SHARE * n))
        self.org_growing = np.zeros(n, dtype=bool)
        growing = rng.choice(n, size=n_growing, replace=False)
        self.org_growing[growing] = True
        self.showcase = int(growing[0])  # growing + >= 3 creators + integration => a PQL for sure
        self.org_team = rng.random(n) < 0.35
        self.org_team[self.showcase] = True
        self.org_sends_gi = np.ones(n, dtype=bool)
        silent = rng.choice(
            np.flatnonzero(np.arange(n) != self.showcase), size=max(1, round(0.06 * n)), replace=False
        )
        self.org_sends_gi[silent] = False
        self.org_near_limit = (self.org_plan <= 1) & (rng.random(n) < 0.4)
        last_week = rng.uniform(0.85, 1.3, size=n)
        last_week[self.org_growing] = rng.uniform(2.0, 3.2, size=int(self.org_growing.sum()))
        days = np.arange(self.days)
        recent = days >= self.days - 7
        self.org_day_mult = rng.lognormal(0.0, 0.12, size=(n, self.days)) * np.where(
            recent[None, :], last_week[:, None], 1.0
        )
        # established customers signed up before the window (no $identify in it); the rest start in it
        self.org_established = rng.random(n) < ESTABLISHED_SHARE
        self.org_established[self.showcase] = False
        new_start = rng.uniform(0.0, 0.35, size=n) * self.days * DAY_US
        old_start = -rng.uniform(3.0, 90.0, size=n) * DAY_US
        self.org_start = self.start_us + np.where(self.org_established, old_start, new_start).astype(np.int64)

    # members ------------------------------------------------------------------------------

    def _members(self, rng: np.random.Generator) -> None:
        import numpy as np

        n = self.n_orgs
        size = 2 + rng.poisson(4.0, size=n) + np.where(self.org_team, 3, 0)
        size[self.showcase] = max(int(size[self.showcase]), 5)
        late = np.where(self.org_growing, rng.integers(1, 4, size=n), 0)
        org = np.repeat(np.arange(n), size + late)
        m = self.n_members = len(org)
        first = np.zeros(m, dtype=bool)
        first[np.concatenate([[0], np.cumsum(size + late)[:-1]])] = True
        rank = np.arange(m) - np.repeat(np.concatenate([[0], np.cumsum(size + late)[:-1]]), size + late)
        is_late = rank >= size[org]
        window = self.days * DAY_US
        cap = self.start_us + int(0.4 * window)
        joined = self.org_start[org] + (rng.exponential(2.0, size=m) * DAY_US).astype(np.int64)
        joined = np.where(
            first, self.org_start[org], np.minimum(joined, np.maximum(cap, self.org_start[org]))
        )
        late_lo = max(self.start_us, self.end_us - 8 * DAY_US)
        late_hi = max(late_lo + HOUR_US, self.end_us - 36 * HOUR_US)
        joined = np.where(is_late, rng.integers(late_lo, late_hi, size=m), joined)
        long_gap = rng.random(m) < 0.3
        gap = np.where(
            long_gap,
            rng.uniform(1.0, 4.0, size=m) * DAY_US,
            rng.uniform(2.0, 40.0, size=m) * 60 * US,
        ).astype(np.int64)
        showcase_core = (org == self.showcase) & (rank < 3)
        gap[showcase_core] = rng.integers(5, 30, size=int(showcase_core.sum())) * 60 * US
        self.member_org = org
        self.member_first = first
        self.member_long_gap = long_gap
        self.member_first_seen = joined
        self.member_t_id = joined + gap
        creator_p = np.where(self.org_team[org], 0.75, 0.25)
        self.member_creator = (rng.random(m) < creator_p) | showcase_core
        self.member_rate = rng.lognormal(0.0, 0.6, size=m) * self.org_activity[org]

    # entities: members + anonymous visitors ---------------------------------------------------

    def _entities(self, rng: np.random.Generator) -> None:
        """Per-entity arrays and id columns, built with Arrow vector ops (no per-entity Python strings)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        m = self.n_members
        v = self.n_visitors = m
        e = self.n_entities = m + v
        visitor_seen = self.start_us + (rng.random(v) * (self.days * DAY_US - 60 * US)).astype(np.int64)
        self.first_seen = np.concatenate([self.member_first_seen, visitor_seen])
        self.t_id = np.concatenate([self.member_t_id, np.full(v, np.iinfo(np.int64).max)])
        self.channel = rng.choice(len(CHANNELS), size=e, p=[c[4] for c in CHANNELS])
        browser = rng.integers(len(BROWSERS), size=e)
        self.anon_ids = _uuid_strings(_uuid7_bytes(rng, self.first_seen))
        self.person_uuid = _uuid_strings(_uuid4_bytes(rng, e))
        pre_merge = _uuid_strings(_uuid4_bytes(rng, e))
        keep_anon_person = rng.random(e) < 0.7  # $identify usually keeps the anonymous person's uuid
        self.anon_person_uuid = pc.if_else(pa.array(keep_anon_person), self.person_uuid, pre_merge)
        self.identified_only = rng.random(e) < 0.5  # no person profile (null properties) before identify
        first_names = rng.integers(len(FIRST_NAMES), size=m)
        last_names = rng.integers(len(LAST_NAMES), size=m)
        user_offset = int(rng.integers(100, 900))

        devices = [
            _frag(
                {"$lib": "web", "$lib_version": "1.236.1", "$os": os_name, "$browser": b_name,
                 "$device_type": device},
                lead="",
            )
            for b_name, os_name, device in BROWSERS
        ]  # fmt: skip
        ips = [_frag({"$ip": f"203.0.113.{i + 1}"}) for i in range(254)]
        self.device = pc.binary_join_element_wise(
            pa.array(devices).take(pa.array(browser)), pa.array(ips).take(pa.array(np.arange(e) % 254)), ""
        )

        def text(values: np.ndarray) -> pa.Array:
            return pc.cast(pa.array(values), pa.string())

        self.user_ids = pc.binary_join_element_wise("user_", text(np.arange(m) + user_offset + 1), "")
        # emails: first.last@org-domain, with the member number appended when an org has two alike
        key = (self.member_org * len(FIRST_NAMES) + first_names) * len(LAST_NAMES) + last_names
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(m, dtype=bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        suffix = pc.if_else(pa.array(repeat), text(np.arange(m) + 1), "")
        domains = pa.array(self.org_domains).take(pa.array(self.member_org))
        self.emails = pc.binary_join_element_wise(
            pa.array(FIRST_NAMES).take(pa.array(first_names)),
            ".",
            pa.array(LAST_NAMES).take(pa.array(last_names)),
            suffix,
            "@",
            domains,
            "",
        )

    # one-off events ---------------------------------------------------------------------------

    def _schedule(self, rng: np.random.Generator) -> None:
        import numpy as np

        m, e = self.n_members, self.n_entities
        parts: list[
            tuple[np.ndarray, np.ndarray, int | np.ndarray, int | np.ndarray]
        ] = []  # t, ent, code, var
        ents = np.arange(e)
        parts.append((self.first_seen, ents, E_LANDING, 0))
        # a few more page views in the landing session, before signing up
        extra = rng.poisson(1.5, size=e)
        who = np.repeat(ents, extra)
        span = np.minimum(self.t_id[who] - self.first_seen[who], 30 * 60 * US)
        t = self.first_seen[who] + (rng.uniform(0.05, 1.0, size=len(who)) * span).astype(np.int64)
        parts.append((t, who, E_ANON_PV, rng.integers(len(MARKETING_PAGES), size=len(who))))
        # members who left and came back days later: a direct visit right before signing up
        who = np.flatnonzero(self.member_long_gap)
        t = self.t_id[who] - rng.integers(30, 300, size=len(who)) * US
        parts.append((t, who, E_RETURN_PV, 0))
        members = np.arange(m)
        parts.append((self.t_id[:m], members, E_IDENTIFY, 0))
        who = np.flatnonzero(self.org_sends_gi[self.member_org])
        parts.append((self.t_id[who] + rng.integers(1, 6, size=len(who)) * US, who, E_GROUPIDENTIFY, 0))
        # members who signed up before the window send it again when they first come back in it
        back = who[self.t_id[who] < self.start_us]
        t = self.start_us + (rng.uniform(0.0, min(3.0, self.days), size=len(back)) * DAY_US).astype(np.int64)
        parts.append((np.maximum(t, self.t_id[back]), back, E_GROUPIDENTIFY, 0))
        paid = np.array([CHANNELS[c][1] in PAID_MEDIUMS for c in self.channel[:m]])
        ttv_factor = np.where(paid, 1.4, 0.9)
        for code, (p, mean_hours) in MILESTONES.items():
            prob = np.where(self.member_first, 0.85, p) if code == E_MS_INVITE else np.full(m, p)
            who = np.flatnonzero(rng.random(m) < prob)
            delay = rng.exponential(mean_hours, size=len(who)) * ttv_factor[who] * HOUR_US
            parts.append((self.t_id[who] + 60 * US + delay.astype(np.int64), who, code, 0))
        # integrations and subscriptions: per organization, by one of its signed-up members
        t_list: list[int] = []
        ent_list: list[int] = []
        code_list: list[int] = []
        var_list: list[int] = []
        latest = self.end_us - 2 * HOUR_US
        for org in range(self.n_orgs):
            staff = np.flatnonzero((self.member_org == org) & (self.t_id[:m] < latest))
            if len(staff) == 0:
                continue
            p_int = (
                1.0
                if org == self.showcase
                else (0.75 if self.org_team[org] or self.org_growing[org] else 0.5)
            )
            if rng.random() < p_int:
                k = int(rng.integers(1, 4))
                for provider in rng.choice(len(PROVIDERS), size=k, replace=False):
                    who_i = int(staff[rng.integers(len(staff))])
                    lo = self.t_id[who_i] + HOUR_US
                    if org == self.showcase:
                        lo = max(lo, self.end_us - 10 * DAY_US)
                    t_list.append(int(rng.integers(min(lo, latest - 1), latest)))
                    ent_list.append(who_i)
                    code_list.append(E_INTEGRATION)
                    var_list.append(int(provider))
            if rng.random() < 0.3:
                who_i = int(staff[rng.integers(len(staff))])
                lo = min(self.t_id[who_i] + 2 * DAY_US, latest - 1)
                t_list.append(int(rng.integers(lo, latest)))
                ent_list.append(who_i)
                code_list.append(E_SUBSCRIPTION)
                var_list.append(0)
        parts.append(
            (
                np.array(t_list, dtype=np.int64),
                np.array(ent_list, dtype=np.int64),
                np.array(code_list, dtype=np.int64),
                np.array(var_list, dtype=np.int64),
            )
        )

        def full(x: int | np.ndarray, n: int) -> np.ndarray:
            return np.broadcast_to(np.asarray(x, dtype=np.int64), (n,))

        t = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
        ent = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
        code = np.concatenate([full(p[2], len(p[0])) for p in parts])
        var = np.concatenate([full(p[3], len(p[0])) for p in parts])
        keep = (t >= self.start_us) & (t < self.end_us)
        order = np.argsort(t[keep], kind="stable")
        self.s_t = t[keep][order]
        self.s_ent = ent[keep][order].astype(np.int32)
        self.s_code = code[keep][order].astype(np.int8)
        self.s_var = var[keep][order].astype(np.int32)
        self.n_scheduled = len(self.s_t)

    # lookup tables the per-row columns are taken from -----------------------------------------

    def _tables(self) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        m, n_orgs = self.n_members, self.n_orgs
        generic: dict[int, list[str]] = {code: [""] for code in range(len(EVENT_NAMES))}
        generic[E_ANON_PV] = [
            _frag({"$current_url": f"https://{SITE}{p}", "$host": SITE, "$pathname": p})
            for p in MARKETING_PAGES
        ]
        generic[E_RETURN_PV] = [
            _frag({"$current_url": f"https://{SITE}/signup", "$host": SITE, "$pathname": "/signup",
                   "$referrer": "$direct", "$referring_domain": "$direct"})
        ]  # fmt: skip
        generic[E_PV] = [
            _frag({"$current_url": f"https://{APP}{p}", "$host": APP, "$pathname": p,
                   "$referrer": "$direct", "$referring_domain": "$direct"})
            for p in APP_PAGES
        ]  # fmt: skip
        generic[E_CORE] = [_frag({"feature": f}) for f in FEATURES]
        generic[E_CREATE] = [_frag({"object_type": o}) for o in CREATED_OBJECTS]
        generic[E_INTEGRATION] = [_frag({"provider": p}) for p in PROVIDERS]
        generic[E_LIMIT] = [_frag({"limit_name": lim, "usage_percent": 80}) for lim in LIMITS]
        generic[E_ENTERPRISE] = [_frag({"feature_name": f}) for f in ENTERPRISE_FEATURES]
        a_strings: list[str] = []
        self.a_offset = np.zeros(len(EVENT_NAMES), dtype=np.int64)
        self.a_count = np.zeros(len(EVENT_NAMES), dtype=np.int64)
        for code in range(len(EVENT_NAMES)):
            self.a_offset[code] = len(a_strings)
            self.a_count[code] = len(generic[code])
            a_strings.extend(generic[code])
        self.frag_a = pa.array(a_strings, type=pa.string())

        # per acquisition channel: the landing page view, later referrers, first-touch properties
        landing, referrers, initial_inner, anon_props = [], [], [], []
        for src, medium, campaign, ref_domain, _ in CHANNELS:
            referrer = "$direct" if ref_domain == "$direct" else f"https://{ref_domain}/"
            url = f"https://{SITE}/"
            if src:
                url += f"?utm_source={src}&utm_medium={medium}&utm_campaign={campaign}"
            view: dict[str, Any] = {"$current_url": url, "$host": SITE, "$pathname": "/",
                                    "$referrer": referrer, "$referring_domain": ref_domain}  # fmt: skip
            initial: dict[str, Any] = {}
            if src:
                view.update(utm_source=src, utm_medium=medium, utm_campaign=campaign)
                initial.update({"$initial_utm_source": src, "$initial_utm_medium": medium,
                                "$initial_utm_campaign": campaign})  # fmt: skip
            initial.update({"$initial_referring_domain": ref_domain, "$initial_current_url": url})
            landing.append(_frag(view))
            referrers.append(_frag({"$referrer": referrer, "$referring_domain": ref_domain}))
            initial_inner.append(_frag(initial, lead=""))
            anon_props.append(_json(initial))
        member_initial = pa.array(initial_inner).take(pa.array(self.channel[:m]))
        # emails and ids are plain ASCII built by us, so they need no JSON escaping
        identify = pc.binary_join_element_wise(
            ',"$anon_distinct_id":"',
            self.anon_ids[:m],
            '","$set":{"email":"',
            self.emails,
            '"},"$set_once":{',
            member_initial,
            "}",
            "",
        )
        member_props = pc.binary_join_element_wise('{"email":"', self.emails, '",', member_initial, "}", "")

        gi_frags: list[str] = []
        sub_frags: list[str] = []
        for org in range(n_orgs):
            plan = PLANS[self.org_plan[org]]
            seats = int(self.org_seats[org])
            mrr = round(seats * PRICE_PER_SEAT[plan], 2)
            created = (
                (_from_us(self.start_us) - dt.timedelta(days=int(self.org_age_days[org]))).date().isoformat()
            )
            group_set = {"name": self.org_names[org], "plan": plan, "seat_count": seats, "mrr": mrr,
                         "created_at": created}  # fmt: skip
            gi_frags.append(
                _frag(
                    {"$group_type": ORG_GROUP_TYPE, "$group_key": self.org_keys[org], "$group_set": group_set}
                )
            )
            target = PLANS[min(self.org_plan[org] + 1, len(PLANS) - 1)]
            value: float | int = max(seats, 3) * 12 * int(PRICE_PER_SEAT[target] or 15)
            if org % 5 == 0:
                value = value - 0.01
            sub_frags.append(_frag({"plan": target, "contract_value": value, "currency": "USD"}))

        small = [""]
        self.b_landing = len(small)
        small += landing
        self.b_referrer = len(small)
        small += referrers
        self.b_groupidentify = len(small)
        small += gi_frags
        self.b_subscription = len(small)
        small += sub_frags
        self.b_identify = len(small)
        self.frag_b = pa.concat_arrays([pa.array(small, type=pa.string()), identify])

        group_strings = [""]
        group_strings += [_frag({"$groups": {ORG_GROUP_TYPE: k}, "$group_0": k}) for k in self.org_keys]
        group_strings += [_frag({"$groups": {ORG_GROUP_TYPE: k}}) for k in self.org_keys]
        self.frag_group = pa.array(group_strings, type=pa.string())
        self.event_names = pa.array(EVENT_NAMES, type=pa.string())
        self.distinct_ids = pa.concat_arrays([self.anon_ids, self.user_ids])  # anonymous: ent, else e + ent
        self.person_ids = pa.concat_arrays([self.anon_person_uuid, self.person_uuid[:m]])
        # person properties: anonymous rows -> per channel (or null), identified -> per member
        self.pp_member = len(CHANNELS) + 1
        self.person_properties = pa.concat_arrays(
            [pa.array([*anon_props, None], type=pa.string()), member_props]
        )
        self.pp_anon = np.where(self.identified_only, len(CHANNELS), self.channel)
        self.chains = pa.array(["", *ELEMENT_CHAINS], type=pa.string())
        self.is_anon_code = np.isin(np.arange(len(EVENT_NAMES)), ANON_CODES)

    # rows ---------------------------------------------------------------------------------------

    def recurring_rates(self, day: int, s0: int, s1: int) -> np.ndarray:
        """Expected share of recurring (post-identify) events per member within [s0, s1)."""
        import numpy as np

        active = np.clip(s1 - np.maximum(s0, self.member_t_id), 0, None).astype(np.float64)
        mult = self.org_day_mult[self.member_org, day] * self.weekday_factor[day]
        return self.member_rate * mult * active

    def day_weights(self) -> list[float]:
        return [
            float(self.recurring_rates(d, self.start_us + d * DAY_US, self.start_us + (d + 1) * DAY_US).sum())
            for d in range(self.days)
        ]

    def base_rows(
        self, rng: np.random.Generator, s0: int, s1: int, n: int, rates: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Recurring events drawn from member rates, plus the scheduled events of [s0, s1)."""
        import numpy as np

        if n > 0:
            counts = rng.multinomial(n, rates / rates.sum())
            ent = np.repeat(np.arange(self.n_members, dtype=np.int32), counts)
            lo = np.maximum(s0, self.member_t_id[ent])
            t = lo + (rng.random(n) * (s1 - lo)).astype(np.int64)
            cls = self.member_creator[ent].astype(np.int64) + 2 * self.org_near_limit[self.member_org[ent]]
            # cumulative thresholds for [$pageview, creation_event, hits_80..., enterprise_feature_clicked];
            # the rest is core_feature_used
            cum = np.array(
                [
                    [0.30, 0.30, 0.30, 0.306],
                    [0.30, 0.40, 0.40, 0.406],
                    [0.30, 0.30, 0.304, 0.310],
                    [0.30, 0.40, 0.404, 0.410],
                ]
            )
            pick = (rng.random(n)[:, None] >= cum[cls]).sum(axis=1)
            code = np.array([E_PV, E_CREATE, E_LIMIT, E_ENTERPRISE, E_CORE], dtype=np.int8)[pick]
            var = (rng.integers(0, 1 << 30, size=n) % self.a_count[code]).astype(np.int32)
        else:
            ent = np.zeros(0, dtype=np.int32)
            t = np.zeros(0, dtype=np.int64)
            code = np.zeros(0, dtype=np.int8)
            var = np.zeros(0, dtype=np.int32)
        i0, i1 = np.searchsorted(self.s_t, [s0, s1])
        return {
            "t": np.concatenate([t, self.s_t[i0:i1]]),
            "ent": np.concatenate([ent, self.s_ent[i0:i1]]),
            "code": np.concatenate([code, self.s_code[i0:i1]]),
            "var": np.concatenate([var, self.s_var[i0:i1]]),
        }

    def chunk_tables(
        self,
        rng: np.random.Generator,
        base: dict[str, np.ndarray],
        *,
        dups: int,
        bad: int,
        slot_of: _Slots,
        complete_before: int,
        batch_rows: int,
    ) -> Iterator[tuple[pa.Table, np.ndarray, int]]:
        """Ingestion times, ids and duplicates for one slice, then its rows as Arrow tables.

        Rows come sorted by `_inserted_at`, `batch_rows` at a time (so only one batch of text is ever
        materialized), each with its export slots and the time before which every slot is complete.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        t, ent, code, var = base["t"], base["ent"], base["code"], base["var"]
        n = len(t)
        ins = self._inserted_at(rng, t, slot_of)
        created = np.maximum(t, ins - rng.integers(0, 5_000, size=n))
        raw_uuid = _uuid7_bytes(rng, t)
        anon = self.is_anon_code[code]
        org = self.member_org[np.minimum(ent, self.n_members - 1)]
        groups_only = rng.random(n) < self.groups_only_fraction
        group_idx = np.where(anon | (code == E_IDENTIFY), 0, 1 + org + np.where(groups_only, self.n_orgs, 0))
        b_idx = np.zeros(n, dtype=np.int64)
        channel = self.channel[ent]
        b_idx = np.where(code == E_LANDING, self.b_landing + channel, b_idx)
        b_idx = np.where(code == E_ANON_PV, self.b_referrer + channel, b_idx)
        b_idx = np.where(code == E_IDENTIFY, self.b_identify + ent, b_idx)
        b_idx = np.where(code == E_GROUPIDENTIFY, self.b_groupidentify + org, b_idx)
        b_idx = np.where(code == E_SUBSCRIPTION, self.b_subscription + org, b_idx)
        a_idx = self.a_offset[code] + var
        chain = np.where(
            ((code == E_CORE) | (code == E_PV)) & (rng.random(n) < 0.03),
            1 + rng.integers(0, len(ELEMENT_CHAINS), size=n),
            0,
        )
        who = np.where(anon, ent, self.n_entities + ent)  # distinct id and person id
        props_of = np.where(anon, self.pp_anon[ent], self.pp_member + ent)
        broken = np.zeros(n, dtype=bool)
        if bad > 0:
            broken[rng.choice(n, size=min(bad, n), replace=False)] = True
        cut = rng.uniform(0.1, 0.9, size=n)
        null_props = rng.random(n) < 0.3

        # duplicates: extra copies of random rows, then everything in _inserted_at order
        rows = np.arange(n)
        if dups > 0 and n > 0:
            rows = np.concatenate([rows, rng.choice(n, size=dups, replace=dups > n)])
        rows = rows[np.argsort(ins[rows], kind="stable")]
        ins_sorted = ins[rows]
        slots = slot_of(ins_sorted)
        ts_type = pa.timestamp("us", tz="UTC")
        for b0 in range(0, len(rows), batch_rows):
            b1 = min(b0 + batch_rows, len(rows))
            part = rows[b0:b1]

            def take(table: pa.Array, idx: np.ndarray, part: np.ndarray = part) -> pa.Array:
                return table.take(pa.array(idx[part]))

            properties = pc.binary_join_element_wise(
                "{",
                take(self.device, ent),
                take(self.frag_a, a_idx),
                take(self.frag_b, b_idx),
                take(self.frag_group, group_idx),
                "}",
                "",
            )
            mask = broken[part]
            if mask.any():
                originals = properties.filter(pa.array(mask)).to_pylist()
                replacement = [
                    None if null_props[r] else text[: max(1, int(len(text) * cut[r]))]
                    for r, text in zip(part[mask], originals, strict=True)
                ]
                properties = pc.replace_with_mask(
                    properties, pa.array(mask), pa.array(replacement, pa.string())
                )
            table = pa.Table.from_arrays(
                [
                    _uuid_strings(raw_uuid[part]),
                    pa.array(t[part], type=ts_type),
                    pa.array(ins_sorted[b0:b1], type=ts_type),
                    pa.array(created[part], type=ts_type),
                    take(self.event_names, code.astype(np.int64)),
                    properties,
                    take(self.distinct_ids, who),
                    take(self.chains, chain),
                    take(self.person_properties, props_of),
                    take(self.person_ids, who),
                ],
                schema=export_schema(),
            )
            # later rows of this slice, and all later slices, are inserted at or after this time
            done = complete_before if b1 == len(rows) else min(complete_before, int(ins_sorted[b1]))
            yield table, slots[b0:b1], done

    def _inserted_at(self, rng: np.random.Generator, t: np.ndarray, slot_of: Any) -> np.ndarray:
        """Seconds after the event normally; ~2% in a later export interval, some days later."""
        import numpy as np

        n = len(t)
        normal = t + (rng.exponential(4.0, size=n) * US).astype(np.int64) + 100_000
        late = rng.random(n) < LATE_FRACTION
        slot = slot_of(t)
        next_start = slot_of.start_of(slot + 1)
        length = slot_of.length
        delayed = next_start + (rng.random(n) * length).astype(np.int64)
        very = rng.random(n) < VERY_LATE_SHARE
        delayed = delayed + np.where(very, (rng.uniform(1.0, 3.0, size=n) * DAY_US).astype(np.int64), 0)
        ins = np.where(late & (delayed < self.end_us), delayed, normal)
        return np.minimum(ins, self.end_us - 1)  # never past the last export; t < end so still >= t


# -- output ---------------------------------------------------------------------------------------


class _Slots:
    """Maps microsecond times to export-interval indexes."""

    def __init__(self, start_us: int, length: int) -> None:
        self.start_us, self.length = start_us, length

    def __call__(self, us: np.ndarray) -> np.ndarray:
        return (us - self.start_us) // self.length

    def start_of(self, slot: np.ndarray | int) -> Any:
        return self.start_us + slot * self.length


class _IntervalWriter:
    """Streams rows into one Parquet file per export interval, in interval order.

    Rows of an interval are buffered until every event that could belong to it has been drawn (all
    events earlier than its end); only the earliest open interval can grow large, and it is written
    out as a row group whenever it reaches `chunk_rows`, so memory stays bounded.
    """

    def __init__(self, loc: Location, start_us: int, length: int, end_us: int, chunk_rows: int) -> None:
        self.loc, self.length, self.chunk_rows = loc, length, chunk_rows
        self.slot_of = _Slots(start_us, length)
        self.n_slots = (end_us - start_us) // length
        self.pending: dict[int, list[pa.Table]] = {}
        self.next_slot = 0
        self.files: list[str] = []
        self.rows = 0
        self._sink: Any = None
        self._writer: Any = None

    def key(self, slot: int) -> str:
        start = self.slot_of.start_of(slot)
        return export_file_name(_from_us(start), _from_us(start + self.length))

    def add(self, table: pa.Table, slots: np.ndarray, complete_before: int) -> None:
        import numpy as np
        import pyarrow as pa

        if len(slots):
            uniq, first = np.unique(slots, return_index=True)
            bounds = [*first.tolist(), len(slots)]
            current = int(self.slot_of(np.int64(complete_before - 1)))
            for j, slot in enumerate(uniq.tolist()):
                part = table.slice(bounds[j], bounds[j + 1] - bounds[j])
                if slot > current:  # a few late rows: copy them so the chunk itself can be freed
                    part = part.take(pa.array(np.arange(len(part))))
                self.pending.setdefault(slot, []).append(part)
        while self.next_slot < self.n_slots and self.slot_of.start_of(self.next_slot + 1) <= complete_before:
            self._flush(self.next_slot)
            self._close()
            self.next_slot += 1
        if self.next_slot < self.n_slots:
            waiting = sum(len(t) for t in self.pending.get(self.next_slot, []))
            if waiting >= max(1, self.chunk_rows // 2):
                self._flush(self.next_slot)

    def finish(self) -> list[str]:
        while self.next_slot < self.n_slots:
            self._flush(self.next_slot)
            self._close()
            self.next_slot += 1
        return self.files

    def _flush(self, slot: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            key = self.key(slot)
            self._sink = self.loc.open_output(key)
            self._writer = pq.ParquetWriter(
                self._sink,
                export_schema(),
                compression="zstd",
                use_dictionary=PARQUET_DICTIONARY_COLUMNS,
            )
            self.files.append(key)
        tables = self.pending.pop(slot, [])
        if tables:
            table = pa.concat_tables(tables)
            self._writer.write_table(table, row_group_size=max(self.chunk_rows, 1))
            self.rows += len(table)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
        self._writer = self._sink = None

    def abort(self) -> None:
        """Release an open file after an error (a no-op after `finish`)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the original error matters more
                self._close()
