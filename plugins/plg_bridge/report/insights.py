"""The weekly PLG insights report: the models as of T, as an HTML page with charts and a Markdown summary.

What a growth team reads (every number comes from plg_bridge.models, as of the run's T):

- time to value: hours from signup to each milestone, converted vs not converted persons
  (models/activation.py: only judged persons, only milestones reached inside their window);
- the Aha candidate and PostHog's correlation odds ratios of events with conversion;
- revenue by original source (models/attribution.py, first touch that survives merges);
- the PQL funnel: organizations -> scored -> PQL -> converted, as of the latest calibration date D
  (T - calibration.horizon_days), so "converted within the horizon" is known; as of T when the
  data is too short to calibrate (then the last stage is unknown);
- the top organizations by PQL score as of T (names escaped; "(no name)" when none was recorded);
- the calibration curve: precision and recall of the PQL flag per threshold, with the current and
  the recommended threshold (models/calibration.py).

Test organizations (`models.test_org_ids`) and excluded persons are left out of every section.

Written under the work location at `insights/as_of=YYYY-MM-DD/`: report.html (charts embedded, so the
page stands alone), charts/*.png, summary.md and data/*.csv. The output depends only on the inputs
and T: no clock, stable sort orders, PNGs without timestamps. Product data (names, sources, events)
is escaped everywhere it is shown (html.escape; Markdown cells; Slack mrkdwn).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.layout import ExportFile
    from plg_bridge.ingest.rollup import Partial
    from plg_bridge.models.activation import Activation
    from plg_bridge.models.attribution import Attribution
    from plg_bridge.models.calibration import Calibration
    from plg_bridge.storage import Location
    from plg_bridge.workspace import Workspace

log = logging.getLogger(__name__)

CHARTS = ("time_to_value", "odds_ratios", "revenue_by_source", "pql_funnel", "calibration")
SECTIONS = (
    "Headline",
    "Time to value",
    "Aha candidates",
    "Odds ratios",
    "Revenue by original source",
    "PQL funnel",
    "Top organizations",
    "PQL threshold calibration",
    "Data quality",
)
FUNNEL_STAGES = ("organizations", "scored", "pql", "converted")
CONVERTED_COLOR, NOT_CONVERTED_COLOR = "#1b7f5f", "#b0b7c3"
NO_SOURCE = "(no UTM source)"


def report_prefix(as_of: datetime) -> str:
    """Where a window's report lives under the work location: one folder per T, a rerun overwrites."""
    return f"insights/as_of={as_of:%Y-%m-%d}"


@dataclass(frozen=True)
class Insights:
    as_of: str
    activation: Activation
    hours: pd.DataFrame  # person_key, cohort, milestone, hours (activation.hours_to_value)
    attribution: Attribution
    scores: pd.DataFrame  # models/pql.py as of T
    calibration: Calibration
    funnel: pd.DataFrame  # stage, organizations (null: not known yet)
    funnel_as_of: str
    milestones: tuple[str, ...]
    threshold: int
    horizon_days: int
    revenue_window_days: int
    quality: dict[str, int] = field(default_factory=dict)


# -- the models ------------------------------------------------------------------------------------


def funnel(
    partial: Partial, calibration: Calibration, as_of: datetime, settings: Settings
) -> tuple[str, Any]:
    """(D, stages): organizations known before D and not yet customers -> scored as of D -> PQL ->
    converted in [D, D + horizon). D = the latest calibration date, else T (converted unknown)."""
    import pandas as pd

    from plg_bridge.models import pql

    obs = calibration.observations
    if len(calibration.dates):
        label = str(calibration.dates["as_of"].iloc[-1])
        day = pd.Timestamp(label, tz="UTC")
        at = obs[obs["as_of"] == label]
        scored, flagged = at, at[at["pql_score"] >= settings.pql.threshold]
        converted: int | None = int(flagged["converted"].sum())
    else:
        day = pd.Timestamp(as_of)
        label = f"{as_of:%Y-%m-%d}"
        scored = pql.score(partial, as_of, settings.pql)
        scored = scored[~scored["org_id"].isin(settings.models.test_org_ids)]
        flagged, converted = scored[scored["is_pql"]], None
    conversions = partial.conversions
    customers = set(conversions.loc[conversions["timestamp"] < day, "org_id"].dropna())
    known = set(partial.counts.loc[partial.counts["day"] < day, "org_id"])
    known |= set(partial.memberships.loc[partial.memberships["timestamp"] < day, "org_id"])
    known |= set(partial.groups.loc[partial.groups["timestamp"] < day, "org_id"])
    known -= customers | set(settings.models.test_org_ids)
    scored = scored[~scored["org_id"].isin(customers)]
    flagged = flagged[~flagged["org_id"].isin(customers)]
    counts = [len(known | set(scored["org_id"])), len(scored), len(flagged), converted]
    frame = pd.DataFrame({"stage": list(FUNNEL_STAGES), "organizations": pd.array(counts, dtype="Int64")})
    return label, frame


