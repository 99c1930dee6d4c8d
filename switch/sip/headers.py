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

import re
from dataclasses import dataclass, field
from typing import cast

from switch.sip.errors import ParseError
from switch.sip.uri import (
    ANY_URI,
    ANY_URI_BARE,
    HOST,
    IPV6REFERENCE,
    PORT,
    Uri,
    parse_host,
    parse_uri,
)

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
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params.items()])


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


# --- ABNF (RFC 3261 §25.1) -------------------------------------------------
# Regex fragments with possessive repetitions only (see ``switch.sip.uri``):
# matching time is linear in the input. Header values reach these functions
# unfolded (no CRLF), so LWS is ``[ \t]``.
#
#   token       =  1*(alphanum / "-" / "." / "!" / "%" / "*"
#                  / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]++"
TOKEN_RE = re.compile(TOKEN)

#   quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
#   qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
#   quoted-pair    =  "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED_STRING = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*+"'
_QUOTED_RE = re.compile(QUOTED_STRING)

#   generic-param  =  token [ EQUAL gen-value ]
#   gen-value      =  token / host / quoted-string
#   SEMI = SWS ";" SWS        EQUAL = SWS "=" SWS
# ``host`` is a token or an IPv6 reference; a bare IPv6 address is accepted for
# via-received ("received" EQUAL (IPv4address / IPv6address)).
GEN_VALUE = rf"(?:{TOKEN}|{IPV6REFERENCE}|[0-9A-Fa-f:.]++|{QUOTED_STRING})"
_PARAM = rf"({TOKEN})(?:[ \t]*+=[ \t]*+({GEN_VALUE}))?+"
GENERIC_PARAMS = rf"(?:[ \t]*+;[ \t]*+{TOKEN}(?:[ \t]*+=[ \t]*+{GEN_VALUE})?+)*+[ \t]*+"
_PARAM_ITER_RE = re.compile(rf";[ \t]*+{_PARAM}")

#   display-name   =  *(token LWS)/ quoted-string
DISPLAY_NAME = rf"(?:{QUOTED_STRING}|{TOKEN}(?:[ \t]++{TOKEN})*+)"

#   name-addr      =  [ display-name ] LAQUOT addr-spec RAQUOT
#   addr-spec      =  SIP-URI / SIPS-URI / absoluteURI
#   LAQUOT = SWS "<"          RAQUOT = ">" SWS
# (name-addr / addr-spec) *( SEMI generic-param ): the whole of a From, To,
# Contact, Route or Record-Route value, checked in one match.
NAME_ADDR_VALUE_RE = re.compile(
    rf"(?:(?:{DISPLAY_NAME}[ \t]*+)?+<{ANY_URI}>|{ANY_URI_BARE}){GENERIC_PARAMS}"
)
# The same, cut into its parts (URI then parsed by ``parse_uri``).
_NAME_ADDR_PARTS_RE = re.compile(
    rf"(?:(?:(?P<display>{DISPLAY_NAME})[ \t]*+)?+<(?P<uri>[^<>]*+)>"
    rf"|(?P<spec>[^;<>\"\s,?]++))(?P<params>{GENERIC_PARAMS})"
)

#   via-parm       =  sent-protocol LWS sent-by *( SEMI via-params )
#   sent-protocol  =  protocol-name SLASH protocol-version SLASH transport
#   sent-by        =  host [ COLON port ]
#   SLASH = SWS "/" SWS       COLON = SWS ":" SWS
VIA_VALUE_RE = re.compile(
    rf"({TOKEN})[ \t]*+/[ \t]*+({TOKEN})[ \t]*+/[ \t]*+({TOKEN})[ \t]++"
    rf"({HOST})(?:[ \t]*+:[ \t]*+({PORT}))?+({GENERIC_PARAMS})"
)

#   CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method
CSEQ_RE = re.compile(rf"([0-9]++)[ \t]++({TOKEN})")


