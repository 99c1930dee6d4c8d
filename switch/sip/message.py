"""SIP requests and responses: the data model and its serialisation (RFC 3261 §7).

Parsing lives in ``switch.sip.parser`` (``parse_message(bytes)``); this module is
what every layer above manipulates. Header fields are kept as text, in order,
one entry per value; typed views (``Via``, ``NameAddr``, ``CSeq``) are parsed on
demand by the properties below.

Serialisation always writes one field per line with canonical names and a
Content-Length that matches the body, so ``parse_message(msg.to_bytes()) == msg``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

from switch.sip.errors import ParseError
from switch.sip.headers import (
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    name_addr_tag,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from switch.sip.uri import Uri

SIP_VERSION = "SIP/2.0"

_T = TypeVar("_T")

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class Headers:
    """Ordered multi-map of header fields: ``(canonical name, value text)``.

    Lookups are case-insensitive and accept compact forms (``headers.get("i")``
    is the Call-ID). Unknown headers are kept, in order.

    ``view`` keeps what the typed views of a message read from the fields (the
    CSeq, the tags, the top branch), so that the transaction layer, the legs
    and the B2BUA, which read them many times per message, parse each once.
    Every method that changes the fields drops what was kept.
    """

    __slots__ = ("_items", "_views")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]
        self._views: dict[str, object] | None = None

    @classmethod
    def canonical(
        cls, items: list[tuple[str, str]], views: dict[str, object] | None = None
    ) -> Headers:
        """Headers over ``items`` as given, names already canonical (the parser's
        and the stateless core's fast path: no pass over the names). ``views``
        are typed views the caller has already read from ``items`` (the parser's
        CSeq), under the names ``view`` keeps them."""
        headers = cls.__new__(cls)
        headers._items = items
        headers._views = views
        return headers

    def view(self, name: str, read: Callable[[Headers], _T]) -> _T:
        """``read(self)``, kept under ``name`` until the fields change.

        For immutable results only (a frozen ``CSeq``, a tag): whoever reads
        the view gets the kept object itself. A ``read`` that raises keeps
        nothing, so the next access raises again.
        """
        views = self._views
        if views is None:
            views = self._views = {}
        elif name in views:
            return cast(_T, views[name])
        value = views[name] = read(self)
        return value

    def kept(self, name: str) -> object | None:
        """What ``view`` keeps under ``name``, without reading it (None if nothing)."""
        views = self._views
        return views.get(name) if views is not None else None

    def get(self, name: str, default: str | None = None) -> str | None:
        items = self._items
        for n, v in items:  # callers name fields canonically: no lookup first
            if n == name:
                return v
        key = canonical_name(name)
        if key != name:
            for n, v in items:
                if n == key:
                    return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name)
        return [v for n, v in self._items if n == key]

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of every field of that name, stripped and
        lower-cased: option tags (Supported, Require), methods (Allow)."""
        key = canonical_name(name)
        out: set[str] = set()
        for n, v in self._items:
            if n == key:
                out.update(t.strip() for t in v.lower().split(","))
        out.discard("")
        return out

    def add(self, name: str, value: str) -> None:
        """Append a field at the end."""
        self._views = None
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first field of that name (or at the top): Via, Record-Route."""
        self._views = None
        key = canonical_name(name)
        for i, (n, _) in enumerate(self._items):
            if n == key:
                self._items.insert(i, (key, value))
                return
        self._items.insert(0, (key, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, where the first one stood."""
        self._views = None
        key = canonical_name(name)
        for i, (n, _) in enumerate(self._items):
            if n == key:
                self._items[i] = (key, value)
                self._items[i + 1 :] = [(n2, v2) for n2, v2 in self._items[i + 1 :] if n2 != key]
                return
        self._items.append((key, value))

    def replace_first(self, name: str, value: str) -> None:
        """``pop_first(name)`` then ``prepend(name, value)``, in one pass: a stamped top Via.

        The new value lands just before the second field of that name, or at the
        top when there is no other: where the first one stood in every
        well-formed message (Via fields are contiguous and come first).
        """
        self._views = None
        key = canonical_name(name)
        items = self._items
        first = -1
        for i, (n, _) in enumerate(items):
            if n != key:
                continue
            if first < 0:
                first = i
                continue
            # The second field of that name: the new value goes right before it.
            if i == first + 1:
                items[first] = (key, value)
            else:
                del items[first]
                items.insert(i - 1, (key, value))
            return
        if first > 0:
            del items[first]
            first = -1
        if first == 0:
            items[0] = (key, value)
        else:
            items.insert(0, (key, value))

    def remove(self, name: str) -> None:
        self._views = None
        key = canonical_name(name)
        self._items = [(n, v) for n, v in self._items if n != key]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first field of that name (top Via on a response)."""
        self._views = None
        key = canonical_name(name)
        for i, (n, v) in enumerate(self._items):
            if n == key:
                del self._items[i]
                return v
        return None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name)
        return any(n == key for n, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h


def _call_id(headers: Headers) -> str:
    return headers.get("Call-ID") or ""


def _cseq(headers: Headers) -> CSeq:
    return parse_cseq(headers.get("CSeq") or "")


def _top_via(headers: Headers) -> Via:
    top = headers.get("Via")
    if top is None:
        raise ParseError("Missing Via")
    return parse_via(top)


def _branch(headers: Headers) -> str | None:
    return _top_via(headers).branch


def _from_tag(headers: Headers) -> str | None:
    return name_addr_tag(headers.get("From") or "")


def _to_tag(headers: Headers) -> str | None:
    return name_addr_tag(headers.get("To") or "")


class _MessageViews:
    """Typed accessors shared by requests and responses."""

    __slots__ = ()
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.view("call_id", _call_id)

    @property
    def cseq(self) -> CSeq:
        return self.headers.view("cseq", _cseq)

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return _top_via(self.headers)  # parsed each time: a Via is mutable

    @property
    def branch(self) -> str | None:
        return self.headers.view("branch", _branch)

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "")

    @property
    def from_tag(self) -> str | None:
        return self.headers.view("from_tag", _from_tag)

    @property
    def to_tag(self) -> str | None:
        return self.headers.view("to_tag", _to_tag)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        wrote_length = False
        for name, value in self.headers:
            if name == "Content-Length":
                if wrote_length:
                    continue
                value = str(len(self.body))
                wrote_length = True
            lines.append(f"{name}: {value}")
        if not wrote_length:
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("utf-8") + self.body


@dataclass(slots=True, eq=True)
class Request(_MessageViews):
    method: str
    uri: Uri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def to_bytes(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {self.version}")

    def __bytes__(self) -> bytes:
        return self.to_bytes()


@dataclass(slots=True, eq=True)
class Response(_MessageViews):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def to_bytes(self) -> bytes:
        reason = self.reason or REASON_PHRASES.get(self.status, "")
        return self._serialize(f"{self.version} {self.status} {reason}")

    def __bytes__(self) -> bytes:
        return self.to_bytes()


Message = Request | Response

# Headers a response copies from its request (RFC 3261 §8.2.6.2).
_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` (RFC 3261 §8.2.6).

    Via, From, To, Call-ID and CSeq are copied; ``to_tag`` is added to To when
    the request's To has none (never for 100 Trying). A 100 copies Timestamp.
    """
    fields: dict[str, list[str]] = {name: [] for name in _COPIED}
    timestamp: str | None = None
    for name, value in request.headers:
        bucket = fields.get(name)
        if bucket is not None:
            bucket.append(value)
        elif name == "Timestamp" and timestamp is None:
            timestamp = value
    if to_tag and status != 100:
        to = fields["To"]
        for i, value in enumerate(to):
            if name_addr_tag(value) is None:
                # Appending ";tag=" is right for both forms: after an addr-spec
                # without angle brackets, parameters are header parameters (§20).
                to[i] = f"{value};tag={to_tag}"
    items = [(name, value) for name in _COPIED for value in fields[name]]
    if status == 100 and timestamp is not None:
        items.append(("Timestamp", timestamp))
    added = [(canonical_name(name), value) for name, value in extra]
    items.extend(added)
    # The CSeq is the request's: its typed view too, when the request has it.
    cseq = request.headers.kept("cseq")
    if cseq is not None and all(name != "CSeq" for name, _ in added):
        headers = Headers.canonical(items, views={"cseq": cseq})
    else:
        headers = Headers.canonical(items)
    return Response(
        status=status,
        reason=reason if reason is not None else REASON_PHRASES.get(status, ""),
        headers=headers,
        body=body,
    )