def build(partial: Partial, as_of: datetime, settings: Settings) -> Insights:
    """Every model of the report from merged partials (with their person tables), as of T."""
    from plg_bridge.models import activation, attribution, calibration, identity, pql
    from plg_bridge.models import exclusions as excl

    as_of = pql.as_of_time(as_of)
    cfg = settings.models
    keys = identity.stitch(partial.links, as_of, settings.exports.placeholder_ids)
    found = excl.find(partial, keys, as_of, settings)
    act = activation.run(partial, as_of, settings, found)
    firsts = activation.person_firsts(partial.firsts, keys, as_of)
    hours = activation.hours_to_value(act.persons, firsts, cfg.milestones)
    attr = attribution.run(partial, as_of, settings, found)
    scores = pql.score(partial, as_of, settings.pql)
    scores = scores[~scores["org_id"].isin(cfg.test_org_ids)].reset_index(drop=True)
    cal = calibration.run(partial, as_of, settings)
    funnel_as_of, stages = funnel(partial, cal, as_of, settings)
    quality = {
        "rows_read": int(partial.quality.get("rows_read", 0)),
        "organizations_scored": len(scores),
        "pqls": int(scores["is_pql"].sum()),
        **act.quality,
        **{k: v for k, v in attr.quality.items() if k not in act.quality},
        **cal.quality,
    }
    return Insights(
        as_of=f"{as_of:%Y-%m-%d}",
        activation=act,
        hours=hours,
        attribution=attr,
        scores=scores,
        calibration=cal,
        funnel=stages,
        funnel_as_of=funnel_as_of,
        milestones=tuple(cfg.milestones),
        threshold=settings.pql.threshold,
        horizon_days=settings.calibration.horizon_days,
        revenue_window_days=cfg.revenue_window_days,
        quality=quality,
    )


def headline(ins: Insights) -> dict[str, Any]:
    """The few numbers of the Slack message and the summary's first section (JSON-ready)."""
    everyone = ins.activation.cohorts
    everyone = everyone[everyone["breakdown"] == "all"].iloc[0]
    aha = ins.activation.aha
    aha = aha[aha["breakdown"] == "all"]
    revenue = ins.attribution.revenue
    top = revenue.sort_values("total_revenue", ascending=False, kind="stable").head(1)
    cal = ins.calibration
    return {
        "as_of": ins.as_of,
        "signed_up": int(everyone["signed_up"]),
        "converted": int(everyone["converted"]),
        "not_converted": int(everyone["not_converted"]),
        "pending": int(everyone["pending"]),
        "conversion_rate": _number(everyone["conversion_rate"]),
        "aha_candidate": str(aha["milestone"].iloc[0]) if len(aha) else None,
        "revenue": float(revenue["total_revenue"].sum()),
        "paid_conversions": int(revenue["conversions"].sum()),
        "top_source": _source(top["source"].iloc[0]) if len(top) else None,
        "organizations_scored": len(ins.scores),
        "pqls": int(ins.scores["is_pql"].sum()),
        "threshold": ins.threshold,
        "recommended_threshold": cal.recommended,
        "calibration": cal.reason,
    }


# -- formatting helpers ----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _source(value: Any) -> str:
    return NO_SOURCE if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _fmt(value: Any, kind: str = "") -> str:
    """A cell's text: '-' for missing values, percentages, hours, amounts, ratios."""
    if _is_missing(value):
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


def _md(value: Any) -> str:
    """A Markdown table cell: no pipes, line breaks or HTML tags from product data."""
    text = str(value).replace("<", "&lt;")
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


