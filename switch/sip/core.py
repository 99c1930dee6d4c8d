"""The stateless core: requests the switch answers by itself, without a transaction.

RFC 3261 §8.2.7 allows a UAS to answer statelessly when the answer is final and
immediate: no provisional response, no retransmission, ACK and CANCEL ignored,
and the To tag "generated in a stateless manner - in a manner that will
generate the same tag for the same request consistently". The core does just
that, as a pure function of the request: ``answer(request)`` returns the
response to send, or ``None`` when the request is not the core's to answer
(ACK and CANCEL, which the transaction layer handles, and later the methods a
transaction user registers for: INVITE, REGISTER...).

The checks run in the order a server applies them:

1. ``Max-Forwards: 0`` → ``483 Too Many Hops`` (RFC 3261 §16.3 item 2: "If the
   Max-Forwards value is zero, the element MUST NOT forward the request. If the
   request was for OPTIONS, the element MAY act as the final recipient [...].
   Otherwise, the element MUST return a 483". The switch takes the "otherwise"
   branch for OPTIONS too, like Kamailio's ``mf_process_maxfwd_header``, so that
   SIP traceroute sees the hop.)
2. Method inspection (§8.2.1): "If a UAS recognizes but does not support the
   method of a request, it MUST generate a 405 (Method Not Allowed) response
   [...] The UAS MUST also add an Allow header field to the 405".
3. Extensions (§8.2.2.3): "If a UAS does not understand an option-tag listed in
   a Require header field, it MUST respond by generating a response with status
   code 420 (Bad Extension). The UAS MUST add an Unsupported header field, and
   list in it those options it does not understand".
4. The answer itself: OPTIONS → 200 with Allow, Accept, Accept-Encoding,
   Accept-Language and Supported (§11.2); requests inside a dialog and BYE →
   481 (no dialog exists yet); methods the switch will implement in later
   issues (INVITE, REGISTER, SUBSCRIBE...) → ``501 Not Implemented`` for now
   (they are not in Allow either).

ACK is never answered (§17) and CANCEL is left to the transaction layer, which
answers it itself: 200 when it matches a server transaction, 481 otherwise (§9.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from switch.sip.errors import SipError
from switch.sip.headers import canonical_name, parse_name_addr
from switch.sip.message import REASON_PHRASES, Headers, Request, Response

# Fields a response copies from its request, in this order (RFC 3261 §8.2.6.2).
_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")

# Methods this build answers (Allow). Later issues add INVITE, REGISTER, etc.
DEFAULT_ALLOW = ("OPTIONS", "ACK", "CANCEL", "BYE")
# Methods a SIP server of this kind will implement; answered 501 until then.
DEFAULT_PLACEHOLDERS = (
    "INVITE",
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "INFO",
    "UPDATE",
    "PRACK",
    "PUBLISH",
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the switch advertises and accepts. Pure data, built from the settings."""

    allow: tuple[str, ...] = DEFAULT_ALLOW
    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    # Methods a transaction user handles: ``answer`` returns None for them.
    stateful: tuple[str, ...] = ()
    # Option tags we implement (Supported); empty means none (RFC 3261 §20.37).
    supported: tuple[str, ...] = ()
    accept: tuple[str, ...] = ("application/sdp",)
    accept_encoding: tuple[str, ...] = ("identity",)
    accept_language: tuple[str, ...] = ("en", "fr")
    server: str = "Aiguilleur"
    # Keys the To-tag hash so that tags are not predictable from the request alone.
    tag_secret: bytes = b""
    allow_header: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_header", ", ".join(self.allow))


# What ``answer`` decided: the request's fields, status, reason, extra fields.
_Decision = tuple[dict[str, list[str]], int, str | None, tuple[tuple[str, str], ...]]


