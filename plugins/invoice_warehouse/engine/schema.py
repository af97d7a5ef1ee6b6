"""Declared stream schemas: exact typing of API records before they land in Parquet.

Every stream declares its columns. A record is parsed into those columns with exact rules:

* money is ``Decimal`` (JSON is parsed with ``parse_float=Decimal``; strings such as ``"399.00"`` are
  accepted), quantised to the declared scale and rejected if that would lose a digit;
* timestamps become UTC. Naive source timestamps are localised in the field's declared source zone
  (DealPOS and IDH: Asia/Jakarta). 7-digit fractions are truncated to microseconds; the
  ``0001-01-01`` and epoch-0 sentinels become null;
* ids are strings, whatever the API sends;
* nested objects/arrays are kept as JSON text with decimals written as strings (never floats);
* keys the schema does not know are kept in ``_extra`` (JSON), never dropped.

A record that cannot be parsed raises :class:`RecordError` with a reason; the stream runner sends it to
quarantine with its raw text and goes on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import msgspec

if TYPE_CHECKING:
    import pyarrow as pa

UTC = dt.timezone.utc
_DECIMAL_RE = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")
_NUMERIC_STR_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# ISO 4217 codes in use (a currency outside this list quarantines the record rather than guessing).
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
""".split())

META_COLUMNS = ("_extracted_at", "_run_id", "_window", "_batch_id", "_extra")


class RecordError(ValueError):
    """A record that does not fit its declared schema (goes to quarantine with this message)."""


def json_default(value: Any) -> Any:
    """JSON encoder hook: decimals as exact strings, datetimes as ISO text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(order="sorted", decimal_format="string")
_SCIENTIFIC = re.compile(rb'"-?\d+(?:\.\d+)?E[+-]\d+"')  # str(Decimal) in exponent form: 1E+2, 1.5E-7


def dumps(value: Any) -> str:
    """Compact, deterministic JSON (keys sorted) with exact decimals written as plain strings.

    msgspec's C encoder writes a Decimal with ``str``; the rare one that ``str`` puts in exponent form
    (``1E+2``, ``1E-7``) is written again through ``json`` with :func:`json_default` (``"100"``), as are
    values msgspec does not encode (datetimes), so the text is always that of the ``json`` encoding.
    """
    try:
        out = _ENCODER.encode(value)
    except TypeError:
        out = b""
    # One byte first (a memchr): most texts hold no capital E at all. The two two-byte searches took
    # 50 ms per 10,000 Akinon invoices (their four nested fields), the encoding itself 68 ms.
    if not out or (b"E" in out and (b"E+" in out or b"E-" in out) and _SCIENTIFIC.search(out)):
        return json.dumps(value, default=json_default, separators=(",", ":"), sort_keys=True,
                          ensure_ascii=False)
    return out.decode()


_TSTZ = "TIMESTAMP WITH TIME ZONE"
#: field type -> DuckDB column type (decimal(p,s) -> DECIMAL(p,s) besides these)
_DUCKDB_TYPES = {"string": "VARCHAR", "json": "VARCHAR", "currency": "VARCHAR", "int": "BIGINT",
                 "bool": "BOOLEAN", "timestamp": _TSTZ, "epoch_ms": _TSTZ, "epoch_s": _TSTZ, "date": "DATE"}
#: the landed bookkeeping columns, after the declared ones
_META_TYPES = (("_extra", "VARCHAR"), ("_extracted_at", _TSTZ), ("_run_id", "VARCHAR"), ("_window", "VARCHAR"),
               ("_batch_id", "VARCHAR"))
#: the bookkeeping column of a stream that skips unchanged records by content (Stream.skip_unchanged_records)
RECORD_DIGEST = "_record_digest"
# Sorted keys: the same record listed with its keys in another order is the same content. Decimals as
# their exact text (JSON numbers are decoded as Decimal): 1.5 and 1.50 are different content.
_DIGEST_ENCODER = msgspec.json.Encoder(decimal_format="string", order="sorted")


def record_digest(record: Any) -> str | None:
    """A digest of an API record's content as received (a dict), or None when it has none (not an
    object, or a value JSON cannot hold): such a record is never taken for an unchanged one."""
    if type(record) is not dict:
        return None
    try:
        return hashlib.blake2b(_DIGEST_ENCODER.encode(record), digest_size=16).hexdigest()
    except (TypeError, ValueError, msgspec.EncodeError):
        return None


def _arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type landed for a DuckDB column type of ``_DUCKDB_TYPES`` or ``DECIMAL(p,s)``."""
    import pyarrow as pa  # here, not at the top: the load task reads schemas without Arrow

    if duckdb_type.startswith("DECIMAL("):
        precision, scale = duckdb_type[len("DECIMAL("):-1].split(",")
        return pa.decimal128(int(precision), int(scale))
    return {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_(),
            _TSTZ: pa.timestamp("us", tz="UTC"), "DATE": pa.date32()}[duckdb_type]


