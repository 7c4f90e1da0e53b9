"""The insights report on hand-built data: sections, charts, inert product data, the PQL trend,
determinism."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from markupsafe import escape

from plg_bridge.report import build, charts, publish, render, tables
from plg_bridge.storage import location
from tests.support.events import conversion, event, group_identify, identify, pageview, partial_of

T = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
SCRIPT = "<script>alert('x')</script>"
EVIL_EVENT = "<img src=x onerror=alert(1)>"
MATH = "$\\foo$"  # matplotlib's math text parser fails on an unknown command
FORMULA = '=HYPERLINK("http://evil.example","x")'


def configured(settings):
    cal = dataclasses.replace(
        settings.calibration, horizon_days=7, lookback_days=0, min_flagged=1, min_lift=1.2
    )
    return dataclasses.replace(settings, calibration=cal)


def rows() -> list[dict]:
    """alice: paid first touch with hostile UTM values, converts; bob: does not; carol converts from
    a `$\\foo$` source; dave from a formula source; org_a (named with a script tag) is scored and
    converts after the calibration date; org_b is scored and does not."""
    out = [
        pageview("anon-1", "2026-11-02T00:00", utm=("<b>src</b>|pipe", "cpc", "camp<script>")),
        identify("alice", "anon-1", "2026-11-02T01:00"),
        event("first_api_call_completed", "2026-11-02T05:00", org="org_c", distinct_id="alice"),
        event(EVIL_EVENT, "2026-11-05", org="org_c", distinct_id="alice"),
        conversion("alice", "2026-11-10", 1200, org="org_c"),
        identify("bob", None, "2026-11-03T00:00"),
        event("first_report_generated", "2026-11-04", org="org_d", distinct_id="bob"),
        pageview("anon-2", "2026-11-02T00:00", utm=(MATH, "cpc", "x")),
        identify("carol", "anon-2", "2026-11-02T02:00"),
        conversion("carol", "2026-11-12", 300, org="org_e"),
        pageview("anon-3", "2026-11-02T00:00", utm=(FORMULA, "email", None)),
        identify("dave", "anon-3", "2026-11-02T03:00"),
        conversion("dave", "2026-11-12", 200, org="org_f"),
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
    return build.build(partial, T, configured(settings))


def written(ins, folder) -> tuple[dict, dict[str, bytes]]:
    out = location(str(folder))
    result = publish.write(ins, out, build.report_prefix(T))
    base = folder / "insights" / "as_of=2026-11-30"
    return result, {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_report_has_every_section_chart_and_table(built, tmp_path):
    result, files = written(built, tmp_path / "work")
    assert set(files) >= {
        "report.html",
        "summary.md",
        *(f"charts/{name}.png" for name in charts.CHARTS),
        "data/calibration.csv",
        "data/milestones.csv",
        "data/revenue.csv",
        "data/pql_trend.csv",
    }
    page = files["report.html"].decode()
    summary = files["summary.md"].decode()
    for title in tables.SECTIONS:
        assert f">{title}</h2>" in page, title
        assert f"\n## {title}\n" in summary, title
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(charts.CHARTS) == 6
    for name in charts.CHARTS:
        assert files[f"charts/{name}.png"].startswith(b"\x89PNG")
        assert f"](charts/{name}.png)" in summary
    assert result["report"].endswith("insights/as_of=2026-11-30/report.html")
    assert result["charts"]["pql_trend"].endswith("charts/pql_trend.png")
    assert page.count("<table>") == len(tables.SECTIONS) - 1  # every section but the headline


def test_the_numbers_of_the_hand_built_case(built):
    h = build.headline(built)
    assert (h["signed_up"], h["converted"], h["not_converted"], h["pending"]) == (4, 3, 1, 0)
    assert h["aha_candidate"] == "first_api_call_completed"
    assert (h["revenue"], h["paid_conversions"]) == (2200.0, 4)
    assert h["top_source"] == "<b>src</b>|pipe"
    assert h["recommended_threshold"] == 75  # as of 11-23: org_a 75 converts, org_b 50 does not
    assert built.funnel_as_of == "2026-11-23"
    # known before 11-23 and not customers: a, b, d, z (c, e, f converted before); scored a, b; PQL a
    assert built.funnel["organizations"].tolist() == [4, 2, 1, 1]
    hours = built.hours.set_index(["person_key", "milestone"])["hours"]
    assert hours[("alice", "first_api_call_completed")] == 4.0
    assert hours[("bob", "first_report_generated")] == 24.0


def test_html_escapes_product_data_through_the_template(built, tmp_path):
    _, files = written(built, tmp_path / "work")
    page = files["report.html"].decode()
    assert "<script" not in page and "<b>" not in page and "<img src=x" not in page
    assert escape(SCRIPT) in page  # the organization's name in Top organizations
    assert escape(EVIL_EVENT) in page  # an event name in the odds ratios
    assert escape("<b>src</b>|pipe") in page
    assert render.html_environment().autoescape is True


def test_markdown_escapes_product_data_through_the_template(built, tmp_path):
    _, files = written(built, tmp_path / "work")
    summary = files["summary.md"].decode()
    assert "<script" not in summary and "<b>" not in summary and "<img" not in summary
    assert "&lt;b&gt;src&lt;/b&gt;\\|pipe" in summary  # no tag, no table-breaking pipe
    assert "\\$\\\\foo\\$" in summary  # no math in Markdown renderers that have it
    row = next(line for line in summary.splitlines() if "b&gt;src" in line and line.startswith("|"))
    assert row.startswith("| ") and row.count(" | ") == 5  # six cells, the pipe inside one of them
    assert "| 33% | 4.0 | 4.0 | 0% | - | - |" in summary  # formatted numbers stay readable in table cells


def test_a_math_text_source_renders_verbatim_in_the_charts(built, tmp_path):
    """The issue's case: a converting person whose utm_source is `$\\foo$` (failed the whole report)."""
    from matplotlib.figure import Figure

    broken = Figure()
    broken.text(0.5, 0.5, MATH)
    with pytest.raises(ValueError):  # what matplotlib does with such a label by default
        broken.savefig(tmp_path / "broken.png")

    _, files = written(built, tmp_path / "work")
    assert files["charts/revenue_by_source.png"].startswith(b"\x89PNG")
    fig = charts.figures(built)["revenue_by_source"]
    assert charts.png(fig).startswith(b"\x89PNG")  # draws every tick label, as the report does
    labels = fig.axes[0].get_yticklabels()
    assert MATH in [label.get_text() for label in labels]
    drawn = [t for t in fig.findobj(lambda a: hasattr(a, "get_parse_math")) if t.get_visible()]
    assert len(drawn) > 5 and not any(t.get_parse_math() for t in drawn)


