"""Bytes to ``Request`` / ``Response`` (RFC 3261 §7, §20, §25), and TCP/TLS framing.

``parse_message(data)`` parses one complete message (a UDP datagram, or one
frame cut by ``StreamFramer``). It is a single pass over the header section:

1. leading CRLFs are skipped (§7.5), the header section ends at the first empty
   line; folded lines (LWS continuation, §7.3.1) are joined with one SP;
2. every field is stored as text under its canonical name (compact forms
   expanded); fields of ``LIST_HEADERS`` are split on commas outside quoted
   strings and ``<...>``, one entry per value; every other field (Authorization,
   WWW-Authenticate, Date...) is kept whole; unknown fields are kept, in order;
3. the fields the transaction layer keys on are checked eagerly (Via, From, To,
   Call-ID, CSeq, Max-Forwards, Content-Length, Contact, Route, Record-Route),
   so that layers above never meet a malformed one; the rest are text and get
   parsed on demand by the typed views of ``switch.sip.message``. Checks of
   text that recurs (a To, a Contact, a Route, the Request-URI, each Via for
   ``parse_via`` later) are remembered in small bounded memos: same verdicts,
   fewer regex matches;
4. the body is what follows the empty line, cut to Content-Length.

Errors (``switch.sip.errors``)::

    ParseError 400      malformed; ``respondable`` + ``partial`` when a request's
                        start line and top Via were usable (RFC 4475 §3.1.2)
    ParseError 505      request with a SIP-Version other than SIP/2.0
    BadUriScheme 416    Request-URI scheme other than sip, sips, tel
    MessageTooLarge 513 more than ``max_size`` octets

A response that fails to parse is never respondable: it is dropped (§18.1.2).
A request that is an ACK is never respondable either (§17.1.1.3: no response to
an ACK). The reason (``str(err)``) is short ASCII, fit for a reason phrase.

Respondability deliberately needs only what a stateless 4xx needs to reach
the sender: a request start line (method) and a top Via whose sent-by parses
(§18.2.2). From, To, Call-ID and CSeq are copied into the response as text when
present (RFC 4475 §3.3.1 ``insuf`` asks for a 400 even without them), so
``partial.cseq`` / ``partial.to`` may raise on a partial: use the raw headers.
When the Request-URI itself was unusable, ``partial.uri`` is the placeholder
``sip:invalid``.

Several messages in one datagram (RFC 4475 §3.1.1.8 ``dblreq``): the first is
parsed and its body cut to its Content-Length; the octets after it are ignored.
"""

from __future__ import annotations

import re
from typing import Final

from switch.sip.errors import BadUriScheme, MessageTooLarge, ParseError
from switch.sip.headers import (
    CSEQ_RE,
    LIST_HEADERS,
    NAME_ADDR_VALUE_RE,
    TOKEN_RE,
    CSeq,
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_list,
    via_groups,
)
from switch.sip.message import SIP_VERSION, Headers, Request, Response
from switch.sip.uri import Uri, parse_uri

__all__ = ["DEFAULT_MAX_SIZE", "KEEPALIVE_PING", "METHODS", "StreamFramer", "parse_message"]

DEFAULT_MAX_SIZE: Final = 65535

# Request-URI schemes this element serves; any other scheme is answered 416
# (RFC 3261 §8.2.2.1: "If the Request-URI uses a scheme not supported by the
# UAS, it SHOULD reject the request with a 416 (Unsupported URI Scheme)").
REQUEST_URI_SCHEMES: Final = frozenset({"sip", "sips", "tel"})

#   SIP-Version    =  "SIP" "/" 1*DIGIT "." 1*DIGIT
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")

#   Status-Code    =  3DIGIT  (RFC 3261 §21: classes 1xx..6xx)
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")

# Fields checked once each (single-valued ones must not repeat, RFC 4475 §3.3.8).
_SINGLE = frozenset({"From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length"})
_ADDRESS_LISTS = ("Contact", "Route", "Record-Route")
_TRACKED = _SINGLE | {"Via", *_ADDRESS_LISTS}

_PLACEHOLDER_URI_HOST = "invalid"  # RFC 2606 reserved name

# Raw header name (as written, with trailing SP/HT) -> canonical name, filled
# only with names that passed the token check. Bounded: names come from peers.
_NAMES: dict[str, str] = {}
_NAMES_MAX = 4096


