"""The person-level models against their DuckDB twins on generated exports, row by row.

The pandas path (per-file partials, merged, then models as of T) and the SQL in include/sql/duckdb
(straight from the export files) are written independently; on the generator's data (anonymous
UTM-tagged visits that later `$identify`, `$set_once` $initial_* values, late and duplicated rows,
conversions with contract values, milestones) they must agree exactly on keys and counts and
within float tolerance on sums, rates and quantiles.
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
from plg_bridge.models import activation, attribution, groups, identity
from plg_bridge.pipeline import discover
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate

SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "duckdb"
END = dt.date(2026, 11, 20)
TABLES = {  # DuckDB table -> sort keys (also the row identity)
    "plg_person_keys": ["distinct_id"],
    "plg_first_touch": ["person_key"],
    "plg_revenue": ["source", "campaign"],
    "plg_persons": ["person_key"],
    "plg_cohorts": ["breakdown", "segment"],
    "plg_milestones": ["breakdown", "segment", "cohort", "milestone"],
    "plg_aha": ["breakdown", "segment"],
    "plg_correlation": ["event"],
    "plg_organizations": ["org_id"],
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oracle") / "exports"
    generate(str(out), 300_000, END, days=42, malformed_fraction=0.005)
    return out


def internal_domain(files: list[str]) -> str:
    """The email domain of the organization with the most identified members (a made-up 'us')."""
    con = duckdb.connect()
    return con.execute(
        """
        SELECT split_part(json_extract_string(properties, '$."$set".email'), '@', 2) AS domain
        FROM read_parquet(?) WHERE event = '$identify' AND json_valid(properties) AND domain <> ''
        GROUP BY domain ORDER BY count(*) DESC, domain LIMIT 1
        """,
        [files],
    ).fetchone()[0]


@pytest.fixture(scope="module")
def partials(exports) -> dict[str, rollup.Partial]:
    """Each export file rolled up once (rollup-time settings are the defaults in every test)."""
    from plg_bridge.config import load_settings

    loc = location(str(exports))
    return {f.key: rollup.rollup_file(loc, f.key, load_settings(env={})) for f in discover(loc)}


def merged(exports: Path, partials: dict[str, rollup.Partial], as_of: dt.datetime) -> rollup.Partial:
    """The partials of the files a run as of T may see: intervals that ended by T."""
    return rollup.merge(partials[f.key] for f in discover(location(str(exports)), as_of))


def pandas_models(partial: rollup.Partial, as_of: dt.datetime, settings) -> dict[str, pd.DataFrame]:
    attr = attribution.run(partial, as_of, settings)
    act = activation.run(partial, as_of, settings)
    return {
        "plg_person_keys": identity.stitch(
            partial.links, as_of, settings.exports.placeholder_ids, firsts=partial.firsts
        ),
        "plg_first_touch": attr.first_touch,
        "plg_revenue": attr.revenue,
        "plg_persons": act.persons,
        "plg_cohorts": act.cohorts,
        "plg_milestones": act.milestones,
        "plg_aha": act.aha,
        "plg_correlation": act.correlation,
        "plg_organizations": groups.organizations(partial, as_of, settings.models.test_org_ids),
    }


def duckdb_models(exports: Path, as_of: dt.datetime, settings) -> dict[str, pd.DataFrame]:
    files = [str(exports / f.key) for f in discover(location(str(exports)), as_of)]
    con = duckdb.connect()
    con.execute("SET VARIABLE files = ?", [files])
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [as_of])
    con.execute("SET VARIABLE placeholder_ids = ?", [list(settings.exports.placeholder_ids)])
    for name, value in dataclasses.asdict(settings.models).items():
        con.execute(f"SET VARIABLE {name} = ?", [list(value) if isinstance(value, tuple) else value])
    for script in ("identity", "exclusions", "attribution", "activation", "groups"):
        con.execute((SQL / f"{script}.sql").read_text())
    return {name: con.execute(f"SELECT * FROM {name}").df() for name in TABLES}


def assert_same(name: str, ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    keys = TABLES[name]
    theirs = theirs[list(ours.columns)]
    ours = ours.sort_values(keys, na_position="last").reset_index(drop=True)
    theirs = theirs.sort_values(keys, na_position="last").reset_index(drop=True)
    assert len(ours) == len(theirs), f"{name}: {len(ours)} rows here, {len(theirs)} in DuckDB"
    for column in ours.columns:
        a, b = ours[column], theirs[column]
        if pd.api.types.is_float_dtype(a.dtype):
            same = np.isclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=1e-6, equal_nan=True)
        else:
            left, right = a.astype(object), b.astype(object)
            same = (left == right).fillna(False).to_numpy(bool) | (a.isna() & b.isna()).to_numpy(bool)
        bad = np.flatnonzero(~same)
        assert not len(bad), (
            f"{name}.{column}: {len(bad)} rows differ, first {ours.iloc[bad[0]].to_dict()} vs {b.iloc[bad[0]]}"
        )


@pytest.mark.parametrize(
    "as_of", [dt.datetime(2026, 11, 20, tzinfo=dt.UTC), dt.datetime(2026, 11, 13, tzinfo=dt.UTC)]
)
def test_models_match_their_duckdb_twins(exports, partials, settings, as_of):
    files = sorted(str(p) for p in exports.iterdir())
    models = dataclasses.replace(  # non-default settings reach the SQL too
        settings.models,
        internal_email_domains=(internal_domain(files),),
        test_org_ids=("org_0003",),
        conversion_horizon_days=21,
        correlation_exclude_events=("$groupidentify",),
    )
    cfg = dataclasses.replace(settings, models=models)
    ours = pandas_models(merged(exports, partials, as_of), as_of, cfg)
    theirs = duckdb_models(exports, as_of, cfg)
    for name in TABLES:
        assert_same(name, ours[name], theirs[name])
    # the comparison is only worth something if the data exercises the models
    assert ours["plg_first_touch"]["channel"].nunique() == 2
    assert set(ours["plg_persons"]["cohort"]) == {"converted", "not_converted", "pending"}
    assert len(ours["plg_correlation"]) > 5 and len(ours["plg_aha"]) > 0
    assert ours["plg_revenue"]["conversions"].sum() > 5


def test_exclusions_bite_on_generated_data(exports, partials, settings):
    files = sorted(str(p) for p in exports.iterdir())
    as_of = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    partial = merged(exports, partials, as_of)
    models = dataclasses.replace(
        settings.models, internal_email_domains=(internal_domain(files),), test_org_ids=("org_0003",)
    )
    result = attribution.run(partial, as_of, dataclasses.replace(settings, models=models))
    assert result.quality["excluded_internal_email"] > 0
    assert result.quality["excluded_test_organization"] > 0
    plain = attribution.run(partial, as_of, settings)
    assert len(plain.first_touch) > len(result.first_touch)