@dataclass(frozen=True)
class Field:
    """One declared column.

    ``path`` is a dotted path into the record (default: ``name``). ``tz`` is the declared source zone of
    naive timestamps. ``fmt`` is a ``strptime`` format for dates/timestamps in a provider format
    (``%d-%m-%Y`` for IDH). ``required`` fields that are missing or null quarantine the record.
    """

    name: str
    type: str = "string"
    path: str | None = None
    tz: str | None = None
    fmt: str | None = None
    required: bool = False
    enum: tuple[str, ...] | None = None  # known values (statuses): anything else is quarantined

    @property
    def source(self) -> str:
        return self.path or self.name

    def arrow_type(self) -> pa.DataType:
        return _arrow_type(self.duckdb_type())

    def duckdb_type(self) -> str:
        """The column's DuckDB type: what DuckDB makes of the landed Parquet column (``arrow_type()``)."""
        t = self.type
        if t in _DUCKDB_TYPES:
            return _DUCKDB_TYPES[t]
        m = _DECIMAL_RE.match(t)
        if m:
            return f"DECIMAL({int(m.group(1))},{int(m.group(2))})"
        raise ValueError(f"unknown field type {t!r} for field {self.name!r}")

    # --- parsing -----------------------------------------------------------------------------------
    def parse(self, value: Any) -> Any:
        if value is None:
            return None
        out = self._parse(value)
        if self.enum is not None and out not in self.enum:
            raise RecordError(f"field {self.source!r}: unknown value {out!r} (known: {', '.join(self.enum)})")
        return out

    def converter(self) -> Callable[[Any], Any]:
        """``parse`` specialised to this field's type once (a schema parses every record with it)."""
        t, enum = self.type, self.enum
        if enum is not None:
            return self.parse
        if t == "string":
            slow = self._parse
            return lambda v: v if type(v) is str else slow(v)
        if t == "json":
            return dumps
        if t == "timestamp" and self.fmt is None:
            source, tz, slow = self.source, self.tz, self._parse

            def timestamp(v: Any) -> Any:
                # ISO text as most APIs send it: parsed in one call; anything else takes the full path
                if type(v) is str and len(v) > 10 and v[0] != "0" and v[-1] != " ":
                    try:
                        ts = dt.datetime.fromisoformat(v)
                    except ValueError:
                        return slow(v)
                    if ts.tzinfo is None:
                        if tz is None:
                            raise RecordError(f"field {source!r}: {v!r} has no offset and no source zone "
                                              "is declared")
                        ts = ts.replace(tzinfo=ZoneInfo(tz))
                    return ts.astimezone(UTC)
                return slow(v)
            return timestamp
        m = _DECIMAL_RE.match(t)
        if m:
            return _decimal_converter(self.source, int(m.group(1)), int(m.group(2)))
        return self._parse

    def _parse(self, value: Any) -> Any:
        t = self.type
        if t == "currency":
            code = str(value).strip().upper()
            if code not in ISO_4217:
                raise RecordError(f"field {self.source!r}: {value!r} is not an ISO 4217 currency code")
            return code
        if t == "string":
            if isinstance(value, dict | list):
                raise RecordError(f"field {self.source!r}: expected a scalar, got {type(value).__name__}")
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, Decimal):
                return format(value, "f")
            return str(value)
        if t == "json":
            return dumps(value)
        if t == "int":
            return _parse_int(value, self.source)
        if t == "bool":
            if isinstance(value, bool):
                return value
            if value in ("true", "True", "1", 1):
                return True
            if value in ("false", "False", "0", 0):
                return False
            raise RecordError(f"field {self.source!r}: {value!r} is not a boolean")
        if t == "timestamp":
            return _parse_timestamp(value, self.source, self.tz, self.fmt)
        if t == "epoch_ms":
            return _parse_epoch(value, self.source, 1000)
        if t == "epoch_s":
            return _parse_epoch(value, self.source, 1)
        if t == "date":
            return _parse_date(value, self.source, self.fmt)
        m = _DECIMAL_RE.match(t)
        if m:
            return _parse_decimal(value, self.source, int(m.group(1)), int(m.group(2)))
        raise ValueError(f"unknown field type {t!r}")


