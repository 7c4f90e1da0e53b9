"""The HogQL twins (include/sql/hogql) parse with PostHog's own HogQL parser, and each returns the
columns of its pandas model, in the model's order.

`hogql-parser` is the C++ (ANTLR4) parser PostHog runs on every HogQL query. The wheel on PyPI
exposes the JSON entry points (`parse_select_json`: the same parse, the AST as JSON); its module init
imports `posthog.hogql.errors`, which only exists inside PostHog's monorepo. The JSON functions
return errors as JSON rather than raising those classes, so an empty stand-in module is enough
outside the monorepo (the real one is used when it can be imported).

Column mapping: a twin's output names are the aliases (or last field names) of its outermost
SELECT (for a UNION, its first SELECT, which names the columns), compared with the model's column
list. Every twin maps to exactly one pandas frame.
"""

from __future__ import annotations

import importlib
import json
import sys
import types

import pytest

from tests.support import REPO

HOGQL = REPO / "include" / "sql" / "hogql"

# twin -> (module of plg_bridge.models, attribute holding the frame's columns)
TWINS = {
    "activation.sql": ("activation", "MILESTONES"),
    "attribution.sql": ("attribution", "REVENUE"),
    "calibration.sql": ("calibration", "CURVE"),
    "correlation.sql": ("activation", "CORRELATION"),
    "groups.sql": ("groups", "COLUMNS"),
    "pql.sql": ("pql", "COLUMNS"),
    "signals.sql": ("signals", "COLUMNS"),
}


@pytest.fixture(scope="module")
def parser():
    try:
        importlib.import_module("posthog.hogql.errors")
    except ImportError:  # outside PostHog's monorepo: an empty stand-in for the module init's import
        for name in ("posthog", "posthog.hogql", "posthog.hogql.errors"):
            sys.modules.setdefault(name, types.ModuleType(name))
    return importlib.import_module("hogql_parser")


def parse(parser, sql: str, name: str = "<sql>") -> dict:
    """The JSON AST of a SELECT; a parse error fails with the file, line and column."""
    tree = json.loads(parser.parse_select_json(sql))
    if tree.get("error"):
        start = tree.get("start") or {}
        pytest.fail(
            f"{name}:{start.get('line', 0) + 1}:{start.get('column', 0) + 1}: "
            f"{tree.get('type')}: {tree.get('message')}"
        )
    return tree


def output_columns(tree: dict) -> list[str]:
    """Names of the outermost SELECT's expressions (a UNION is named by its first SELECT)."""
    while tree["node"] == "SelectSetQuery":
        tree = tree["initial_select_query"]
    names = []
    for expr in tree["select"]:
        if expr["node"] == "Alias":
            names.append(expr["alias"])
        elif expr["node"] == "Field":
            names.append(str(expr["chain"][-1]))
        else:
            raise AssertionError(f"an unnamed output column ({expr['node']}): give it an alias")
    return names


def test_every_twin_has_a_model():
    assert sorted(p.name for p in HOGQL.glob("*.sql")) == sorted(TWINS)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_parses_with_posthogs_parser(parser, name):
    tree = parse(parser, (HOGQL / name).read_text(), name)
    assert tree["node"] in ("SelectQuery", "SelectSetQuery")
    assert tree.get("select") or tree.get("initial_select_query")


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_columns_are_the_models(parser, name):
    module, attribute = TWINS[name]
    model = importlib.import_module(f"plg_bridge.models.{module}")
    expected = list(getattr(model, attribute))
    assert output_columns(parse(parser, (HOGQL / name).read_text(), name)) == expected


def test_the_parser_rejects_what_posthog_would(parser):
    """The check can fail: PostHog's grammar refuses a misspelt clause and DuckDB-only syntax."""
    for sql in ("SELEC 1", "SELECT a FROM events WHERE", "SELECT * EXCLUDE (a) FROM events QUALIFY"):
        tree = json.loads(parser.parse_select_json(sql))
        assert tree.get("error") is True, sql
        assert tree["type"] == "SyntaxError"


def test_output_columns_read_aliases_fields_and_unions(parser):
    tree = parse(parser, "SELECT a AS x, t.b, count() AS n FROM t UNION ALL SELECT 1, 2, 3")
    assert output_columns(tree) == ["x", "b", "n"]
    with pytest.raises(AssertionError, match="unnamed"):
        output_columns(parse(parser, "SELECT count() FROM t"))
