"""REDEX public API v2 (seed 003, providers.md section 4): invoices with their items, spot-exchange
transactions.

Auth: a custom OAuth2-like "api_key" grant. ``POST /public/v2/connect/token`` with JSON
``{"ApiKey","GrantType":"api_key","ClientId","ClientSecret"}`` returns, inside the envelope's ``Data``,
``AccessToken``, ``RefreshToken`` and ``ExpiresIn`` *as a string* (``"3600"``); access tokens live 1 h,
refresh tokens 30 days. We renew with ``/public/v2/connect/token/refresh`` and fall back to a new
api-key grant when the refresh token is refused (providers.md 6: "persist the refresh token, or simply
re-grant with the ApiKey"). Connection: host = base URL, login = Client ID, password = Client Secret,
extra ``api_key`` = the ApiKey.

Every answer is the envelope ``{Data, Meta, Errors, StatusCode, Message}``; errors use it too, so the
body is checked (``StatusCode``/``Errors``), not only the HTTP status. Pagination: ``CurrentPage`` and
``ItemsPerPage``, last page ``Meta.TotalPage`` (the seed's table says ``TotalRow``/``PageSize`` but its
example, which we trust, says ``TotalItems``/``ItemsPerPage``).

**No date filter exists** on either list: every run sweeps everything, and the loader de-duplicates by
key (the latest extraction wins). The invoice list does not say which side of the invoice we are on, so
it is swept once per ``TransactionType`` (AccountsPayable, AccountsReceivable) and the variant is stamped
on each row (``Stream.request_fields``). Each invoice is fanned out to
``GET /public/v2/invoices/{InvoiceNumber}`` for its parties (``Payer``/``Payee``) and ``MainInvoice``
with its ``Items[]`` (the invoice lines, unnested in staging).

Record quirks: amounts are JSON numbers documented as decimal(18,6) (parsed exactly, never as floats);
timestamps carry 7 fractional digits (truncated to microseconds) and are UTC with or without ``Z``;
``Status`` is a string (with ``StatusDescription``) in the 2024-03 shape and ``{Value, Description}`` in the
2024-10 shape, per row: it is kept as JSON, and ``StatusValue`` reads ``Status.Value`` when it is an object.

REDEX offers no payments, customers, products or returns endpoints: the nearest data are the invoice
``Status``/``PaidDate`` (payments), the Payer/Payee parties (customers) and the items' REC devices.
The spot-exchange transactions path was not captured in the docs: ``/public/v2/spot-exchange/transactions``
is an assumption [INF] shared with the simulator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from invoice_warehouse.engine.auth import TokenAuth, TokenGrant
from invoice_warehouse.engine.hook import ProviderHook
from invoice_warehouse.engine.http import (
    RETRYABLE_STATUS,
    ApiError,
    AuthError,
    HttpClient,
)
from invoice_warehouse.engine.paginate import PageNumberPaginator
from invoice_warehouse.engine.schema import Field, Schema
from invoice_warehouse.engine.spec import ConnField, ConnInfo, Detail, ProviderSpec, Stream

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # the maximum ItemsPerPage is undocumented; the simulator clamps to 100 [INF]
TOKEN_PATH = "/public/v2/connect/token"
REFRESH_PATH = "/public/v2/connect/token/refresh"
DEC = "decimal(18,6)"  # the docs' type for every amount and quantity


# --- envelope -----------------------------------------------------------------------------------------
def body_check(body: Any) -> tuple[str, bool] | None:
    """The envelope's own verdict: ``StatusCode`` other than 2xx, or a non-empty ``Errors`` list."""
    if not isinstance(body, Mapping) or "StatusCode" not in body:
        return "the response is not the REDEX envelope {Data, Meta, Errors, StatusCode, Message}", False
    code = body.get("StatusCode")
    errors = body.get("Errors")
    try:
        status = int(code)
    except (TypeError, ValueError):
        return f"envelope StatusCode {code!r} is not a number", False
    if 200 <= status < 300 and not errors:
        return None
    text = f"StatusCode {status} {body.get('Message') or ''}".strip()
    if errors:
        text += f"; Errors: {json.dumps(errors, default=str)[:300]}"
    return text, status in RETRYABLE_STATUS


