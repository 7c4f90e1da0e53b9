"""A partial stored by an older format (creators keyed by one `user` column) is never read: the
format is part of the partial's prefix, so the file is rolled up again after an upgrade."""

from __future__ import annotations

from plg_bridge import pipeline
from plg_bridge.ingest import rollup
from plg_bridge.storage import location
from tests.support.clocks import AS_OF
from tests.support.events import event, write_export


def test_a_partial_of_the_previous_format_is_rolled_up_again(tmp_path, settings):
    write_export(tmp_path / "exports", [event("creation_event", "2026-11-01T05:00")])
    exports, work = location(str(tmp_path / "exports")), location(str(tmp_path / "work"))
    [file] = pipeline.discover(exports, AS_OF)
    old = f"partials/{file.key}/{file.fingerprint}"  # where format 1 stored it
    rollup.write(rollup.rollup_file(exports, file.key, settings), work, old)
    assert pipeline.partial_prefix(file) != old
    assert pipeline.pending(work, [file]) == [file]
    pipeline.rollup_to(exports, work, file, settings)
    assert pipeline.pending(work, [file]) == []
    creators = rollup.read(work, pipeline.partial_prefix(file)).creators
    assert creators[["distinct_id", "person_id"]].values.tolist() == [["user_1", "person-user_1"]]
