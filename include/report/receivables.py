"""The HTML receivables report: one self-contained file (inline CSS and SVG, no scripts, no CDN).

    python include/report/receivables.py [--db data/warehouse/warehouse.duckdb] [--out data/report/receivables.html]

Reads the published warehouse read-only, from the marts only (nothing is recomputed here):

* **Aging by provider and bucket** from ``marts.rpt_ar_aging`` (receivables, as of its ``as_of_date``):
  one 100 % stacked bar per provider and currency (amounts never mix currencies), the amounts in a table;
* **DSO by month** from ``marts.rpt_dso``: a line per provider and currency over the last 12 months;
* **Top overdue customers** from ``marts.rpt_ar_aging`` (past-due = open balance - not yet due), one
  business customer across providers (``customer_key``), named from ``marts.dim_customers``.

A mart that is not built yet leaves its section with a note instead of failing the report.
``make demo`` calls :func:`build_report`; the template is ``receivables.html.j2`` next to this file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import sys
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb
import jinja2
from markupsafe import Markup

HERE = Path(__file__).resolve().parent
TEMPLATE = "receivables.html.j2"
BUCKETS = (  # (label, rpt_ar_aging column, colour)
    ("current", "current_amount", "#4c9a6a"),
    ("1-30", "past_due_1_30_amount", "#e0c341"),
    ("31-60", "past_due_31_60_amount", "#e8913a"),
    ("61-90", "past_due_61_90_amount", "#d65a31"),
    ("90+", "past_due_over_90_amount", "#a3202a"),
)
SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22")
TOP_N = 10
DSO_MONTHS = 12
ZERO = Decimal(0)


# --- reading the marts ---------------------------------------------------------------------------
def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {f"{s}.{t}" for s, t in con.execute(
        "select table_schema, table_name from information_schema.tables").fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def aging_by_provider(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Receivables per provider and currency, split by aging bucket (exact decimals)."""
    sums = ", ".join(f"coalesce(sum({col}), 0) as {col}" for _, col, _ in BUCKETS)
    return _rows(con, f"""
        select provider, currency, cast(sum(open_invoice_count) as integer) as open_invoices,
               sum(open_balance) as open_balance, {sums}
        from marts.rpt_ar_aging where direction = 'receivable'
        group by provider, currency order by provider, currency""")


