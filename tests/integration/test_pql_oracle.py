"""The PQL scores of the pandas path against their DuckDB twin (include/sql/duckdb/pql.sql), row by row.

`pipeline.score_export` (per-file partials, merged, scored as of T) and the SQL (straight from the
export files, one row per uuid over all files) are written independently; on the generator's data
(late rows, duplicates in a file and re-deliveries into later files, `$groups`
without `$group_0`, renamed organizations, malformed and null `properties` once) they must produce the
same organizations with the same counts, score, PQL flag and name. The same SQL is the baseline of
`make bench`. Active creators are PostHog persons: the SQL side resolves them with identity.sql
(PostHog's merge rules in DuckDB) through bench/duckdb_pql.oracle_scores, and a hand-built export
with merges among creators (`$merge_dangerously`, anonymous identified into identified, refused
identifies, aliases, placeholder and illegal ids) pins what generated data does not produce.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from bench.duckdb_pql import oracle_scores
from plg_bridge.models.pql import COLUMNS
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate

SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "duckdb" / "pql.sql"
END = dt.date(2026, 11, 20)
ROWS = 100_000
PQL_EVENTS = ("core_feature_used", "creation_event", "integration_connected")


@pytest.fixture(scope="module", params=[0.0, 0.01], ids=["clean", "malformed"])
def exports(request, tmp_path_factory) -> tuple[Path, float, dict]:
    """The generated export folder, its malformed share, and a cache of pandas results by as-of."""
    out = tmp_path_factory.mktemp("pql-oracle") / "exports"
    generate(str(out), ROWS, END, days=28, malformed_fraction=request.param)
    return out, request.param, {}


def pandas_result(exports, settings, as_of: dt.datetime, prune: bool = True):
    folder, _, cache = exports
    if (as_of, prune) not in cache:
        cache[as_of, prune] = score_export(location(str(folder)), as_of, settings, prune=prune)
    return cache[as_of, prune]


def files_of(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if ".parquet" in p.name)


def duckdb_scores(folder: Path, as_of: dt.datetime, placeholder_ids=None) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET VARIABLE files = ?", [files_of(folder)])
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [as_of])
    return oracle_scores(con, list(placeholder_ids) if placeholder_ids is not None else None)


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain Python values (ints, bools, str or None) in COLUMNS order, sorted by org_id."""
    frame = frame[COLUMNS].sort_values("org_id", kind="stable").reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    for column in COLUMNS:
        values = frame[column].astype(object)
        out[column] = values.where(values.notna(), None)
    for column in (
        "events_this_week",
        "events_last_week",
        "active_creators",
        "integrations_connected",
        "pql_score",
    ):
        out[column] = out[column].map(int)
    out["is_pql"] = out["is_pql"].map(bool)
    return out


