"""The seed's signal table of the pandas path against its DuckDB twin (include/sql/duckdb/signals.sql).

`pipeline.score_partials` (per-file partials rolled up with the person tables, merged, signals
raised for the run's day [T-1d, T)) and the SQL (identity.sql, exclusions.sql, then signals.sql,
straight from the export files) are written independently; they must raise the same signal keys
with the same organization, person, email, detail, time and PQL columns:

- on generated data, for run days on which every signal type occurs (aha_reached, usage_ceiling,
  enterprise_interest with feature_name, integration_connected with provider, pql_crossed), with a
  test organization and an internal email domain that remove signals, and non-default PQL settings;
- on a small hand-built world that pins what generated data does not produce: a PQL crossing next
  to an organization that was a PQL already, an excluded person (internal email, opted out) whose
  occurrence comes before a customer's on the same day, a blank detail, a placeholder distinct_id,
  an Aha reached through an anonymous id, one already reached the week before through another id,
  and a person whose email changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from plg_bridge.config import SIGNALS
from plg_bridge.ingest import rollup
from plg_bridge.models.signals import COLUMNS
from plg_bridge.pipeline import discover, score_partials
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate
from tests.support.clocks import AS_OF as T
from tests.support.events import event, group_identify, identify, partial_of

SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "duckdb"
END = dt.date(2026, 11, 20)
ROWS, DAYS = 200_000, 21  # every signal type occurs on the run days below (asserted)
RUN_DAY = "2026-11-19"  # [T-1d, T)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("signals-oracle") / "exports"
    generate(str(out), ROWS, END, days=DAYS)
    return out


@pytest.fixture(scope="module")
def partials(exports) -> dict[str, rollup.Partial]:
    """Each export file rolled up once, with the person tables (rollup-time settings: the defaults)."""
    from plg_bridge.config import load_settings

    loc = location(str(exports))
    return {f.key: rollup.rollup_file(loc, f.key, load_settings(env={})) for f in discover(loc)}


def pandas_signals(parts: list[rollup.Partial], as_of: dt.datetime, cfg) -> pd.DataFrame:
    signals = score_partials(parts, as_of, cfg).signals
    assert signals is not None, "the partials carry no person tables"
    return signals


def duckdb_signals(files: list[str], as_of: dt.datetime, cfg) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute("SET VARIABLE files = ?", [files])
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [as_of])
    con.execute("SET VARIABLE placeholder_ids = ?", [list(cfg.exports.placeholder_ids)])
    for prefix, section in (("", cfg.models), ("pql_", cfg.pql), ("signals_", cfg.signals)):
        for name, value in dataclasses.asdict(section).items():
            con.execute(
                f"SET VARIABLE {prefix}{name} = ?", [list(value) if isinstance(value, tuple) else value]
            )
    for script in ("identity", "exclusions", "signals"):
        con.execute((SQL / f"{script}.sql").read_text())
    return con.execute("SELECT * FROM plg_signals").df()


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain Python values (str, int, bool, UTC Timestamp or None) in COLUMNS order, by signal_key."""
    frame = frame[list(COLUMNS)].sort_values("signal_key", kind="stable").reset_index(drop=True)
    plain = {"occurred_at": lambda v: pd.Timestamp(v).tz_convert("UTC"), "pql_score": int, "is_pql": bool}
    return pd.DataFrame(
        {
            column: pd.Series(
                [None if pd.isna(v) else plain.get(column, str)(v) for v in frame[column]], dtype=object
            )
            for column in COLUMNS
        }
    )


