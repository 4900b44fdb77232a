"""One exception class per way an Odoo call can fail (docs/odoo-api.md O1.2, O7).

The classes form two families a caller can catch broadly:

* ``OdooTransportError``: nothing trustworthy came back (refused, reset, timeout, HTTP 5xx, HTML, non-JSON,
  malformed JSON-RPC). For a write the outcome is UNKNOWN: the server may have committed it.
  ``OdooProtocolError`` (a subclass) marks replies that arrived but are odd; they are reported, never repaired.
* ``OdooBusinessError``: Odoo answered cleanly and refused (``result.status == "error"`` or a JSON-RPC
  ``error`` other than session expiry). For writes the state is still unknown in part, because the module
  commits what it wrote before failing (O5.3): write methods attach a re-read MO in ``mo``.

``OdooSessionExpired`` and ``OdooLoginCooldown`` / ``OdooAuthError`` cover the session life cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.odoo.models import Mo


class OdooError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(f"{endpoint}: {message}" if endpoint else message)
        self.message = message
        self.endpoint = endpoint


class OdooTransportError(OdooError):
    """No usable reply: connection refused/reset, timeout, HTTP 5xx, HTML or non-JSON body.

    ``outcome_unknown`` is True when the request may have reached the server (everything except a refused
    connection): a non-idempotent call must then be checked before it is sent again. ``may_still_run`` is True
    when we stopped waiting while Odoo may still be working on it (our read timeout, a proxy's 504): a check
    made before that work ends finds nothing, so it must wait until the longest call is surely over.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        http_status: int | None = None,
        outcome_unknown: bool = True,
        may_still_run: bool = False,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.http_status = http_status
        self.outcome_unknown = outcome_unknown
        self.may_still_run = may_still_run or http_status == 504


class OdooProtocolError(OdooTransportError):
    """A reply arrived but does not have the documented shape (missing keys, wrong types, HTTP 4xx HTML)."""


class OdooRouteNotFound(OdooProtocolError):
    """HTTP 404 JSON-RPC error: the route does not exist (module not installed, DB not bound, typo)."""


class OdooSessionExpired(OdooError):
    """JSON-RPC ``error.code == 100``: the session is gone. Raised to the caller only when a re-login did not
    help or the call is not idempotent (the client never replays those)."""


class OdooAuthError(OdooError):
    """Login refused (wrong login, password or database)."""


class OdooLoginCooldown(OdooAuthError):
    """Login attempts are paused: the server's per-IP lock (5 failures -> 60 s) or the client's own back-off.

    ``retry_after`` is the number of seconds to wait before the next attempt is allowed.
    """

    def __init__(self, message: str, *, retry_after: float, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.retry_after = retry_after


class OdooBusinessError(OdooError):
    """Odoo refused the request: ``result.status == "error"`` (message in ``message``).

    ``mo`` holds the MO as Odoo has it after the failed write when the client could re-read it (O5.3, O7.9).
    """

    def __init__(self, message: str, *, endpoint: str = "", mo: Mo | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.mo = mo


class OdooServerError(OdooBusinessError):
    """A JSON-RPC ``error`` object other than session expiry (an exception escaped the handler, code 200)."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        code: int = 200,
        name: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.code = code
        self.name = name
        self.data = data or {}
