"""PQL threshold calibration against its DuckDB twin (include/sql/duckdb/calibration.sql), row by row.

The pandas path (per-file partials, merged, pql.score per as-of date, conversions from the person
tables) and the SQL (straight from the export files, its own scoring) are written independently; on
the generator's data (late and duplicated rows, malformed properties, organizations converting at
random times) they must give the same dates, observations and per-threshold table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from plg_bridge.ingest import rollup
from plg_bridge.models import calibration
from plg_bridge.pipeline import discover
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate
from tests.support.clocks import AS_OF

SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "duckdb" / "calibration.sql"
END = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("calibration-oracle") / "exports"
    generate(str(out), 120_000, END, days=45, malformed_fraction=0.002)
    return out


@pytest.fixture(scope="module")
def partial(exports) -> rollup.Partial:
    from plg_bridge.config import load_settings

    loc = location(str(exports))
    settings = load_settings(env={})
    return rollup.merge(rollup.rollup_file(loc, f.key, settings) for f in discover(loc, AS_OF))


def duckdb_tables(exports: Path, settings) -> dict[str, pd.DataFrame]:
    files = [str(exports / f.key) for f in discover(location(str(exports)), AS_OF)]
    con = duckdb.connect()
    con.execute("SET VARIABLE files = ?", [files])
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [AS_OF])
    values = {
        **dataclasses.asdict(settings.calibration),
        **{k: v for k, v in dataclasses.asdict(settings.pql).items()},
        "conversion_event": settings.models.conversion_event,
        "placeholder_ids": list(settings.exports.placeholder_ids),
        "test_org_ids": list(settings.models.test_org_ids),
    }
    for name, value in values.items():
        con.execute(f"SET VARIABLE {name} = ?", [list(value) if isinstance(value, tuple) else value])
    con.execute(SQL.read_text())
    return {
        "dates": con.execute("SELECT * FROM plg_calibration_dates").df(),
        "observations": con.execute("SELECT * FROM plg_calibration_observations").df(),
        "curve": con.execute("SELECT * FROM plg_calibration").df(),
    }


def assert_same(name: str, ours: pd.DataFrame, theirs: pd.DataFrame, keys: list[str]) -> None:
    assert list(theirs.columns) == list(ours.columns), name
    ours = ours.sort_values(keys).reset_index(drop=True)
    theirs = theirs.sort_values(keys).reset_index(drop=True)
    assert len(ours) == len(theirs), f"{name}: {len(ours)} rows here, {len(theirs)} in DuckDB"
    for column in ours.columns:
        a, b = ours[column], theirs[column]
        if pd.api.types.is_float_dtype(a.dtype):
            same = np.isclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-12, atol=0, equal_nan=True)
        else:
            same = (a.astype(object) == b.astype(object)).to_numpy(bool)
        bad = np.flatnonzero(~same)
        assert not len(bad), (
            f"{name}.{column}: {len(bad)} rows differ, first {ours.iloc[bad[0]].to_dict()} vs {b.iloc[bad[0]]}"
        )


def tuned(settings):
    """Non-default settings, so each one is seen to reach the SQL too."""
    return dataclasses.replace(
        settings,
        calibration=dataclasses.replace(
            settings.calibration,
            horizon_days=14,
            date_step_days=2,
            lookback_days=30,
            threshold_step=10,
            min_flagged=5,
            min_lift=1.2,
        ),
        pql=dataclasses.replace(settings.pql, threshold=65, velocity_ratio=1.2),
        models=dataclasses.replace(settings.models, test_org_ids=("org_0003",)),
    )


@pytest.mark.parametrize("variant", ["defaults", "tuned"])
def test_calibration_matches_its_duckdb_twin(exports, partial, settings, variant):
    cfg = tuned(settings) if variant == "tuned" else settings
    ours = calibration.run(partial, AS_OF, cfg)
    theirs = duckdb_tables(exports, cfg)
    assert_same("dates", ours.dates, theirs["dates"], ["as_of"])
    assert_same("observations", ours.observations, theirs["observations"], ["as_of", "org_id"])
    assert_same("curve", ours.curve, theirs["curve"], ["threshold"])

    # the comparison is only worth something if the data exercises the model
    assert len(ours.dates) >= 2 and ours.observations["converted"].any()
    assert ours.observations["pql_score"].nunique() > 4
    if variant == "tuned":
        assert len(ours.dates) == 9 and 65 in ours.curve["threshold"].tolist()
        assert "org_0003" not in set(ours.observations["org_id"])
        assert ours.dates["already_converted"].sum() > 0
        assert ours.curve["qualifies"].any() and ours.recommended is not None