def test_csv_cells_that_spreadsheets_would_run_are_neutralised(built, tmp_path):
    _, files = written(built, tmp_path / "work")
    revenue = files["data/revenue.csv"].decode()
    assert "'" + FORMULA.replace('"', '""') in revenue
    assert "\n=" not in revenue and ",=" not in revenue


def test_slack_summary_is_short_and_inert(built, tmp_path):
    result, _ = written(built, tmp_path / "work")
    text = publish.slack_text(result)
    assert text.startswith(":bar_chart: *PLG insights as of 2026-11-30*")
    assert "top source: &lt;b&gt;src&lt;/b&gt;|pipe" in text
    assert "recommended threshold 75" in text and result["report"] in text
    assert len(text.splitlines()) == 5


def test_same_inputs_same_bytes(tmp_path, settings):
    first = build.build(partial_of(tmp_path / "a", [rows()], settings), T, configured(settings))
    again = build.build(
        partial_of(tmp_path / "b", [rows()[:8], rows()[8:]], settings, reverse=True), T, configured(settings)
    )
    _, one = written(first, tmp_path / "one")
    _, two = written(again, tmp_path / "two")
    assert one.keys() == two.keys()
    differ = [name for name in one if one[name] != two[name]]
    assert differ == []


def test_empty_data_still_renders(tmp_path, settings):
    ins = build.build(partial_of(tmp_path / "exports", [[]], settings), T, settings)
    _, files = written(ins, tmp_path / "work")
    page = files["report.html"].decode()
    assert ">PQL threshold calibration</h2>" in page and "no as-of dates yet" in page
    assert "no rows" in page and ins.trend.empty
    assert build.headline(ins)["aha_candidate"] is None
    assert build.headline(ins)["new_pqls"] is None
    assert ins.funnel["organizations"].isna().tolist() == [False, False, False, True]  # converted: unknown


