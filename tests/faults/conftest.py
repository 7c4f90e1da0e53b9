"""Fault tests: one small hand-built world delivered to all four fake vendors over real HTTP.

The world (six organizations, eighteen persons) raises every signal of the seed's table on the
run's day, so each target has something to deliver: HubSpot companies, contacts and tasks,
Salesforce accounts and PQL lead status, Intercom companies, tags and events, a Slack digest.

`Vendors` starts the fakes, points a run at them (the same environment the DAG and the CLI read)
and knows the desired end state, derived from the run's model outputs (scores, signals,
contacts), independently of the payload mappers: `problems()` lists every record that is
missing, wrong or duplicated at a vendor.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.intercom import FakeIntercom
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.slack import FakeSlack
from tests.support.clocks import AS_OF
from tests.support.events import event, group_identify, identify, write_export

HUBSPOT_TOKEN, INTERCOM_TOKEN, SLACK_TOKEN = "hs-fault-token", "ic-fault-token", "xoxb-fault-token"
SF_CLIENT = ("plg-client-id", "plg-client-secret")
CHANNEL = "plg-alerts"
DESTINATIONS = ("hubspot", "salesforce", "intercom", "slack")
AHA_EVENT = "aha-moment-reached"
RUN_DAY = "2026-11-19"  # the run's day [T-1d, T) for T = AS_OF

ORGS = {
    "org_01": "Acme <!channel> & Co",
    "org_02": "Globex *Logistics*",
    "org_03": "Initech",
    "org_04": "Umbrella Café",
    "org_05": "Hooli",
    "org_06": "Stark <https://evil.example|Industries>",
}


def _user(org: str, n: int) -> str:
    return f"{org}_user{n}"


def world_rows() -> list[dict]:
    """Every signal of the seed's table on 2026-11-19, for T = 2026-11-20.

    org_01, org_02 cross the PQL threshold on the run's day (velocity 40 + breadth 35 at T, 40 the
    day before); org_04 was a PQL already; org_03, org_05, org_06 are not PQLs.
    """
    rows: list[dict] = []
    for org, name in ORGS.items():
        rows.append(group_identify(org, "2026-11-01", name=name))
        users = [_user(org, n) for n in range(3)]
        for uid in users:
            rows.append(identify(uid, None, "2026-11-02", set_props={"email": f"{uid}@{org}.example"}))
            rows.append(event("$pageview", "2026-11-02", org, distinct_id=uid))
        rows += [
            event("core_feature_used", d, org, distinct_id=users[0]) for d in ("2026-11-08", "2026-11-09")
        ]
        rows += [
            event("core_feature_used", f"2026-11-15T0{h}:00", org, distinct_id=users[1]) for h in range(8)
        ]
        if org in ("org_01", "org_02"):
            rows += [event("creation_event", f"{RUN_DAY}T10:00", org, distinct_id=u) for u in users]
        if org == "org_04":
            rows += [event("creation_event", "2026-11-14T10:00", org, distinct_id=u) for u in users]
    for hour, (name, org, n, props) in enumerate(
        [
            ("enterprise_feature_clicked", "org_01", 0, {"feature_name": "SSO"}),
            ("hits_80_percent_of_tier_limit", "org_01", 1, {}),
            ("integration_connected", "org_02", 0, {"provider": "Slack"}),
            ("enterprise_feature_clicked", "org_03", 0, {"feature_name": "scim"}),
            ("hits_80_percent_of_tier_limit", "org_03", 1, {}),
            ("enterprise_feature_clicked", "org_04", 2, {"feature_name": "audit_log"}),
            ("hits_80_percent_of_tier_limit", "org_04", 0, {}),
            ("integration_connected", "org_06", 1, {"provider": "GitHub"}),
        ],
        start=11,
    ):
        rows.append(event(name, f"{RUN_DAY}T{hour}:00", org, distinct_id=_user(org, n), props=props))
    for org, n in (("org_01", 0), ("org_01", 2), ("org_02", 1), ("org_05", 0), ("org_06", 2)):
        rows.append(event("first_successful_deployment", f"{RUN_DAY}T09:00", org, distinct_id=_user(org, n)))
    return rows


@pytest.fixture(scope="session")
def world_export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("world") / "exports"
    write_export(folder, world_rows(), name="2026-11-01T00:00:00+00:00-2026-11-20T00:00:00+00:00.parquet.zst")
    return folder


class Waits:
    """Stands in for the clients' `sleep`: records each wait, waits (almost) nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(round(float(seconds), 3))
        time.sleep(min(max(seconds, 0.0), 0.005))


