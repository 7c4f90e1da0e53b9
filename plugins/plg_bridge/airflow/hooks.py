"""Sessions for the vendor APIs, built from Airflow connections by the http provider's `HttpHook`.

The one place a HubSpot, Intercom or Salesforce connection is read. `HttpHook.get_conn()` (its
public API, no private overrides) builds the `requests.Session`: proxies, TLS verification,
certificates and redirects from the connection's extra. What the hook would get wrong for these
APIs is set afterwards on the session we own:

- auth: the hook would send login/password as basic auth; these APIs take a bearer token (the
  connection's password) or OAuth client credentials, so `session.auth` is replaced by the auth
  object of delivery/transport.py. The secret is masked in Airflow's logs.
- settings kept in the extra (`region`, `intercom_version`, `api_version`, `timeout`) are not
  headers: HttpHook copies unknown extras into the session's headers, they are removed again.
- base URL: a connection without host means the vendor's public API; a host without scheme
  means https (the hook would assume http).
- `timeout` (seconds) from the extra becomes the client's timeout.

Airflow is imported when a session is built, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

SETTINGS_EXTRAS = ("region", "intercom_version", "api_version", "timeout")


@dataclass
class ConnectionSession:
    session: requests.Session
    base_url: str
    login: str | None
    password: str | None
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _NoAuth:
    """`auth_type` for HttpHook: no basic auth from the connection (auth is set afterwards)."""

    def __init__(self, *_args: Any) -> None:
        pass

    def __call__(self, request: Any) -> Any:
        return request


def connection_session(
    conn_id: str, *, default_url: str | Callable[[dict[str, Any]], str] | None = None
) -> ConnectionSession:
    """A session for the connection `conn_id` through `HttpHook`, without auth (the caller sets
    its auth object), with the connection's base URL, credentials, timeout and extra.
    `default_url` (or a function of the extra, e.g. Intercom's region) applies without a host."""
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk.log import mask_secret

    hook = HttpHook(method="POST", http_conn_id=conn_id, auth_type=_NoAuth)
    session = hook.get_conn()
    connection = hook.get_connection(conn_id)
    session.auth = None
    extra = dict(connection.extra_dejson or {})
    for key in SETTINGS_EXTRAS:
        session.headers.pop(key, None)
    if connection.password:
        mask_secret(connection.password)
    if connection.host:
        base_url = hook.base_url
        if "://" not in str(connection.host) and not connection.schema:
            base_url = "https://" + base_url.split("://", 1)[1]
    elif default_url:
        base_url = default_url(extra) if callable(default_url) else default_url
    else:
        raise ValueError(f"Airflow connection {conn_id!r} has no host")
    timeout = extra.get("timeout")
    return ConnectionSession(
        session=session,
        base_url=base_url.rstrip("/"),
        login=connection.login or None,
        password=connection.password or None,
        timeout=float(timeout) if timeout not in (None, "") else None,
        extra=extra,
    )


def bearer_session(
    conn_id: str, *, default_url: str | Callable[[dict[str, Any]], str] | None, what: str
) -> ConnectionSession:
    """`connection_session` authorized with the connection's password as a bearer token."""
    from plg_bridge.delivery.transport import BearerAuth

    found = connection_session(conn_id, default_url=default_url)
    if not found.password:
        raise ValueError(f"Airflow connection {conn_id!r} has no password: put the {what} there")
    found.session.auth = BearerAuth(found.password)
    return found