def find_quote_end(text: str, start: int) -> int:
    """Index of the DQUOTE closing the quoted-string opened at ``text[start]``.

    Honours ``quoted-pair`` escapes; raise ``ParseError`` when unterminated.
    """
    i = start + 1
    while True:
        q = text.find('"', i)
        if q < 0:
            raise ParseError("unterminated quoted string")
        b = text.find("\\", i, q)
        if b < 0:
            return q
        i = b + 2  # skip the escaped character, then look again


_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)


def unquote(text: str) -> str:
    """The text of a quoted-string (``"Jean \\"JD\\" Dupont"`` -> ``Jean "JD" Dupont``:
    quotes off, each quoted-pair its character); anything else unchanged."""
    if _QUOTED_RE.fullmatch(text) is None:
        return text
    return _QUOTED_PAIR_RE.sub(r"\1", text[1:-1])


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value (``#element``, RFC 3261 §7.3.1).

    Commas inside quoted strings and inside ``<...>`` do not separate; elements
    are stripped of surrounding whitespace. Empty elements are returned as ``""``
    so the caller decides whether they are an error.
    """
    if '"' not in value and "<" not in value:
        return [item.strip(" \t") for item in value.split(",")]
    out: list[str] = []
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == '"':
            i = find_quote_end(value, i) + 1
            continue
        if c == "<":
            close = value.find(">", i)
            if close < 0:
                raise ParseError("unterminated <")
            i = close + 1
            continue
        if c == ",":
            out.append(value[start:i].strip(" \t"))
            start = i + 1
        i += 1
    out.append(value[start:].strip(" \t"))
    return out


def _split_params(text: str) -> list[str]:
    # Split on ";" outside quoted strings.
    if '"' not in text:
        return text.split(";")
    out: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = find_quote_end(text, i) + 1
            continue
        if c == ";":
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` (leading semicolon optional) into an ordered dict.

        generic-param  =  token [ EQUAL gen-value ]
        gen-value      =  token / host / quoted-string

    Names are lower-cased (they are case-insensitive); values are kept as
    written, quotes included. Empty parameters (``;;``) are skipped: the
    message parser rejects them where RFC 4475 §3.1.2.1 asks for it.
    """
    params: dict[str, str | None] = {}
    text = text.strip(" \t")
    if not text:
        return params
    if text[0] != ";":
        text = ";" + text
    if ";;" not in text and _GENERIC_PARAMS_RE.fullmatch(text) is not None:
        for m in _PARAM_ITER_RE.finditer(text):
            params[m.group(1).lower()] = m.group(2)
        return params
    for item in _split_params(text[1:]):
        name, eq, val = item.partition("=")
        name = name.strip(" \t")
        if not name:
            if eq:
                raise ParseError("bad parameter")
            continue
        if TOKEN_RE.fullmatch(name) is None:
            raise ParseError("bad parameter")
        if eq:
            val = val.strip(" \t")
            if val.startswith('"'):
                if _QUOTED_RE.fullmatch(val) is None:
                    raise ParseError("bad quoted parameter")
            elif _GEN_VALUE_RE.fullmatch(val) is None:
                raise ParseError("bad parameter value")
            params[name.lower()] = val
        else:
            params[name.lower()] = None
    return params


_GENERIC_PARAMS_RE = re.compile(GENERIC_PARAMS)
_GEN_VALUE_RE = re.compile(GEN_VALUE)


ViaGroups = tuple[str, str, str, str, str | None, str]
"""``VIA_VALUE_RE`` groups: protocol name, version, transport, host, port, params."""

# The groups of Via values matched lately. The parser checks every Via with
# VIA_VALUE_RE and records them here; ``parse_via`` of the same text (stamping
# ``received``, the transaction layer's ``top_via``) then skips the match.
# Strings only: every ``parse_via`` still builds its own ``Via``. Bounded by
# clearing when full and by the length of what it keeps.
_VIA_GROUPS: dict[str, ViaGroups] = {}
_VIA_GROUPS_MAX = 1024
_VIA_TEXT_MAX = 512


def via_groups(value: str) -> ViaGroups | None:
    """``VIA_VALUE_RE.fullmatch(value).groups()``, or None when it does not match."""
    groups = _VIA_GROUPS.get(value)
    if groups is not None:
        return groups
    m = VIA_VALUE_RE.fullmatch(value)
    if m is None:
        return None
    groups = cast(ViaGroups, m.groups())
    if len(value) <= _VIA_TEXT_MAX:
        if len(_VIA_GROUPS) >= _VIA_GROUPS_MAX:
            _VIA_GROUPS.clear()
        _VIA_GROUPS[value] = groups
    return groups


def parse_via(value: str) -> Via:
    """Parse one Via value (not a list); raise ParseError when malformed.

        via-parm       =  sent-protocol LWS sent-by *( SEMI via-params )
        sent-protocol  =  protocol-name SLASH protocol-version SLASH transport
        sent-by        =  host [ COLON port ]

    Whitespace around "/" and ":" is allowed (RFC 4475 §3.1.1.1); the transport
    is upper-cased; ``protocol`` is normalised to ``NAME/VERSION``. Empty
    parameters (``;;``) are tolerated here so that a 400 can still be routed
    back to a sloppy sender; ``parse_message`` rejects them.
    """
    groups = via_groups(value.strip(" \t"))
    if groups is not None:
        name, version, transport, host, port, ptext = groups
        # ``port`` matched PORT (1 to 5 digits, 0..65535): int() is the check.
        return Via(
            transport.upper(),
            host,
            None if port is None else int(port),
            _matched_params(ptext) if ptext else {},
            f"{name.upper()}/{version}",
        )
    return _parse_via_lenient(value)


def _matched_params(text: str) -> dict[str, str | None]:
    """``parse_params`` of text that already matched ``GENERIC_PARAMS`` in full."""
    if '"' in text or " " in text or "\t" in text:
        return parse_params(text)
    # No quotes and no LWS: every item is ``token [ "=" gen-value ]`` and neither
    # token nor an unquoted gen-value holds ";" or "=".
    params: dict[str, str | None] = {}
    for item in text[1:].split(";"):
        name, eq, val = item.partition("=")
        params[name.lower()] = val if eq else None
    return params


def _parse_via_lenient(value: str) -> Via:
    parts = value.split("/", 2)
    if len(parts) != 3:
        raise ParseError("bad sent-protocol")
    name = parts[0].strip(" \t")
    version = parts[1].strip(" \t")
    rest = parts[2].lstrip(" \t")
    if TOKEN_RE.fullmatch(name) is None or TOKEN_RE.fullmatch(version) is None:
        raise ParseError("bad sent-protocol")
    end = 0
    n = len(rest)
    while end < n and rest[end] not in " \t":
        end += 1
    transport = rest[:end]
    if end == n or TOKEN_RE.fullmatch(transport) is None:
        raise ParseError("bad sent-protocol")
    sent_by, semi, ptext = rest[end:].partition(";")
    sent_by = sent_by.strip(" \t")
    m = _SENT_BY_RE.fullmatch(sent_by)
    if m is None:
        raise ParseError("bad sent-by")
    host, port = parse_host(m.group(1) if m.group(2) is None else f"{m.group(1)}:{m.group(2)}")
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=parse_params(ptext) if semi else {},
        protocol=f"{name.upper()}/{version}",
    )


