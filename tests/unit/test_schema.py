"""Exact typing: decimals without floats, UTC timestamps with declared zones, sentinels, _extra."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from invoice_warehouse.engine.http import parse_json
from invoice_warehouse.engine.schema import Field, RecordError, Schema

UTC = dt.timezone.utc


def test_money_strings_and_json_numbers_are_exact():
    f = Field("amount", "decimal(18,6)")
    body = parse_json(b'{"a": 1240.2835, "b": "399.00", "c": 0.1}')
    assert f.parse(body["a"]) == Decimal("1240.283500")
    assert f.parse(body["b"]) == Decimal("399.000000")
    assert f.parse(body["c"]) + f.parse(body["c"]) + f.parse(body["c"]) == Decimal("0.3")


@pytest.mark.parametrize("value,reason", [
    ("12,5", "field 'amount': '12,5' is not a number"),
    (1.5, "field 'amount': float 1.5 is not an exact amount"),
    ("1.005", "field 'amount': 1.005 has more than 2 decimal places"),
    (True, "field 'amount': True is not a number"),
    ("NaN", "field 'amount': 'NaN' is not a number"),
])
def test_bad_money_is_refused_with_a_reason(value, reason):
    with pytest.raises(RecordError) as exc:
        Field("amount", "decimal(18,2)").parse(value)
    assert str(exc.value) == reason


@pytest.mark.parametrize("value", [
    Decimal("1240.2835"), Decimal("12.5"), Decimal("-0"), Decimal("0E-9"), Decimal("1E+3"), Decimal("1.00000000"),
    Decimal("1.0000005"), Decimal("999999999999.999999"), Decimal("1000000000000"), Decimal("NaN"),
    Decimal("Infinity"), 7, -12, 10 ** 12, 10 ** 40, "399.00", "-.5", "1e3", "1.5e-7", "12,5", " 1.5", "1.5 ",
    "1.5\n", "NaN", "Infinity", "", True, 1.5,
])
def test_the_schema_parser_types_decimals_as_the_field_does(value):
    """The compiled parser's converter (fast path for JSON numbers, ints and numeric text) gives the
    value, or the error, that Field.parse gives (the parser never calls it with None)."""
    f = Field("amount", "decimal(18,6)")
    convert = f.converter()
    try:
        expected = f.parse(value)
    except Exception as exc:  # noqa: BLE001 - the same error, whatever its type
        with pytest.raises(type(exc)) as got:
            convert(value)
        assert str(got.value) == str(exc)
    else:
        got = convert(value)
        assert (got, str(got)) == (expected, str(expected))


def test_timestamps_become_utc_with_the_declared_source_zone():
    jakarta = Field("Date", "timestamp", tz="Asia/Jakarta")
    assert jakarta.parse("2020-05-27T11:10:50.57") == dt.datetime(2020, 5, 27, 4, 10, 50, 570000, tzinfo=UTC)
    assert jakarta.parse("0001-01-01T00:00:00") is None  # DealPOS null date
    offset = Field("date", "timestamp")
    assert offset.parse("2024-05-03T16:40:41+07:00") == dt.datetime(2024, 5, 3, 9, 40, 41, tzinfo=UTC)
    # REDEX: 7 fractional digits, with and without Z (both "UTC format")
    redex = Field("IssuedDate", "timestamp", tz="UTC")
    assert redex.parse("2023-07-13T03:49:46.1656485") == dt.datetime(2023, 7, 13, 3, 49, 46, 165648, tzinfo=UTC)
    assert redex.parse("2024-09-25T15:59:59.9999999Z") == dt.datetime(2024, 9, 25, 15, 59, 59, 999999, tzinfo=UTC)
    with pytest.raises(RecordError, match="has no offset and no source zone is declared"):
        offset.parse("2024-05-03T16:40:41")


def test_epoch_milliseconds_with_zero_as_none_and_provider_date_formats():
    f = Field("created_on_milli", "epoch_ms")
    assert f.parse(0) is None
    assert f.parse(1719792060123) == dt.datetime(2024, 7, 1, 0, 1, 0, 123000, tzinfo=UTC)
    assert Field("due_date", "date", fmt="%d-%m-%Y").parse("23-07-2024") == dt.date(2024, 7, 23)


def test_ids_are_strings_and_unknown_fields_are_kept_in_extra():
    schema = Schema.of(Field("id", required=True), Field("total", "decimal(18,2)"),
                       Field("store", path="store.id"))
    row = schema.parse(parse_json(b'{"id": 42, "total": 10.5, "store": {"id": 7, "name": "x"}, '
                                  b'"new_field": 1.25, "flag": true}'))
    assert row["id"] == "42" and row["store"] == "7"
    assert json.loads(row["_extra"]) == {"new_field": "1.25", "flag": True}


def test_missing_required_and_wrong_types_are_record_errors():
    schema = Schema.of(Field("id", required=True), Field("n", "int"))
    with pytest.raises(RecordError, match="required field 'id' is null"):
        schema.parse({"id": None})
    with pytest.raises(RecordError, match=r"field 'n': 'seven' is not an integer"):
        schema.parse({"id": 1, "n": "seven"})
    assert schema.parse({"id": 1, "n": "7"})["n"] == 7  # a number sent as a string is fine
    with pytest.raises(RecordError, match="record is a list, not an object"):
        schema.parse([1, 2])


def test_unknown_status_and_unknown_currency_are_record_errors():
    status = Field("status", enum=("waiting", "approved", "cancelled"))
    assert status.parse("approved") == "approved"
    with pytest.raises(RecordError) as exc:
        status.parse("teleported")
    assert str(exc.value) == "field 'status': unknown value 'teleported' (known: waiting, approved, cancelled)"
    cur = Field("CurrencyCode", "currency")
    assert cur.parse("usd") == "USD"
    with pytest.raises(RecordError, match="field 'CurrencyCode': 'XYZ' is not an ISO 4217 currency code"):
        cur.parse("XYZ")


def test_dotted_paths_and_every_value_kind_parse_as_each_field_does():
    """Schema.parse (one function generated per schema) gives, per column, what the field's own parse
    gives for the value at its path: through dicts, other mappings, nulls and non-objects on the way."""
    from types import MappingProxyType

    schema = Schema.of(Field("id", required=True), Field("a", path="x.y.z"), Field("b", "int", path="x.n"),
                       Field("c", "json", path="x.y"), Field("d", "json", path="x.j"), Field("e", "bool"),
                       Field("f", "decimal(18,2)", required=True, path="m.amount"))
    record = {"id": 7, "x": MappingProxyType({"y": {"z": True}, "n": "12", "j": {"b": [1, Decimal("2.50")]}}),
              "e": "false", "m": {"amount": "3.1"}, "q": None}
    assert schema.parse(record) == {"id": "7", "a": "true", "b": 12, "c": '{"z":true}', "d": '{"b":[1,"2.50"]}',
                                    "e": False, "f": Decimal("3.10"), "_extra": '{"q":null}'}
    # a path through null, a list or a missing key is null; a required one says which and how
    assert schema.parse({"id": "s", "x": None, "m": {"amount": 1}}) == {
        "id": "s", "a": None, "b": None, "c": None, "d": None, "e": None, "f": Decimal("1.00"), "_extra": None}
    assert schema.parse({"id": Decimal("1.5"), "x": {"y": [1]}, "m": {"amount": 0}})["a"] is None
    assert schema.parse({"id": Decimal("1.5"), "x": {"y": [1]}, "m": {"amount": 0}})["id"] == "1.5"
    with pytest.raises(RecordError, match="required field 'm.amount' is missing"):
        schema.parse({"id": 1, "m": "3.1"})
    with pytest.raises(RecordError, match="required field 'm.amount' is null"):
        schema.parse({"id": 1, "m": {"amount": None}})
    with pytest.raises(RecordError, match="required field 'id' is missing"):
        schema.parse({"m": {"amount": 1}})
    with pytest.raises(RecordError, match=r"field 'x.y.z': expected a scalar, got list"):
        schema.parse({"id": 1, "x": {"y": {"z": [1]}}, "m": {"amount": 1}})
    with pytest.raises(RecordError, match=r"field 'x.n': True is not an integer"):
        schema.parse({"id": 1, "x": {"n": True}, "m": {"amount": 1}})
    with pytest.raises(RecordError, match="record is a str, not an object"):
        schema.parse("id")


def test_json_text_has_sorted_keys_and_decimals_as_plain_text():
    """A json field's text (schema.dumps): keys sorted, every decimal as its plain digits, whether or not
    the text holds a capital E elsewhere (the exponent check starts from one)."""
    from invoice_warehouse.engine.schema import dumps

    assert dumps({"b": Decimal("1E+2"), "a": "EUR", "c": [Decimal("1.5E-7"), Decimal("0E-9"), "1E+2"]}) == (
        '{"a":"EUR","b":"100","c":["0.00000015","0.000000000","1E+2"]}')
    assert dumps([Decimal("-2.5E+3")]) == '["-2500"]'
    assert dumps({"status": "DELIVERED", "amount": Decimal("12.50"), "code": "E-7"}) == (
        '{"amount":"12.50","code":"E-7","status":"DELIVERED"}')
    assert dumps({"n": 1, "s": "plain"}) == '{"n":1,"s":"plain"}'
