"""The report's sections as plain text: titles, explanations and tables of formatted cells.

Shared by the HTML and Markdown templates (report/render.py), which escape every cell for their
format: the strings here are raw, product data (names, sources, events) included as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plg_bridge.report.build import headline, informative, is_missing, source_label

if TYPE_CHECKING:
    from plg_bridge.models.calibration import Calibration
    from plg_bridge.report.build import Insights


@dataclass(frozen=True)
class Table:
    head: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Section:
    title: str
    text: str
    chart: str | None = None  # a name of charts.CHARTS
    table: Table | None = None

    @property
    def anchor(self) -> str:
        return self.title.lower().replace(" ", "-")


def fmt(value: Any, kind: str = "") -> str:
    """A cell's text: '-' for missing values, percentages, hours, amounts, ratios."""
    if is_missing(value):
        return "-"
    if kind == "pct":
        return f"{float(value):.0%}"
    if kind == "hours":
        return f"{float(value):.1f}"
    if kind == "money":
        return f"{float(value):,.0f}"
    if kind == "ratio":
        return f"{float(value):.2f}"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def time_to_value(ins: Insights) -> Table:
    m = ins.activation.milestones
    m = m[m["breakdown"] == "all"]
    head = [
        "milestone",
        "reach (converted)",
        "median h",
        "p75 h",
        "reach (not converted)",
        "median h",
        "p75 h",
    ]
    rows = []
    for name in ins.milestones:
        cells = [name]
        for cohort in ("converted", "not_converted"):
            r = m[(m["milestone"] == name) & (m["cohort"] == cohort)]
            r = r.iloc[0] if len(r) else {}
            cells += [fmt(r.get("reach"), "pct"), fmt(r.get("median_hours"), "hours")]
            cells += [fmt(r.get("p75_hours"), "hours")]
        rows.append(cells)
    return Table(head, rows)


def aha(ins: Insights) -> Table:
    head = ["breakdown", "segment", "Aha candidate", "reach converted", "reach not converted", "gap"]
    rows = [
        [
            str(r["breakdown"]),
            str(r["segment"]),
            str(r["milestone"]),
            fmt(r["reach_converted"], "pct"),
            fmt(r["reach_not_converted"], "pct"),
            fmt(r["gap"] * 100, "hours") + " pp",
        ]
        for r in ins.activation.aha.to_dict("records")
    ]
    return Table(head, rows)


def odds(ins: Insights, limit: int = 12) -> Table:
    head = ["event", "converted who did it", "not converted who did it", "odds ratio", "significant"]
    rows = [
        [
            str(r["event"]),
            f"{r['success_count']} / {r['success_total']}",
            f"{r['failure_count']} / {r['failure_total']}",
            fmt(r["odds_ratio"], "ratio"),
            "yes" if r["significant"] else "no",
        ]
        for r in informative(ins.activation.correlation).head(limit).to_dict("records")
    ]
    return Table(head, rows)


def revenue(ins: Insights, limit: int = 15) -> Table:
    head = ["source", "campaign", "paying persons", "conversions", "revenue", "average contract"]
    rows = [
        [
            source_label(r["source"]),
            fmt(r["campaign"]),
            fmt(int(r["paid_conversions"])),
            fmt(int(r["conversions"])),
            fmt(r["total_revenue"], "money"),
            fmt(r["avg_contract_value"], "money"),
        ]
        for r in ins.attribution.revenue.head(limit).to_dict("records")
    ]
    return Table(head, rows)


def top_orgs(ins: Insights, limit: int = 10) -> Table:
    head = ["organization", "name", "PQL score", "PQL", "core events this week", "last week"]
    head += ["active creators", "integrations"]
    rows = [
        [
            str(r["org_id"]),
            "(no name)" if is_missing(r["org_name"]) else str(r["org_name"]),
            str(r["pql_score"]),
            "yes" if r["is_pql"] else "no",
            fmt(int(r["events_this_week"])),
            fmt(int(r["events_last_week"])),
            fmt(int(r["active_creators"])),
            fmt(int(r["integrations_connected"])),
        ]
        for r in ins.scores.head(limit).to_dict("records")
    ]
    return Table(head, rows)


def funnel_labels(ins: Insights) -> dict[str, str]:
    return {
        "organizations": "organizations (not yet customers)",
        "scored": "scored (active in the 2 weeks before)",
        "pql": f"PQL (score >= {ins.threshold})",
        "converted": f"converted within {ins.horizon_days} days",
    }


def funnel(ins: Insights) -> Table:
    labels = funnel_labels(ins)
    rows, previous = [], None
    for stage, value in zip(ins.funnel["stage"], ins.funnel["organizations"], strict=True):
        n = None if is_missing(value) else int(value)
        share = fmt(n / previous, "pct") if n is not None and previous else "-"
        rows.append([labels[stage], fmt(n), share])
        previous = n
    return Table(["stage", "organizations", "of the previous stage"], rows)


def trend(ins: Insights) -> Table:
    rows = [
        [str(r["as_of"]), fmt(int(r["organizations_scored"])), fmt(int(r["pqls"])), fmt(int(r["new_pqls"]))]
        for r in ins.trend.to_dict("records")
    ]
    return Table(["as of", "organizations scored", "PQLs", "new PQLs"], rows)