_SENT_BY_RE = re.compile(rf"({HOST})(?:[ \t]*+:[ \t]*+({PORT}))?+")


def parse_name_addr(value: str) -> NameAddr:
    """Parse a name-addr or addr-spec with header params; raise ParseError.

        (name-addr / addr-spec) *( SEMI generic-param )
        name-addr      =  [ display-name ] LAQUOT addr-spec RAQUOT
        addr-spec      =  SIP-URI / SIPS-URI / absoluteURI
        display-name   =  *(token LWS)/ quoted-string

    RFC 3261 §20: in the addr-spec form, parameters after the URI are header
    parameters, and "If the URI contains a comma, question mark or semicolon,
    the URI MUST be enclosed in angle brackets (< and >)".
    """
    text = value.strip(" \t")
    m = _NAME_ADDR_PARTS_RE.fullmatch(text)
    if m is None:
        raise ParseError(_diagnose_name_addr(text))
    display, inner, spec, ptext = m.groups()
    params = _matched_params(ptext) if ptext else {}  # matched GENERIC_PARAMS in full
    if spec is not None:
        return NameAddr(parse_uri(spec), None, params, False)
    assert inner is not None
    if inner[:1] in (" ", "\t") or inner[-1:] in (" ", "\t"):
        # RFC 4475 §3.1.2.14 badaspec: no LWS inside "<" ">".
        raise ParseError("spaces inside <>")
    return NameAddr(parse_uri(inner), display, params, True)


