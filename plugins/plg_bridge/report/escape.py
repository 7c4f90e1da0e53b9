"""Inert text: data from events (org names, UTM values, feature names) rendered where it could act.

Anyone holding a customer's public PostHog key can send events, so every text value that came from
an event is attacker-controlled. Each output format gets one function that makes such text
display as itself and do nothing else:

- CSV (`csv_cell`, `csv_frame`, `to_csv`): a cell starting with `=`, `+`, `-`, `@`, a tab or a
  carriage return is a formula to Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)`,
  `=cmd|...`). Such a cell gets a leading apostrophe (OWASP's CSV-injection advice), which the
  spreadsheet shows as text. Numbers stay numbers: numeric columns are untouched, and so is text
  that is a plain number (`-3`, `+1.5e3`), which no spreadsheet evaluates as anything else.
- HTML (`html_text`): `& < > " '` as entities, for HTML fields such as HubSpot's `hs_task_body`.
- Markdown (`markdown_text`): one line, `& < >` as entities, a backslash before Markdown's
  specials, so `<a href=...>`, `[x](http://...)`, `**`, `$math$`, table pipes and a leading `#`
  or `1.` render literally.
- Chart labels (`chart_label`): matplotlib parses `$...$` as math text (and fails on `$\\foo$`);
  a backslash before every `$` keeps the label plain (or pass `parse_math=False` to the artist).
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# Markdown (CommonMark + GitHub's tables, strikethrough and math) punctuation that acts anywhere ...
_MARKDOWN_SPECIALS = re.compile(r"([\\`*\[\]|~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")  # intraword _ is inert
# ... and what acts only at the start of a line (headings, lists, setext underlines)
_MARKDOWN_LINE_START = re.compile(r"^([#+=-]|\d+(?=[.)]))")


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet evaluates: text starting like a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells (and column names) are `csv_cell`-safe; numbers untouched."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
            out[column] = series.map(csv_cell, na_action="ignore")
    out.columns = [csv_cell(c) for c in out.columns]
    return out


def to_csv(frame: pd.DataFrame) -> str:
    """`frame` as CSV text (no index) with formula-like cells neutralised: every CSV the project writes."""
    return csv_frame(frame).to_csv(index=False)


def html_text(value: Any) -> str:
    """Text for an HTML field or page: markup shows as text, never as tags or attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def markdown_text(value: Any) -> str:
    """Text for Markdown (incl. a table cell): one line, HTML entities, Markdown specials escaped."""
    text = "" if value is None else " ".join(str(value).split())
    text = html.escape(text, quote=False)  # & < > first: the escapes below add no & < >
    text = _MARKDOWN_SPECIALS.sub(r"\\\1", text)
    match = _MARKDOWN_LINE_START.match(text)
    if match is None:
        return text
    if match.group(1)[0].isdigit():  # "1. x" is a list item, "1\. x" is text
        return text[: match.end()] + "\\" + text[match.end() :]
    return "\\" + text


def chart_label(value: Any) -> str:
    """A matplotlib label shown verbatim: `$` never starts math text."""
    text = "" if value is None else str(value)
    return text.replace("$", r"\$")  # outside math text a backslash is literal, `\$` a plain `$`