class StatelessCore:
    """``answer(request) -> Response | None``; see the module docstring."""

    __slots__ = (
        "_allow_extra",
        "_bare_tail",
        "_caps",
        "_hasher",
        "_options_extra",
        "_options_tail",
        "_placeholders",
        "_stateful",
        "_supported",
    )

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        caps = capabilities or Capabilities()
        self._caps = caps
        self._supported = frozenset(tag.lower() for tag in caps.supported)
        self._placeholders = frozenset(caps.placeholders) - frozenset(caps.allow)
        self._stateful = frozenset(caps.stateful)
        self._options_extra: tuple[tuple[str, str], ...] = (
            ("Allow", caps.allow_header),
            ("Accept", ", ".join(caps.accept)),
            ("Accept-Encoding", ", ".join(caps.accept_encoding)),
            ("Accept-Language", ", ".join(caps.accept_language)),
            ("Supported", ", ".join(caps.supported)),
        )
        self._allow_extra: tuple[tuple[str, str], ...] = (("Allow", caps.allow_header),)
        # What ``answer_wire`` writes after the copied fields, for the usual extras.
        self._options_tail = _tail(self._options_extra, caps.server)
        self._bare_tail = _tail((), caps.server)
        # Keyed once; every tag hashes a copy (cheaper than keying each time).
        self._hasher = hashlib.blake2s(key=caps.tag_secret[:32], digest_size=8)

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def answer(self, request: Request) -> Response | None:
        """The stateless response to ``request``, or None (not answered here)."""
        decision = self._decide(request)
        if decision is None:
            return None
        fields, status, reason, extra = decision
        return self._reply(fields, status, reason, extra=extra)

    def answer_wire(self, request: Request) -> tuple[int, bytes] | None:
        """``answer(request)`` as ``(status, bytes)``, or None (not answered here).

        The bytes are those of ``answer(request).to_bytes()``, written straight
        from the request's fields without building the ``Response``: the
        stack's path for OPTIONS keep-alives when nothing logs the response.
        """
        decision = self._decide(request)
        if decision is None:
            return None
        fields, status, reason, extra = decision
        lines = [f"SIP/2.0 {status} {reason or REASON_PHRASES.get(status, '')}"]
        lines += [f"{name}: {value}" for name, value in self._copied(fields, status)]
        if extra is self._options_extra:
            lines.append(self._options_tail)
        elif not extra:
            lines.append(self._bare_tail)
        else:
            lines.append(_tail(extra, self._caps.server))
        return status, "\r\n".join(lines).encode("utf-8")

    def _decide(self, request: Request) -> _Decision | None:
        """The answer's fields, status, reason and extra fields (None: not ours)."""
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None  # the transaction layer's (ACK is never answered, §17)
        fields = _collect(request)
        try:
            max_forwards = _max_forwards(fields["Max-Forwards"])
        except ValueError:
            return fields, 400, "Invalid Max-Forwards", ()
        if max_forwards == 0:
            return fields, 483, None, ()
        if method in self._stateful:
            return None
        if method not in self._caps.allow and method not in self._placeholders:
            return fields, 405, None, self._allow_extra
        unsupported = self.unsupported(fields["Require"]) if fields["Require"] else None
        if unsupported:
            return fields, 420, None, (("Unsupported", ", ".join(unsupported)),)
        if method in self._placeholders:
            return fields, 501, None, ()
        if method == "BYE" or _has_to_tag(fields["To"]):
            return fields, 481, None, ()
        if method == "OPTIONS":
            return fields, 200, None, self._options_extra
        # A method in Allow with no stateless answer and no transaction user.
        return fields, 500, "No Handler", ()

    def unsupported(self, require: Iterable[str]) -> list[str]:
        """Option tags of Require/Proxy-Require values we do not implement, in order."""
        out: list[str] = []
        for value in require:
            for tag in value.split(","):
                tag = tag.strip()
                if tag and tag.lower() not in self._supported and tag not in out:
                    out.append(tag)
        return out

    def reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A response with a deterministic To tag and the Server header (§8.2.7).

        The same response as ``make_response(request, status, to_tag=...)`` plus
        ``Server``, built from one pass over the request's fields: OPTIONS
        keep-alives from every phone and trunk come through here.
        """
        return self._reply(
            _collect(request), status, reason, extra=[(canonical_name(n), v) for n, v in extra]
        )

    def _reply(
        self,
        fields: dict[str, list[str]],
        status: int,
        reason: str | None = None,
        *,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """``extra`` names are canonical already (``reply`` canonicalises its own)."""
        items = self._copied(fields, status)
        items.extend(extra)
        items.append(("Server", self._caps.server))
        return Response(
            status,
            reason if reason is not None else REASON_PHRASES.get(status, ""),
            Headers.canonical(items),
        )

    def _copied(self, fields: dict[str, list[str]], status: int) -> list[tuple[str, str]]:
        """The fields a response copies (§8.2.6.2), To tagged unless it has a tag."""
        items = [(name, value) for name in _COPIED for value in fields[name]]
        to = fields["To"]
        if to and status != 100 and not _has_to_tag(to):
            # Appending ";tag=" is right for both forms: after an addr-spec
            # without angle brackets, parameters are header parameters (§20).
            at = len(fields["Via"]) + len(fields["From"])
            items[at] = ("To", f"{to[0]};tag={self._tag(fields)}")
        return items

    def reject(self, request: Request, error: SipError) -> Response:
        """The answer to a request the parser refused (400, 416, 513...)."""
        return self.reply(request, error.status_code, reason_phrase(str(error)))

    def to_tag(self, request: Request) -> str:
        """Same request, same tag: a keyed hash of what identifies the transaction."""
        return self._tag(_collect(request))

    def _tag(self, fields: dict[str, list[str]]) -> str:
        call_id, from_, cseq, via = (
            fields["Call-ID"],
            fields["From"],
            fields["CSeq"],
            fields["Via"],
        )
        ident = "\0".join(
            (
                call_id[0] if call_id else "",
                from_[0] if from_ else "",
                cseq[0] if cseq else "",
                via[0] if via else "",
            )
        )
        digest = self._hasher.copy()
        digest.update(ident.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()


# The fields the core reads: those a response copies, and two it checks.
_READ = (*_COPIED, "Max-Forwards", "Require")


def _collect(request: Request) -> dict[str, list[str]]:
    """The values of the fields in ``_READ``, in one pass over the request."""
    fields: dict[str, list[str]] = {name: [] for name in _READ}
    for name, value in request.headers:
        bucket = fields.get(name)
        if bucket is not None:
            bucket.append(value)
    return fields


def _tail(extra: tuple[tuple[str, str], ...], server: str) -> str:
    """What ``Response.to_bytes()`` writes after the copied fields: ``extra``,
    Server, an empty body's Content-Length and the empty line."""
    lines = [f"{name}: {value}" for name, value in extra]
    lines += [f"Server: {server}", "Content-Length: 0", "", ""]
    return "\r\n".join(lines)


def _max_forwards(values: list[str]) -> int | None:
    """``Max-Forwards = "Max-Forwards" HCOLON 1*DIGIT`` (absent: None)."""
    if not values:
        return None
    value = values[0].strip()
    if not value.isdigit() or not value.isascii():
        raise ValueError(value)
    return int(value)


def _has_to_tag(to: list[str]) -> bool:
    if not to or "tag" not in to[0].lower():
        return False  # the cheap test first: out-of-dialog requests have no tag
    try:
        return parse_name_addr(to[0]).tag is not None
    except SipError:
        return False


def reason_phrase(text: str, limit: int = 120) -> str:
    """A reason phrase: one line of printable text (RFC 3261 §25.1 Reason-Phrase)."""
    cleaned = "".join(c if c.isprintable() else " " for c in text).strip()
    return cleaned[:limit] or "Bad Request"
