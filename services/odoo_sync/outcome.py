"""What an Odoo result means for a batch: pure decisions, unit-tested; the worker applies them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.odoo.errors import (
    OdooAuthError,
    OdooBusinessError,
    OdooError,
    OdooLoginCooldown,
    OdooSessionExpired,
    OdooTransportError,
)

Verdict = Literal["archive", "attention", "retry"]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str


def classify_error(exc: OdooError) -> Outcome:
    """Transport trouble, session expiry and login trouble are retried with back-off (a retry of
    update-with-consumptions is harmless: it SETs values). Odoo's refusals need an operator."""
    if isinstance(exc, OdooLoginCooldown | OdooTransportError | OdooSessionExpired):
        return Outcome("retry", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OdooAuthError):
        return Outcome("retry", f"login refused: {exc}")  # a config fix, not a batch problem
    if isinstance(exc, OdooBusinessError):
        return Outcome("attention", f"Odoo refused: {exc.message}")
    return Outcome("retry", f"{type(exc).__name__}: {exc}")


def classify_update(partial: bool, errors: list[str]) -> Outcome:
    if partial:
        return Outcome("attention", "Odoo applied the update only in part: " + "; ".join(errors[:5]))
    return Outcome("archive", "consumption reported")