_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def _parse_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise RecordError(f"field {name!r}: {value!r} is not an integer")
    if isinstance(value, int):
        out = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        out = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        out = int(value.strip())
    else:
        raise RecordError(f"field {name!r}: {value!r} is not an integer")
    if not _INT64[0] <= out <= _INT64[1]:
        raise RecordError(f"field {name!r}: {value!r} is outside the 64-bit integer range")
    return out


def _parse_decimal(value: Any, name: str, precision: int, scale: int) -> Decimal:
    if isinstance(value, bool):
        raise RecordError(f"field {name!r}: {value!r} is not a number")
    if isinstance(value, float):
        # Never reached when JSON is parsed with parse_float=Decimal; refuse rather than guess.
        raise RecordError(f"field {name!r}: float {value!r} is not an exact amount")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMERIC_STR_RE.match(text):
            raise RecordError(f"field {name!r}: {value!r} is not a number")
        value = text
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise RecordError(f"field {name!r}: {value!r} is not a number") from exc
    if not d.is_finite():
        raise RecordError(f"field {name!r}: {value!r} is not a finite number")
    q = d.quantize(Decimal(1).scaleb(-scale)) if d.as_tuple().exponent != -scale else d
    if q != d:
        raise RecordError(f"field {name!r}: {value} has more than {scale} decimal places")
    if len(q.as_tuple().digits) > precision:
        raise RecordError(f"field {name!r}: {value} does not fit decimal({precision},{scale})")
    return q


def _decimal_converter(name: str, precision: int, scale: int) -> Callable[[Any], Decimal]:
    """``_parse_decimal`` for one column, with a fast path for what APIs send: a JSON number (msgspec
    decodes it as an exact Decimal), an integer, or a plain numeric string. Such a value that has at most
    ``scale`` places and fits ``precision`` digits is its quantized self, which is what _parse_decimal
    returns; anything else (more places, too large, not finite, spaces, bool...) goes through
    _parse_decimal, for the same result or the same error."""
    quantum = Decimal(1).scaleb(-scale)
    bound = Decimal(10) ** (precision - scale)

    def decimal(v: Any) -> Decimal:
        tv = type(v)
        if tv is Decimal or tv is int or (tv is str and _NUMERIC_STR_RE.match(v) and v[-1] != "\n"):
            d = v if tv is Decimal else Decimal(v)
            try:
                q = d.quantize(quantum)
            except InvalidOperation:
                return _parse_decimal(v, name, precision, scale)
            if q == d and -bound < q < bound:
                return q
        return _parse_decimal(v, name, precision, scale)
    return decimal


def _parse_timestamp(value: Any, name: str, tz: str | None, fmt: str | None) -> dt.datetime | None:
    if not isinstance(value, str):
        raise RecordError(f"field {name!r}: {value!r} is not a timestamp string")
    text = value.strip()
    if not text or text.startswith("0001-01-01"):
        return None  # DealPOS null-date sentinel
    try:
        if fmt:
            ts = dt.datetime.strptime(text, fmt)
        else:
            text = _FRACTION_RE.sub(r"\1", text)  # 7-digit .NET fractions -> microseconds
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            ts = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordError(f"field {name!r}: {value!r} is not a valid timestamp") from exc
    if ts.tzinfo is None:
        if tz is None:
            raise RecordError(f"field {name!r}: {value!r} has no offset and no source zone is declared")
        ts = ts.replace(tzinfo=ZoneInfo(tz))
    return ts.astimezone(UTC)


def _parse_epoch(value: Any, name: str, divisor: int) -> dt.datetime | None:
    n = _parse_int(value, name)
    if n == 0:
        return None  # IDH: 0 means "no date"
    if n < 0:
        raise RecordError(f"field {name!r}: negative epoch {n}")
    return dt.datetime.fromtimestamp(n / divisor, tz=UTC) if divisor == 1 else (
        dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=n)
    )


def _parse_date(value: Any, name: str, fmt: str | None) -> dt.date | None:
    if not isinstance(value, str):
        raise RecordError(f"field {name!r}: {value!r} is not a date string")
    text = value.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        if fmt:
            return dt.datetime.strptime(text, fmt).date()
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise RecordError(f"field {name!r}: {value!r} is not a valid date") from exc