# -- the PQL trend ---------------------------------------------------------------------------------


def trend_rows() -> list[dict]:
    """Scores by hand (threshold 75: velocity 40, 3 creators 35 or 10 each, an integration 25):

    org_d: a core event on 11-02 (the first PQL day: no point before 11-16); scored 11-16, never PQL
    org_a: 3 creators + a core event on 11-10 -> 75 as of 11-16; 35 as of 11-23 (no velocity)
    org_b: 3 creators + a core event on 11-18 -> 75 as of 11-23; 2 core events on 11-24 -> 75 again
    org_c: an integration, a creator and a core event on 11-25 -> 75 as of 11-30
    org_test: as org_c, but a test organization
    """
    out = [event("core_feature_used", "2026-11-02", org="org_d")]
    for org, day in (("org_a", "2026-11-10"), ("org_b", "2026-11-18")):
        out += [event("creation_event", day, org=org, distinct_id=f"{org}-{i}") for i in range(3)]
        out.append(event("core_feature_used", day, org=org))
    out += [event("core_feature_used", "2026-11-24", org="org_b") for _ in range(2)]
    for org in ("org_c", "org_test"):
        out.append(event("integration_connected", "2026-11-25", org=org))
        out.append(event("creation_event", "2026-11-25", org=org, distinct_id=f"{org}-0"))
        out.append(event("core_feature_used", "2026-11-25", org=org))
    return out


def trend_settings(settings):
    cal = dataclasses.replace(settings.calibration, lookback_days=21)
    models = dataclasses.replace(settings.models, test_org_ids=("org_test",))
    return dataclasses.replace(settings, calibration=cal, models=models)


def test_pql_trend_counts_pqls_and_new_pqls_per_week(tmp_path, settings):
    cfg = trend_settings(settings)
    partial = partial_of(tmp_path / "exports", [trend_rows()], cfg)
    trend = build.pql_trend(partial, T, cfg)
    assert trend.to_dict("records") == [
        {"as_of": "2026-11-16", "organizations_scored": 2, "pqls": 1, "new_pqls": 1},  # a (d scored)
        {"as_of": "2026-11-23", "organizations_scored": 2, "pqls": 1, "new_pqls": 1},  # b (a fell back)
        {"as_of": "2026-11-30", "organizations_scored": 2, "pqls": 2, "new_pqls": 1},  # b stays, c new
    ]


def test_pql_trend_reaches_the_chart_tables_and_headline(tmp_path, settings):
    cfg = trend_settings(settings)
    ins = build.build(partial_of(tmp_path / "exports", [trend_rows()], cfg), T, cfg)
    assert ins.trend["pqls"].tolist() == [1, 1, 2]
    assert build.headline(ins)["new_pqls"] == 1
    assert tables.trend(ins).rows == [
        ["2026-11-16", "2", "1", "1"],
        ["2026-11-23", "2", "1", "1"],
        ["2026-11-30", "2", "2", "1"],
    ]
    fig = charts.figures(ins)["pql_trend"]
    ax = fig.axes[0]
    heights = [round(p.get_height()) for p in ax.patches]
    assert heights == [1, 1, 2, 1, 1, 1]  # PQL bars, then the new-PQL bars
    assert [t.get_text() for t in ax.get_xticklabels()] == ["11-16", "11-23", "11-30"]
    _, files = written(ins, tmp_path / "work")
    assert files["data/pql_trend.csv"].decode().splitlines() == [
        "as_of,organizations_scored,pqls,new_pqls",
        "2026-11-16,2,1,1",
        "2026-11-23,2,1,1",
        "2026-11-30,2,2,1",
    ]


def test_trend_points_stop_two_pql_weeks_into_the_data_and_at_the_lookback(tmp_path, settings):
    cfg = trend_settings(settings)
    partial = partial_of(tmp_path / "exports", [trend_rows()], cfg)
    days = [f"{p:%m-%d}" for p in build.trend_points(partial, T, cfg)]
    assert days == ["11-16", "11-23", "11-30"]  # 11-09 would score weeks before the data
    short = dataclasses.replace(cfg, calibration=dataclasses.replace(cfg.calibration, lookback_days=7))
    assert [f"{p:%m-%d}" for p in build.trend_points(partial, T, short)] == ["11-23", "11-30"]