def dso_by_month(con: duckdb.DuckDBPyConnection, as_of: dt.date, months: int = DSO_MONTHS) -> list[dict[str, Any]]:
    index = as_of.year * 12 + as_of.month - 1 - (months - 1)  # the month ``months - 1`` before as_of's
    first = dt.date(index // 12, index % 12 + 1, 1)
    return _rows(con, """
        select provider, currency, month_start, period_end, credit_sales, open_receivables, dso_days
        from marts.rpt_dso where month_start >= ? and month_start <= ?
        order by provider, currency, month_start""", [first, as_of])


def top_overdue(con: duckdb.DuckDBPyConnection, names: bool, n: int = TOP_N) -> list[dict[str, Any]]:
    """Per currency, the ``n`` business customers with the most past-due receivables (all providers)."""
    name = ("(select any_value(business_customer_name) from marts.dim_customers d "
            "where d.customer_key = a.customer_key)") if names else "null"
    return _rows(con, f"""
        with overdue as (
            select coalesce(customer_key, provider || ':' || customer_id) as customer,
                   any_value(customer_key) as customer_key, currency,
                   string_agg(distinct provider, ', ' order by provider) as providers,
                   sum(open_balance) as open_balance,
                   sum(open_balance) - coalesce(sum(current_amount), 0) as overdue,
                   coalesce(sum(past_due_over_90_amount), 0) as over_90,
                   max(max_days_past_due) as max_days_past_due,
                   cast(sum(open_invoice_count) as integer) as open_invoices
            from marts.rpt_ar_aging
            where direction = 'receivable'
            group by 1, currency
        ), ranked as (
            select *, row_number() over (partition by currency order by overdue desc, customer) as rank
            from overdue where overdue > 0
        )
        select a.*, {name} as customer_name from ranked a where rank <= {int(n)}
        order by currency, rank""")


# --- formatting and SVG --------------------------------------------------------------------------
def money(v: Any) -> str:
    if v is None:
        return "-"
    return f"{Decimal(v).quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


def pct(part: Decimal, whole: Decimal) -> float:
    return float(part / whole * 100) if whole else 0.0


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def aging_svg(rows: list[dict[str, Any]], width: int = 880) -> str:
    """100 % stacked horizontal bars, one per provider and currency, labelled with the open total."""
    label_w, total_w, bar_h, gap, top = 150, 190, 26, 12, 8
    bar_w = width - label_w - total_w
    height = top + len(rows) * (bar_h + gap) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="Aging by provider and bucket">']
    for i, r in enumerate(rows):
        y = top + i * (bar_h + gap)
        total = Decimal(r["open_balance"] or 0)
        out.append(f'<text x="{label_w - 8}" y="{y + bar_h * 0.68:.1f}" text-anchor="end" class="lbl">'
                   f'{_esc(r["provider"])} · {_esc(r["currency"])}</text>')
        x = float(label_w)
        for name, col, colour in BUCKETS:
            amount = Decimal(r[col] or 0)
            w = bar_w * pct(amount, total) / 100 if total > 0 else 0
            if w <= 0:
                continue
            out.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar_h}" fill="{colour}">'
                       f'<title>{_esc(r["provider"])} {name}: {money(amount)} {_esc(r["currency"])} '
                       f'({pct(amount, total):.1f} %)</title></rect>')
            if w > 34:
                out.append(f'<text x="{x + w / 2:.2f}" y="{y + bar_h * 0.68:.1f}" text-anchor="middle" '
                           f'class="in">{pct(amount, total):.0f}%</text>')
            x += w
        if total <= 0:
            out.append(f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="{bar_h}" fill="#eee"/>')
        out.append(f'<text x="{label_w + bar_w + 8}" y="{y + bar_h * 0.68:.1f}" class="lbl">'
                   f'{money(total)} {_esc(r["currency"])}</text>')
    ly = height - 14
    lx = label_w
    for name, _, colour in BUCKETS:
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{lx + 16}" y="{ly}" class="lbl">{_esc(name)}</text>')
        lx += 90
    out.append("</svg>")
    return "".join(out)


def dso_svg(rows: list[dict[str, Any]], width: int = 880, height: int = 300) -> str:
    """DSO (days) by month, one line per provider and currency."""
    months = sorted({r["month_start"] for r in rows})
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault(f'{r["provider"]} · {r["currency"]}', []).append(r)
    values = [float(r["dso_days"]) for r in rows if r["dso_days"] is not None]
    left, right, top, bottom = 56, 170, 12, 34
    pw, ph = width - left - right, height - top - bottom
    ymax = max(values + [1.0])
    step = next(s for s in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10**9) if ymax / s <= 6)
    ymax = step * (int(ymax // step) + 1)

    def xpos(m: dt.date) -> float:
        i = months.index(m)
        return left + (pw * i / (len(months) - 1) if len(months) > 1 else pw / 2)

    def ypos(v: float) -> float:
        return top + ph - ph * v / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="DSO by month">']
    tick = 0
    while tick <= ymax:
        y = ypos(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{tick}</text>')
        tick += step
    for m in months:
        out.append(f'<text x="{xpos(m):.1f}" y="{top + ph + 18}" text-anchor="middle" class="axis">'
                   f'{m:%b %y}</text>')
    out.append(f'<text x="14" y="{top + ph / 2:.0f}" class="axis" transform="rotate(-90 14 {top + ph / 2:.0f})" '
               f'text-anchor="middle">days</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        coords = [(xpos(p["month_start"]), ypos(float(p["dso_days"])), p) for p in pts if p["dso_days"] is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, p in coords:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{_esc(name)} '
                       f'{p["month_start"]:%Y-%m}: {p["dso_days"]} days</title></circle>')
        ly = top + 14 + i * 18
        out.append(f'<rect x="{left + pw + 14}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{left + pw + 30}" y="{ly}" class="lbl">{_esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


# --- the report ----------------------------------------------------------------------------------
def collect(db: Path | str) -> dict[str, Any]:
    """Everything the report shows, read from the published warehouse."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = _tables(con)
        missing = [t for t in ("marts.rpt_ar_aging", "marts.rpt_dso", "marts.dim_customers") if t not in tables]
        as_of = None
        aging: list[dict[str, Any]] = []
        overdue: list[dict[str, Any]] = []
        dso: list[dict[str, Any]] = []
        if "marts.rpt_ar_aging" in tables:
            as_of = con.execute("select max(as_of_date) from marts.rpt_ar_aging").fetchone()[0]
            aging = aging_by_provider(con)
            overdue = top_overdue(con, names="marts.dim_customers" in tables)
        as_of = as_of or dt.date.today()
        if "marts.rpt_dso" in tables:
            dso = dso_by_month(con, as_of)
        payables = []
        if "marts.rpt_ar_aging" in tables:
            payables = _rows(con, """select provider, currency, sum(open_balance) as open_balance
                                     from marts.rpt_ar_aging where direction = 'payable'
                                     group by all order by all""")
    return {"as_of": as_of, "aging": aging, "dso": dso, "overdue": overdue, "payables": payables,
            "missing": missing}


def _dso_table(dso: list[dict[str, Any]]) -> tuple[list[dt.date], list[tuple[str, list[Any]]]]:
    months = sorted({r["month_start"] for r in dso})
    by: dict[str, dict[dt.date, Any]] = {}
    for r in dso:
        by.setdefault(f'{r["provider"]} · {r["currency"]}', {})[r["month_start"]] = r["dso_days"]
    return months, [(name, [vals.get(m) for m in months]) for name, vals in sorted(by.items())]


def render(data: dict[str, Any], *, source: str, generated_at: dt.datetime) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = money
    aging = []
    for r in data["aging"]:
        total = Decimal(r["open_balance"] or 0)
        overdue = total - Decimal(r["current_amount"] or 0)
        aging.append({**r, "overdue": overdue, "overdue_pct": pct(overdue, total)})
    months, dso_rows = _dso_table(data["dso"])
    return env.get_template(TEMPLATE).render(
        as_of=data["as_of"], generated_at=generated_at, source=source, buckets=BUCKETS,
        aging=aging, aging_svg=Markup(aging_svg(data["aging"])) if aging else None,
        dso_months=months, dso_rows=dso_rows,
        dso_svg=Markup(dso_svg(data["dso"])) if data["dso"] else None,
        overdue=data["overdue"], payables=data["payables"], missing=data["missing"])


def build_report(db: Path | str, out: Path | str, *, generated_at: dt.datetime | None = None) -> dict[str, Any]:
    """Write the report for the warehouse ``db`` to ``out``; what it shows, and its size in bytes."""
    data = collect(db)
    text = render(data, source=str(db), generated_at=generated_at or dt.datetime.now(dt.timezone.utc))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return {**data, "path": str(out), "bytes": len(text.encode())}


def _summary_lines(rows: Iterable[dict[str, Any]]) -> list[str]:
    return [f'{r["provider"]:<10} {r["currency"]:<4} {money(r["open_balance"]):>20}' for r in rows]


def main(argv: list[str] | None = None) -> int:
    root = HERE.parents[1]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", type=Path, default=root / "data" / "warehouse" / "warehouse.duckdb")
    p.add_argument("--out", type=Path, default=root / "data" / "report" / "receivables.html")
    args = p.parse_args(argv)
    if not args.db.exists():
        print(f"no warehouse at {args.db} (run `make demo` first)", file=sys.stderr)
        return 1
    info = build_report(args.db, args.out)
    print(f"wrote {info['path']} ({info['bytes']:,} bytes), as of {info['as_of']}")
    print("\n".join(_summary_lines(info["aging"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