# via-branch  =  "branch" EQUAL token   (in the parameters of a matched Via)
_BRANCH_RE = re.compile(r";[ \t]*+branch[ \t]*+=[ \t]*+([^; \t]*+)", re.IGNORECASE)


# Methods of the IANA SIP registry: tokens, so the token check can be skipped.
METHODS = frozenset(
    {
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    }
)

# Memos of pure checks on peer text, bounded by clearing when full and by the
# length of what they keep. Values recur (the To of out-of-dialog requests, a
# phone's Contact, a dialog's Route set, the switch's own Request-URIs); a miss
# costs one set or dict lookup.
_MEMO_MAX = 2048
_MEMO_TEXT_MAX = 256
_VALID_NAME_ADDRS: set[str] = set()
_REQUEST_URIS: dict[str, Uri] = {}


def _valid_name_addr(value: str) -> bool:
    """``NAME_ADDR_VALUE_RE.fullmatch(value)``, remembered for values that pass."""
    if value in _VALID_NAME_ADDRS:
        return True
    if NAME_ADDR_VALUE_RE.fullmatch(value) is None:
        return False
    if len(value) > _MEMO_TEXT_MAX:
        return True
    if len(_VALID_NAME_ADDRS) >= _MEMO_MAX:
        _VALID_NAME_ADDRS.clear()
    _VALID_NAME_ADDRS.add(value)
    return True


def _request_uri(text: str) -> Uri:
    """``parse_uri(text)``; a Request-URI seen before is copied, not parsed again.

    Every caller gets its own ``Uri`` (the memo keeps a private one): messages
    are mutable and must not share parts.
    """
    known = _REQUEST_URIS.get(text)
    if known is not None:
        return known.copy()
    uri = parse_uri(text)
    if len(text) > _MEMO_TEXT_MAX:
        return uri
    if len(_REQUEST_URIS) >= _MEMO_MAX:
        _REQUEST_URIS.clear()
    _REQUEST_URIS[text] = uri.copy()
    return uri


def _name_addr_fault(value: str) -> str:
    try:
        parse_name_addr(value)
    except ParseError as err:
        return err.reason
    return "bad name-addr"


class _Failure:
    """The first error met while parsing; parsing goes on to decide respondability."""

    __slots__ = ("cls", "reason", "status")

    def __init__(self, reason: str, status: int = 400, cls: type[ParseError] = ParseError) -> None:
        self.reason = reason
        self.status = status
        self.cls = cls


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    """Return the lines of the header section (start line first, unfolded) and the body."""
    start = 0
    if data[:1] in (b"\r", b"\n"):
        # RFC 3261 §7.5: "Implementations processing SIP messages over
        # stream-oriented transports MUST ignore any CRLF appearing before the
        # start-line". Done for datagrams too.
        n = len(data)
        while start < n and data[start] in (13, 10):
            start += 1
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        head_bytes = data[start:end]
        body = data[end + 4 :]
        crlf = True
    else:
        # Liberal: bare LF line ends (RFC 3261 asks for CRLF).
        end = data.find(b"\n\n", start)
        if end >= 0:
            head_bytes = data[start:end]
            body = data[end + 2 :]
            crlf = False
        elif data.endswith(b"\r\n") and len(data) > start + 2:
            # Liberal: a datagram whose last header line ends with CRLF but
            # lacks the empty line (RFC 4475 baddn.dat is written this way).
            head_bytes = data[start:-2]
            body = b""
            crlf = True
        else:
            raise ParseError("Missing empty line after headers")
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("Bad UTF-8 in headers") from None
    if not crlf:
        head = head.replace("\r\n", "\n")
        if "\r" in head:
            raise ParseError("Bad line ending")
        head = head.replace("\n", "\r\n")
    lines = head.split("\r\n")
    lf = len(lines) - 1
    if head.count("\n") != lf or head.count("\r") != lf:
        # A CR or LF that is not part of a CRLF.
        raise ParseError("Bad line ending")
    if "\n " in head or ("\t" in head and "\n\t" in head):
        # RFC 3261 §7.3.1: "Header fields can be extended over multiple lines by
        # preceding each extra line with at least one SP or horizontal tab".
        merged: list[str] = [lines[0]]
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                merged[-1] = merged[-1].rstrip(" \t") + " " + line.lstrip(" \t")
            else:
                merged.append(line)
        lines = merged
    return lines, body