CLIENT_TIMEOUT = 1.0  # seconds the clients wait for an answer in the in-process tests
SLOW = 1.6  # a delay beyond it


@pytest.fixture
def waits(monkeypatch) -> Waits:
    """Backoff and rate-limit waits recorded instead of slept; client timeouts of CLIENT_TIMEOUT.

    The vendor clients take `sleep` and `timeout` as keyword arguments whose defaults are read
    when a client is made; the targets make theirs from the Airflow connection (Salesforce also
    takes `timeout` from the connection's extra, which `vendors` sets).
    """
    from plg_bridge.delivery import journal
    from plg_bridge.delivery.hubspot.client import HubSpotClient
    from plg_bridge.delivery.intercom.client import IntercomClient
    from plg_bridge.delivery.salesforce.client import SalesforceClient
    from plg_bridge.delivery.slack.client import post_digest
    from plg_bridge.delivery.transport import RestClient

    recorder = Waits()
    # Lookups after a lost answer wait for real (the fake may still be finishing the call), briefly;
    # a row no lookup finds is resent by the next run at once (no other run can be sending it).
    monkeypatch.setattr(journal, "SETTLE_WAITS", (0.3, 0.6, 1.2))
    monkeypatch.setattr(journal, "RESEND_AFTER", 0.0)
    for fn in (
        HubSpotClient.__init__,
        IntercomClient.__init__,
        SalesforceClient.__init__,
        RestClient.__init__,
    ):
        monkeypatch.setitem(fn.__kwdefaults__, "sleep", recorder)
    monkeypatch.setitem(post_digest.__kwdefaults__, "sleep", recorder)
    for fn in (HubSpotClient.__init__, IntercomClient.__init__, post_digest):
        monkeypatch.setitem(fn.__kwdefaults__, "timeout", CLIENT_TIMEOUT)
    return recorder


def http_conn(fake, **fields) -> str:
    return json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": fake.port, "schema": "http", **fields}
    )


