"""Typed views of the header fields the stack reasons about.

``message.Headers`` stores every field as text, in order, one entry per value
(comma-separated lists are split by the parser, except the auth headers). The
classes here parse one value on demand and serialise back with ``str()``.

    Via            = ( "Via" / "v" ) HCOLON via-parm *(COMMA via-parm)
    via-parm       = sent-protocol LWS sent-by *( SEMI via-params )
    name-addr      = [ display-name ] LAQUOT addr-spec RAQUOT
    CSeq           = "CSeq" HCOLON 1*DIGIT LWS Method
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switch.sip.uri import Uri

# Compact forms (RFC 3261 §7.3.3 and the extensions that define one).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

# Names whose canonical spelling is not plain Title-Case.
_SPECIAL_CASE = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "aastra-mac": "Aastra-Mac",
}

# Headers whose values may be comma-separated lists (RFC 3261 §7.3.1) and that
# the parser splits into one entry per value. Authorization-style headers are
# NOT lists even though they contain commas.
LIST_HEADERS = frozenset(
    {
        "Via",
        "Route",
        "Record-Route",
        "Contact",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Content-Encoding",
        "Content-Language",
        "In-Reply-To",
        "Path",
        "Service-Route",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "History-Info",
        "Diversion",
        "P-Asserted-Identity",
        "Reason",
        "Privacy",
    }
)

_canon_cache: dict[str, str] = {}


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name; compact forms are expanded."""
    cached = _canon_cache.get(name)
    if cached is not None:
        return cached
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        result = COMPACT_FORMS[lower]
    elif lower in _SPECIAL_CASE:
        result = _SPECIAL_CASE[lower]
    else:
        result = "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))
    if len(_canon_cache) < 4096:  # bounded: header names come from the network
        _canon_cache[name] = result
    return result


def _params_str(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport``."""

    transport: str  # upper-case: UDP, TCP, TLS, SCTP, WS, WSS...
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return (self.host.lower(), self.port)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{_params_str(self.params)}"


@dataclass(slots=True)
class NameAddr:
    """From, To, Contact, Route, Record-Route... ``"Alice" <sip:a@x>;tag=1``.

    ``display`` is the display name as written (quotes included when quoted);
    ``bracketed`` is False for the addr-spec form (no angle brackets), in which
    case URI parameters and header parameters cannot be told apart: RFC 3261
    §20 says they are header parameters, and the parser follows it.
    """

    uri: Uri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    bracketed: bool = True

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        if self.bracketed or self.display:
            disp = f"{self.display} " if self.display else ""
            return f"{disp}<{self.uri}>{_params_str(self.params)}"
        return f"{self.uri}{_params_str(self.params)}"


@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_via(value: str) -> Via:
    """Parse one Via value (not a list); raise ParseError when malformed."""
    raise NotImplementedError


def parse_name_addr(value: str) -> NameAddr:
    """Parse a name-addr or addr-spec with header params; raise ParseError."""
    raise NotImplementedError


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must fit 2**31 (RFC 3261 §8.1.1.5)."""
    raise NotImplementedError


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` (leading semicolon optional) into an ordered dict."""
    raise NotImplementedError
