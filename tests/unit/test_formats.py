"""Every export shape PostHog writes reads into the same scores: Parquet with each codec and
JSON Lines plain or compressed, with nested or string `properties`."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plg_bridge.ingest.formats import ExportReadError
from plg_bridge.ingest.layout import is_data_file, parse_key
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from tests.builders import EXPORT_SCHEMA, event, export_name, group_identify
from tests.conftest import AS_OF

ROWS = [
    event("core_feature_used", "2026-11-18T10:00:00"),
    event("core_feature_used", "2026-11-18T11:00:00", org="org_b", only_groups=True),
    event("creation_event", "2026-11-12", distinct_id="u1"),
    event("integration_connected", "2026-11-12", props={"provider": "stripe"}),
    group_identify("org_a", "2026-11-02", name='Acme "Ltd" \u00e9'),
]
NAME = export_name("2026-11-18", "2026-11-19")


def _expected(settings, tmp_path):
    folder = tmp_path / "reference"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS, schema=EXPORT_SCHEMA), folder / NAME)
    return score_export(location(str(folder)), AS_OF, settings).scores


@pytest.mark.parametrize(
    ("codec", "ext"),
    [("zstd", "zst"), ("snappy", "sz"), ("gzip", "gz"), ("brotli", "br"), ("lz4", "lz4"), ("none", None)],
)
def test_parquet_every_codec(tmp_path, settings, codec, ext):
    name = NAME.replace(".parquet.zst", ".parquet" + (f".{ext}" if ext else ""))
    folder = tmp_path / "exports"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS, schema=EXPORT_SCHEMA), folder / name, compression=codec)
    scores = score_export(location(str(folder)), AS_OF, settings).scores
    assert scores.equals(_expected(settings, tmp_path))


def _jsonl(nested: bool) -> bytes:
    lines = []
    for row in ROWS:
        record = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        if nested:
            record["properties"] = json.loads(record["properties"])
        lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("codec", [None, "gzip", "brotli", "zstd", "lz4"])
@pytest.mark.parametrize("nested", [True, False], ids=["object-properties", "string-properties"])
def test_jsonl_plain_and_compressed(tmp_path, settings, codec, nested):
    ext = {None: "", "gzip": ".gz", "brotli": ".br", "zstd": ".zst", "lz4": ".lz4"}[codec]
    folder = tmp_path / "exports"
    folder.mkdir()
    data = _jsonl(nested)
    if codec:
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, codec) as out:
            out.write(data)
        data = sink.getvalue().to_pybytes()
    (folder / NAME.replace(".parquet.zst", f".jsonl{ext}")).write_bytes(data)
    scores = score_export(location(str(folder)), AS_OF, settings).scores
    assert scores.equals(_expected(settings, tmp_path))
    assert scores.loc[scores.org_id == "org_a", "org_name"].item() == 'Acme "Ltd" \u00e9'


def test_jsonl_line_that_is_not_json_names_file_and_line(tmp_path, settings):
    (tmp_path / "a.jsonl").write_bytes(_jsonl(True) + b"{not json\n")
    with pytest.raises(ExportReadError, match=r"a\.jsonl: line 6 is not JSON"):
        score_export(location(str(tmp_path)), AS_OF, settings)


def test_key_names_parse_with_split_parts_and_skip_manifests():
    f = parse_key("events/2026/11/18/2026-11-18T00:00:00+00:00-2026-11-18T01:00:00+00:00-3.parquet.zst")
    assert (f.start.hour, f.end.hour, f.part) == (0, 1, 3)
    assert not is_data_file("2026-11-18T00:00:00+00:00-2026-11-18T01:00:00+00:00_manifest.json")
    assert is_data_file("x/2026-11-18T00:00:00+00:00-2026-11-18T01:00:00+00:00.jsonl.br")
