"""Typed domain errors that carry a response code; the edges translate them."""

from __future__ import annotations

from shared.codes import RESPONSE_TEXT, ResponseCode


class RuleViolation(Exception):
    """A rule of the Rules or the protocol refuses an action.

    ``http_status`` is what the operator API answers; the messaging edge uses ``code``.
    """

    def __init__(self, code: ResponseCode, reason: str = "", http_status: int = 422) -> None:
        self.code = code
        self.reason = reason or RESPONSE_TEXT.get(code, code.name.lower())
        self.http_status = http_status
        super().__init__(f"{int(code)} {self.reason}")


class NotFound(Exception):
    """An entity the request names does not exist (HTTP 404)."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)