def name_addr_tag(value: str) -> str | None:
    """``parse_name_addr(value).tag``, without building the URI.

    Transactions, dialogs and the B2BUA key on the From and To tags, read
    several times per message. The URI between the angle brackets is not
    checked again: the parser checked it in every message received, and the
    ones we write come from ``NameAddr``. Otherwise the same values raise
    ``ParseError``.
    """
    tags = _TAGS
    try:
        return tags[value]  # one lookup on a hit (None is a value: no tag)
    except KeyError:
        pass
    text = value.strip(" \t")
    m = _NAME_ADDR_PARTS_RE.fullmatch(text)
    if m is None:
        raise ParseError(_diagnose_name_addr(text))
    ptext = m.group("params")
    # ``params`` matched GENERIC_PARAMS in full.
    tag = _matched_params(ptext).get("tag") if ptext else None
    if len(value) <= _CACHED_TEXT_MAX:
        if len(tags) >= _CACHED_MAX:
            tags.clear()
        tags[value] = tag
    return tag


# The From and To of a dialog, and the CSeq of a transaction, come back in every
# message of it (the one received, the ones built from it): their text ->
# what ``name_addr_tag`` and ``parse_cseq`` read (immutable results only).
# Bounded by clearing when full and by the length of what they keep.
_TAGS: dict[str, str | None] = {}
_CSEQS: dict[str, CSeq] = {}
_CACHED_MAX = 4096
_CACHED_TEXT_MAX = 512


def _diagnose_name_addr(text: str) -> str:
    """A short reason for a value that is neither name-addr nor addr-spec."""
    if text.startswith('"'):
        try:
            end = find_quote_end(text, 0)
        except ParseError as err:
            return err.reason
        if not text[end + 1 :].lstrip(" \t").startswith("<"):
            return "missing <"
    lt = text.find("<")
    if lt < 0:
        if "?" in text.partition(";")[0] or "," in text:
            return "URI with , or ? not in <>"
        return "bad addr-spec"
    if text.find(">", lt) < 0:
        return "missing >"
    if lt > 0 and not text.startswith('"'):
        return "bad display name"
    return "bad name-addr"


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must fit 2**31 (RFC 3261 §8.1.1.5).

        CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method

    "The sequence number value MUST be expressible as a 32-bit unsigned
    integer and MUST be less than 2**31."
    """
    cseqs = _CSEQS
    cseq = cseqs.get(value)
    if cseq is not None:
        return cseq
    m = CSEQ_RE.fullmatch(value.strip(" \t"))
    if m is None:
        raise ParseError("bad CSeq")
    number, method = m.groups()
    # The length first: int() raises ValueError beyond 4300 digits (sys.set_int_max_str_digits).
    if len(number) > 10 or (seq := int(number)) >= 2**31:
        raise ParseError("sequence number too large")
    cseq = CSeq(seq, method)
    if len(value) <= _CACHED_TEXT_MAX:
        if len(cseqs) >= _CACHED_MAX:
            cseqs.clear()
        cseqs[value] = cseq
    return cseq
