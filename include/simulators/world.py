"""One deterministic business behind all five simulators.

Everything is a pure function of (seed, scale, day, index): a record is regenerated on demand, never
stored, so a world of millions of invoices costs no memory. The world has a time axis: ``as_of`` is
the simulator's "now"; records created later do not exist yet, and each record's state (status,
payments, ``modified`` time) is the latest of its scheduled events up to ``as_of``. Daily incremental
runs therefore see new records and changes to old ones, and the same (seed, scale, as_of) always gives
the same answers.

Shared here: the calendar, the seeded random streams, the customer/store pool that every provider sells
to (the same business customer has a different local id per provider; ``customer_map`` gives the
cross-provider mapping that the dbt seed ``customer_xref`` carries), and the product catalogue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

UTC = dt.timezone.utc
CENT = Decimal("0.01")
EPOCH = dt.date(2025, 1, 1)  # the business opens; nothing exists before


def money(x: Decimal | int | str, places: Decimal = CENT) -> Decimal:
    return Decimal(x).quantize(places, rounding=ROUND_HALF_UP)


def rng(*parts: object) -> random.Random:
    """A random stream fully determined by ``parts`` (stable across processes and Python versions)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(h, "big"))


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


@dataclass
class WorldConfig:
    seed: int = 7
    scale: float = 1.0
    as_of: dt.datetime | None = None  # None: the real current time
    lines_per_invoice: int | None = None  # fixed line count (benchmarks); None: 1-4
    per_day: dict[str, float] = field(default_factory=dict)  # provider -> invoices/day override

    def now(self) -> dt.datetime:
        return self.as_of if self.as_of is not None else utc_now()


class World:
    """The business: a calendar of days, customers, products, and per-provider daily volumes."""

    N_CUSTOMERS = 40

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def as_of(self) -> dt.datetime:
        return self.config.now()

    def day_index(self, day: dt.date) -> int:
        return (day - EPOCH).days

    def days(self, start: dt.date, end: dt.date):
        """Business days in [start, end) clipped to [EPOCH, as_of]."""
        d = max(start, EPOCH)
        last = min(end, self.as_of.date() + dt.timedelta(days=1))
        while d < last:
            yield d
            d += dt.timedelta(days=1)

    def daily_count(self, provider: str, day: dt.date, base: float) -> int:
        """How many documents ``provider`` issues on ``day`` (weekday pattern, seeded noise)."""
        per_day = self.config.per_day.get(provider)
        if per_day is not None:
            return int(per_day)
        r = rng(self.seed, provider, "count", day.isoformat())
        weekday = 0.6 if day.weekday() >= 5 else 1.0
        mean = base * self.config.scale * weekday
        return max(0, int(round(mean * r.uniform(0.7, 1.3))))

    def customer(self, r: random.Random) -> int:
        """A business customer number 1..N, some customers much busier than others."""
        return min(self.N_CUSTOMERS, int(r.paretovariate(1.2)) % self.N_CUSTOMERS + 1)


@lru_cache(maxsize=64)
def customer_name(n: int) -> str:
    first = ["Toko", "CV", "PT", "Warung", "Mitra", "Sinar", "Berkah", "Maju", "Jaya", "Sumber"]
    second = ["Abadi", "Makmur", "Sejahtera", "Lestari", "Sentosa", "Mandiri", "Utama", "Bersama"]
    r = rng("customer-name", n)
    return f"{r.choice(first)} {r.choice(second)} {n:03d}"


def customer_map(n_customers: int = World.N_CUSTOMERS) -> list[dict[str, str]]:
    """The cross-provider identity of each business customer (dbt seed ``customer_xref``)."""
    rows = []
    for n in range(1, n_customers + 1):
        rows.append({"customer_key": f"C{n:03d}", "customer_name": customer_name(n)})
    return rows


def ts_in_day(r: random.Random, day: dt.date, start_hour: int = 7, end_hour: int = 21) -> dt.datetime:
    secs = r.randint(start_hour * 3600, end_hour * 3600 - 1)
    micros = r.randint(0, 999_999)
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(seconds=secs,
                                                                                 microseconds=micros)


class QueryCache:
    """The keys matching one list filter, computed once and paged many times (LRU): a client paging
    through a filtered list must not make the simulator regenerate the whole filter for every page."""

    def __init__(self, size: int = 32):
        self._d: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # sync FastAPI endpoints run in a thread pool

    def get(self, key, compute):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = compute()
        with self._lock:
            self._d[key] = value
            if len(self._d) > self._size:
                self._d.popitem(last=False)
        return value