def calibration(ins: Insights) -> Table:
    head = ["threshold", "flagged org-days", "organizations", "precision", "recall", "lift", "F1", "note"]
    rows = []
    for r in ins.calibration.curve.to_dict("records"):
        note = ", ".join(n for n, on in (("recommended", r["recommended"]), ("current", r["current"])) if on)
        rows.append(
            [
                str(r["threshold"]),
                fmt(int(r["flagged"])),
                fmt(int(r["flagged_orgs"])),
                fmt(r["precision"], "pct"),
                fmt(r["recall"], "pct"),
                fmt(r["lift"], "ratio"),
                fmt(r["f1"], "ratio"),
                note,
            ]
        )
    return Table(head, rows)


def quality(ins: Insights) -> Table:
    return Table(["counter", "value"], [[k, fmt(v)] for k, v in sorted(ins.quality.items())])


def headline_lines(ins: Insights) -> list[str]:
    h = headline(ins)
    rate = fmt(h["conversion_rate"], "pct")
    new = f", {h['new_pqls']:,} new since the week before" if h["new_pqls"] is not None else ""
    return [
        f"{h['signed_up']:,} persons signed up in the cohort window: {h['converted']:,} converted, "
        f"{h['not_converted']:,} did not, {h['pending']:,} still inside their horizon (conversion rate {rate}).",
        f"{h['pre_existing']:,} pre-existing customers (converted before their first observed signup) "
        "are counted apart, out of the cohorts, milestones and odds ratios.",
        f"Aha candidate (largest reach gap, converted vs not): {h['aha_candidate'] or 'none'}.",
        f"Revenue in the last {ins.revenue_window_days} days: {h['revenue']:,.0f} from "
        f"{h['paid_conversions']:,} paid conversions; top original source: {h['top_source'] or 'none'}.",
        f"PQLs as of {ins.as_of}: {h['pqls']:,} of {h['organizations_scored']:,} scored organizations "
        f"(threshold {ins.threshold}){new}.",
        "Calibration: "
        + (
            f"recommended threshold {h['recommended_threshold']} (current {ins.threshold}); "
            if h["recommended_threshold"] is not None
            else "no recommended threshold; "
        )
        + h["calibration"]
        + ".",
    ]


def date_range(cal: Calibration) -> str:
    if not len(cal.dates):
        return "none"
    return f"{cal.dates['as_of'].iloc[0]} to {cal.dates['as_of'].iloc[-1]}"


def sections(ins: Insights) -> list[Section]:
    """Every section after the headline, in the report's order (titles: SECTIONS)."""
    cal = ins.calibration
    points = len(ins.trend)
    return [
        Section(
            "Time to value",
            "Hours from signup to the first occurrence of each milestone, for persons whose "
            "conversion horizon is over; converted persons only count milestones reached before paying.",
            "time_to_value",
            time_to_value(ins),
        ),
        Section(
            "Aha candidates",
            "The milestone with the largest reach gap between converted and not converted persons, per segment.",
            None,
            aha(ins),
        ),
        Section(
            "Odds ratios",
            "PostHog's correlation odds ratio of doing each event with converting (prior 1); events "
            "done by too few persons are not significant, events every person did are left out.",
            "odds_ratios",
            odds(ins),
        ),
        Section(
            "Revenue by original source",
            f"Paid conversions in the last {ins.revenue_window_days} days by the converting person's "
            "first touch (UTM source and campaign), which survives identity merges.",
            "revenue_by_source",
            revenue(ins),
        ),
        Section(
            "PQL funnel",
            f"As of {ins.funnel_as_of}: organizations that were not customers yet, those scored, those at "
            f"or above the PQL threshold, and those that converted within {ins.horizon_days} days.",
            "pql_funnel",
            funnel(ins),
        ),
        Section(
            "PQL trend",
            f"PQLs (score >= {ins.threshold}) at weekly as-of points over the last {ins.lookback_days} days "
            f"({points} point{'s' if points != 1 else ''}, none before two PQL weeks of data); new = PQL "
            "at the point but not a week before.",
            "pql_trend",
            trend(ins),
        ),
        Section(
            "Top organizations",
            f"The highest PQL scores as of {ins.as_of} (threshold {ins.threshold}).",
            None,
            top_orgs(ins),
        ),
        Section(
            "PQL threshold calibration",
            f"{len(cal.dates)} as-of dates ({date_range(cal)}), {len(cal.observations):,} "
            f"organization-days: how many of the organizations flagged at each threshold converted "
            f"within {ins.horizon_days} days. {cal.reason[:1].upper()}{cal.reason[1:]}.",
            "calibration",
            calibration(ins),
        ),
        Section(
            "Data quality",
            "Rows read and what each model counted, left out or could not use.",
            None,
            quality(ins),
        ),
    ]


SECTIONS = (
    "Headline",
    "Time to value",
    "Aha candidates",
    "Odds ratios",
    "Revenue by original source",
    "PQL funnel",
    "PQL trend",
    "Top organizations",
    "PQL threshold calibration",
    "Data quality",
)