# -- tables (rows of formatted cells, shared by HTML and Markdown) -----------------------------------


def table_time_to_value(ins: Insights) -> tuple[list[str], list[list[str]]]:
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
            cells += [_fmt(r.get("reach"), "pct"), _fmt(r.get("median_hours"), "hours")]
            cells += [_fmt(r.get("p75_hours"), "hours")]
        rows.append(cells)
    return head, rows


def table_aha(ins: Insights) -> tuple[list[str], list[list[str]]]:
    head = ["breakdown", "segment", "Aha candidate", "reach converted", "reach not converted", "gap"]
    rows = [
        [
            r["breakdown"],
            r["segment"],
            r["milestone"],
            _fmt(r["reach_converted"], "pct"),
            _fmt(r["reach_not_converted"], "pct"),
            _fmt(r["gap"] * 100, "hours") + " pp",
        ]
        for r in ins.activation.aha.to_dict("records")
    ]
    return head, rows


def table_odds(ins: Insights, limit: int = 12) -> tuple[list[str], list[list[str]]]:
    head = ["event", "converted who did it", "not converted who did it", "odds ratio", "significant"]
    rows = [
        [
            r["event"],
            f"{r['success_count']} / {r['success_total']}",
            f"{r['failure_count']} / {r['failure_total']}",
            _fmt(r["odds_ratio"], "ratio"),
            "yes" if r["significant"] else "no",
        ]
        for r in informative(ins.activation.correlation).head(limit).to_dict("records")
    ]
    return head, rows


def table_revenue(ins: Insights, limit: int = 15) -> tuple[list[str], list[list[str]]]:
    head = ["source", "campaign", "paying persons", "conversions", "revenue", "average contract"]
    rows = [
        [
            _source(r["source"]),
            _fmt(r["campaign"]),
            _fmt(int(r["paid_conversions"])),
            _fmt(int(r["conversions"])),
            _fmt(r["total_revenue"], "money"),
            _fmt(r["avg_contract_value"], "money"),
        ]
        for r in ins.attribution.revenue.head(limit).to_dict("records")
    ]
    return head, rows


def table_top_orgs(ins: Insights, limit: int = 10) -> tuple[list[str], list[list[str]]]:
    head = ["organization", "name", "PQL score", "PQL", "core events this week", "last week"]
    head += ["active creators", "integrations"]
    rows = [
        [
            str(r["org_id"]),
            "(no name)" if _is_missing(r["org_name"]) else str(r["org_name"]),
            str(r["pql_score"]),
            "yes" if r["is_pql"] else "no",
            _fmt(int(r["events_this_week"])),
            _fmt(int(r["events_last_week"])),
            _fmt(int(r["active_creators"])),
            _fmt(int(r["integrations_connected"])),
        ]
        for r in ins.scores.head(limit).to_dict("records")
    ]
    return head, rows


def table_funnel(ins: Insights) -> tuple[list[str], list[list[str]]]:
    labels = _funnel_labels(ins)
    head = ["stage", "organizations", "of the previous stage"]
    rows, previous = [], None
    for stage, value in zip(ins.funnel["stage"], ins.funnel["organizations"], strict=True):
        n = None if _is_missing(value) else int(value)
        share = _fmt(n / previous, "pct") if n is not None and previous else "-"
        rows.append([labels[stage], _fmt(n), share])
        previous = n
    return head, rows


def table_calibration(ins: Insights) -> tuple[list[str], list[list[str]]]:
    head = ["threshold", "flagged org-days", "organizations", "precision", "recall", "lift", "F1", "note"]
    rows = []
    for r in ins.calibration.curve.to_dict("records"):
        note = ", ".join(n for n, on in (("recommended", r["recommended"]), ("current", r["current"])) if on)
        rows.append(
            [
                str(r["threshold"]),
                _fmt(int(r["flagged"])),
                _fmt(int(r["flagged_orgs"])),
                _fmt(r["precision"], "pct"),
                _fmt(r["recall"], "pct"),
                _fmt(r["lift"], "ratio"),
                _fmt(r["f1"], "ratio"),
                note,
            ]
        )
    return head, rows


def _funnel_labels(ins: Insights) -> dict[str, str]:
    return {
        "organizations": "organizations (not yet customers)",
        "scored": "scored (active in the 2 weeks before)",
        "pql": f"PQL (score >= {ins.threshold})",
        "converted": f"converted within {ins.horizon_days} days",
    }


