"""Protocol errors of the pure SIP layer.

Each error carries the status code a server answers with (``status_code``) and a
message short enough to be that response's reason phrase::

    SipError
     ├── ParseError            400  malformed message (or dropped, see ``respondable``)
     │    ├── MessageTooLarge  513
     │    └── BadUriScheme     416  unsupported Request-URI scheme
     └── (later layers add their own)

A peer's mistake becomes a response or an event; it never escapes the adapter.
"""

from __future__ import annotations


class SipError(Exception):
    """Base of every SIP protocol error. ``str(err)`` fits a reason phrase."""

    status_code: int = 500

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status_code is not None:
            self.status_code = status_code


class ParseError(SipError):
    """The bytes are not a valid SIP message.

    ``respondable`` is True when enough of a request was understood (start line,
    Via, From, To, Call-ID, CSeq) to build a 4xx response; otherwise the message
    is dropped silently (RFC 3261 §18.3, RFC 4475 §3.1).
    """

    status_code = 400

    def __init__(
        self,
        reason: str,
        *,
        status_code: int | None = None,
        respondable: bool = False,
        partial: object | None = None,
    ) -> None:
        super().__init__(reason, status_code=status_code)
        self.respondable = respondable
        # The partially parsed Request (switch.sip.message.Request) when respondable.
        self.partial = partial


class MessageTooLarge(ParseError):
    status_code = 513


class BadUriScheme(ParseError):
    status_code = 416
