"""Wire format of Odoo 14 ``type='json'`` routes: request envelope and reply classification (pure functions).

docs/odoo-api.md O1.1/O1.2: every application error is HTTP 200 with ``result.status == "error"``; session
expiry is HTTP 200 with JSON-RPC ``error.code == 100``; unknown routes are HTTP 404 with a JSON-RPC error;
wrong method / bad JSON are 405/400 HTML; proxies add 502/504 HTML. Anything else is odd and reported as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.odoo.errors import (
    OdooBusinessError,
    OdooProtocolError,
    OdooRouteNotFound,
    OdooServerError,
    OdooSessionExpired,
    OdooTransportError,
)

SESSION_EXPIRED_CODE = 100
_SUCCESS_STATUSES = frozenset({"success", "ok"})  # health says "ok", everything else "success" (O7.4)
_SNIPPET = 120


def envelope(params: Mapping[str, Any], request_id: int) -> dict[str, Any]:
    """The canonical JSON-RPC request. Never carries ``context``: the module would treat it as an equipment
    code on update-with-consumptions (O1.1 trap)."""
    if "context" in params:
        raise ValueError("params must not contain 'context' (grt_scada treats it as an equipment code)")
    return {"jsonrpc": "2.0", "method": "call", "params": dict(params), "id": request_id}


def _snippet(body: bytes) -> str:
    text = body[:_SNIPPET].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("..." if len(body) > _SNIPPET else "")


def decode_reply(status: int, content_type: str, body: bytes, *, endpoint: str = "") -> dict[str, Any]:
    """Turn an HTTP reply into the parsed JSON-RPC object, or raise the transport/protocol error it is.

    Does not look inside ``error``/``result``: see ``unwrap``.
    """
    if status >= 500:
        raise OdooTransportError(f"HTTP {status}: {_snippet(body)!r}", endpoint=endpoint, http_status=status)
    is_json = "json" in content_type.lower()
    if not is_json:
        # 405/400 HTML pages (our request was wrong), a proxy page, or a login redirect.
        kind = "HTML" if "html" in content_type.lower() else (content_type or "no content type")
        raise OdooProtocolError(
            f"HTTP {status} {kind} body where JSON was expected: {_snippet(body)!r}",
            endpoint=endpoint,
            http_status=status,
        )
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OdooProtocolError(
            f"HTTP {status}: body is not valid JSON ({exc}): {_snippet(body)!r}",
            endpoint=endpoint,
            http_status=status,
        ) from None
    if not isinstance(doc, dict):
        raise OdooProtocolError(
            f"HTTP {status}: JSON-RPC reply is a {type(doc).__name__}, not an object",
            endpoint=endpoint,
            http_status=status,
        )
    if status == 404:
        raise OdooRouteNotFound(
            f"HTTP 404: route not found ({_error_text(doc)})", endpoint=endpoint, http_status=404
        )
    if status != 200:
        raise OdooProtocolError(
            f"unexpected HTTP {status} with a JSON body", endpoint=endpoint, http_status=status
        )
    return doc


def _error_text(doc: Mapping[str, Any]) -> str:
    err = doc.get("error")
    if isinstance(err, dict):
        data = err.get("data")
        if isinstance(data, dict) and isinstance(data.get("message"), str) and data["message"]:
            return str(data["message"])
        return str(err.get("message", "error"))
    return "no error object"


def unwrap(doc: Mapping[str, Any], *, endpoint: str = "", allow_no_result: bool = False) -> dict[str, Any] | None:
    """Return ``result`` of a JSON-RPC reply, raising for an ``error`` object.

    Code 100 -> OdooSessionExpired; any other code -> OdooServerError. ``result`` must be an object unless
    ``allow_no_result`` (handlers that return None, e.g. /web/session/check, have no ``result`` key).
    """
    if "error" in doc:
        err = doc["error"]
        if not isinstance(err, dict) or not isinstance(err.get("code"), int):
            raise OdooProtocolError(f"malformed JSON-RPC error object: {err!r:.200}", endpoint=endpoint)
        data = err.get("data") if isinstance(err.get("data"), dict) else {}
        if err["code"] == SESSION_EXPIRED_CODE:
            raise OdooSessionExpired(_error_text(doc), endpoint=endpoint)
        raise OdooServerError(
            _error_text(doc),
            endpoint=endpoint,
            code=err["code"],
            name=str(data.get("name", "")) if data else "",
            data=data,
        )
    if "result" not in doc:
        if allow_no_result:
            return None
        raise OdooProtocolError("JSON-RPC reply has neither 'result' nor 'error'", endpoint=endpoint)
    result = doc["result"]
    if not isinstance(result, dict):
        raise OdooProtocolError(f"'result' is a {type(result).__name__}, not an object", endpoint=endpoint)
    return result


def check_status(result: Mapping[str, Any], *, endpoint: str = "") -> str:
    """Return the ``status`` of a SCADA ``result`` ("success"/"ok"), raising for "error" or anything odd."""
    status = result.get("status")
    if status == "error":
        message = result.get("message")
        raise OdooBusinessError(str(message) if message is not None else "(no message)", endpoint=endpoint)
    if not isinstance(status, str) or status not in _SUCCESS_STATUSES:
        raise OdooProtocolError(f"unexpected result.status {status!r}", endpoint=endpoint)
    return status