def headline_lines(ins: Insights) -> list[str]:
    h = headline(ins)
    rate = _fmt(h["conversion_rate"], "pct")
    return [
        f"{h['signed_up']:,} persons signed up in the cohort window: {h['converted']:,} converted, "
        f"{h['not_converted']:,} did not, {h['pending']:,} still inside their horizon (conversion rate {rate}).",
        f"Aha candidate (largest reach gap, converted vs not): {h['aha_candidate'] or 'none'}.",
        f"Revenue in the last {ins.revenue_window_days} days: {h['revenue']:,.0f} from "
        f"{h['paid_conversions']:,} paid conversions; top original source: {h['top_source'] or 'none'}.",
        f"PQLs as of {ins.as_of}: {h['pqls']:,} of {h['organizations_scored']:,} scored organizations "
        f"(threshold {ins.threshold}).",
        "Calibration: "
        + (
            f"recommended threshold {h['recommended_threshold']} (current {ins.threshold}); "
            if h["recommended_threshold"] is not None
            else "no recommended threshold; "
        )
        + h["calibration"]
        + ".",
    ]


# -- charts ----------------------------------------------------------------------------------------


def _figure(width: float = 8.0, height: float = 4.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _plain_ticks(axis, pattern: str) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: pattern.format(v)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def chart_time_to_value(ins: Insights) -> bytes:
    """Box plots of hours from signup to each milestone, converted vs not converted (all signups)."""
    fig, ax = _figure(8.5, 0.8 * len(ins.milestones) + 1.6)
    hours = ins.hours
    judged = ins.activation.persons["cohort"].value_counts()
    drawn = False
    labels = []
    for i, name in enumerate(ins.milestones):
        reached = []
        for offset, cohort, color in (
            (-0.18, "converted", CONVERTED_COLOR),
            (0.18, "not_converted", NOT_CONVERTED_COLOR),
        ):
            values = hours.loc[(hours["milestone"] == name) & (hours["cohort"] == cohort), "hours"].to_numpy()
            reached.append(f"{len(values)}/{int(judged.get(cohort, 0))}")
            if not len(values):
                continue
            drawn = True
            ax.boxplot(
                values,
                positions=[i + offset],
                widths=0.3,
                orientation="horizontal",
                patch_artist=True,
                boxprops={"facecolor": color, "edgecolor": "#333333"},
                medianprops={"color": "#000000"},
                flierprops={"markersize": 3, "markerfacecolor": color, "markeredgecolor": color},
            )
        labels.append(f"{name}\nreached {reached[0]} conv. · {reached[1]} not")
    if not drawn:
        _empty_note(ax, "no judged signups reached a milestone yet")
    else:
        from matplotlib.patches import Patch

        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylim(len(labels) - 0.4, -0.6)  # first milestone on top, converted above not converted
        ax.set_xlabel("hours from signup to the milestone")
        ax.legend(
            handles=[
                Patch(facecolor=CONVERTED_COLOR, label="converted"),
                Patch(facecolor=NOT_CONVERTED_COLOR, label="not converted"),
            ],
            loc="lower right",
        )
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Time to value as of {ins.as_of}")
    return _png(fig)


def informative(correlation: pd.DataFrame) -> pd.DataFrame:
    """Odds ratios without the events every judged person did (their ratio only reflects the prior)."""
    universal = (correlation["success_count"] == correlation["success_total"]) & (
        correlation["failure_count"] == correlation["failure_total"]
    )
    return correlation[~universal]


def chart_odds_ratios(ins: Insights, limit: int = 15) -> bytes:
    import numpy as np

    corr = informative(ins.activation.correlation)
    fig, ax = _figure(8.5, 0.35 * min(limit, max(len(corr), 1)) + 1.8)
    if corr.empty:
        _empty_note(ax, "no odds ratios: one of the cohorts is empty")
    else:
        top = corr.assign(strength=np.abs(np.log(corr["odds_ratio"])))
        top = top.sort_values(["strength", "event"], ascending=[False, True], kind="stable").head(limit)
        top = top.sort_values(["odds_ratio", "event"], ascending=[True, True], kind="stable")
        ratios = top["odds_ratio"].to_numpy(float)
        colors = [CONVERTED_COLOR if r > 1 else "#c0504d" for r in ratios]
        bars = ax.barh(range(len(top)), ratios - 1.0, left=1.0, color=colors)  # from 1 to the ratio
        for bar, significant in zip(bars, top["significant"], strict=True):
            bar.set_alpha(1.0 if significant else 0.35)
        ax.set_xscale("log")
        from matplotlib.ticker import LogLocator

        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        _plain_ticks(ax.xaxis, "{:g}")
        low, high = min(ratios.min(), 1.0), max(ratios.max(), 1.0)
        ax.set_xlim(low / 1.3, high * 1.3)
        ax.axvline(1.0, color="#333333", linewidth=1)
        ax.set_yticks(range(len(top)), top["event"].tolist())
        ax.set_xlabel("odds ratio of converting (log scale; faded: not significant)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title("Events that predict conversion (PostHog correlation odds ratio)")
    return _png(fig)


def _revenue_by_source(ins: Insights) -> pd.DataFrame:
    revenue = ins.attribution.revenue.assign(source=ins.attribution.revenue["source"].map(_source))
    by = revenue.groupby("source", as_index=False)["total_revenue"].sum()
    return by.sort_values(["total_revenue", "source"], ascending=[False, True], kind="stable")


def chart_revenue(ins: Insights) -> bytes:
    by = _revenue_by_source(ins)
    fig, ax = _figure(8.0, 0.4 * max(len(by), 1) + 1.6)
    if by.empty:
        _empty_note(ax, f"no paid conversions in the last {ins.revenue_window_days} days")
    else:
        by = by.iloc[::-1]
        ax.barh(range(len(by)), by["total_revenue"], color="#3b6ea8")
        ax.set_yticks(range(len(by)), by["source"].tolist())
        ax.set_xlabel("contract value")
        _plain_ticks(ax.xaxis, "{:,.0f}")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Revenue by original source, last {ins.revenue_window_days} days")
    return _png(fig)


def chart_funnel(ins: Insights) -> bytes:
    labels = _funnel_labels(ins)
    fig, ax = _figure(8.0, 3.2)
    stages = [(labels[s], n) for s, n in zip(ins.funnel["stage"], ins.funnel["organizations"], strict=True)]
    known = [(label, int(n)) for label, n in stages if not _is_missing(n)]
    ax.barh(range(len(known)), [n for _, n in known], color="#7a5ea8")
    ax.set_xlim(0, max([n for _, n in known] + [1]) * 1.12)
    for i, (_, n) in enumerate(known):
        ax.text(n, i, f" {n:,}", va="center")
    ax.set_yticks(range(len(known)), [label for label, _ in known])
    ax.invert_yaxis()
    ax.set_xlabel("organizations")
    ax.set_title(f"PQL funnel as of {ins.funnel_as_of}")
    return _png(fig)


def _is_missing(value: Any) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def chart_calibration(ins: Insights) -> bytes:
    curve = ins.calibration.curve
    fig, ax = _figure(8.0, 4.2)
    if not len(ins.calibration.dates):
        _empty_note(ax, "not enough history to calibrate yet")
    else:
        ax.plot(curve["threshold"], curve["precision"], marker="o", label="precision", color="#3b6ea8")
        ax.plot(curve["threshold"], curve["recall"], marker="o", label="recall", color=CONVERTED_COLOR)
        ax.plot(curve["threshold"], curve["f1"], linestyle="--", label="F1", color="#888888")
        ax.axvline(ins.threshold, color="#c0504d", linestyle=":", label=f"current ({ins.threshold})")
        if ins.calibration.recommended is not None:
            ax.axvline(
                ins.calibration.recommended,
                color="#000000",
                label=f"recommended ({ins.calibration.recommended})",
            )
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("PQL score threshold")
        ax.set_ylabel(f"conversion within {ins.horizon_days} days")
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
    ax.set_title("PQL threshold calibration")
    return _png(fig)


def charts(ins: Insights) -> dict[str, bytes]:
    """name -> PNG of every chart (CHARTS)."""
    return {
        "time_to_value": chart_time_to_value(ins),
        "odds_ratios": chart_odds_ratios(ins),
        "revenue_by_source": chart_revenue(ins),
        "pql_funnel": chart_funnel(ins),
        "calibration": chart_calibration(ins),
    }


# -- HTML and Markdown -----------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .5rem}
th{background:#f4f5f7;text-align:left}td.n{text-align:right}img{max-width:100%}p.note{color:#555;font-size:.9rem}
"""


NUMERIC = re.compile(r"^-?[\d.,]+(%| pp)?( / [\d,]+)?$")


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        numeric = tag == "td" and NUMERIC.match(text) is not None
        attrs = ' class="n"' if numeric else ""
        return f"<{tag}{attrs}>{html.escape(text)}</{tag}>"

    out = ["<table>", "<tr>" + "".join(cell(h, "th") for h in head) + "</tr>"]
    out += ["<tr>" + "".join(cell(c, "td") for c in r) + "</tr>" for r in rows]
    if not rows:
        out.append(f'<tr><td colspan="{len(head)}">no rows</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    out = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return out


def _img(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'


def _sections(ins: Insights) -> list[tuple[str, str, str | None, tuple[list[str], list[list[str]]] | None]]:
    """(title, explanation, chart, table) of every section after the headline."""
    cal = ins.calibration
    return [
        (
            "Time to value",
            "Hours from signup to the first occurrence of each milestone, for persons whose "
            "conversion horizon is over; converted persons only count milestones reached before paying.",
            "time_to_value",
            table_time_to_value(ins),
        ),
        (
            "Aha candidates",
            "The milestone with the largest reach gap between converted and not converted persons, "
            "per segment.",
            None,
            table_aha(ins),
        ),
        (
            "Odds ratios",
            "PostHog's correlation odds ratio of doing each event with converting (prior 1); events "
            "done by too few persons are not significant, events every person did are left out.",
            "odds_ratios",
            table_odds(ins),
        ),
        (
            "Revenue by original source",
            f"Paid conversions in the last {ins.revenue_window_days} days by the converting person's "
            "first touch (UTM source and campaign), which survives identity merges.",
            "revenue_by_source",
            table_revenue(ins),
        ),
        (
            "PQL funnel",
            f"As of {ins.funnel_as_of}: organizations that were not customers yet, those scored, those at "
            f"or above the PQL threshold, and those that converted within {ins.horizon_days} days.",
            "pql_funnel",
            table_funnel(ins),
        ),
        (
            "Top organizations",
            f"The highest PQL scores as of {ins.as_of} (threshold {ins.threshold}).",
            None,
            table_top_orgs(ins),
        ),
        (
            "PQL threshold calibration",
            f"{len(cal.dates)} as-of dates ({_date_range(cal)}), {len(cal.observations):,} "
            f"organization-days: how many of the organizations flagged at each threshold converted "
            f"within {ins.horizon_days} days. {cal.reason[:1].upper()}{cal.reason[1:]}.",
            "calibration",
            table_calibration(ins),
        ),
    ]


def _date_range(cal: Calibration) -> str:
    if not len(cal.dates):
        return "none"
    return f"{cal.dates['as_of'].iloc[0]} to {cal.dates['as_of'].iloc[-1]}"


def render_html(ins: Insights, pngs: dict[str, bytes]) -> str:
    """The report page: every section with its chart (embedded PNG) and table; text escaped."""
    title = f"PLG insights as of {ins.as_of}"
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="note">Built by plg-bridge from the PostHog batch export: every number uses events '
        f"before {html.escape(ins.as_of)} 00:00 UTC.</p>",
        '<h2 id="headline">Headline</h2>',
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in headline_lines(ins)) + "</ul>",
    ]
    for title_, text, chart, table in _sections(ins):
        anchor = title_.lower().replace(" ", "-")
        out.append(f'<h2 id="{html.escape(anchor)}">{html.escape(title_)}</h2>')
        out.append(f"<p>{html.escape(text)}</p>")
        if chart:
            out.append(_img(chart, pngs[chart]))
        if table:
            out.append(_html_table(*table))
    out.append('<h2 id="data-quality">Data quality</h2>')
    out.append(_html_table(["counter", "value"], [[k, _fmt(v)] for k, v in sorted(ins.quality.items())]))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_markdown(ins: Insights) -> str:
    """The summary: headline, then each section's table (charts are in charts/ and report.html)."""
    lines = [f"# PLG insights as of {_md(ins.as_of)}", "", "Full report with charts: report.html", ""]
    lines += ["## Headline", ""] + [f"- {_md(line)}" for line in headline_lines(ins)]
    for title, text, chart, table in _sections(ins):
        lines += ["", f"## {title}", "", _md(text)]
        if chart:
            lines += ["", f"![{title}](charts/{chart}.png)"]
        if table:
            lines += ["", *_md_table(*table)]
    lines += ["", "## Data quality", ""] + [f"- {_md(k)}: {v:,}" for k, v in sorted(ins.quality.items())]
    return "\n".join(lines) + "\n"


# -- writing and posting ---------------------------------------------------------------------------


def write(ins: Insights, out: Location, prefix: str) -> dict[str, Any]:
    """report.html, summary.md, charts/*.png and data/*.csv under `prefix`; returns URIs + headline."""
    pngs = charts(ins)
    written = {}
    for name, png in pngs.items():
        out.write_bytes(f"{prefix}/charts/{name}.png", png)
        written[name] = out.uri_of(f"{prefix}/charts/{name}.png")
    tables = {
        "milestones": ins.activation.milestones,
        "cohorts": ins.activation.cohorts,
        "aha": ins.activation.aha,
        "correlation": ins.activation.correlation,
        "revenue": ins.attribution.revenue,
        "funnel": ins.funnel,
        "calibration": ins.calibration.curve,
        "calibration_dates": ins.calibration.dates,
    }
    for name, frame in tables.items():
        out.write_bytes(f"{prefix}/data/{name}.csv", frame.to_csv(index=False).encode())
    out.write_bytes(f"{prefix}/report.html", render_html(ins, pngs).encode())
    out.write_bytes(f"{prefix}/summary.md", render_markdown(ins).encode())
    return {
        "report": out.uri_of(f"{prefix}/report.html"),
        "summary": out.uri_of(f"{prefix}/summary.md"),
        "charts": written,
        "headline": headline(ins),
    }


def write_report(ws: Workspace, files: list[ExportFile], as_of: datetime) -> dict[str, Any]:
    """The DAG's report step: merge the stored partials of `files`, build, write; returns URIs."""
    from plg_bridge.ingest import rollup
    from plg_bridge.pipeline import partial_prefix

    partial = rollup.merge(rollup.read(ws.work, partial_prefix(f)) for f in files)
    if not files:  # nothing exported yet: an empty report rather than a failure
        partial = dataclasses.replace(partial, people=True)
    if not partial.people:
        raise ValueError(
            "the report needs the person tables: some partials were rolled up without them "
            "(plg_reverse_etl rolls up with people=True; re-roll those files)"
        )
    ins = build(partial, as_of, ws.settings)
    result = write(ins, ws.work, report_prefix(as_of))
    log.info("insights report as of %s: %s\n%s", ins.as_of, result["report"], "\n".join(headline_lines(ins)))
    return result


def slack_text(result: dict[str, Any]) -> str:
    """The short Slack summary (mrkdwn) of a written report; data-derived text escaped."""
    from plg_bridge.delivery.slack.mapping import escape_mrkdwn as esc

    h = result["headline"]
    rate = _fmt(h["conversion_rate"], "pct")
    best = h["recommended_threshold"]
    lines = [
        f":bar_chart: *PLG insights as of {esc(h['as_of'])}*",
        f"• Signups: {h['signed_up']:,} ({h['converted']:,} converted, {h['not_converted']:,} not, "
        f"{h['pending']:,} pending; rate {rate}) · Aha candidate: {esc(h['aha_candidate'] or 'none')}",
        f"• Revenue: {h['revenue']:,.0f} from {h['paid_conversions']:,} paid conversions · top source: "
        f"{esc(h['top_source'] or 'none')}",
        f"• PQLs: {h['pqls']:,} of {h['organizations_scored']:,} scored organizations (threshold "
        f"{h['threshold']}) · calibration: "
        + (f"recommended threshold {best}" if best is not None else "no recommendation"),
        f"Report: {esc(result['report'])}",
    ]
    return "\n".join(lines)


def post_summary(settings: Settings, result: dict[str, Any]) -> str:
    """Post the Slack summary with settings.slack (never fails the task: see alerts.post)."""
    from plg_bridge.report.alerts import post

    text = slack_text(result)
    post(text, settings.slack.conn_id, settings.slack.channel)
    return text
