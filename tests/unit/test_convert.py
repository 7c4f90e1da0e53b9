"""The shared value converters (delivery/convert.py) on the cell values frames produce."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from plg_bridge.delivery.convert import day, flag, integer, number, number_text, text, unix_day, unix_time


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (True, True),
        (np.bool_(False), False),
        ("Yes", True),
        (" n ", False),
        (1, True),
        ("maybe", "maybe"),
        (None, None),
        (pd.NA, None),
    ],
)
def test_flag(value, want):
    assert flag(value) == want


def test_numbers_as_json_and_as_text():
    assert number(np.int64(3)) == 3 and isinstance(number(np.int64(3)), int)
    assert number(4.0) == 4 and number(2.5) == 2.5 and number(float("nan")) is None
    assert number_text(12.0) == "12" and number_text(0.37) == "0.37" and number_text(float("inf")) is None
    assert integer(2.5) == 3 and integer("7") is None and integer(None) is None


def test_text_squash_limit_and_ellipsis():
    assert text("  a \n b ") == "a \n b"
    assert text("  a \n b ", squash=True) == "a b"
    assert text("abcdef", 4) == "abcd"
    assert text("abcdef", 4, ellipsis=True) == "abc…"
    assert text({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert text("   ") is None and text(float("nan")) is None


def test_days_and_unix_times_are_utc():
    later = pd.Timestamp("2026-11-20T23:30:00", tz="America/New_York")  # 04:30 UTC the next day
    assert day(later) == "2026-11-21"
    assert day(dt.date(2026, 11, 20)) == "2026-11-20" == day("2026-11-20T08:00:00Z")
    assert day(pd.NaT) is None
    assert unix_day("2026-11-20") == int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp())
    assert unix_time("2026-11-20T00:00:01") == unix_day("2026-11-20") + 1
