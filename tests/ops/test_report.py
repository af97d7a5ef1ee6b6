"""The HTML receivables report on a small hand-made warehouse: exact numbers, self-contained HTML."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_report():
    spec = importlib.util.spec_from_file_location("iwh_report_test", ROOT / "include" / "report" / "receivables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AGING_DDL = """
create schema marts;
create table marts.rpt_ar_aging (as_of_date date, provider varchar, direction varchar, customer_key varchar,
    customer_id varchar, currency varchar, open_invoice_count integer, open_balance decimal(38,6),
    current_amount decimal(38,6), past_due_1_30_amount decimal(38,6), past_due_31_60_amount decimal(38,6),
    past_due_61_90_amount decimal(38,6), past_due_over_90_amount decimal(38,6), max_days_past_due integer);
create table marts.rpt_dso (provider varchar, currency varchar, month_start date, period_end date,
    days_in_period integer, credit_sales decimal(38,6), open_receivables decimal(38,6), dso_days decimal(18,2));
create table marts.dim_customers (customer_party_key varchar, provider varchar, customer_id varchar,
    customer_type varchar, customer_key varchar, customer_name varchar, business_customer_name varchar);
"""
AS_OF = dt.date(2025, 3, 15)


@pytest.fixture()
def warehouse(tmp_path) -> Path:
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(AGING_DDL)
        con.executemany("insert into marts.rpt_ar_aging values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [
            # dealpos IDR: C001 owes 1,000,000 (600,000 current, 400,000 1-30); C002 owes 250,000.50 (90+)
            (AS_OF, "dealpos", "receivable", "C001", "11", "IDR", 3, "1000000", "600000", "400000", None, None, None, 12),
            (AS_OF, "dealpos", "receivable", "C002", "12", "IDR", 1, "250000.50", None, None, None, None, "250000.50", 120),
            # idh IDR: the same business customer C001 at another provider, 31-60 days late
            (AS_OF, "idh", "receivable", "C001", "X-1", "IDR", 2, "300000", None, None, "300000", None, None, 45),
            # akinon TRY: due on issue, all 1-30
            (AS_OF, "akinon", "receivable", "C003", "77", "TRY", 1, "123.45", None, "123.45", None, None, None, 3),
            # a payable never shows as a receivable
            (AS_OF, "redex", "payable", "C004", "R4", "USD", 5, "999", None, None, None, None, "999", 400),
        ])
        con.executemany("insert into marts.rpt_dso values (?,?,?,?,?,?,?,?)", [
            ("dealpos", "IDR", dt.date(2025, 2, 1), dt.date(2025, 2, 28), 28, "100", "50", "14.00"),
            ("dealpos", "IDR", dt.date(2025, 3, 1), dt.date(2025, 3, 15), 15, "100", "100", "15.00"),
            ("akinon", "TRY", dt.date(2025, 3, 1), dt.date(2025, 3, 15), 15, "10", "20", "30.00"),
            ("akinon", "TRY", dt.date(2024, 1, 1), dt.date(2024, 1, 31), 31, "10", "20", "62.00"),  # > 12 months
        ])
        con.executemany("insert into marts.dim_customers values (?,?,?,?,?,?,?)", [
            ("dealpos:customer:11", "dealpos", "11", "customer", "C001", "Toko A", "Toko Abadi 001"),
            ("idh:customer:X-1", "idh", "X-1", "customer", "C001", "TOKO ABADI", "Toko Abadi 001"),
            ("dealpos:customer:12", "dealpos", "12", "customer", "C002", "CV B", "CV Bersama 002"),
        ])
    return db


def test_report_numbers_and_sections(warehouse, tmp_path):
    report = load_report()
    out = tmp_path / "report" / "receivables.html"
    info = report.build_report(warehouse, out, generated_at=dt.datetime(2025, 3, 15, 8, tzinfo=dt.timezone.utc))
    assert info["as_of"] == AS_OF
    assert info["missing"] == []
    aging = {(r["provider"], r["currency"]): r for r in info["aging"]}
    assert set(aging) == {("akinon", "TRY"), ("dealpos", "IDR"), ("idh", "IDR")}  # no payables
    assert aging["dealpos", "IDR"]["open_balance"] == Decimal("1250000.50")
    assert aging["dealpos", "IDR"]["current_amount"] == Decimal("600000")
    assert aging["dealpos", "IDR"]["past_due_over_90_amount"] == Decimal("250000.50")
    assert aging["dealpos", "IDR"]["open_invoices"] == 4
    # Top overdue: one business customer across providers (C001 = 400,000 dealpos + 300,000 idh).
    top = [(r["currency"], r["rank"], r["customer"], r["customer_name"], r["providers"], r["overdue"],
            r["max_days_past_due"]) for r in info["overdue"]]
    assert top == [
        ("IDR", 1, "C001", "Toko Abadi 001", "dealpos, idh", Decimal("700000"), 45),
        ("IDR", 2, "C002", "CV Bersama 002", "dealpos", Decimal("250000.50"), 120),
        ("TRY", 1, "C003", None, "akinon", Decimal("123.45"), 3),
    ]
    # DSO: the last 12 months only.
    assert sorted((r["provider"], r["month_start"]) for r in info["dso"]) == [
        ("akinon", dt.date(2025, 3, 1)), ("dealpos", dt.date(2025, 2, 1)), ("dealpos", dt.date(2025, 3, 1))]

    html = out.read_text()
    assert info["bytes"] == len(html.encode())
    assert "As of <strong>2025-03-15</strong>" in html
    text = re.sub(r"<[^>]+>", " ", html)
    for needle in ("1,250,000.50", "600,000.00", "650,000.50 (52%)", "700,000.00", "123.45", "Toko Abadi 001",
                   "redex 999.00 USD"):  # the payable is named in the note only
        assert needle in text, needle
    # Two inline charts, no script, nothing fetched from elsewhere.
    assert html.count("<svg") == 2
    assert 'aria-label="Aging by provider and bucket"' in html and 'aria-label="DSO by month"' in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    # The aging bar of dealpos: 48% current, 32% 1-30, 20% 90+ (of 1,250,000.50).
    assert re.findall(r"dealpos (current|1-30|31-60|61-90|90\+): ([\d,.]+) IDR \(([\d.]+) %\)", html) == [
        ("current", "600,000.00", "48.0"), ("1-30", "400,000.00", "32.0"), ("90+", "250,000.50", "20.0")]


def test_report_without_marts_says_so(tmp_path):
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    out = tmp_path / "r.html"
    info = load_report().build_report(db, out)
    assert info["missing"] == ["marts.rpt_ar_aging", "marts.rpt_dso", "marts.dim_customers"]
    html = out.read_text()
    assert "Not built yet in this warehouse: marts.rpt_ar_aging, marts.rpt_dso, marts.dim_customers" in html
    assert "<svg" not in html