def assert_same(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    a, b = normalised(ours), normalised(theirs)
    only_ours = sorted(set(a["signal_key"]) - set(b["signal_key"]))
    only_theirs = sorted(set(b["signal_key"]) - set(a["signal_key"]))
    assert not only_ours and not only_theirs, (
        f"signal keys only in pandas: {only_ours[:10]}, only in DuckDB: {only_theirs[:10]}"
    )
    for column in COLUMNS:
        differ = [
            (key, x, y) for key, x, y in zip(a["signal_key"], a[column], b[column], strict=True) if x != y
        ]
        assert not differ, f"{column}: {len(differ)} signals differ (key, pandas, DuckDB): {differ[:5]}"
    assert a.to_dict("records") == b.to_dict("records")


def with_exclusions(cfg, plain: pd.DataFrame):
    """`cfg` plus a test organization and an internal email domain that each remove signals.

    Both are taken among organizations whose only signals are organization events, so the Aha and
    PQL crossings stay: one is the test organization, the other's email domain is internal.
    """
    keep = set(plain.loc[plain["signal"].isin(["aha_reached", "pql_crossed"]), "org_id"])
    candidates = sorted(set(plain.loc[plain["email"].notna(), "org_id"]) - keep)
    assert len(candidates) >= 2, "the data has too few organizations raising signals"
    test_org, internal_org = candidates[:2]
    email = plain.loc[(plain["org_id"] == internal_org) & plain["email"].notna(), "email"].iloc[0]
    models = dataclasses.replace(
        cfg.models, test_org_ids=(test_org,), internal_email_domains=(email.split("@")[1],)
    )
    return dataclasses.replace(cfg, models=models), test_org, internal_org


@pytest.mark.parametrize(
    ("as_of", "pql_changes"),
    [
        (dt.datetime(2026, 11, 17, tzinfo=dt.UTC), {}),
        # non-default PQL settings reach the SQL: on this data they change which organizations cross
        (dt.datetime(2026, 11, 14, tzinfo=dt.UTC), {"threshold": 65, "velocity_ratio": 1.2}),
    ],
    ids=["defaults", "pql-settings"],
)
def test_signals_match_the_duckdb_twin_on_generated_data(exports, partials, settings, as_of, pql_changes):
    visible = discover(location(str(exports)), as_of)  # intervals that ended by T
    parts = [partials[f.key] for f in visible]
    files = [str(exports / f.key) for f in visible]
    base = dataclasses.replace(settings, pql=dataclasses.replace(settings.pql, **pql_changes))
    plain = pandas_signals(parts, as_of, base)
    cfg, test_org, internal_org = with_exclusions(base, plain)

    ours = pandas_signals(parts, as_of, cfg)
    assert_same(ours, duckdb_signals(files, as_of, cfg))

    # the comparison is only worth something if the data exercises every part of the model
    day = (as_of - dt.timedelta(days=1)).date().isoformat()
    assert set(ours["signal"]) == set(SIGNALS)
    assert ours["signal_key"].str.endswith(f":{day}").all()
    assert ours.loc[ours["signal"] == "enterprise_interest", "detail"].nunique() > 1
    assert ours.loc[ours["signal"] == "integration_connected", "detail"].notna().all()
    assert ours.loc[ours["signal"] != "pql_crossed", "email"].notna().any()
    assert ours["org_name"].notna().any() and ours["is_pql"].notna().any()
    assert test_org not in set(ours["org_id"])
    removed = plain[(plain["org_id"] == internal_org) & plain["distinct_id"].notna()]
    assert len(removed) and not set(removed["signal_key"]) & set(ours["signal_key"])


def hand_built_rows() -> list[dict]:
    day = RUN_DAY
    rows = [
        group_identify("org_a", "2026-11-01", name="Acme"),
        group_identify("org_b", "2026-11-01", name="Globex"),
    ]
    # org_a: 35 (three creators) as of T-1d; on the run's day an integration (25) and velocity (40)
    rows += [event("creation_event", "2026-11-10", "org_a", distinct_id=f"a{i}") for i in range(3)]
    rows += [event("core_feature_used", "2026-11-10", "org_a", distinct_id="a0")]
    rows += [event("core_feature_used", f"{day}T09:00", "org_a", distinct_id="a0") for _ in range(2)]
    rows += [
        event(
            "integration_connected", f"{day}T08:00", "org_a", distinct_id="a1", props={"provider": " stripe "}
        )
    ]
    # org_b: a PQL already as of T-1d (100), still one at T: it does not cross
    rows += [event("creation_event", "2026-11-10", "org_b", distinct_id=f"b{i}") for i in range(3)]
    rows += [
        event("integration_connected", "2026-11-11", "org_b", distinct_id="b0", props={"provider": "slack"})
    ]
    rows += [event("core_feature_used", t, "org_b", distinct_id="b0") for t in ("2026-11-15", f"{day}T01:00")]
    # an internal user clicks first, a customer an hour later; a blank feature name has no detail
    rows += [identify("staff", None, "2026-11-02", set_props={"email": "ops@plgapp.io"})]
    rows += [
        event(
            "enterprise_feature_clicked",
            f"{day}T{h:02}:00",
            "org_b",
            distinct_id=who,
            props={"feature_name": f},
        )
        for h, who, f in ((9, "staff", "sso"), (10, "b1", "sso"), (11, "b2", "  "))
    ]
    # an opted-out person hits the ceiling first, a colleague later; a test organization; a placeholder id
    rows += [identify("c0", None, "2026-11-02", set_props={"analytics_opt_out": True})]
    rows += [
        event("hits_80_percent_of_tier_limit", f"{day}T{h:02}:00", "org_c", distinct_id=f"c{h - 5}")
        for h in (5, 6)
    ]
    rows += [event("hits_80_percent_of_tier_limit", f"{day}T06:00", "org_test", distinct_id="t0")]
    rows += [event("hits_80_percent_of_tier_limit", f"{day}T06:00", "org_d", distinct_id="anonymous")]
    # Aha through an anonymous id, identified before; the person's email changed in between
    rows += [
        event("$pageview", "2026-11-05", None, distinct_id="a-9", props={"$set": {"email": "old@acme.io"}})
    ]
    rows += [identify("u-9", "a-9", "2026-11-10", set_props={"email": "new@acme.io"})]
    rows += [event("$pageview", "2026-11-10T01:00", "org_a", distinct_id="u-9")]
    rows += [event("first_successful_deployment", f"{day}T07:00", "org_a", distinct_id="a-9")]
    # an Aha already reached through another id of the same person: not again
    rows += [event("first_successful_deployment", "2026-11-05", "org_b", distinct_id="anon-2")]
    rows += [identify("user_2", "anon-2", "2026-11-06")]
    rows += [event("first_successful_deployment", f"{day}T07:00", "org_b", distinct_id="user_2")]
    # after T: nothing
    rows += [event("hits_80_percent_of_tier_limit", "2026-11-20T00:00", "org_a", distinct_id="a2")]
    return rows


def test_signals_match_the_duckdb_twin_on_a_hand_built_world(tmp_path, settings):
    models = dataclasses.replace(
        settings.models, internal_email_domains=("plgapp.io",), test_org_ids=("org_test",)
    )
    cfg = dataclasses.replace(settings, models=models)
    folder = tmp_path / "exports"
    ours = pandas_signals([partial_of(folder, [hand_built_rows()], cfg)], T, cfg)
    assert_same(ours, duckdb_signals(sorted(str(p) for p in folder.iterdir()), T, cfg))

    rows = {r["signal_key"].removesuffix(f":{RUN_DAY}"): r for r in normalised(ours).to_dict("records")}
    assert sorted(rows) == [
        "aha_reached:u-9:first_successful_deployment",
        "enterprise_interest:org_b:-",  # one row per account: the day's features listed
        "integration_connected:org_a:stripe",
        "pql_crossed:org_a:-",
        "usage_ceiling:org_c:-",
    ]
    crossed = rows["pql_crossed:org_a:-"]
    assert (crossed["pql_score"], crossed["is_pql"], crossed["distinct_id"]) == (100, True, None)
    assert crossed["occurred_at"] == pd.Timestamp(T) - pd.Timedelta(microseconds=1)
    # the excluded person's earlier occurrence does not hide the customer's
    assert (
        rows["enterprise_interest:org_b:-"]["distinct_id"],
        rows["enterprise_interest:org_b:-"]["detail"],
    ) == (
        "b1",
        "sso",
    )
    assert rows["usage_ceiling:org_c:-"]["distinct_id"] == "c1"
    aha = rows["aha_reached:u-9:first_successful_deployment"]
    assert (aha["org_id"], aha["org_name"], aha["email"]) == ("org_a", "Acme", "new@acme.io")
    assert aha["occurred_at"] == pd.Timestamp(f"{RUN_DAY}T07:00", tz="UTC")


def test_signal_settings_reach_the_twin(tmp_path, settings):
    """Other trigger events, a detail property the events lack, and a subset of signals enabled."""
    signals = dataclasses.replace(
        settings.signals,
        enabled=("aha_reached", "usage_ceiling", "enterprise_interest"),
        aha_event="hits_80_percent_of_tier_limit",
        usage_ceiling_event="first_successful_deployment",
        enterprise_detail="plan",
    )
    models = dataclasses.replace(
        settings.models, internal_email_domains=("plgapp.io",), test_org_ids=("org_test",)
    )
    cfg = dataclasses.replace(settings, models=models, signals=signals)
    folder = tmp_path / "exports"
    ours = pandas_signals([partial_of(folder, [hand_built_rows()], cfg)], T, cfg)  # rolled up with cfg
    assert_same(ours, duckdb_signals(sorted(str(p) for p in folder.iterdir()), T, cfg))
    assert sorted(zip(ours["signal_key"], ours["distinct_id"], strict=True)) == [
        (f"aha_reached:c1:hits_80_percent_of_tier_limit:{RUN_DAY}", "c1"),
        (f"enterprise_interest:org_b:-:{RUN_DAY}", "b1"),
        (f"usage_ceiling:org_a:-:{RUN_DAY}", "u-9"),  # the identified id of a-9's person
        (f"usage_ceiling:org_b:-:{RUN_DAY}", "user_2"),
    ]