# Canonical name -> what the header loop does with it: 1 = list header
# (split on commas), 2 = checked after the loop, 3 = both.
_KIND: dict[str, int] = {name: 1 for name in LIST_HEADERS}
for _name in _TRACKED:
    _KIND[_name] = _KIND.get(_name, 0) | 2
del _name


def parse_message(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Request | Response:
    """Parse one complete SIP message (one datagram or one stream frame).

    Raise ``MessageTooLarge`` (513) beyond ``max_size`` octets, ``BadUriScheme``
    (416), or ``ParseError`` (400, 505) as described in the module docstring.
    """
    if len(data) > max_size:
        raise MessageTooLarge("Message Too Large")
    lines, body = _split_head(data)
    first = lines[0]
    fail: _Failure | None = None

    # --- start line ----------------------------------------------------------
    is_request = first[:4].upper() != "SIP/"
    method = ""
    uri: Uri | None = None
    status = 0
    reason = ""
    if is_request:
        # Request-Line  =  Method SP Request-URI SP SIP-Version CRLF
        parts = first.split(" ")
        if len(parts) != 3:
            fail = _Failure("Bad Request-Line")
            parts = first.split()
        method = parts[0] if parts else ""
        if method not in METHODS and TOKEN_RE.fullmatch(method) is None:
            raise ParseError("Bad Request-Line")
        if fail is None:
            version = parts[2]
            if version != SIP_VERSION and version.upper() != SIP_VERSION:
                if _VERSION_RE.fullmatch(version) is not None:
                    fail = _Failure("Version Not Supported", 505)
                else:
                    fail = _Failure("Bad SIP-Version")
            try:
                uri = _request_uri(parts[1])
            except ParseError:
                if fail is None:
                    fail = _Failure("Bad Request-URI")
            else:
                if uri.scheme not in REQUEST_URI_SCHEMES:
                    if fail is None:
                        fail = _Failure("Unsupported URI Scheme", 416, BadUriScheme)
                elif uri.headers and fail is None:
                    # RFC 3261 §19.1.1 table: headers are not allowed in a
                    # Request-URI (RFC 4475 §3.1.2.11 escruri).
                    fail = _Failure("Bad Request-URI: headers not allowed")
        elif len(parts) >= 2:
            try:
                uri = parse_uri(parts[1])
            except ParseError:
                uri = None
    else:
        # Status-Line  =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
        # Liberal: a missing SP after the code is read as an empty reason.
        parts = first.split(" ", 2)
        if len(parts) < 2 or parts[0].upper() != SIP_VERSION:
            raise ParseError("Bad Status-Line")
        if _STATUS_RE.fullmatch(parts[1]) is None:
            raise ParseError("Bad Status-Code")
        status = int(parts[1])
        reason = parts[2] if len(parts) == 3 else ""

    # --- header fields ---------------------------------------------------------
    #   message-header  =  field-name HCOLON field-value CRLF
    #   HCOLON          =  *( SP / HTAB ) ":" SWS
    items: list[tuple[str, str]] = []
    append = items.append
    cseq: CSeq | None = None
    tracked: dict[str, list[str]] = {}
    tracked_get = tracked.get
    length_index = -1
    names = _NAMES
    names_get = names.get
    kinds_get = _KIND.get
    for i in range(1, len(lines)):
        raw, colon, value = lines[i].partition(":")
        if not colon or not raw:
            if fail is None:
                fail = _Failure("Bad header line")
            continue
        name = names_get(raw)
        if name is None:
            bare = raw.rstrip(" \t")
            if TOKEN_RE.fullmatch(bare) is None:
                if fail is None:
                    fail = _Failure("Bad header name")
                continue
            name = canonical_name(bare)
            if len(names) < _NAMES_MAX:
                names[raw] = name
        value = value.strip(" \t")
        kind = kinds_get(name, 0)
        if kind:
            if kind & 1 and "," in value:
                try:
                    elements = split_list(value)
                except ParseError as err:
                    if fail is None:
                        fail = _Failure(f"Bad {name}: {err.reason}")
                    elements = [value]
                for v in elements:
                    if not v:
                        # RFC 3261 ABNF lists have no empty elements; Via is
                        # where it matters (RFC 4475 §3.1.2.1 badinv01), other
                        # headers' empty elements are skipped.
                        if name == "Via" and fail is None:
                            fail = _Failure("Bad Via: empty element")
                        continue
                    append((name, v))
                    if kind & 2:
                        tracked.setdefault(name, []).append(v)
                continue
            if kind & 2:
                if name == "Content-Length":
                    length_index = len(items)
                seen = tracked_get(name)
                if seen is None:
                    tracked[name] = [value]
                else:
                    seen.append(value)
        append((name, value))

    # --- the fields every message needs (RFC 3261 §8.1.1, §20) -----------------
    # Each value is checked by one linear regex match of its whole ABNF; the
    # typed parser runs only on failure, to name the fault.
    vias = tracked.get("Via")
    via_ok = False
    if not vias:
        if fail is None:
            fail = _Failure("Missing Via")
    else:
        for i, v in enumerate(vias):
            groups = via_groups(v)
            if groups is None:
                try:
                    parse_via(v)
                except ParseError as err:
                    if fail is None:
                        fail = _Failure(f"Bad Via: {err.reason}")
                else:
                    via_ok = via_ok or i == 0
                    if fail is None:
                        fail = _Failure("Bad Via: empty parameter")
                continue
            if i == 0:
                via_ok = True
            ptext = groups[5]
            if "ranch" in ptext:
                b = _BRANCH_RE.search(ptext)
                # RFC 4475 §3.2.1 badbranch: the magic cookie with no
                # identifier after it cannot key a transaction.
                if b is not None and b.group(1) in ("", "z9hG4bK") and fail is None:
                    fail = _Failure("Bad Via: empty branch")
    for name in ("From", "To"):
        values = tracked.get(name)
        if not values:
            if fail is None:
                fail = _Failure(f"Missing {name}")
        elif len(values) > 1:
            if fail is None:
                fail = _Failure(f"Multiple {name}")
        elif fail is None and not _valid_name_addr(values[0]):
            fail = _Failure(f"Bad {name}: {_name_addr_fault(values[0])}")
    values = tracked.get("Call-ID")
    if fail is None:
        # Call-ID  =  ( "Call-ID" / "i" ) HCOLON callid
        # callid   =  word [ "@" word ]
        if not values:
            fail = _Failure("Missing Call-ID")
        elif len(values) > 1:
            fail = _Failure("Multiple Call-ID")
        elif not values[0] or len(values[0].split()) != 1:
            fail = _Failure("Bad Call-ID")
    values = tracked.get("CSeq")
    if fail is None:
        if not values:
            fail = _Failure("Missing CSeq")
        elif len(values) > 1:
            fail = _Failure("Multiple CSeq")
        else:
            try:
                # The first typed view every layer reads, kept with the headers.
                cseq = parse_cseq(values[0])
            except ParseError as err:
                # Its ABNF alone, or the range RFC 3261 §8.1.1.5 adds to it.
                malformed = CSEQ_RE.fullmatch(values[0]) is None
                fail = _Failure("Bad CSeq" if malformed else f"Bad CSeq: {err.reason}")
            else:
                if is_request and cseq.method != method:
                    # RFC 3261 §8.1.1.5: "The method MUST match that of the request."
                    fail = _Failure("Bad CSeq: method mismatch")
                    cseq = None
    values = tracked.get("Max-Forwards")
    if values and fail is None:
        # Max-Forwards  =  "Max-Forwards" HCOLON 1*DIGIT  (range 0-255, §20.22)
        mf = values[0]
        if len(values) > 1:
            fail = _Failure("Multiple Max-Forwards")
        elif not (mf.isascii() and mf.isdigit()) or int(mf) > 255:
            fail = _Failure("Bad Max-Forwards")
    for name in _ADDRESS_LISTS:
        values = tracked.get(name)
        if not values or fail is not None:
            continue
        for v in values:
            if not _valid_name_addr(v) and not (name == "Contact" and v == "*"):
                fail = _Failure(f"Bad {name}: {_name_addr_fault(v)}")
                break

    # --- body (RFC 3261 §18.3, §20.14) ------------------------------------------
    values = tracked.get("Content-Length")
    if values:
        cl = values[0]
        if len(values) > 1:
            if fail is None:
                fail = _Failure("Multiple Content-Length")
        elif not (cl.isascii() and cl.isdigit()):
            if fail is None:
                fail = _Failure("Bad Content-Length")
        else:
            length = int(cl)
            if length > len(body):
                if fail is None:
                    fail = _Failure("Bad Content-Length: larger than body")
            else:
                # "If the transport packet ends before the end of the message
                # body, this is considered an error." Octets beyond it are
                # discarded (§18.3: "the message is truncated").
                body = body[:length]
                if cl != str(length):
                    items[length_index] = ("Content-Length", str(length))
    else:
        # Without Content-Length a datagram's body runs to its end (§18.3).
        # The field is added so that every parsed message carries exactly one
        # Content-Length equal to len(body), as ``to_bytes()`` writes it.
        items.append(("Content-Length", str(len(body))))

    headers = Headers.canonical(items, views={"cseq": cseq} if cseq is not None else None)
    if fail is None:
        if is_request:
            assert uri is not None
            return Request(method, uri, headers, body)
        return Response(status, reason, headers, body)
    respondable = is_request and via_ok and method != "ACK"
    partial: Request | None = None
    if respondable:
        if uri is None:
            uri = Uri("sip", host=_PLACEHOLDER_URI_HOST)
        partial = Request(method=method, uri=uri, headers=headers, body=body)
    raise fail.cls(fail.reason, status_code=fail.status, respondable=respondable, partial=partial)


# --- streams ------------------------------------------------------------------

KEEPALIVE_PING: Final = b"\r\n\r\n"
"""Returned by ``StreamFramer.feed`` in place of a message for a CRLF keep-alive
ping (RFC 5626 §3.5.1); the transport answers it with a single ``b"\\r\\n"``
pong on the same connection. No SIP message equals it."""

#   Content-Length  =  ( "Content-Length" / "l" ) HCOLON 1*DIGIT
_CONTENT_LENGTH_RE = re.compile(rb"\n(?:content-length|l)[ \t]*:([^\r\n]*)", re.IGNORECASE)


class StreamFramer:
    """Cut a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3).

    ``feed(data)`` returns the complete messages now buffered, in order, as
    bytes ready for ``parse_message``. Between messages:

    - ``\\r\\n\\r\\n`` is a keep-alive ping (RFC 5626 §3.5.1): it is returned as the
      ``KEEPALIVE_PING`` constant (compare with ``is`` or ``==``), in stream
      order, and the transport must answer ``b"\\r\\n"``;
    - a lone ``\\r\\n`` (a pong, or stray CRLF, §7.5) is dropped.

    "In the case of stream-oriented transports such as TCP, the Content-Length
    header field indicates the size of the body. All SIP implementations MUST
    be able to understand the Content-Length header field" and it is mandatory
    on streams: a message without it, with a garbage or negative value, or with
    two values raises ``ParseError``; a message (headers + body) longer than
    ``max_size`` raises ``MessageTooLarge``. After either error the stream can
    no longer be framed: the caller closes the connection.
    """

    __slots__ = ("_buf", "_max_size", "_scan_from")

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._buf = bytearray()
        self._max_size = max_size
        self._scan_from = 0  # where the search for the empty line resumes

    @property
    def buffered(self) -> int:
        """Octets received and not yet returned."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if buf[0] in (13, 10):  # CR or LF before a start line
                if buf.startswith(KEEPALIVE_PING):
                    out.append(KEEPALIVE_PING)
                    del buf[:4]
                    continue
                if buf == b"\r\n" or buf == b"\r\n\r" or buf == b"\r":
                    break  # may still become a ping
                del buf[: 2 if buf.startswith(b"\r\n") else 1]
                self._scan_from = 0
                continue
            end = buf.find(b"\r\n\r\n", self._scan_from)
            if end < 0:
                if len(buf) > self._max_size:
                    raise MessageTooLarge("Message Too Large")
                self._scan_from = max(0, len(buf) - 3)
                break
            length = self._content_length(bytes(buf[: end + 2]))
            total = end + 4 + length
            if total > self._max_size:
                raise MessageTooLarge("Message Too Large")
            if len(buf) < total:
                self._scan_from = end  # the empty line is found again at once
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
            self._scan_from = 0
        return out

    @staticmethod
    def _content_length(head: bytes) -> int:
        found: int | None = None
        for match in _CONTENT_LENGTH_RE.finditer(head):
            text = match.group(1).strip(b" \t")
            if not text.isdigit():
                raise ParseError("Bad Content-Length")
            value = int(text)
            if found is not None and found != value:
                raise ParseError("Multiple Content-Length")
            found = value
        if found is None:
            raise ParseError("Missing Content-Length")
        return found
