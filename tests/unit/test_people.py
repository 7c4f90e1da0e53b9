"""Person-level partials: one read gives PQL and person tables, they store, reload and merge."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest

from plg_bridge.ingest import people, reader, rollup
from plg_bridge.storage import location
from tests.support.events import (
    EXPORT_SCHEMA,
    conversion,
    event,
    group_identify,
    identify,
    initial,
    pageview,
    partial_of,
    write_export,
)

ROWS = [
    event("core_feature_used", "2026-11-18"),
    event("creation_event", "2026-11-12", distinct_id="u1"),
    event("integration_connected", "2026-11-12", props={"provider": "stripe"}),
    event("core_feature_used", "2026-11-18", raw_properties="{oops"),
    pageview("anon-1", "2026-11-10", utm=("google", "cpc", "brand")),
    identify(
        "u1",
        "anon-1",
        "2026-11-10T01:00",
        set_props={"email": "a@b.co"},
        set_once=initial("google", "cpc", "brand"),
    ),
    event("$pageview", "2026-11-11", raw_properties="{broken"),  # not a PQL event: counted apart
    conversion("u1", "2026-11-15", 1200.5),
    group_identify("org_a", "2026-11-02", name="Acme"),
]


def test_one_read_gives_the_same_pql_tables_with_or_without_people(tmp_path, settings):
    path = write_export(tmp_path, ROWS)
    loc = location(str(tmp_path))
    plain = rollup.rollup_file(loc, path.name, settings, people=False)
    full = rollup.rollup_file(loc, path.name, settings)
    for name in rollup.Partial.TABLES:
        pd.testing.assert_frame_equal(getattr(plain, name), getattr(full, name))
    assert {k: v for k, v in full.quality.items() if k in plain.quality} == dict(plain.quality)
    assert (full.quality["people_rows"], full.quality["people_quarantined"]) == (7, 2)
    assert not plain.people
    assert set(plain.firsts["event"]) == {"$identify"}  # only what the PQL model's creators need
    assert full.people and len(full.conversions) == 1


def test_person_tables_hold_what_the_models_need(tmp_path, settings):
    partial = partial_of(tmp_path, [ROWS], settings)
    links = set(zip(partial.links["a"], partial.links["b"], partial.links["kind"], strict=True))
    assert ("u1", "anon-1", "identify") in links and ("u1", "person-u1", "person") in links
    assert partial.conversions[["distinct_id", "contract_value"]].values.tolist() == [["u1", 1200.5]]
    assert set(partial.touches["origin"]) == {"set_once", "event"}
    assert partial.profiles[["distinct_id", "key", "value"]].values.tolist() == [["u1", "email", "a@b.co"]]
    assert set(partial.memberships["distinct_id"]) == {"user_1", "u1"}
    firsts = partial.firsts.set_index(["distinct_id", "event"])["timestamp"]
    assert firsts[("anon-1", "$pageview")] == pd.Timestamp("2026-11-10", tz="UTC")


def test_write_and_read_round_trip(tmp_path, settings):
    partial = partial_of(tmp_path / "exports", [ROWS], settings)
    work = location(str(tmp_path / "work"))
    rollup.write(partial, work, "partials/x")
    back = rollup.read(work, "partials/x")
    assert back.people
    for name in (*rollup.Partial.TABLES, *rollup.Partial.PEOPLE_TABLES):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(partial, name), check_dtype=True)
    rollup.write(
        rollup.rollup_file(location(str(tmp_path / "exports")), _only_file(tmp_path), settings, people=False),
        work,
        "partials/y",
    )
    assert not rollup.read(work, "partials/y").people


def _only_file(tmp_path) -> str:
    return next((tmp_path / "exports").iterdir()).name


def test_merge_does_not_depend_on_order_and_dedupes_conversions(tmp_path, settings):
    dup = conversion("u1", "2026-11-15", 10, uuid="22222222-2222-2222-2222-222222222222")
    files = [
        [*ROWS[:6], dup],
        [ROWS[6], dict(dup), pageview("anon-1", "2026-11-01", referring_domain="x.com")],
    ]
    forward = partial_of(tmp_path / "a", files, settings)
    backward = partial_of(tmp_path / "b", files, settings, reverse=True)
    for name in rollup.Partial.PEOPLE_TABLES:
        a, b = getattr(forward, name), getattr(backward, name)
        keys = list(a.columns)
        pd.testing.assert_frame_equal(
            a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
        )
    assert forward.conversions["uuid"].tolist().count(dup["uuid"]) == 1
    touch = forward.touches[(forward.touches["distinct_id"] == "anon-1") & ~forward.touches["tagged"]]
    assert touch["referring_domain"].tolist() == ["x.com"]  # the earliest untagged record of the two files


def test_numbers_and_booleans_under_wanted_keys_are_read_as_text():
    docs = pa.array(
        [
            '{"contract_value": 1200, "$set": {"opt": true}, "note": "\\"contract_value\\": 5"}',
            '{"contract_value" : -1.5e3}',
            '{"other": 7}',
            None,
        ]
    )
    quoted = reader.quote_scalars(docs, ["contract_value", "opt"]).to_pylist()
    assert [json.loads(d) if d else d for d in quoted] == [
        {"contract_value": "1200", "$set": {"opt": "true"}, "note": '"contract_value": 5'},
        {"contract_value": "-1.5e3"},
        {"other": 7},
        None,
    ]


def test_person_properties_column_is_read_when_present(settings):
    rows = [
        pageview("anon-1", "2026-11-01"),
        event("core_feature_used", "2026-11-02", distinct_id="u1"),
        event("core_feature_used", "2026-11-03", distinct_id="u2"),
    ]
    rows[0]["person_properties"] = json.dumps(initial("google", "cpc", "brand", "www.google.com"))
    rows[1]["person_properties"] = json.dumps({"email": "x@y.co", "analytics_opt_out": True})
    rows[2]["person_properties"] = "{not json"
    batch = pa.RecordBatch.from_pylist(rows, schema=EXPORT_SCHEMA)
    slim = next(
        reader._slim_batches(
            iter([batch]),
            "memory",
            settings.exports,
            None,
            people.event_properties(settings.models),
            person_properties=people.person_properties(settings.models),
        )
    )
    tables, _ = people.from_slim(slim.events, settings.exports, settings.models)
    touch = tables["touches"].iloc[0]
    assert (touch["distinct_id"], touch["origin"], touch["utm_source"]) == ("anon-1", "set_once", "google")
    profiles = tables["profiles"].sort_values("key")[["distinct_id", "key", "value"]].values.tolist()
    assert profiles == [["u1", "email", "x@y.co"], ["u1", "opt_out", "true"]]


@pytest.mark.parametrize("name", list(people.TABLES))
def test_empty_tables_have_their_types(name):
    frame = people.merge(name, [])
    assert dict(frame.dtypes.astype(str)) == people.TABLES[name]


def test_person_properties_flow_in_once_the_column_is_read(tmp_path, settings, monkeypatch):
    """exports.schema.OPTIONAL does not list person_properties yet; adding it is all it takes."""
    from plg_bridge.ingest import schema

    monkeypatch.setattr(schema, "OPTIONAL", (*schema.OPTIONAL, "person_properties"))
    row = pageview("anon-1", "2026-11-01")  # no UTM on the event, no $set_once
    row["person_properties"] = json.dumps(initial("linkedin", "paid_social", "abm", "www.linkedin.com"))
    partial = partial_of(tmp_path, [[row]], settings)
    assert partial.touches[["origin", "utm_source"]].values.tolist() == [["set_once", "linkedin"]]


def _span(partial, distinct_id: str, day: str = "2026-11-01") -> tuple[str, str, list[str]]:
    """(first, last, other times) of the `probe` span of `distinct_id` on `day`, as HH:MM text."""
    spans = partial.spans
    row = spans[
        (spans["distinct_id"] == distinct_id)
        & (spans["event"] == "probe")
        & (spans["day"] == pd.Timestamp(day, tz="UTC"))
    ]
    assert len(row) == 1, row
    at, micros = people.span_times(row["times"])
    assert set(at) <= {0}
    other = pd.to_datetime(micros, unit="us", utc=True).strftime("%H:%M").tolist()
    return row["first"].iloc[0].strftime("%H:%M"), row["last"].iloc[0].strftime("%H:%M"), other


def _probes(distinct_id: str, times: list[str], day: str = "2026-11-01") -> list[dict]:
    return [event("probe", f"{day}T{t}", distinct_id=distinct_id) for t in times]


def test_spans_keep_the_other_distinct_times_of_a_day(tmp_path, settings):
    rows = _probes("u1", ["12:00", "09:00", "12:00", "10:30", "19:00"])  # 12:00 twice, out of order
    rows += _probes("u1", ["08:00"], day="2026-11-02")  # the next day: a span of its own
    rows += _probes("u2", ["09:00", "19:00"])
    rows += _probes("u3", ["09:00", "09:00", "09:00"])  # one distinct time
    partial = partial_of(tmp_path, [rows], settings)
    assert _span(partial, "u1") == ("09:00", "19:00", ["10:30", "12:00"])
    assert _span(partial, "u1", "2026-11-02") == ("08:00", "08:00", [])
    assert _span(partial, "u2") == ("09:00", "19:00", [])
    assert _span(partial, "u3") == ("09:00", "09:00", [])
    assert partial.spans["times"].notna().sum() == 1  # null unless a span has 3 or more times


def test_span_times_merge_across_partials_of_one_day_in_any_order(tmp_path, settings):
    files = [
        _probes("u1", ["09:00", "19:00"]) + _probes("u2", ["11:00", "12:00", "13:00"]),
        _probes("u1", ["12:00"]) + _probes("u2", ["08:00", "12:00", "20:00"]),
        _probes("u1", ["19:00", "07:00", "15:00"]),
    ]
    for reverse in (False, True):
        partial = partial_of(tmp_path / str(reverse), files, settings, reverse=reverse)
        # a file's first / last become other times once another file holds earlier / later ones
        assert _span(partial, "u1") == ("07:00", "19:00", ["09:00", "12:00", "15:00"])
        assert _span(partial, "u2") == ("08:00", "20:00", ["11:00", "12:00", "13:00"])


def test_span_times_survive_write_read_and_older_partials_without_them(tmp_path, settings):
    exports = tmp_path / "exports"
    partial = partial_of(exports, [_probes("u1", ["09:00", "12:00", "19:00"])], settings)
    work = location(str(tmp_path / "work"))
    rollup.write(partial, work, "partials/new")
    back = rollup.read(work, "partials/new")
    pd.testing.assert_frame_equal(back.spans, partial.spans, check_dtype=True)
    assert _span(back, "u1") == ("09:00", "19:00", ["12:00"])

    # a partial written before `times` existed reads back with it null, and merges with a new one
    old = partial_of(tmp_path / "old", [_probes("u1", ["08:00", "10:00", "20:00"])], settings)
    old.spans = old.spans.drop(columns="times")
    rollup.write(old, work, "partials/old")
    old_back = rollup.read(work, "partials/old")
    assert list(old_back.spans.columns) == list(people.TABLES["spans"])
    assert old_back.spans["times"].isna().all()  # its 10:00 is lost: "no other times"
    merged = rollup.merge([back, old_back])
    assert _span(merged, "u1") == ("08:00", "20:00", ["09:00", "12:00", "19:00"])


def test_history_snapshots_of_an_older_partial_format_are_not_built_on(settings, monkeypatch):
    """A snapshot folded from partials without span times would carry them forward for ever."""
    from plg_bridge.ingest import history

    now = history.settings_digest(settings)
    monkeypatch.setattr(rollup, "PARTIAL_FORMAT", rollup.PARTIAL_FORMAT - 1)
    assert history.settings_digest(settings) != now


def test_span_times_fold_into_a_history_snapshot(tmp_path, settings):
    """The daily run folds a new export file of a day into the kept snapshot (history.fold_into)."""
    from plg_bridge.ingest import history

    state = partial_of(
        tmp_path / "a", [_probes("u1", ["09:00", "19:00"]) + _probes("u2", ["10:00"])], settings
    )
    new = partial_of(tmp_path / "b", [_probes("u1", ["12:00", "20:00"])], settings)
    folded = history.fold_into(state, [new])
    assert _span(folded, "u1") == ("09:00", "20:00", ["12:00", "19:00"])
    assert _span(folded, "u2") == ("10:00", "10:00", [])  # untouched by the new file