# --- auth ---------------------------------------------------------------------------------------------
class ApiKeyGrant:
    """The REDEX token grant: refresh with the previous refresh token when there is one, otherwise (or
    when the refresh is refused) a new api-key grant. Token calls retry like data calls (connection
    errors, bad bodies, 429/5xx with Retry-After) since the engine's retry loop does not cover them."""

    def __init__(self, conn: ConnInfo):
        self.conn_id = conn.conn_id
        self._client_id = conn.login or ""
        self._client_secret = conn.password or ""
        self._api_key = str(conn.extra.get("api_key") or "")
        self.api_key_grants = 0
        self.refresh_grants = 0
        self.refresh_refused = 0

    def __call__(self, client: HttpClient, previous: TokenGrant | None) -> TokenGrant:
        if previous is not None and previous.refresh_token:
            try:
                grant = self._request(client, REFRESH_PATH, {
                    "RefreshToken": previous.refresh_token, "GrantType": "refresh_token",
                    "ClientId": self._client_id, "ClientSecret": self._client_secret})
            except AuthError as exc:
                # An expired or revoked refresh token (30 days): the ApiKey can always get a new one.
                self.refresh_refused += 1
                log.info("connection %r: refresh token refused (HTTP %s); requesting a new api-key grant",
                         self.conn_id, exc.status)
            else:
                self.refresh_grants += 1
                return grant
        grant = self._request(client, TOKEN_PATH, {
            "ApiKey": self._api_key, "GrantType": "api_key",
            "ClientId": self._client_id, "ClientSecret": self._client_secret})
        self.api_key_grants += 1
        return grant

    def _request(self, client: HttpClient, path: str, payload: dict[str, str]) -> TokenGrant:
        # The engine's retry loop (connection errors, bad bodies, 429/5xx with Retry-After); a refusal is
        # an AuthError that never echoes the request (it holds the ApiKey and the ClientSecret).
        body, _ = client.request_json(
            "POST", path, json_body=payload, authenticate=False,
            refused_hint="check the Client ID, Client Secret and API key stored in that Airflow connection")
        return self._grant(body, f"POST {path}")

    def _grant(self, body: Mapping[str, Any], where: str) -> TokenGrant:
        data = body.get("Data") if isinstance(body.get("Data"), Mapping) else {}
        token = data.get("AccessToken")
        if not token:
            raise ApiError(f"connection {self.conn_id!r}: {where} answered without Data.AccessToken")
        try:
            # ExpiresIn is documented as a string ("3600"); accept a number too.
            expires_in = float(data.get("ExpiresIn") or 3600)
        except (TypeError, ValueError):
            expires_in = 3600.0
        return TokenGrant(access_token=str(token), expires_in=expires_in,
                          token_type=str(data.get("TokenType") or "Bearer"),
                          refresh_token=data.get("RefreshToken") or None)


def _auth(conn: ConnInfo, on_secret: Callable[[str], None]) -> TokenAuth:
    missing = [label for label, value in (("login (Client ID)", conn.login),
                                          ("password (Client Secret)", conn.password),
                                          ("extra api_key (API key)", conn.extra.get("api_key")))
               if not value]
    if missing:
        raise ValueError(f"connection {conn.conn_id!r} is missing {', '.join(missing)}")
    on_secret(str(conn.extra["api_key"]))
    on_secret(conn.password or "")
    return TokenAuth(ApiKeyGrant(conn), on_secret=on_secret)


# --- streams ------------------------------------------------------------------------------------------
def _pages() -> PageNumberPaginator:
    return PageNumberPaginator(page_param="CurrentPage", size_param="ItemsPerPage", page_size=PAGE_SIZE,
                               total_pages_path="Meta.TotalPage", current_page_path="Meta.CurrentPage")


def _ts(name: str, path: str | None = None, required: bool = False) -> Field:
    # "Date time utc format" [SEED]: the 2024-03 shape omits the Z, so naive values are UTC.
    return Field(name, "timestamp", path=path, tz="UTC", required=required)


def _dec(name: str, path: str | None = None, required: bool = False) -> Field:
    return Field(name, DEC, path=path, required=required)


# Ordering by creation, ascending, keeps a full sweep stable: an invoice created while we page lands on
# the last page instead of shifting every page by one (the default order is CreatedDate desc [SEED]).
STABLE_ORDER = {"OrderBy": "CreatedDate", "IsDecending": "false"}

