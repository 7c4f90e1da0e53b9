"""Alert texts and the input-volume check."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from plg_bridge.report.alerts import failure_text, volume_anomaly


def test_failure_text_names_dag_task_window_error_and_log_and_escapes_it():
    ti = SimpleNamespace(
        dag_id="plg_reverse_etl", task_id="deliver_hubspot_companies", log_url="http://af/log?x=1"
    )
    context = {
        "task_instance": ti,
        "data_interval_end": dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        "params": {},
        "exception": RuntimeError("org <!channel> & <https://evil|click> rejected\nsecond line"),
    }
    text = failure_text(context)
    assert "*plg_reverse_etl.deliver_hubspot_companies* failed (as of 2026-11-20)" in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in text
    assert "<!channel>" not in text and "second line" not in text
    assert "<http://af/log?x=1|Task log>" in text


def test_failure_text_prefers_the_as_of_param():
    context = {"task_instance": SimpleNamespace(dag_id="d", task_id="t"), "params": {"as_of": "2026-11-03"}}
    assert "(as of 2026-11-03)" in failure_text(context)


@pytest.mark.parametrize(
    ("rows", "trailing", "alert"),
    [
        (1000, [1000, 1100, 900], False),
        (3500, [1000, 1100, 900], True),  # more than 3x the median
        (300, [1000, 1100, 900], True),  # less than a third
        (10_000, [1000, 1100], False),  # too little history to judge
        (0, [1000, 1100, 900, 1000], True),  # an empty export after normal days
    ],
)
def test_volume_anomaly(rows, trailing, alert):
    found = volume_anomaly(rows, trailing, 3.0)
    assert (found is not None) == alert
    if found:
        assert "trailing median 1,000" in found
