"""No `properties` document can crash a run, and each row reads the same whatever its neighbours.

The reference is written from the outside definition (ingest/properties.py's docstring): the text
is strict UTF-8, `json.loads` of it must be an object, wanted strings arrive as themselves and
other values as their compact JSON text. Hypothesis generates documents (null, arrays, scalars,
empty and whitespace, BOM, NUL bytes, invalid UTF-8, deep nesting, huge strings, duplicate keys,
`$group_0` of every JSON type, truncations) and checks every row alone, and mixed into clean
batches of several sizes with chunk boundaries anywhere, against that reference.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from plg_bridge.ingest import properties as props

SCHEMA = pa.schema(
    [
        pa.field("$group_0", pa.string()),
        pa.field("$groups", pa.struct([("organization", pa.string())])),
        pa.field("utm_source", pa.string()),
        pa.field("$set", pa.struct([("email", pa.string()), ("opt_out", pa.string())])),
    ]
)
SET_ASIDE = {props.NULL, props.MALFORMED, props.TOO_DEEP, props.UNENCODABLE}


# -- the reference -----------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _valid_unicode(text: str | None) -> bool:
    if text is None:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reference(raw: bytes | None, schema: pa.Schema = SCHEMA) -> tuple[dict | None, str]:
    """(row, "ok") or (None, kind) with kind in null / bad / deep / unencodable."""
    if raw is None or raw == b"":
        return None, "null"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "bad"
    try:
        obj = json.loads(text)
    except RecursionError:
        return None, "deep"
    except ValueError:
        return None, "bad"
    if obj is None:
        return None, "null"
    if not isinstance(obj, dict):
        return None, "bad"
    row: dict[str, object] = {}
    for field in schema:
        value = obj.get(field.name)
        if pa.types.is_struct(field.type):
            row[field.name] = (
                {sub.name: _text(value.get(sub.name)) for sub in field.type}
                if isinstance(value, dict)
                else None
            )
        else:
            row[field.name] = _text(value)
    leaves = [v for v in row.values() if not isinstance(v, dict)]
    leaves += [x for v in row.values() if isinstance(v, dict) for x in v.values()]
    if not all(_valid_unicode(x) for x in leaves):
        return None, "unencodable"
    return row, "ok"


KIND = {props.NULL: "null", props.MALFORMED: "bad", props.TOO_DEEP: "deep", props.UNENCODABLE: "unencodable"}


def check_row(raw: bytes | None, got: dict, reason: str | None) -> None:
    want, kind = reference(raw)
    if kind == "deep":  # json.loads cannot tell; Arrow may read it, else it is set aside as too deep
        assert reason in (None, props.TOO_DEEP), (raw[:80], reason)
        return
    if kind == "ok":
        assert reason is None, (raw[:200], reason)
        assert got == want, (raw[:200], got, want)
    else:
        assert KIND.get(reason) == kind, (raw if raw is None else raw[:200], reason, kind)
        assert all(v is None for v in got.values()), got


def as_array(raws: list[bytes | None]) -> pa.Array:
    return pa.array(raws, pa.binary()).view(pa.string())  # like Parquet: UTF-8 not checked


def run(raws: list[bytes | None]) -> tuple[list[dict], list]:
    table, reasons = props.extract(as_array(raws), SCHEMA)
    assert table.schema.equals(SCHEMA) and table.num_rows == len(raws)
    return table.to_pylist(), list(reasons)


# -- documents ---------------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(["$group_0", "$groups", "utm_source", "$set", "email", "organization", "x", "é", ""])
objects = st.dictionaries(KEYS | st.text(max_size=4), json_values, max_size=6)
clean = st.fixed_dictionaries(
    {
        "$group_0": st.text(min_size=1, max_size=8),
        "$groups": st.fixed_dictionaries({"organization": st.text()}),
    },
    optional={"utm_source": st.text(), "$set": st.fixed_dictionaries({"email": st.text()}), "n": json_values},
).map(lambda d: json.dumps(d, separators=(",", ":")).encode())


@st.composite
def serialised(draw: st.DrawFn) -> bytes:
    obj = draw(objects)
    text = json.dumps(
        obj,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",\n", ":\t")])),
    )
    return text.encode("utf-8", "surrogatepass")


def _deep(depth: int, opener: str = "[") -> bytes:
    closer = "]" if opener == "[" else "}"
    inner = opener + ('"k":' if opener == "{" else "")
    body = inner * depth + ("1" if opener == "[" else '"v":1') + closer * depth
    return ('{"$group_0":"deep","x":' + body + "}").encode()


SPECIAL: list[bytes | None] = [
    None,
    b"",
    b"null",
    b" null ",
    b"[1, 2]",
    b"[]",
    b"{}",
    b"1",
    b"-0.5e3",
    b'"text"',
    b"true",
    b"   ",
    b"\n",
    b' {"$group_0":"lead space"}',
    b'{"$group_0":"trail space"} ',
    b'\xef\xbb\xbf{"$group_0":"bom"}',
    b'{"$group_0":"nul\x00inside"}',
    b'{"$group_0":"a"}\x00',
    b"\x00",
    b'{"$group_0":"\xff"}',
    b'{"$group_0":"\xc3"}',
    b'{"$group_0":"ok","y":"\xed\xa0\x80"}',  # an encoded surrogate: not UTF-8
    b'{"$group_0":"\\ud800"}',  # a lone surrogate escape: json.loads reads it, Arrow cannot hold it
    b'{"$group_0":"x","other":"\\ud800"}',  # ... fine when the key is not wanted
    b'{"$group_0":"first","$group_0":"last"}',
    b'{"$group_0":"first","$group\\u005f0":"escaped last"}',
    b'{"$groups":{"organization":"a","organization":"b"}}',
    b'{"$group_0":42}',
    b'{"$group_0":4.50}',
    b'{"$group_0":1e400}',
    b'{"$group_0":null}',
    b'{"$group_0":{"id":"org"}}',
    b'{"$group_0":["a"]}',
    b'{"$group_0":true}',
    b'{"$group_0":NaN}',
    b'{"$group_0":-Infinity}',
    b'{"$groups":"org_x"}',
    b'{"$groups":null}',
    b'{"$groups":{}}',
    b'{"$groups":{"organization":7}}',
    b'{"$set":{"email":"a@b.c","opt_out":false}}',
    b'{"$group_0":"a"} {"$group_0":"b"}',
    b'{"$group_0":"a"} null',
    b'{"$group_0":"a"}\nnull',
    b'{"$group_0":"a"}}',
    b'{"$group_0":"a"',
    b'{"$group_0":"a\nb"}',
    b'{"$group_0":\n"line break between tokens"}',
    b'{"$group_0":"tab\tin string"}',
    b'{"$group_0":"\\u00e9\\n\\"q\\""}',
    b"{'$group_0':'single'}",
    b'{"$group_0":"a",}',
    b'{"$group_0":01}',
    _deep(50),
    _deep(600),
    _deep(3000),
    _deep(3000, "{"),
    _deep(200_000),
    b'{"$group_0":"' + b"x" * (5 << 20) + b'"}',  # over FAST_MAX_BYTES
    b'{"$group_0":"big","pad":"' + b"y" * 300_000 + b'"}',
]

truncated = clean.flatmap(lambda doc: st.integers(0, len(doc)).map(lambda i: doc[:i]))
mutated = st.tuples(clean, st.integers(0, 400), st.binary(min_size=1, max_size=3)).map(
    lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
)
documents = (
    st.sampled_from(SPECIAL) | serialised() | clean | truncated | mutated | st.binary(max_size=12) | st.none()
)


# -- properties ----------------------------------------------------------------------------------


def test_every_special_document_alone_matches_the_reference() -> None:
    for raw in SPECIAL:
        rows, reasons = run([raw])
        check_row(raw, rows[0], reasons[0])


def test_the_special_documents_together_read_as_each_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    alone = [run([raw]) for raw in SPECIAL]
    for chunk in (1, 3, 16, props.CHUNK):
        monkeypatch.setattr(props, "CHUNK", chunk)
        rows, reasons = run(SPECIAL)
        assert rows == [a[0][0] for a in alone]
        assert reasons == [a[1][0] for a in alone]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents, min_size=1, max_size=12))
@example([b"null", b'{"$group_0":"a"'])  # the crash of issue 9
def test_documents_match_the_reference_alone_and_together(raws: list[bytes | None]) -> None:
    rows, reasons = run(raws)
    for raw, row, reason in zip(raws, rows, reasons, strict=True):
        check_row(raw, row, reason)
        assert run([raw]) == ([row], [reason])  # the same row alone


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=documents,
    background=st.lists(clean, min_size=1, max_size=40),
    size=st.sampled_from([1, 2, 5, 40, 300]),
    where=st.integers(0, 300),
    chunk=st.sampled_from([1, 2, 7, 64, props.CHUNK]),
)
def test_a_row_reads_the_same_mixed_into_clean_batches(
    doc: bytes | None, background: list[bytes], size: int, where: int, chunk: int
) -> None:
    alone_rows, alone_reasons = run([doc])
    batch = [background[i % len(background)] for i in range(size)]
    at = where % (len(batch) + 1)
    batch = [*batch[:at], doc, *batch[at:]]
    saved = props.CHUNK
    props.CHUNK = chunk
    try:
        rows, reasons = run(batch)
    finally:
        props.CHUNK = saved
    assert (rows[at], reasons[at]) == (alone_rows[0], alone_reasons[0])
    check_row(doc, rows[at], reasons[at])
    for i, raw in enumerate(batch):
        if i != at:
            check_row(raw, rows[i], reasons[i])


def test_the_screen_keeps_hazards_away_from_arrow() -> None:
    hazards = [
        None,
        b"",
        b"null",
        b"[1]",
        b'\xef\xbb\xbf{"a":1}',
        b'{"a":"\x00"}',
        b'{"a":"\xff"}',
        b'{"a":\n1}',
    ]
    hazards.append(b" " + b'{"a":1}')
    assert not props.screen(as_array(hazards)).any()
    assert props.screen(as_array([b'{"a":1}', b"{}"])).all()


def test_printable_escapes_invalid_utf8_for_the_quarantine() -> None:
    out = props.printable(as_array([b'{"a":"\xff"}', b"{}", None]))
    assert out.to_pylist() == ['{"a":"\\xff"}', "{}", None]


# -- the crash itself ----------------------------------------------------------------------------

_OLD_PATH = """
import pyarrow as pa, pyarrow.json as pj
# what ingest/properties.py did before issue 9: every document of the batch, one per line, at once
data = b'null\\n{"$group_0": "org_a"\\n'
schema = pa.schema([("$group_0", pa.string())])
try:
    pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=1 << 20, use_threads=False),
                 parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