@dataclass
class Vendors:
    """The four fakes, the run's environment and the desired end state."""

    hubspot: FakeHubSpot
    salesforce: FakeSalesforce
    intercom: FakeIntercom
    slack: FakeSlack
    exports: Path
    work: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def fakes(self) -> tuple:
        return (self.hubspot, self.salesforce, self.intercom, self.slack)

    @property
    def run_dir(self) -> Path:
        return self.work / "runs" / f"as_of={AS_OF:%Y-%m-%d}"

    def run(self) -> dict:
        """One normal run of the window in this process: what `plg-bridge sync` and the DAG do."""
        from plg_bridge.controls import RunOptions
        from plg_bridge.pipeline import run_window
        from plg_bridge.workspace import Workspace

        return run_window(Workspace.load(), AS_OF, RunOptions())

    def calls(self) -> int:
        return sum(len(f.requests) for f in self.fakes)

    def waiting(self) -> pd.DataFrame:
        """Rows the state holds back: dead letters (and any other non-delivered row)."""
        from plg_bridge.delivery import state
        from plg_bridge.delivery.targets import TARGETS
        from plg_bridge.workspace import Workspace

        work = Workspace.load().work
        frames = [state.load(work, t).frame.assign(target=t) for t in TARGETS]
        rows = pd.concat(frames, ignore_index=True)
        return rows[rows["status"] != "delivered"].reset_index(drop=True)

    # -- the desired state, from the run's model outputs --------------------------------------

    def outputs(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        return tuple(
            pd.read_parquet(self.run_dir / f"{n}.parquet") for n in ("scores", "signals", "contacts")
        )

    def problems(self, destinations: tuple[str, ...] = DESTINATIONS) -> list[str]:
        """Every difference between what the vendors hold and what the run's outputs want."""
        scores, signals, contacts = self.outputs()
        assert len(scores) == len(ORGS) and set(signals["signal"]) == {
            "aha_reached",
            "enterprise_interest",
            "integration_connected",
            "pql_crossed",
            "usage_ceiling",
        }, "the world no longer raises every signal"
        found: list[str] = []
        for name in destinations:
            found += getattr(self, f"_{name}")(scores, signals, contacts)
        return found

    def _hubspot(self, scores, signals, contacts) -> list[str]:
        out = []
        companies = self.hubspot.objects("companies")
        per_org = Counter(c["properties"].get("posthog_group_id") for c in companies)
        out += _counted("HubSpot company", per_org, set(scores["org_id"]))
        by_org = {c["properties"].get("posthog_group_id"): c for c in companies}
        for row in scores.itertuples():
            props = by_org.get(row.org_id, {}).get("properties", {})
            want = {
                "name": row.org_name,
                "plg_pql_score": str(int(row.pql_score)),
                "plg_is_pql": str(bool(row.is_pql)).lower(),
            }
            got = {k: props.get(k) for k in want}
            if props and got != want:
                out.append(f"HubSpot company {row.org_id}: {got} != {want}")
        emails = Counter(c["properties"].get("email") for c in self.hubspot.objects("contacts"))
        out += _counted("HubSpot contact", emails, set(contacts["email"]))
        aha = {
            f"{r.distinct_id}@{r.org_id}.example"
            for r in signals[signals["signal"] == "aha_reached"].itertuples()
        }
        for contact in self.hubspot.objects("contacts"):
            email = contact["properties"].get("email")
            if email in aha and contact["properties"].get("plg_aha_reached_at") != RUN_DAY:
                out.append(
                    f"HubSpot contact {email}: plg_aha_reached_at {contact['properties'].get('plg_aha_reached_at')!r}"
                )
        org_of = {c["id"]: c["properties"].get("posthog_group_id") for c in companies}
        tasks = Counter(
            (org_of.get(a), t["properties"].get("hs_timestamp"))
            for t in self.hubspot.tasks
            for a in t["associations"]
        )
        wanted = signals[
            (signals["signal"] == "usage_ceiling")
            | ((signals["signal"] == "enterprise_interest") & signals["is_pql"])
        ]
        expected = {(r.org_id, r.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")) for r in wanted.itertuples()}
        out += _counted("HubSpot task", tasks, expected)
        if len(self.hubspot.tasks) != sum(tasks.values()):
            out.append("a HubSpot task without exactly one company association")
        return out

    def _salesforce(self, scores, signals, contacts) -> list[str]:
        out = []
        accounts = list(self.salesforce.records["Account"].values())
        per_org = Counter(a.get("PostHog_Group_Id__c") for a in accounts)
        out += _counted("Salesforce account", per_org, set(scores["org_id"]))
        by_org = {a.get("PostHog_Group_Id__c"): a for a in accounts}
        for row in scores.itertuples():
            account = by_org.get(row.org_id)
            if account is not None and float(account.get("PLG_Score__c") or -1) != float(row.pql_score):
                out.append(f"Salesforce account {row.org_id}: PLG_Score__c {account.get('PLG_Score__c')!r}")
        crossed = set(signals[signals["signal"] == "pql_crossed"]["org_id"])
        for lead in self.salesforce.leads.values():
            is_pql = lead["Status"] == "PQL"
            if is_pql != (lead["PostHog_Group_Id__c"] in crossed):
                out.append(
                    f"Salesforce lead {lead['Id']} of {lead['PostHog_Group_Id__c']}: status {lead['Status']!r}"
                )
        return out

    def _intercom(self, scores, signals, contacts) -> list[str]:
        from plg_bridge.delivery.intercom.mapping import tag_slug

        out = []
        companies = self.intercom.companies
        out += _counted("Intercom company", Counter(list(companies)), set(scores["org_id"]))
        for row in scores.itertuples():
            attrs = companies.get(row.org_id, {}).get("custom_attributes", {})
            if attrs and attrs.get("plg_pql_score") != int(row.pql_score):
                out.append(f"Intercom company {row.org_id}: plg_pql_score {attrs.get('plg_pql_score')!r}")
        want_tags: dict[str, list[str]] = {org: [] for org in companies}
        for row in signals.itertuples():
            if row.signal == "integration_connected":
                want_tags.setdefault(row.org_id, []).append(f"integration:{tag_slug(row.detail)}")
            elif row.signal == "enterprise_interest":
                want_tags.setdefault(row.org_id, []).append("enterprise-interest")
        for org, tags in want_tags.items():
            got = self.intercom.company_tags(org) if org in companies else []
            if sorted(got) != sorted(set(tags)):
                out.append(f"Intercom tags of {org}: {sorted(got)} != {sorted(set(tags))}")
        aha = signals[signals["signal"] == "aha_reached"]
        expected = {(r.distinct_id, AHA_EVENT, int(r.occurred_at.timestamp())) for r in aha.itertuples()}
        effective = Counter(
            (e.get("user_id"), e["event_name"], e["created_at"])
            for e in self.intercom.events
            if not e["duplicate"]
        )
        out += _counted("Intercom event", effective, expected)
        out += [f"Intercom spec violation: {v}" for v in self.intercom.spec_violations]
        return out

    def _slack(self, scores, signals, contacts) -> list[str]:
        out = []
        messages = self.slack.messages(CHANNEL)
        if not messages:
            return ["Slack digest missing"]
        bodies = Counter(json.dumps(m["blocks"], sort_keys=True) for m in messages)
        out += [f"Slack: a digest message posted {n} times" for n in bodies.values() if n > 1]
        alerting = signals[signals["signal"].isin(["pql_crossed", "enterprise_interest", "usage_ceiling"])]
        text = " ".join(json.dumps(m["blocks"]) for m in messages)
        mentioned = set(re.findall(r"`(org_\d+)`", text))
        if mentioned != set(alerting["org_id"]):
            out.append(
                f"Slack digest names {sorted(mentioned)}, signals want {sorted(set(alerting['org_id']))}"
            )
        out += [f"Slack: broadcast in {m['ts']}" for m in self.slack.broadcasts()]
        out += [f"Slack spec violation: {v}" for v in self.slack.spec_violations]
        return out

    # -- replays the vendor absorbed (wire-level resends of an idempotent call) ---------------

    def intercom_event_replays(self) -> int:
        return sum(bool(e["duplicate"]) for e in self.intercom.events)


def _counted(what: str, counts: Counter, expected: set) -> list[str]:
    out = [f"{what} {key} missing" for key in sorted(expected - set(counts), key=str)]
    out += [f"{what} {key} not desired" for key in sorted(set(counts) - expected, key=str)]
    out += [f"{what} {key} duplicated ({n} times)" for key, n in sorted(counts.items(), key=str) if n > 1]
    return out


def start_vendors(exports: Path, work: Path) -> Vendors:
    hubspot = FakeHubSpot(token=HUBSPOT_TOKEN)
    salesforce = FakeSalesforce(client_id=SF_CLIENT[0], client_secret=SF_CLIENT[1], with_pql_status=True)
    intercom = FakeIntercom(token=INTERCOM_TOKEN)
    slack = FakeSlack(bot_token=SLACK_TOKEN, channels=(CHANNEL,))
    for fake in (hubspot, salesforce, intercom, slack):
        fake.start()
    for org, name in ORGS.items():  # every organization has two leads in Salesforce
        for n in range(2):
            salesforce.add_lead(LastName=f"Lead {n}", Company=name, PostHog_Group_Id__c=org)
    env = {
        "PLG_BRIDGE__EXPORTS__LOCATION": str(exports),
        "PLG_BRIDGE__WORK_LOCATION": str(work),
        "PLG_BRIDGE__DELIVERY__DESTINATIONS": "hubspot,salesforce,intercom,slack",
        "PLG_BRIDGE__ALERTS__ENABLED": "false",
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": http_conn(hubspot, password=HUBSPOT_TOKEN),
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": http_conn(
            salesforce, login=SF_CLIENT[0], password=SF_CLIENT[1], extra={"timeout": CLIENT_TIMEOUT}
        ),
        "AIRFLOW_CONN_INTERCOM_DEFAULT": http_conn(intercom, password=INTERCOM_TOKEN),
        "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps(
            {"conn_type": "slack", "password": SLACK_TOKEN, "extra": {"base_url": f"{slack.url}/api/"}}
        ),
    }
    return Vendors(hubspot, salesforce, intercom, slack, exports, work, env)


@pytest.fixture
def vendors(world_export, tmp_path, monkeypatch, waits):
    """The fakes running, the environment pointing a run at them (in this process)."""
    found = start_vendors(world_export, tmp_path / "work")
    for name, value in found.env.items():
        monkeypatch.setenv(name, value)
    # A rejected row fails the run only above this share; here every row's fate is asserted
    # instead, and each run must reach every target (run_window stops at the first error).
    monkeypatch.setenv("PLG_BRIDGE__DELIVERY__MAX_REJECTED_SHARE", "1.0")
    yield found
    for fake in found.fakes:
        fake.stop()


@pytest.fixture
def subprocess_vendors(world_export, tmp_path, monkeypatch):
    """The fakes running and the environment pointing at them, for a `plg-bridge` subprocess
    (`os.environ` as set here) and for reading its state from the test."""
    found = start_vendors(world_export, tmp_path / "work")
    for name in [n for n in os.environ if n.startswith(("PLG_BRIDGE__", "AIRFLOW_CONN_"))]:
        monkeypatch.delenv(name)
    for name, value in found.env.items():
        monkeypatch.setenv(name, value)
    yield found
    for fake in found.fakes:
        fake.stop()