INVOICES = Stream(
    name="invoices",
    path="/public/v2/invoices",
    primary_key=("InvoiceNumber",),
    records="Data",
    paginator=_pages,
    params=STABLE_ORDER,
    variants=({"params": {"TransactionType": "AccountsPayable"}},
              {"params": {"TransactionType": "AccountsReceivable"}}),
    request_fields={"TransactionType": "TransactionType"},
    # No date filter: every run sweeps the list, but only invoices whose UpdatedTime moved since an
    # earlier window's partition are fetched in detail and landed again.
    detail=Detail(path="/public/v2/invoices/{InvoiceNumber}", records="Data", skip_unchanged="UpdatedTime"),
    description="Invoices (both TransactionTypes), each with its detail: Payer/Payee and MainInvoice.Items.",
    schema=Schema.of(
        Field("InvoiceNumber", required=True),
        Field("TransactionType", required=True),
        # String (2024-03) or {Value, Description} (2024-10), per row: JSON keeps both exactly.
        Field("Status", "json", required=True),
        Field("StatusValue", path="Status.Value"),
        Field("StatusObjectDescription", path="Status.Description"),
        "StatusDescription",
        "Type", "TypeDescription",
        _dec("Quantity"),
        _dec("Total", required=True),
        _dec("SubTotal"), _dec("TotalFee"), _dec("TotalReceivable"), _dec("TaxPercent"), _dec("TaxAmount"),
        _dec("PayerTaxPercentage"), _dec("PayerTaxAmount"), _dec("PayeeTaxPercentage"), _dec("PayeeTaxAmount"),
        "CurrencyCode", "CurrencySymbolic", "FeeCodeNumber", "WhiteLabelName",
        _ts("IssuedDate", required=True), _ts("DueDate"), _ts("PaidDate"), _ts("CreatedTime"), _ts("UpdatedTime"),
        Field("PayerCompanyName", path="Payer.CompanyName"),
        Field("PayerRegistrationNumber", path="Payer.RegistrationNumber"),
        Field("PayerCountry", path="Payer.Country"),
        Field("PayeeCompanyName", path="Payee.CompanyName"),
        Field("PayeeRegistrationNumber", path="Payee.RegistrationNumber"),
        Field("PayeeCountry", path="Payee.Country"),
        _dec("MainInvoiceTotal", "MainInvoice.Total"),
        _dec("MainInvoiceSubTotal", "MainInvoice.SubTotal"),
        _dec("MainInvoicePayerSubTotal", "MainInvoice.PayerSubTotal"),
        _dec("MainInvoicePayeeSubTotal", "MainInvoice.PayeeSubTotal"),
        _dec("MainInvoicePayerTaxAmount", "MainInvoice.PayerTaxAmount"),
        _dec("MainInvoicePayeeTaxAmount", "MainInvoice.PayeeTaxAmount"),
        Field("Payer", "json"),
        Field("Payee", "json"),
        Field("MainInvoice", "json", required=True),
    ),
)

ORDERS = Stream(
    name="orders",
    path="/public/v2/spot-exchange/transactions",  # [INF] path not captured in the docs
    primary_key=("TransactionId",),
    records="Data",
    paginator=_pages,
    params={"OrderBy": "CreatedTime", "IsDecending": "false"},  # stable sweep, as for invoices
    # No date filter and no update time: every run sweeps the list, and lands the transactions whose
    # content changed since an earlier window's partition (a status, a match, a finish).
    skip_unchanged_records=True,
    description="REC spot-exchange transactions (our orders and their matches); matched ones name their invoice.",
    schema=Schema.of(
        Field("TransactionId", required=True),
        "OrderId",
        Field("Status", "json", required=True),
        Field("StatusValue", path="Status.Value"),
        Field("StatusObjectDescription", path="Status.Description"),
        "TickerId", "Side", "Type", "TimeInForce",
        _dec("Price"), _dec("Quantity"), _dec("MatchedPrice"),
        "UserName", "CurrencyCode", "DeviceUniqueId", "MarketName",
        # The field list says BuyerInvoiceId/SellerInvoiceId, the examples InvoiceId: keep all three.
        "InvoiceId", "BuyerInvoiceId", "SellerInvoiceId",
        _ts("CreatedTime", required=True), _ts("MatchedTime"), _ts("FinishedTime"),
    ),
)

SPEC = ProviderSpec(
    name="redex",
    title="REDEX",
    conn_type="redex",
    auth=_auth,
    streams=(INVOICES, ORDERS),
    body_check=body_check,
    max_concurrency=4,
    test_path="/public/v2/invoices",
    test_params={"CurrentPage": 1, "ItemsPerPage": 1},
    source_timezone="UTC",
    relabeling={"host": "Base URL", "login": "Client ID", "password": "Client Secret"},
    placeholders={"host": "https://api.redex.eco", "login": "ClientId (up to 36 characters)",
                  "password": "ClientSecret (up to 36 characters)"},
    hidden_fields=("schema", "port", "extra"),
    extra_fields=(ConnField("api_key", "API key", secret=True,
                            description="The ApiKey (a UUID) of the api_key grant, from the REDEX portal"),),
    doc=__doc__ or "",
)


class RedexHook(ProviderHook):
    """Hook for the REDEX public API v2: host = base URL, login = Client ID, password = Client Secret,
    extra ``api_key`` = API key."""

    spec = SPEC
    conn_type = SPEC.conn_type
    default_conn_name = SPEC.default_conn_id
    hook_name = SPEC.title