_MISSING = object()


@dataclass(frozen=True)
class Schema:
    """The declared columns of one stream; parse() turns an API record into a typed row."""

    fields: tuple[Field, ...]
    #: land ``_record_digest`` (the digest of the record as received) after the bookkeeping columns; set
    #: by ``Stream.skip_unchanged_records``
    record_digest: bool = False
    _top: frozenset[str] = field(init=False, repr=False, compare=False)
    _parse: Callable[[Any], dict[str, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate column names in schema: {sorted(dupes)}")
        object.__setattr__(self, "_top", frozenset(f.source.split(".")[0] for f in self.fields))
        object.__setattr__(self, "_parse", _compile_parser(self.fields, self._top))

    @classmethod
    def of(cls, *fields: Field | str) -> Schema:
        return cls(tuple(Field(f) if isinstance(f, str) else f for f in fields))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(name, _arrow_type(typ)) for name, typ in self.duckdb_columns()])

    def duckdb_columns(self) -> list[tuple[str, str]]:
        """(column, DuckDB type) of the landed table, the bookkeeping columns included."""
        digest = [(RECORD_DIGEST, "VARCHAR")] if self.record_digest else []
        return [(f.name, f.duckdb_type()) for f in self.fields] + list(_META_TYPES) + digest

    def parse(self, record: Any) -> dict[str, Any]:
        """The typed row of an API record (one value per field, then ``_extra``: the JSON text of the
        record's top-level keys no field reads, or None), or RecordError saying which field is wrong."""
        return self._parse(record)


def _dig(record: Any, parts: tuple[str, ...]) -> Any:
    """The value at a dotted path, or _MISSING where the path leaves the objects."""
    value = record
    for part in parts:
        if type(value) is not dict and not isinstance(value, Mapping):
            return _MISSING
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _compile_parser(fields: tuple[Field, ...], top: frozenset[str]) -> Callable[[Any], dict[str, Any]]:
    """``Schema.parse`` for these fields as one straight-line function, made once per schema.

    Every record of a stream goes through it (hundreds of thousands in a backfill), and it holds the
    GIL the extraction runs under: unrolled, a record costs one dict lookup and one call per field, with
    no per-field loop, tuple unpacking or path checks. What it does is what the loop it replaces did: a
    missing or null value is None, or a RecordError for a required field; any other value goes through
    the field's converter (``Field.converter``); the top-level keys no field reads go to ``_extra``.
    The generated text holds only ``repr``s of the declared names and paths.
    """
    env: dict[str, Any] = {"Mapping": Mapping, "RecordError": RecordError, "_MISSING": _MISSING,
                           "_dig": _dig, "dumps": dumps, "top": top}
    body = ["def parse(record):",
            "    if type(record) is not dict and not isinstance(record, Mapping):",
            "        raise RecordError(f'record is a {type(record).__name__}, not an object')",
            "    get = record.get",
            "    row = {}"]
    for i, f in enumerate(fields):
        env[f"convert{i}"] = f.converter()
        first, *rest = f.source.split(".")
        body.append(f"    v = get({first!r}, _MISSING)")
        for part in rest:  # a dotted path, one level at a time: _dig for anything but a plain dict
            body.append(f"    v = v.get({part!r}, _MISSING) if type(v) is dict else _dig(v, {(part,)!r})")
        # Text as it came, an integer as its digits (what the string converter gives), else the converter.
        value = (f"v if type(v) is str else str(v) if type(v) is int else convert{i}(v)"
                 if f.type == "string" and f.enum is None else f"convert{i}(v)")
        if f.required:
            body += ["    if v is _MISSING or v is None:",
                     f"        raise RecordError({f'required field {f.source!r} is '!r} + "
                     "('missing' if v is _MISSING else 'null'))",
                     f"    row[{f.name!r}] = {value}"]
        else:
            body.append(f"    row[{f.name!r}] = None if v is None or v is _MISSING else {value}")
    # Keys no field reads: one set difference (most records have none), then their values in order.
    body += ["    unread = record.keys() - top",
             "    row['_extra'] = dumps({k: v for k, v in record.items() if k in unread}) if unread else None",
             "    return row"]
    exec(compile("\n".join(body), f"<parser of {len(fields)} fields>", "exec"), env)  # noqa: S102
    return env["parse"]


def record_key(row: Mapping[str, Any], primary_key: Iterable[str]) -> tuple:
    return tuple(row.get(k) for k in primary_key)
