"""Typed rows to Arrow: the JSON-reader route gives exactly the table pa.Table.from_pylist gives."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal

import pyarrow as pa
import pytest

from invoice_warehouse.engine.landing import QUARANTINE_SCHEMA, rows_to_table
from invoice_warehouse.engine.schema import Field, RecordError

UTC = dt.timezone.utc
SCHEMA = pa.schema([
    pa.field("s", pa.string()), pa.field("i", pa.int64()), pa.field("b", pa.bool_()),
    pa.field("d2", pa.decimal128(18, 2)), pa.field("d8", pa.decimal128(38, 8)), pa.field("d0", pa.decimal128(18, 0)),
    pa.field("ts", pa.timestamp("us", tz="UTC")), pa.field("day", pa.date32()),
])
ROWS = [
    {"s": "Café \"quoted\" \\ back\nslash\u2028 \u0000", "i": 2 ** 63 - 1, "b": True, "d2": Decimal("99999999999999.99"),
     "d8": Decimal("0.00000001"), "d0": Decimal("100"), "ts": dt.datetime(2025, 3, 30, 1, 2, 3, 456789, tzinfo=UTC),
     "day": dt.date(1969, 12, 31)},
    {"s": "", "i": -(2 ** 63), "b": False, "d2": Decimal("-0.01"), "d8": Decimal("0E-8"), "d0": Decimal("-5"),
     "ts": dt.datetime(1970, 1, 1, tzinfo=UTC), "day": dt.date(2026, 2, 28)},
    {"s": None, "i": None, "b": None, "d2": None, "d8": None, "d0": None, "ts": None, "day": None},
    {"s": "only s"},  # absent keys are null, as from_pylist makes them
    {"s": "x", "ts": dt.datetime(2025, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=7)))},
]


def test_rows_to_table_is_from_pylist():
    got = rows_to_table(ROWS, SCHEMA)
    assert got.schema == SCHEMA
    assert got.equals(pa.Table.from_pylist(ROWS, schema=SCHEMA))
    assert got.column("d8").to_pylist()[0] == Decimal("1E-8")
    assert got.column("ts").to_pylist()[4] == dt.datetime(2025, 1, 1, 5, tzinfo=UTC)
    assert got.column("day").to_pylist()[:2] == [dt.date(1969, 12, 31), dt.date(2026, 2, 28)]


def test_quarantine_rows_convert_too():
    row = {"provider": "p", "entity": "e", "reason": "r", "raw": "{}", "source": "GET /x",
           "_extracted_at": dt.datetime(2025, 1, 1, tzinfo=UTC), "_run_id": "run", "_window": "w", "_batch_id": "b"}
    assert rows_to_table([row], QUARANTINE_SCHEMA).to_pylist() == [{**row}]


def test_an_extract_process_does_not_import_pandas(tmp_path):
    # pa.Table.from_pylist imports pandas on its first call (a fixed cost of every extract task).
    code = (
        "import datetime as dt, sys\n"
        "from invoice_warehouse.engine.landing import PartitionWriter\n"
        "from invoice_warehouse.engine.schema import Field, Schema\n"
        "s = Schema.of('id', Field('at', 'timestamp'), Field('amount', 'decimal(18,2)'))\n"
        f"w = PartitionWriter({str(tmp_path)!r}, 'p', 'e', 'w', s, 'run', dt.datetime.now(dt.timezone.utc))\n"
        "w.write([s.parse({'id': 1, 'at': '2025-01-01T00:00:00Z', 'amount': '1.50'})])\n"
        "w.quarantine('{}', 'bad', 'GET /x')\n"
        "m = w.commit({})\n"
        "print(m['records'], m['quarantined'], 'pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1", "False"]


@pytest.mark.parametrize("value,reason", [
    (2 ** 63, "field 'n': 9223372036854775808 is outside the 64-bit integer range"),
    ("-9223372036854775809", "field 'n': '-9223372036854775809' is outside the 64-bit integer range"),
    (Decimal("Infinity"), "field 'n': Decimal('Infinity') is not an integer"),
])
def test_integers_outside_int64_are_record_errors(value, reason):
    with pytest.raises(RecordError) as exc:
        Field("n", "int").parse(value)
    assert str(exc.value) == reason
