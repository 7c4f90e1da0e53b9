"""The report's charts as PNG bytes (matplotlib, no pyplot state, no timestamps in the files).

Labels carry product data (event names, UTM sources) that anyone with the project's public key can
send. matplotlib would parse `$...$` in any text as math (and fail the report on `$\\foo$`), so
every chart is drawn and saved inside `plain_text()`: `text.parse_math` and `text.usetex` off,
which every Text artist (titles, tick labels, legends, annotations) takes when it is created or
drawn. Data text is then shown exactly as sent.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from typing import TYPE_CHECKING

from plg_bridge.report.build import informative, is_missing, source_label
from plg_bridge.report.tables import funnel_labels

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd
    from matplotlib.figure import Figure

    from plg_bridge.report.build import Insights

CHARTS = ("time_to_value", "odds_ratios", "revenue_by_source", "pql_funnel", "pql_trend", "calibration")
CONVERTED_COLOR, NOT_CONVERTED_COLOR = "#1b7f5f", "#b0b7c3"
PQL_COLOR, NEW_PQL_COLOR = "#7a5ea8", "#e0a030"


@contextmanager
def plain_text() -> Iterator[None]:
    """Text drawn in this block is never math text nor LaTeX."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        yield


def _figure(width: float = 8.0, height: float = 4.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def png(fig: Figure) -> bytes:
    """The figure as PNG without the software/time metadata (same inputs, same bytes)."""
    out = io.BytesIO()
    with plain_text():
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


def time_to_value(ins: Insights) -> Figure:
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
    return fig


def odds_ratios(ins: Insights, limit: int = 15) -> Figure:
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
        ax.set_yticks(range(len(top)), [str(e) for e in top["event"]])
        ax.set_xlabel("odds ratio of converting (log scale; faded: not significant)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title("Events that predict conversion (PostHog correlation odds ratio)")
    return fig


def revenue_by_source(ins: Insights) -> pd.DataFrame:
    """Total revenue per original source (campaigns summed), largest first."""
    revenue = ins.attribution.revenue.assign(source=ins.attribution.revenue["source"].map(source_label))
    by = revenue.groupby("source", as_index=False)["total_revenue"].sum()
    return by.sort_values(["total_revenue", "source"], ascending=[False, True], kind="stable")


def revenue(ins: Insights) -> Figure:
    by = revenue_by_source(ins)
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
    return fig


def funnel(ins: Insights) -> Figure:
    labels = funnel_labels(ins)
    fig, ax = _figure(8.0, 3.2)
    stages = [(labels[s], n) for s, n in zip(ins.funnel["stage"], ins.funnel["organizations"], strict=True)]
    known = [(label, int(n)) for label, n in stages if not is_missing(n)]
    ax.barh(range(len(known)), [n for _, n in known], color=PQL_COLOR)
    ax.set_xlim(0, max([n for _, n in known] + [1]) * 1.12)
    for i, (_, n) in enumerate(known):
        ax.text(n, i, f" {n:,}", va="center")
    ax.set_yticks(range(len(known)), [label for label, _ in known])
    ax.invert_yaxis()
    ax.set_xlabel("organizations")
    ax.set_title(f"PQL funnel as of {ins.funnel_as_of}")
    return fig


def pql_trend(ins: Insights) -> Figure:
    """PQLs per weekly as-of point (bars), the new ones among them (inner bars), values printed."""
    trend = ins.trend
    fig, ax = _figure(8.0, 3.6)
    if trend.empty:
        _empty_note(ax, "not enough history for a weekly PQL point yet (two PQL weeks)")
    else:
        x = list(range(len(trend)))
        ax.bar(x, trend["pqls"], width=0.7, color=PQL_COLOR, label="PQLs")
        ax.bar(x, trend["new_pqls"], width=0.4, color=NEW_PQL_COLOR, label="new PQLs (not PQL a week before)")
        for i, (pqls, new) in enumerate(zip(trend["pqls"], trend["new_pqls"], strict=True)):
            ax.text(i, pqls, f"{int(pqls):,}\n({int(new):,} new)", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, [str(d)[5:] for d in trend["as_of"]])  # MM-DD
        ax.set_ylim(0, max(int(trend["pqls"].max()), 1) * 1.5)  # room for the values and the legend
        ax.set_xlabel(f"as of (weekly, {trend['as_of'].iloc[0]} to {trend['as_of'].iloc[-1]})")
        ax.set_ylabel("organizations")
        _plain_ticks(ax.yaxis, "{:,.0f}")
        ax.legend(loc="upper center", ncols=2, frameon=False)
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"PQLs per week (score >= {ins.threshold})")
    return fig


def calibration(ins: Insights) -> Figure:
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
    return fig


DRAW: dict[str, Callable[[Insights], Figure]] = {
    "time_to_value": time_to_value,
    "odds_ratios": odds_ratios,
    "revenue_by_source": revenue,
    "pql_funnel": funnel,
    "pql_trend": pql_trend,
    "calibration": calibration,
}


def figures(ins: Insights) -> dict[str, Figure]:
    """name -> figure of every chart (CHARTS), built with plain text."""
    with plain_text():
        return {name: DRAW[name](ins) for name in CHARTS}


def charts(ins: Insights) -> dict[str, bytes]:
    """name -> PNG of every chart (CHARTS)."""
    return {name: png(fig) for name, fig in figures(ins).items()}