except pa.ArrowInvalid:
    print("refused")
"""

_NEW_PATH = """
import pyarrow as pa
from plg_bridge.ingest import properties as props
docs = pa.array(["null", '{"$group_0": "org_a"', '{"$group_0": "org_b"}', None, "[1]"])
table, reasons = props.extract(docs, pa.schema([("$group_0", pa.string())]))
print(table.column(0).to_pylist(), list(reasons))
"""


def test_the_old_path_segfaults_and_the_new_one_does_not() -> None:
    old = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_OLD_PATH)], capture_output=True, text=True, check=False
    )
    assert old.returncode == -signal.SIGSEGV, (old.returncode, old.stdout, old.stderr[-500:])
    new = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_NEW_PATH)], capture_output=True, text=True, check=True
    )
    assert new.stdout.strip() == (
        "[None, None, 'org_b', None, None] "
        "['null_properties', 'malformed_properties', None, 'null_properties', 'malformed_properties']"
    )


# -- the same through the reader (Parquet file, record batches of several sizes) -------------------


def _org(raw: bytes | None) -> tuple[str | None, str]:
    """The reference organization of a row (`$group_0`, else `$groups.organization`) and its kind."""
    row, kind = reference(raw)
    if kind != "ok":
        return None, kind
    groups = row["$groups"] or {}
    return (row["$group_0"] if row["$group_0"] is not None else groups.get("organization")), kind


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raws=st.lists(documents, min_size=1, max_size=20), batch_rows=st.sampled_from([1, 3, 7, 131_072]))
def test_the_reader_gives_each_row_the_reference_outcome(raws: list[bytes | None], batch_rows: int) -> None:
    import dataclasses
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from plg_bridge.config import Settings
    from plg_bridge.ingest.reader import iter_batches
    from plg_bridge.storage import location
    from tests.support.events import EXPORT_SCHEMA, event

    rows = [event("core_feature_used", "2026-11-18", uuid=f"u{i}") for i in range(len(raws))]
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    table = table.set_column(table.schema.get_field_index("properties"), "properties", as_array(raws))
    cfg = dataclasses.replace(Settings().exports, batch_rows=batch_rows)
    with tempfile.TemporaryDirectory() as folder:
        pq.write_table(table, Path(folder) / "x.parquet")
        batches = list(iter_batches(location(folder), "x.parquet", cfg, ("core_feature_used",)))
    events = pa.concat_tables([b.events for b in batches]).to_pylist()
    quarantine = pa.concat_tables([b.quarantine for b in batches]).to_pylist()
    got = {e["row"]: (e["org_id"], "ok") for e in events}
    got.update({q["row"]: (None, KIND[q["reason"]]) for q in quarantine})
    assert sorted(got) == list(range(len(raws)))  # every row once: read or quarantined
    for i, raw in enumerate(raws):
        org, kind = _org(raw)
        if kind == "deep":
            assert got[i][1] in ("ok", "deep")
        else:
            assert got[i] == (org, kind), (raw if raw is None else raw[:120], got[i])


# -- extra keys whose numbers and booleans arrive as their JSON text (reader.quote_scalars) ----------

EXTRA = pa.schema(
    [("contract_value", pa.string()), ("$set", pa.struct([("email", pa.string()), ("opt_out", pa.string())]))]
)
LITERALS = [
    "1200",
    "12.50",
    "-0",
    "1e400",
    "2E+3",
    "true",
    "false",
    "null",
    '"text"',
    "[1]",
    '{"a":1}',
    "01",
    "1.",
    "NaN",
]
_QUOTE = re.compile(
    rb'"(contract_value|email|opt_out)"[ \t\n\r\f]*:[ \t\n\r\f]*(true|false|-?[0-9][0-9.eE+\-]*)'
)


@st.composite
def with_literals(draw: st.DrawFn) -> bytes:
    value = draw(st.sampled_from(LITERALS))
    space = draw(st.sampled_from(["", " ", "\n"]))
    where = draw(st.sampled_from(["top", "set", "nested"]))
    if where == "top":
        return f'{{"$group_0":"o","contract_value":{space}{value}}}'.encode()
    if where == "set":
        return f'{{"$set":{{"email":{space}{value},"opt_out":{value}}}}}'.encode()
    return f'{{"x":{{"contract_value":{value}}},"contract_value":"kept"}}'.encode()


def quoted_reference(raw: bytes | None) -> tuple[dict | None, str]:
    """The reference read of the document with the extra keys' numbers and booleans quoted."""
    if raw is None:
        return reference(raw)
    row, kind = reference(_QUOTE.sub(rb'"\1":"\2"', raw), pa.schema([*SCHEMA, *EXTRA]))
    if row is None:
        return None, kind
    return {"contract_value": row["contract_value"], "$set": row["$set"]}, kind


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raws=st.lists(with_literals() | documents, min_size=1, max_size=20),
    batch_rows=st.sampled_from([1, 4, 1000]),
)
def test_extra_keys_read_as_quoted_whatever_the_neighbours(raws: list[bytes | None], batch_rows: int) -> None:
    import dataclasses
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from plg_bridge.config import Settings
    from plg_bridge.ingest.reader import iter_batches
    from plg_bridge.storage import location
    from tests.support.events import EXPORT_SCHEMA, event

    rows = [event("core_feature_used", "2026-11-18", uuid=f"u{i}") for i in range(len(raws))]
    table = pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
    table = table.set_column(table.schema.get_field_index("properties"), "properties", as_array(raws))
    cfg = dataclasses.replace(Settings().exports, batch_rows=batch_rows)
    with tempfile.TemporaryDirectory() as folder:
        pq.write_table(table, Path(folder) / "x.parquet")
        batches = list(iter_batches(location(folder), "x.parquet", cfg, None, properties=EXTRA))
    got = {
        e["row"]: ({"contract_value": e["contract_value"], "$set": e["$set"]}, "ok")
        for b in batches
        for e in b.events.to_pylist()
    }
    got.update({q["row"]: (None, KIND[q["reason"]]) for b in batches for q in b.quarantine.to_pylist()})
    assert sorted(got) == list(range(len(raws)))
    for i, raw in enumerate(raws):
        want = quoted_reference(raw)
        if want[1] == "deep":
            assert got[i][1] in ("ok", "deep")
        else:
            assert got[i] == want, (raw if raw is None else raw[:160], got[i], want)
