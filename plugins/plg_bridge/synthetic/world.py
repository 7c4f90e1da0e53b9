"""The simulated B2B product: organizations, their members, anonymous visitors and every event they send.

Organizations grow or not, send `$groupidentify` or not, near their plan limits or not; members sign up
after a few anonymous page views, reach milestones, connect integrations; recurring product events are
drawn per time slice from member rates. Everything is numpy arrays plus Arrow lookup tables of JSON
fragments, so rows are assembled by index (synthetic/rows.py) without per-row Python.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from plg_bridge.synthetic.catalog import (
    ANON_CODES,
    APP,
    APP_PAGES,
    BROWSERS,
    CHANNELS,
    CREATED_OBJECTS,
    E_ANON_PV,
    E_CORE,
    E_CREATE,
    E_ENTERPRISE,
    E_GROUPIDENTIFY,
    E_IDENTIFY,
    E_INTEGRATION,
    E_LANDING,
    E_LIMIT,
    E_MS_INVITE,
    E_PV,
    E_RETURN_PV,
    E_SUBSCRIPTION,
    ELEMENT_CHAINS,
    ENTERPRISE_FEATURES,
    ESTABLISHED_SHARE,
    EVENT_NAMES,
    FEATURES,
    FIRST_NAMES,
    GROWING_SHARE,
    LAST_NAMES,
    LIMITS,
    MARKETING_PAGES,
    MILESTONES,
    ORG_GROUP_TYPE,
    ORG_SUFFIXES,
    ORG_WORDS,
    PAID_MEDIUMS,
    PLAN_WEIGHTS,
    PLANS,
    PRICE_PER_SEAT,
    PROVIDERS,
    ROWS_PER_ORG,
    SEATS,
    SITE,
)
from plg_bridge.synthetic.ids import uuid4_bytes, uuid7_bytes, uuid_strings
from plg_bridge.synthetic.payloads import frag, json_text
from plg_bridge.synthetic.timeline import DAY_US, HOUR_US, US, from_us

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def slug(text: str) -> str:
    import re
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


class World:
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
        weekday = np.array([from_us(int(d)).weekday() for d in day_starts])
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
            domain = f"{slug(name) or 'org'}.{'io' if rng.random() < 0.5 else 'com'}"
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
        browser = self.browser = rng.integers(len(BROWSERS), size=e)
        self.anon_ids = uuid_strings(uuid7_bytes(rng, self.first_seen))
        self.person_uuid = uuid_strings(uuid4_bytes(rng, e))
        pre_merge = uuid_strings(uuid4_bytes(rng, e))
        keep_anon_person = rng.random(e) < 0.7  # $identify usually keeps the anonymous person's uuid
        self.anon_person_uuid = pc.if_else(pa.array(keep_anon_person), self.person_uuid, pre_merge)
        self.identified_only = rng.random(e) < 0.5  # no person profile (null properties) before identify
        first_names = rng.integers(len(FIRST_NAMES), size=m)
        last_names = rng.integers(len(LAST_NAMES), size=m)
        user_offset = int(rng.integers(100, 900))

        devices = [
            frag(
                {"$lib": "web", "$lib_version": "1.236.1", "$os": os_name, "$browser": b_name,
                 "$device_type": device},
                lead="",
            )
            for b_name, os_name, device in BROWSERS
        ]  # fmt: skip
        ips = [frag({"$ip": f"203.0.113.{i + 1}"}) for i in range(254)]
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
            frag({"$current_url": f"https://{SITE}{p}", "$host": SITE, "$pathname": p})
            for p in MARKETING_PAGES
        ]
        generic[E_RETURN_PV] = [
            frag({"$current_url": f"https://{SITE}/signup", "$host": SITE, "$pathname": "/signup",
                   "$referrer": "$direct", "$referring_domain": "$direct"})
        ]  # fmt: skip
        generic[E_PV] = [
            frag({"$current_url": f"https://{APP}{p}", "$host": APP, "$pathname": p,
                   "$referrer": "$direct", "$referring_domain": "$direct"})
            for p in APP_PAGES
        ]  # fmt: skip
        generic[E_CORE] = [frag({"feature": f}) for f in FEATURES]
        generic[E_CREATE] = [frag({"object_type": o}) for o in CREATED_OBJECTS]
        generic[E_INTEGRATION] = [frag({"provider": p}) for p in PROVIDERS]
        generic[E_LIMIT] = [frag({"limit_name": lim, "usage_percent": 80}) for lim in LIMITS]
        generic[E_ENTERPRISE] = [frag({"feature_name": f}) for f in ENTERPRISE_FEATURES]
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
            landing.append(frag(view))
            referrers.append(frag({"$referrer": referrer, "$referring_domain": ref_domain}))
            initial_inner.append(frag(initial, lead=""))
            anon_props.append(json_text(initial))
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
                (from_us(self.start_us) - dt.timedelta(days=int(self.org_age_days[org]))).date().isoformat()
            )
            group_set = {"name": self.org_names[org], "plan": plan, "seat_count": seats, "mrr": mrr,
                         "created_at": created}  # fmt: skip
            gi_frags.append(
                frag(
                    {"$group_type": ORG_GROUP_TYPE, "$group_key": self.org_keys[org], "$group_set": group_set}
                )
            )
            target = PLANS[min(self.org_plan[org] + 1, len(PLANS) - 1)]
            value: float | int = max(seats, 3) * 12 * int(PRICE_PER_SEAT[target] or 15)
            if org % 5 == 0:
                value = value - 0.01
            sub_frags.append(frag({"plan": target, "contract_value": value, "currency": "USD"}))

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
        group_strings += [frag({"$groups": {ORG_GROUP_TYPE: k}, "$group_0": k}) for k in self.org_keys]
        group_strings += [frag({"$groups": {ORG_GROUP_TYPE: k}}) for k in self.org_keys]
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
