"""One exception type per FINS failure class, all under FinsError (callers catch the class they handle)."""

from __future__ import annotations

from shared.fins.endcodes import EndCode, EndCodeKind


class FinsError(Exception):
    """Any FINS failure."""


class FinsNotConnected(FinsError):
    """The client is not open (never opened, or closed)."""


class FinsTimeout(FinsError):
    """No valid reply after every attempt: the PLC (or the network to it) does not answer."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class FinsProtocolError(FinsError):
    """A malformed or mismatched frame (wrong ICF/SID/command/node/length); never turned into data."""


class FinsEndCodeError(FinsError):
    """The PLC answered with a non-success end code. `kind` tells what to do about it."""

    def __init__(self, end_code: EndCode, *, command: int, detail: str = "") -> None:
        self.end_code = end_code
        self.code = end_code.code
        self.kind: EndCodeKind = end_code.kind
        self.text = end_code.text
        self.command = command
        where = f" ({detail})" if detail else ""
        super().__init__(f"command {command:04X}{where}: end code {end_code} [{self.kind}]")


class FinsRetryableError(FinsEndCodeError):
    """Cancelled / destination busy / response timeout, still failing after the retries."""


class FinsAddressError(FinsEndCodeError):
    """Area missing, address out of range, range exceeded, response too long: the request is wrong."""


class FinsModeError(FinsEndCodeError):
    """The PLC is in the wrong mode for the command (e.g. PROGRAM)."""


class FinsAccessError(FinsEndCodeError):
    """Read/write not possible: protected, read-only, no access right."""


class FinsFormatError(FinsEndCodeError):
    """The PLC says our frame is malformed (10xx): a codec bug on our side, never retried."""


class FinsConfigError(FinsEndCodeError):
    """Network/routing/destination errors: DNA/DA1/DA2 or the network is misconfigured."""


class FinsUnsupportedError(FinsEndCodeError):
    """Undefined command or not supported by this model/version."""


_BY_KIND: dict[EndCodeKind, type[FinsEndCodeError]] = {
    EndCodeKind.RETRYABLE: FinsRetryableError,
    EndCodeKind.ADDRESS: FinsAddressError,
    EndCodeKind.MODE: FinsModeError,
    EndCodeKind.ACCESS: FinsAccessError,
    EndCodeKind.FORMAT: FinsFormatError,
    EndCodeKind.NETWORK: FinsConfigError,
    EndCodeKind.CONFIG: FinsConfigError,
    EndCodeKind.UNSUPPORTED: FinsUnsupportedError,
}


def end_code_error(end_code: EndCode, *, command: int, detail: str = "") -> FinsEndCodeError:
    """The most specific exception for a failed end code."""
    cls = _BY_KIND.get(end_code.kind, FinsEndCodeError)
    return cls(end_code, command=command, detail=detail)
