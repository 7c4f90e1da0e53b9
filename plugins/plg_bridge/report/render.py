"""The report's pages from Jinja2 templates (report/templates), escaped by the template engine.

Product data in the report (organization names, UTM sources, event names) is attacker-controlled:
anyone holding the project's public PostHog key can send it. Escaping is therefore the engine's job,
not each call site's:

- report.html.j2: HTML autoescaping on, so every `{{ }}` is HTML-escaped (charts are base64 text);
- summary.md.j2: every `{{ }}` passes through report/escape.markdown_text (one line, `< > &` as
  entities, Markdown specials escaped), the Markdown counterpart of autoescaping; only values a
  filter already escaped (`md_row`) or that the code names (`trusted`: chart file names) skip it.

Undefined template variables are errors (StrictUndefined), so a renamed field cannot vanish silently.
"""

from __future__ import annotations

import base64
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plg_bridge.report.tables import headline_lines, sections

if TYPE_CHECKING:
    from jinja2 import Environment

    from plg_bridge.report.build import Insights

TEMPLATES = Path(__file__).parent / "templates"
NUMERIC = re.compile(r"^-?[\d.,]+(%| pp)?( / [\d,]+)?$")


@cache
def html_environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.tests["numeric_cell"] = lambda text: NUMERIC.match(str(text)) is not None
    return env


@cache
def markdown_environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    from plg_bridge.report.escape import markdown_text

    def finalize(value: Any) -> str:
        return str(value) if isinstance(value, Markup) else markdown_text(value)

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=False,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters["trusted"] = Markup

    def cell(text: Any) -> str:
        # a formatted number ("4.3", "-", "12 / 30", "18.8 pp") is inert inside a table row, where no
        # line-start rule applies; anything else, product data included, is escaped
        text = str(text)
        return text if text == "-" or NUMERIC.match(text) else markdown_text(text)

    env.filters["md_row"] = lambda cells: Markup("| " + " | ".join(cell(c) for c in cells) + " |")
    env.filters["md_rule"] = lambda cells: Markup("|" + "---|" * len(cells))
    return env


def render_html(ins: Insights, pngs: dict[str, bytes]) -> str:
    """The report page: every section with its chart (embedded PNG) and table."""
    return (
        html_environment()
        .get_template("report.html.j2")
        .render(
            title=f"PLG insights as of {ins.as_of}",
            as_of=ins.as_of,
            headline=headline_lines(ins),
            sections=sections(ins),
            images={name: base64.b64encode(png).decode("ascii") for name, png in pngs.items()},
        )
    )


def render_markdown(ins: Insights) -> str:
    """The summary: headline, then each section's table (charts are in charts/ and report.html)."""
    return (
        markdown_environment()
        .get_template("summary.md.j2")
        .render(as_of=ins.as_of, headline=headline_lines(ins), sections=sections(ins))
    )
