"""The marts reproduce every simulator's ground truth exactly: per provider, business customer and
currency, what was invoiced, what was paid and what is open (``truth()["receivables"]``).

The simulators' receivables rules are in their module docstrings; the marts implement them once for all
providers (int_invoices_balanced): void invoices count nowhere, paid is the header's paid amount or the
allocated payment records, open = total - paid - credits. The truth counts every invoice of a provider
except REDEX's AccountsPayable ones (simulators/redex.py: only AccountsReceivable invoices are
receivables; Shopwave's supplier invoices are payables counted by the invoiced store).
A customer whose invoices are all void has no money in either; such all-zero entries are left out of
both sides.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.dbt.conftest import ALL_PROVIDERS, AS_OF_DATE, WINDOW
from tests.helpers import query

#: Directions the simulator's truth covers, per provider (default: every invoice).
TRUTH_DIRECTIONS = {"redex": ["receivable"]}
ZERO = Decimal(0)


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if any(x != 0 for x in v.values())}


def _truth(warehouse, provider: str) -> dict:
    if provider not in warehouse.providers:
        pytest.skip(f"{provider}: no simulator or provider module yet")
    return warehouse.sim.state.truth(provider, *WINDOW)


def _directions(provider: str) -> list[str]:
    return TRUTH_DIRECTIONS.get(provider, ["receivable", "payable"])


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_invoiced_paid_open_per_customer_match_truth(warehouse, provider):
    truth = _truth(warehouse, provider)
    rows = query(warehouse.db, """
        SELECT customer_key, currency,
               coalesce(sum(total_amount) FILTER (WHERE NOT is_void), 0),
               coalesce(sum(amount_paid) FILTER (WHERE NOT is_void), 0),
               sum(open_balance)
        FROM marts.fct_invoices
        WHERE provider = ? AND list_contains(?, direction)
        GROUP BY ALL""", [provider, _directions(provider)])
    got = {(k, c): {"invoiced": i, "paid": p, "open": o} for k, c, i, p, o in rows}
    expected = _nonzero(truth["receivables"])
    assert expected, "the window holds receivables"
    assert _nonzero(got) == expected
    assert all(isinstance(v, Decimal) for r in rows for v in r[2:])


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_every_invoice_is_in_the_mart_once(warehouse, provider):
    truth = _truth(warehouse, provider)
    (count, distinct), = query(warehouse.db, "SELECT count(*), count(DISTINCT invoice_key) "
                               "FROM marts.fct_invoices WHERE provider = ?", [provider])
    assert count == distinct == truth["counts"]["invoices"]


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_aging_and_daily_balances_as_of_today_match_truth(warehouse, provider):
    """rpt_ar_aging (as of the simulators' now) and fct_receivables_daily on that day hold the open
    balance the truth gives, per customer and currency."""
    truth = _truth(warehouse, provider)
    expected = {k: v["open"] for k, v in truth["receivables"].items() if v["open"] != 0}
    aging = query(warehouse.db, """
        SELECT customer_key, currency, sum(open_balance) FROM marts.rpt_ar_aging
        WHERE provider = ? AND list_contains(?, direction) AND as_of_date = CAST(? AS DATE)
        GROUP BY ALL""", [provider, _directions(provider), AS_OF_DATE])
    daily = query(warehouse.db, """
        SELECT customer_key, currency, sum(open_balance) FROM marts.fct_receivables_daily
        WHERE provider = ? AND list_contains(?, direction) AND balance_date = CAST(? AS DATE)
        GROUP BY ALL""", [provider, _directions(provider), AS_OF_DATE])
    assert {(k, c): o for k, c, o in aging if o != 0} == expected
    assert {(k, c): o for k, c, o in daily if o != 0} == expected