def assert_same_table(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    a, b = normalised(ours), normalised(theirs)
    only_ours = sorted(set(a["org_id"]) - set(b["org_id"]))
    only_theirs = sorted(set(b["org_id"]) - set(a["org_id"]))
    assert not only_ours and not only_theirs, (
        f"organizations only in pandas: {only_ours[:10]}, only in DuckDB: {only_theirs[:10]}"
    )
    for column in COLUMNS[1:]:
        differ = [(org, x, y) for org, x, y in zip(a["org_id"], a[column], b[column], strict=True) if x != y]
        assert not differ, f"{column}: {len(differ)} organizations differ (org, pandas, DuckDB): {differ[:5]}"
    assert a.to_dict("records") == b.to_dict("records")


@pytest.mark.parametrize(
    "as_of",
    [dt.datetime(2026, 11, 20, tzinfo=dt.UTC), dt.datetime(2026, 11, 13, tzinfo=dt.UTC)],
    ids=["end", "week-earlier"],
)
def test_pql_scores_match_the_duckdb_twin(exports, settings, as_of):
    folder, _, _ = exports
    result = pandas_result(exports, settings, as_of)
    theirs = duckdb_scores(folder, as_of, settings.exports.placeholder_ids)
    assert_same_table(result.scores, theirs)

    # the comparison is only worth something if the data exercises the model
    scores = result.scores
    assert len(scores) > 20
    assert scores["is_pql"].any() and not scores["is_pql"].all()
    assert (scores["events_last_week"] > 0).any() and (scores["integrations_connected"] > 0).any()
    assert set(scores["pql_score"]) >= {0, 35} or scores["pql_score"].nunique() > 5
    assert scores["org_name"].notna().any()
    q = result.quality
    assert q["duplicates"] > 0  # copies within a file
    assert q["duplicates_across_files"] > 0  # the generator's re-deliveries into later files
    if as_of.date() < END:
        assert q["events_after_as_of"] > 0


def unparseable(folder: Path, start: dt.datetime | None = None, end: dt.datetime | None = None) -> tuple:
    """(null, malformed) PQL-event rows by DuckDB's reading, with a timestamp in [start, end)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    low = start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    high = end or dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    return con.execute(
        """
        SELECT count(*) FILTER (WHERE properties IS NULL OR properties = '' OR properties = 'null')
             , count(*) FILTER (WHERE properties IS NOT NULL AND properties NOT IN ('', 'null')
                                  AND NOT CASE WHEN json_valid(properties)
                                               THEN json_type(properties) = 'OBJECT' ELSE false END)
        FROM read_parquet(?) WHERE event IN ? AND timestamp >= ?::TIMESTAMPTZ AND timestamp < ?::TIMESTAMPTZ
        """,
        [files_of(folder), list(PQL_EVENTS), low, high],
    ).fetchone()


def test_quarantined_rows_are_the_ones_duckdb_cannot_parse(exports, settings):
    """Nothing silently dropped: the PQL-event rows set aside by an unpruned read are exactly the
    rows whose properties DuckDB does not accept as a JSON object; a pruned read (the CLI's
    default) sets aside at least every such row of the score window, at most all of them."""
    folder, malformed, _ = exports
    as_of = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    result = pandas_result(exports, settings, as_of, prune=False)
    bad = unparseable(folder)
    q = result.quality
    assert (q.get("quarantined_null_properties", 0), q.get("quarantined_malformed_properties", 0)) == bad
    assert len(result.quarantine) == sum(bad)
    if malformed:
        assert bad[0] > 0 and bad[1] > 0
    else:
        assert bad == (0, 0)
    pruned = pandas_result(exports, settings, as_of)
    in_window = unparseable(folder, as_of - dt.timedelta(days=14), as_of)
    assert sum(in_window) <= len(pruned.quarantine) <= sum(bad)
    if malformed:
        assert sum(in_window) > 0


def merged_creators_rows() -> list[dict]:
    """One organization per identity case (creators by hand, as of T = 2026-11-20):
    org_md   usr_a, usr_b identified; $merge_dangerously(usr_a, usr_b) on 11-15      -> 1 person
    org_late the same merge at T                                                   -> 2
    org_anon anon_x creates, then $identify(usr_1, anon_x); usr_1 identified before   -> 1
    org_ref  usr_c, usr_d identified; $identify(usr_d, $anon_distinct_id=usr_c)      -> 2 (refused)
    org_al   anon_y creates; $create_alias(usr_2, anon_y)                            -> 1
    org_ph   usr_3, usr_4 each identify with $anon_distinct_id "anonymous"; " anonymous " without
             person_id creates; "guest" with usr_3's person_id creates               -> 2
    org_pid  laptop and phone share person_id p9 (PostHog merged them)              -> 1
    Each also has a core event this week and an integration (65 points before creators)."""
    from tests.support.events import alias, event, identify

    def create(org: str, who: str, at: str, person: str | None = None) -> dict:
        return event("creation_event", at, org, distinct_id=who, person_id=person)

    rows = [
        identify("usr_a", None, "2026-11-01", person_id="pa"),
        identify("usr_b", None, "2026-11-01", person_id="pb"),
        alias("usr_a", "usr_b", "2026-11-15", name="$merge_dangerously"),
        create("org_md", "usr_a", "2026-11-10", "pa"),
        create("org_md", "usr_b", "2026-11-11", "pb"),
        create("org_md", "usr_e", "2026-11-11", "pe"),
        identify("usr_f", None, "2026-11-01", person_id="pf"),
        identify("usr_g", None, "2026-11-01", person_id="pg"),
        alias("usr_f", "usr_g", "2026-11-20T00:00", name="$merge_dangerously"),
        create("org_late", "usr_f", "2026-11-10", "pf"),
        create("org_late", "usr_g", "2026-11-11", "pg"),
        identify("usr_1", None, "2026-11-01", person_id="p1"),
        create("org_anon", "anon_x", "2026-11-09", "px"),
        create("org_anon", "usr_1", "2026-11-12", "p1"),
        identify("usr_1", "anon_x", "2026-11-13", person_id="p1"),
        identify("usr_c", None, "2026-11-01", person_id="pc"),
        identify("usr_d", None, "2026-11-02", person_id="pd"),
        create("org_ref", "usr_c", "2026-11-10", "pc"),
        create("org_ref", "usr_d", "2026-11-10", "pd"),
        identify("usr_d", "usr_c", "2026-11-12", person_id="pd"),
        create("org_al", "anon_y", "2026-11-08", "py"),
        create("org_al", "usr_2", "2026-11-18", "p2"),
        alias("usr_2", "anon_y", "2026-11-16"),
        identify("usr_3", "anonymous", "2026-11-01", person_id="p3"),
        identify("usr_4", "anonymous", "2026-11-01", person_id="p4"),
        create("org_ph", "usr_3", "2026-11-10", "p3"),
        create("org_ph", "usr_4", "2026-11-10", "p4"),
        create("org_ph", " anonymous ", "2026-11-11", ""),
        create("org_ph", "guest", "2026-11-12", "p3"),
        create("org_pid", "laptop", "2026-11-08", "p9"),
        create("org_pid", "phone", "2026-11-18", "p9"),
    ]
    for org in ("org_md", "org_late", "org_anon", "org_ref", "org_al", "org_ph", "org_pid"):
        rows += [
            event("core_feature_used", "2026-11-18", org),
            event("integration_connected", "2026-11-18", org),
        ]
    return rows


def test_creators_resolved_through_merges_match_posthogs_rules(tmp_path, settings):
    from plg_bridge.pipeline import score_merged
    from tests.support.clocks import AS_OF
    from tests.support.events import partial_of, write_export

    rows = merged_creators_rows()
    folder = tmp_path / "exports"
    write_export(folder, rows)
    cli = score_export(location(str(folder)), AS_OF, settings).scores
    theirs = duckdb_scores(folder, AS_OF, settings.exports.placeholder_ids)
    assert_same_table(cli, theirs)
    dag = score_merged(partial_of(tmp_path / "dag", [rows], settings), AS_OF, settings).scores
    assert_same_table(dag, theirs)
    made = cli.set_index("org_id")["active_creators"].to_dict()
    assert made == {
        "org_md": 2,  # usr_a + usr_b merged, usr_e
        "org_late": 2,
        "org_anon": 1,
        "org_ref": 2,
        "org_al": 1,
        "org_ph": 2,
        "org_pid": 1,
    }
    # velocity 40 + integration 25 + 10 per person
    assert cli.set_index("org_id")["pql_score"].to_dict() == {o: 65 + 10 * n for o, n in made.items()}
