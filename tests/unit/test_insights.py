"""The insights report on hand-built data: sections, charts, escaping of product data, determinism."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from plg_bridge.report import insights
from plg_bridge.storage import location
from tests.builders import conversion, event, group_identify, identify, pageview, partial_of

T = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
SCRIPT = "<script>alert('x')</script>"
EVIL_EVENT = "<img src=x onerror=alert(1)>"


def configured(settings):
    cal = dataclasses.replace(
        settings.calibration, horizon_days=7, lookback_days=0, min_flagged=1, min_lift=1.2
    )
    return dataclasses.replace(settings, calibration=cal)


def rows() -> list[dict]:
    """alice: paid first touch with hostile UTM values, converts; bob: does not; org_a (named with a
    script tag) is scored and converts after the calibration date; org_b is scored and does not."""
    out = [
        pageview("anon-1", "2026-11-02T00:00", utm=("<b>src</b>|pipe", "cpc", "camp<script>")),
        identify("alice", "anon-1", "2026-11-02T01:00"),
        event("first_api_call_completed", "2026-11-02T05:00", org="org_c", distinct_id="alice"),
        event(EVIL_EVENT, "2026-11-05", org="org_c", distinct_id="alice"),
        conversion("alice", "2026-11-10", 1200, org="org_c"),
        identify("bob", None, "2026-11-03T00:00"),
        event("first_report_generated", "2026-11-04", org="org_d", distinct_id="bob"),
        group_identify("org_a", "2026-11-01", name=SCRIPT),
        event("core_feature_used", "2026-11-05", org="org_z"),
        conversion("org_a-0", "2026-11-25", 500, org="org_a"),
    ]
    for org, creators in (("org_a", 3), ("org_b", 1)):
        out += [event("core_feature_used", "2026-11-20", org=org) for _ in range(3)]
        out += [
            event("creation_event", "2026-11-18", org=org, distinct_id=f"{org}-{i}") for i in range(creators)
        ]
    return out


@pytest.fixture
def built(tmp_path, settings):
    partial = partial_of(tmp_path / "exports", [rows()], settings)
    return insights.build(partial, T, configured(settings))


def written(ins, folder) -> tuple[dict, dict[str, bytes]]:
    out = location(str(folder))
    result = insights.write(ins, out, insights.report_prefix(T))
    base = folder / "insights" / "as_of=2026-11-30"
    return result, {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_report_has_every_section_chart_and_table(built, tmp_path):
    result, files = written(built, tmp_path / "work")
    assert set(files) >= {
        "report.html",
        "summary.md",
        *(f"charts/{name}.png" for name in insights.CHARTS),
        "data/calibration.csv",
        "data/milestones.csv",
        "data/revenue.csv",
    }
    page = files["report.html"].decode()
    summary = files["summary.md"].decode()
    for title in insights.SECTIONS:
        assert f">{title}</h2>" in page, title
        assert f"\n## {title}\n" in summary, title
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(insights.CHARTS)
    for name in insights.CHARTS:
        assert files[f"charts/{name}.png"].startswith(b"\x89PNG")
        assert f"](charts/{name}.png)" in summary
    assert result["report"].endswith("insights/as_of=2026-11-30/report.html")
    assert result["charts"]["time_to_value"].endswith("charts/time_to_value.png")


def test_the_numbers_of_the_hand_built_case(built):
    h = insights.headline(built)
    assert (h["signed_up"], h["converted"], h["not_converted"], h["pending"]) == (2, 1, 1, 0)
    assert h["aha_candidate"] == "first_api_call_completed"
    assert (h["revenue"], h["paid_conversions"]) == (1700.0, 2)
    assert h["top_source"] == "<b>src</b>|pipe"
    assert h["recommended_threshold"] == 75  # as of 11-23: org_a 75 converts, org_b 50 does not
    assert built.funnel_as_of == "2026-11-23"
    # known before 11-23 and not customers: a, b, d, z (c converted on 11-10); scored a, b; PQL a
    assert built.funnel["organizations"].tolist() == [4, 2, 1, 1]
    hours = built.hours.set_index(["person_key", "milestone"])["hours"]
    assert hours[("alice", "first_api_call_completed")] == 4.0
    assert hours[("bob", "first_report_generated")] == 24.0


def test_product_data_is_escaped(built, tmp_path):
    _, files = written(built, tmp_path / "work")
    page = files["report.html"].decode()
    assert "<script" not in page and "<b>" not in page and "<img src=x" not in page
    assert html_escaped(SCRIPT) in page  # the organization's name in Top organizations
    assert html_escaped(EVIL_EVENT) in page  # an event name in the odds ratios
    assert html_escaped("<b>src</b>|pipe") in page
    summary = files["summary.md"].decode()
    assert "<script" not in summary and "<b>" not in summary and "<img" not in summary
    assert "&lt;b>src&lt;/b>\\|pipe" in summary  # no tag, no table-breaking pipe


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_slack_summary_is_short_and_inert(built, tmp_path):
    result, _ = written(built, tmp_path / "work")
    text = insights.slack_text(result)
    assert text.startswith(":bar_chart: *PLG insights as of 2026-11-30*")
    assert "top source: &lt;b&gt;src&lt;/b&gt;|pipe" in text
    assert "recommended threshold 75" in text and result["report"] in text
    assert len(text.splitlines()) == 5


def test_same_inputs_same_bytes(tmp_path, settings):
    first = insights.build(partial_of(tmp_path / "a", [rows()], settings), T, configured(settings))
    again = insights.build(
        partial_of(tmp_path / "b", [rows()[:8], rows()[8:]], settings, reverse=True), T, configured(settings)
    )
    _, one = written(first, tmp_path / "one")
    _, two = written(again, tmp_path / "two")
    assert one.keys() == two.keys()
    differ = [name for name in one if one[name] != two[name]]
    assert differ == []


def test_empty_data_still_renders(tmp_path, settings):
    ins = insights.build(partial_of(tmp_path / "exports", [[]], settings), T, settings)
    _, files = written(ins, tmp_path / "work")
    page = files["report.html"].decode()
    assert ">PQL threshold calibration</h2>" in page and "no as-of dates yet" in page
    assert "no rows" in page
    assert insights.headline(ins)["aha_candidate"] is None
    assert ins.funnel["organizations"].isna().tolist() == [False, False, False, True]  # converted: unknown
