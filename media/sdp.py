"""SDP (RFC 4566) and the offer/answer helpers a media-anchoring B2BUA needs (RFC 3264).

Pure: text in, text out. What a B2BUA does with it:

- ``SessionDescription.parse`` / ``serialize``: every line kept, unknown ones
  included, so an SDP that follows RFC 4566's line order round-trips byte for
  byte (CRLF line ends; a parser also accepts bare LF, RFC 4566 §5);
- ``anchor``: rewrite ``c=``, ``m=`` ports and ``a=rtcp`` to the relay, keep the
  codecs, own the ``o=`` line (RFC 3264 §8: same version when nothing changed,
  version + 1 when something did), drop ICE attributes that name the phone;
- ``negotiate``: the answer for one leg from the other leg's answer (or from
  local capabilities), in the offerer's payload type numbers and order;
- ``direction`` / ``answer_direction`` / ``set_direction``: hold in both styles
  (``a=sendonly``/``a=inactive`` and RFC 2543's ``c=0.0.0.0``);
- ``crypto_attributes`` / ``add_crypto`` / ``strip_crypto``: SDES (RFC 4568) and
  the RTP/SAVP ↔ RTP/AVP switch so the relay can terminate SRTP on one leg.

Objects are frozen dataclasses; the helpers return new ones.

RFC 4566 §5, the order of lines this module writes (``*`` = optional)::

    v=  o=  s=  i=* u=* e=* p=* c=* b=*  (t= r=*)+  z=* k=* a=*
    m=  i=* c=* b=* k=* a=*      (per media)

Lines of an unknown type are kept with ``z=``/``k=`` (session) or ``k=``
(media), in their original order.

Errors: ``SdpError`` with the line number (1-based) when one line is at fault::

    SdpError (ValueError)      a SIP layer answers 400 or 488 with it
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "SRTP_KEY_LENGTHS",
    "Attribute",
    "Bandwidth",
    "Codec",
    "Connection",
    "Crypto",
    "Direction",
    "Media",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
    "add_crypto",
    "anchor",
    "answer_direction",
    "codecs",
    "crypto_attributes",
    "direction",
    "negotiate",
    "select_crypto",
    "set_direction",
    "set_secure",
    "strip_crypto",
]


_T = TypeVar("_T")


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of ``obj`` (one of the slotted dataclasses below, none with a
    ``__post_init__``) with ``changes``: ``dataclasses.replace`` without its
    inspection of the fields, which costs several times more on the SDP a call
    parses and anchors."""
    cls = type(obj)
    new = cls.__new__(cls)
    for name in cls.__slots__:  # type: ignore[attr-defined]
        setattr(new, name, changes.pop(name) if name in changes else getattr(obj, name))
    if changes:
        raise TypeError(f"{cls.__name__} has no field {next(iter(changes))!r}")
    return new


class SdpError(ValueError):
    """The SDP is malformed, or an offer and answer do not fit together."""


# ----------------------------------------------------------------- the model


@dataclass(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: str
    session_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (address may carry ``/ttl``)."""

    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>``."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(slots=True)
class Timing:
    """``t=<start-time> <stop-time>`` and the ``r=`` lines that follow it (kept as text)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(slots=True)
class Attribute:
    """``a=<name>`` (property, ``value`` None) or ``a=<name>:<value>``."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(slots=True)
class Media:
    """One ``m=`` section. ``extra`` holds its ``i=``, ``k=`` and unknown lines."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def rejected(self) -> bool:
        """RFC 3264 §6: a stream is rejected (or disabled) with port zero."""
        return self.port == 0

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name`` ('' for a property attribute), None if absent."""
        for attr in self.attributes:
            if attr.name == name:
                return "" if attr.value is None else attr.value
        return None

    def has_attribute(self, name: str) -> bool:
        return any(attr.name == name for attr in self.attributes)


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body. ``extra``: session ``i= u= e= p= z= k=`` and unknown lines."""

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    timings: tuple[Timing, ...] = (Timing(),)
    bandwidths: tuple[Bandwidth, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    media: tuple[Media, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        return _parse(data)

    def serialize(self) -> bytes:
        return _serialize(self).encode("utf-8")

    def __str__(self) -> str:
        return _serialize(self)


# ------------------------------------------------------------------ parsing

# RFC 4566 §5: session-level types before c= (i u e p), after t= (z k).
_SESSION_BEFORE_C = "iuep"
_MEDIA_BEFORE_C = "i"
_SESSION_ONLY = "vostrz"


def _number(text: str, what: str, n: int) -> int:
    if not text.isdigit() or not text.isascii():
        raise SdpError(f"line {n}: {what} is not a number")
    return int(text)


def _parse_origin(value: str, n: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"line {n}: o= needs 6 fields")
    version = _number(parts[2], "o= session version", n)
    return Origin(parts[0], parts[1], version, parts[3], parts[4], parts[5])


def _parse_connection(value: str, n: int) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"line {n}: c= needs 3 fields")
    return Connection(*parts)


def _parse_bandwidth(value: str, n: int) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep or not bwtype:
        raise SdpError(f"line {n}: b= needs <bwtype>:<bandwidth>")
    return Bandwidth(bwtype, _number(amount, "b= bandwidth", n))


def _parse_timing(value: str, n: int) -> Timing:
    parts = value.split()
    if len(parts) != 2:
        raise SdpError(f"line {n}: t= needs 2 fields")
    return Timing(_number(parts[0], "t= start time", n), _number(parts[1], "t= stop time", n))


def _parse_media(value: str, n: int) -> Media:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"line {n}: m= needs <media> <port> <proto> <fmt> ...")
    port_text, _, count_text = parts[1].partition("/")
    port = _number(port_text, "m= port", n)
    if port > 65535:
        raise SdpError(f"line {n}: m= port is out of range")
    count = _number(count_text, "m= port count", n) if count_text else None
    return Media(parts[0], port, parts[2], tuple(parts[3:]), count)


def _parse_attribute(value: str, n: int) -> Attribute:
    name, sep, rest = value.partition(":")
    if not name:
        raise SdpError(f"line {n}: a= has no attribute name")
    attr = Attribute(name, rest if sep else None)
    try:
        _ATTRIBUTE_CHECKS.get(name, _no_check)(attr)
    except SdpError as exc:
        raise SdpError(f"line {n}: {exc}") from None
    return attr


def _parse(data: bytes | str) -> SessionDescription:
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not valid UTF-8") from None
    else:
        text = data
    if not text.strip():
        raise SdpError("SDP is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if not lines[0].startswith("v="):
        raise SdpError("line 1: SDP must start with v=")
    if lines[0] != "v=0":
        raise SdpError(f"line 1: unsupported SDP version {lines[0][2:]!r}")

    origin: Origin | None = None
    name: str | None = None
    connection: Connection | None = None
    timings: list[Timing] = []
    bandwidths: list[Bandwidth] = []
    attributes: list[Attribute] = []
    extra: list[tuple[str, str]] = []
    media: list[Media] = []
    # The m= section being read: its fields are collected here, then frozen.
    m: Media | None = None
    m_conn: Connection | None = None
    m_bw: list[Bandwidth] = []
    m_attrs: list[Attribute] = []
    m_extra: list[tuple[str, str]] = []

    def close_media() -> None:
        if m is not None:
            media.append(
                replace(
                    m,
                    connection=m_conn,
                    bandwidths=tuple(m_bw),
                    attributes=tuple(m_attrs),
                    extra=tuple(m_extra),
                )
            )

    for n, line in enumerate(lines[1:], start=2):
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"line {n}: not a <type>=<value> line")
        kind, value = line[0], line[2:]
        if m is not None and kind in _SESSION_ONLY:
            raise SdpError(f"line {n}: {kind}= is not allowed after m=")
        if kind == "m":
            close_media()
            m, m_conn, m_bw, m_attrs, m_extra = _parse_media(value, n), None, [], [], []
        elif kind == "a":
            (m_attrs if m is not None else attributes).append(_parse_attribute(value, n))
        elif kind == "c":
            conn = _parse_connection(value, n)
            if m is not None:
                if m_conn is not None:
                    raise SdpError(f"line {n}: duplicate c= line")
                m_conn = conn
            else:
                if connection is not None:
                    raise SdpError(f"line {n}: duplicate c= line")
                connection = conn
        elif kind == "b":
            (m_bw if m is not None else bandwidths).append(_parse_bandwidth(value, n))
        elif m is not None:
            m_extra.append((kind, value))
        elif kind == "o":
            if origin is not None:
                raise SdpError(f"line {n}: duplicate o= line")
            origin = _parse_origin(value, n)
        elif kind == "s":
            if name is not None:
                raise SdpError(f"line {n}: duplicate s= line")
            name = value
        elif kind == "t":
            timings.append(_parse_timing(value, n))
        elif kind == "r":
            if not timings:
                raise SdpError(f"line {n}: r= without a preceding t=")
            last = timings[-1]
            timings[-1] = replace(last, repeats=(*last.repeats, value))
        elif kind == "v":
            raise SdpError(f"line {n}: duplicate v= line")
        else:
            extra.append((kind, value))
    close_media()

    if origin is None:
        raise SdpError("missing o= line")
    if name is None:
        raise SdpError("missing s= line")
    if not timings:
        raise SdpError("missing t= line")
    # RFC 4566 §5.7: "A session description MUST contain either at least one
    # "c=" field in each media description or a single "c=" field at the
    # session level." (Rejected streams are let off: peers often omit it.)
    if connection is None:
        for index, item in enumerate(media, start=1):
            if item.connection is None and item.port != 0:
                raise SdpError(f"m= line {index} has no c= and there is no session-level c=")
    return SessionDescription(
        origin,
        name,
        connection,
        tuple(timings),
        tuple(bandwidths),
        tuple(attributes),
        tuple(media),
        tuple(extra),
    )


# ------------------------------------------------------------ serialization


def _ordered(extra: Iterable[tuple[str, str]], before: str) -> tuple[list[str], list[str]]:
    head = [f"{k}={v}" for k, v in extra if k in before]
    tail = [f"{k}={v}" for k, v in extra if k not in before]
    return head, tail


def _serialize(sdp: SessionDescription) -> str:
    out = ["v=0", f"o={sdp.origin}", f"s={sdp.name}"]
    head, tail = _ordered(sdp.extra, _SESSION_BEFORE_C)
    out += head
    if sdp.connection is not None:
        out.append(f"c={sdp.connection}")
    out += [f"b={b}" for b in sdp.bandwidths]
    for timing in sdp.timings:
        out.append(f"t={timing.start} {timing.stop}")
        out += [f"r={r}" for r in timing.repeats]
    out += tail
    out += [f"a={a}" for a in sdp.attributes]
    for m in sdp.media:
        port = m.port if m.port_count is None else f"{m.port}/{m.port_count}"
        out.append(f"m={m.kind} {port} {m.proto} {' '.join(m.formats)}")
        head, tail = _ordered(m.extra, _MEDIA_BEFORE_C)
        out += head
        if m.connection is not None:
            out.append(f"c={m.connection}")
        out += [f"b={b}" for b in m.bandwidths]
        out += tail
        out += [f"a={a}" for a in m.attributes]
    out.append("")
    return "\r\n".join(out)


# --------------------------------------------------------------- attributes


@dataclass(slots=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        pt_text, _, codec = value.partition(" ")
        parts = codec.strip().split("/")
        if (
            not pt_text.isdigit()
            or int(pt_text) > 127
            or len(parts) not in (2, 3)
            or not parts[0]
            or not parts[1].isdigit()
            or (len(parts) == 3 and not parts[2].isdigit())
        ):
            raise SdpError(f"a=rtpmap is malformed: {value!r}")
        return cls(int(pt_text), parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 1)

    def __str__(self) -> str:
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{suffix}"


# RFC 4568 §6.2: the SRTP master key and salt concatenated, by crypto-suite.
SRTP_KEY_LENGTHS = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AES_256_CM_HMAC_SHA1_80": 46,  # RFC 6188
    "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28,  # RFC 7714
    "AEAD_AES_256_GCM": 44,
}


@dataclass(frozen=True, slots=True)
class Crypto:
    """``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568 §9.1).

    ``key_params`` are the ``inline:<key||salt>[|lifetime][|MKI:length]`` items.
    """

    tag: int
    suite: str
    key_params: tuple[str, ...]
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Crypto:
        parts = value.split()
        if len(parts) < 3:
            raise SdpError(f"a=crypto needs <tag> <crypto-suite> <key-params>: {value!r}")
        # RFC 4568 §9.1: tag = 1*9DIGIT
        if not parts[0].isdigit() or len(parts[0]) > 9:
            raise SdpError(f"a=crypto tag is not a number of 1 to 9 digits: {parts[0]!r}")
        key_params = tuple(parts[2].split(";"))
        for param in key_params:
            if not param.startswith("inline:") or len(param) == len("inline:"):
                raise SdpError(f"a=crypto key parameter is not inline:<key>: {param!r}")
        return cls(int(parts[0]), parts[1], key_params, tuple(parts[3:]))

    def __str__(self) -> str:
        text = f"{self.tag} {self.suite} {';'.join(self.key_params)}"
        return " ".join((text, *self.session_params))

    @property
    def key_b64(self) -> str:
        """The base64 key||salt of the first key parameter."""
        return self.key_params[0].removeprefix("inline:").split("|", 1)[0]

    def key(self) -> bytes:
        """The master key||salt, checked against the suite's length when known."""
        try:
            raw = base64.b64decode(self.key_b64, validate=True)
        except binascii.Error:
            raise SdpError(f"a=crypto key is not base64: {self.key_b64!r}") from None
        expected = SRTP_KEY_LENGTHS.get(self.suite)
        if expected is not None and len(raw) != expected:
            raise SdpError(f"a=crypto key of {self.suite} must be {expected} bytes, not {len(raw)}")
        return raw


def _no_check(attr: Attribute) -> None:
    pass


def _check_rtpmap(attr: Attribute) -> None:
    RtpMap.parse(attr.value or "")


def _check_fmtp(attr: Attribute) -> None:
    fmt, _, _ = (attr.value or "").partition(" ")
    if not fmt:
        raise SdpError("a=fmtp needs <format> <parameters>")


def _check_ptime(attr: Attribute) -> None:
    value = attr.value or ""
    try:
        ok = float(value) > 0
    except ValueError:
        ok = False
    if not ok:
        raise SdpError(f"a={attr.name} is not a positive number: {value!r}")


def _check_rtcp(attr: Attribute) -> None:
    # RFC 3605: rtcp-attribute = "a=rtcp:" port [nettype space addrtype space address]
    parts = (attr.value or "").split()
    if len(parts) not in (1, 4) or not parts[0].isdigit() or int(parts[0]) > 65535:
        raise SdpError(f"a=rtcp is malformed: {attr.value!r}")


def _check_crypto(attr: Attribute) -> None:
    Crypto.parse(attr.value or "")


_ATTRIBUTE_CHECKS = {
    "rtpmap": _check_rtpmap,
    "fmtp": _check_fmtp,
    "ptime": _check_ptime,
    "maxptime": _check_ptime,
    "rtcp": _check_rtcp,
    "crypto": _check_crypto,
}


# ------------------------------------------------------------------- codecs

# RFC 3551 §6, Table 4: static audio payload types (a=rtpmap optional for them).
_STATIC: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

TELEPHONE_EVENT = "telephone-event"


@dataclass(slots=True)
class Codec:
    """A format as capabilities: matched on name (any case), clock rate and channels."""

    encoding: str
    clock_rate: int = 8000
    channels: int = 1

    @property
    def key(self) -> tuple[str, int, int]:
        return self.encoding.lower(), self.clock_rate, self.channels


def codecs(media: Media) -> list[tuple[int, Codec]]:
    """The RTP formats of a media section, in order, as ``(payload type, codec)``.

    Formats with neither an ``a=rtpmap`` nor a static assignment are left out.
    """
    maps = {}
    for attr in media.attributes:
        if attr.name == "rtpmap" and attr.value is not None:
            rtpmap = RtpMap.parse(attr.value)
            maps[rtpmap.payload_type] = Codec(rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels)
    out = []
    for fmt in media.formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        if pt in maps:
            out.append((pt, maps[pt]))
        elif pt in _STATIC:
            out.append((pt, Codec(*_STATIC[pt])))
    return out


def _format_attributes(media: Media, pt: int) -> list[Attribute]:
    prefix = f"{pt} "
    return [
        attr
        for attr in media.attributes
        if attr.name in ("rtpmap", "fmtp") and (attr.value or "").startswith(prefix)
    ]


def _is_rtp(media: Media) -> bool:
    return "RTP/" in media.proto


def _rejected(media: Media) -> Media:
    """RFC 3264 §6: a rejected stream keeps its m= line with port zero."""
    return Media(media.kind, 0, media.proto, media.formats)


def negotiate(
    offer: SessionDescription, answer: SessionDescription | Sequence[Codec]
) -> SessionDescription:
    """The answer to give the offerer, in the offerer's payload types and order.

    ``answer`` is either the far end's SDP answer (the B2BUA relays it back,
    anchored afterwards) or local capabilities (the switch answers itself,
    e.g. to play an ATP). RFC 3264 §6.1: "the answerer MUST NOT include formats
    that were not present in the offer"; a format is kept when both sides have
    it; telephone-event (RFC 4733) likewise; a stream left with no audio codec,
    or rejected on either side, is rejected (port 0).

    With capabilities, the result is a template: ``anchor`` gives it the relay's
    address, ports and ``o=`` line; SRTP keys are the caller's (``add_crypto``).
    """
    if isinstance(answer, SessionDescription):
        return _negotiate_answer(offer, answer)
    return _negotiate_caps(offer, answer)


def _common(offered: list[tuple[int, Codec]], keys: set[tuple[str, int, int]]) -> list[int]:
    kept = [pt for pt, codec in offered if codec.key in keys]
    media_codecs = [
        pt
        for pt, codec in offered
        if pt in kept and codec.encoding.lower() not in (TELEPHONE_EVENT, "cn")
    ]
    return kept if media_codecs else []


def _negotiate_answer(offer: SessionDescription, answer: SessionDescription) -> SessionDescription:
    if len(answer.media) != len(offer.media):
        # RFC 3264 §6: "The answer MUST contain exactly the same number of "m="
        # lines as the offer."
        raise SdpError(
            f"answer has {len(answer.media)} m= lines for an offer of {len(offer.media)}"
        )
    result = []
    for om, am in zip(offer.media, answer.media, strict=True):
        if om.rejected or am.rejected:
            result.append(replace(_rejected(om), connection=am.connection))
            continue
        if not _is_rtp(om):
            result.append(am)
            continue
        answered = {codec.key: pt for pt, codec in codecs(am)}
        offered = codecs(om)
        kept = _common(offered, set(answered))
        if not kept:
            result.append(replace(_rejected(om), connection=am.connection))
            continue
        by_pt = dict(offered)
        formats: list[Attribute] = []
        for pt in kept:
            theirs = answered[by_pt[pt].key]
            formats += [a for a in _format_attributes(om, pt) if a.name == "rtpmap"]
            for attr in _format_attributes(am, theirs):
                if attr.name == "fmtp":
                    rest = (attr.value or "").partition(" ")[2]
                    formats.append(Attribute("fmtp", f"{pt} {rest}"))
        others = [a for a in am.attributes if a.name not in ("rtpmap", "fmtp")]
        result.append(
            replace(am, formats=tuple(str(pt) for pt in kept), attributes=(*formats, *others))
        )
    return replace(answer, media=tuple(result))


def _negotiate_caps(offer: SessionDescription, caps: Sequence[Codec]) -> SessionDescription:
    keys = {codec.key for codec in caps}
    result = []
    for om in offer.media:
        kept = [] if om.rejected or not _is_rtp(om) else _common(codecs(om), keys)
        if not kept:
            result.append(_rejected(om))
            continue
        by_pt = dict(codecs(om))
        attrs = []
        for pt in kept:
            codec = by_pt[pt]
            rtpmap = RtpMap(pt, codec.encoding, codec.clock_rate, codec.channels)
            attrs.append(Attribute("rtpmap", str(rtpmap)))
            attrs += [a for a in _format_attributes(om, pt) if a.name == "fmtp"]
        ptime = om.attribute("ptime")
        if ptime:
            attrs.append(Attribute("ptime", ptime))
        wanted = answer_direction(direction(om, offer))
        if wanted is not Direction.SENDRECV:
            attrs.append(Attribute(wanted.value))
        formats = tuple(str(pt) for pt in kept)
        result.append(Media(om.kind, om.port, om.proto, formats, attributes=tuple(attrs)))
    # A placeholder until ``anchor`` writes the relay's address; never the
    # offer's 0.0.0.0, which would read as an old-style hold of our own.
    connection = Connection("IN", offer.origin.addrtype, offer.origin.address)
    for conn in (offer.connection, *(m.connection for m in offer.media)):
        if conn is not None and conn.address.split("/", 1)[0] not in _ZERO_ADDRESSES:
            connection = conn
            break
    return SessionDescription(offer.origin, "-", connection, (Timing(),), media=tuple(result))


# ------------------------------------------------------------ direction, hold


class Direction(enum.StrEnum):
    """RFC 3264 §5.1 / RFC 4566 §6 media direction attributes."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE


_DIRECTIONS = frozenset(d.value for d in Direction)
_ZERO_ADDRESSES = frozenset(("0.0.0.0", "::"))


def _explicit_direction(attributes: Iterable[Attribute]) -> Direction | None:
    for attr in attributes:
        if attr.value is None and attr.name in _DIRECTIONS:
            return Direction(attr.name)
    return None


def _connection_of(media: Media, session: SessionDescription | None) -> Connection | None:
    if media.connection is not None:
        return media.connection
    return None if session is None else session.connection


def direction(media: Media, session: SessionDescription | None = None) -> Direction:
    """The direction the sender of this SDP means for ``media``, both hold styles understood.

    The media-level attribute wins over the session-level one (RFC 4566 §6);
    the default is sendrecv. RFC 3264 §8.4: "An agent MUST be capable of
    receiving SDP with a connection address of 0.0.0.0, in which case it means
    that neither RTP nor RTCP is to be sent to the peer" (RFC 2543 hold): the
    sender of such an SDP does not receive, so sendrecv reads as sendonly and
    recvonly as inactive.
    """
    found = _explicit_direction(media.attributes)
    if found is None and session is not None:
        found = _explicit_direction(session.attributes)
    result = found or Direction.SENDRECV
    conn = _connection_of(media, session)
    if conn is not None and conn.address.split("/", 1)[0] in _ZERO_ADDRESSES:
        result = Direction.of(result.sends, False)
    return result


def answer_direction(offered: Direction, willing: Direction = Direction.SENDRECV) -> Direction:
    """RFC 3264 §6.1: the answer's direction for an offered one.

    "If a stream is offered as sendonly, the corresponding stream MUST be marked
    as recvonly or inactive in the answer", and so on; ``willing`` is what the
    answerer itself would do.
    """
    return Direction.of(offered.receives and willing.sends, offered.sends and willing.receives)


def set_direction(media: Media, value: Direction) -> Media:
    """Replace the media's direction attribute (written even for sendrecv)."""
    attrs = [a for a in media.attributes if not (a.value is None and a.name in _DIRECTIONS)]
    attrs.append(Attribute(value.value))
    return replace(media, attributes=tuple(attrs))


# -------------------------------------------------------------------- anchor

# ICE attributes name the phone's own candidates; the relay does not do ICE.
_ICE_ATTRIBUTES = frozenset(
    (
        "candidate",
        "remote-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "end-of-candidates",
    )
)


def _anchor_media(
    media: Media, session: SessionDescription, conn: Connection | None, port: int
) -> Media:
    held = direction(media, session)
    zero = _connection_of(media, session)
    old_style_hold = zero is not None and zero.address.split("/", 1)[0] in _ZERO_ADDRESSES
    new_port = 0 if media.rejected else port
    mux = media.has_attribute("rtcp-mux")
    attrs = []
    for attr in media.attributes:
        if attr.name in _ICE_ATTRIBUTES:
            continue
        if attr.name == "rtcp" and conn is not None:
            # RFC 3605 / RFC 5761 §5.1.3: with rtcp-mux RTCP shares the RTP port.
            rtcp_port = new_port if mux or new_port == 0 else new_port + 1
            has_address = len((attr.value or "").split()) == 4
            value = f"{rtcp_port} {conn}" if has_address else str(rtcp_port)
            attr = Attribute("rtcp", value)
        attrs.append(attr)
    result = replace(media, port=new_port, attributes=tuple(attrs))
    if media.connection is not None and conn is not None:
        result = replace(result, connection=conn)
    if old_style_hold and not media.rejected:
        # The relay's address replaces 0.0.0.0: say "hold" the modern way.
        result = set_direction(result, held)
    return result


def anchor(
    sdp: SessionDescription,
    *,
    address: str,
    ports: Sequence[int],
    session_id: int | str,
    previous: SessionDescription | None = None,
    username: str = "aiguilleur",
) -> SessionDescription:
    """The SDP to send on a leg, with media anchored at the relay.

    - ``c=`` (session and media level) becomes ``address``; each ``m=`` port the
      matching entry of ``ports`` (rejected streams keep port 0); ``a=rtcp``
      becomes RTP + 1, or the RTP port with ``a=rtcp-mux``; codecs and other
      attributes are kept; ICE attributes are dropped; an old-style hold
      (``c=0.0.0.0``) becomes the equivalent direction attribute.
    - ``o=`` belongs to the relay side of this leg: ``previous`` is the SDP last
      sent on it. RFC 3264 §8: "When issuing an offer that modifies the session,
      the "o=" line of the new SDP MUST be identical to that in the previous
      SDP, except that the version in the origin field MUST increment by one";
      an unchanged SDP keeps the same version (and is returned as is).
    """
    if len(ports) != len(sdp.media):
        raise ValueError(f"{len(ports)} ports given for {len(sdp.media)} m= lines")
    addrtype = "IP6" if ":" in address else "IP4"
    conn = Connection("IN", addrtype, address)
    media = tuple(
        _anchor_media(m, sdp, conn, port) for m, port in zip(sdp.media, ports, strict=True)
    )
    if sdp.connection is None:
        # Every stream needs a c= somewhere (RFC 4566 §5.7).
        media = tuple(m if m.connection is not None else replace(m, connection=conn) for m in media)
    attributes = tuple(a for a in sdp.attributes if a.name not in _ICE_ATTRIBUTES)
    if previous is None:
        origin = Origin(username, str(session_id), 0, "IN", addrtype, address)
    else:
        origin = replace(previous.origin, addrtype=addrtype, address=address)
    result = replace(
        sdp,
        origin=origin,
        connection=None if sdp.connection is None else conn,
        attributes=attributes,
        media=media,
    )
    if previous is not None and result != previous:
        result = replace(
            result, origin=replace(origin, session_version=previous.origin.session_version + 1)
        )
    return result


# ------------------------------------------------------------- SDES crypto

_SECURE = {"RTP/AVP": "RTP/SAVP", "RTP/AVPF": "RTP/SAVPF"}
_PLAIN = {v: k for k, v in _SECURE.items()}


def crypto_attributes(media: Media) -> list[Crypto]:
    """The ``a=crypto`` lines of a media section, in order of preference."""
    return [Crypto.parse(a.value or "") for a in media.attributes if a.name == "crypto"]


def select_crypto(media: Media, suites: Iterable[str]) -> Crypto | None:
    """The first offered ``a=crypto`` whose suite is supported (RFC 4568 §7.1.2)."""
    supported = set(suites)
    return next((c for c in crypto_attributes(media) if c.suite in supported), None)


def set_secure(media: Media, secure: bool) -> Media:
    """Switch the transport profile: RTP/AVP ↔ RTP/SAVP (and AVPF ↔ SAVPF)."""
    table = _SECURE if secure else _PLAIN
    return replace(media, proto=table.get(media.proto, media.proto))


def add_crypto(media: Media, suite: str, key_b64: str, *, tag: int | None = None) -> Media:
    """Add ``a=crypto:<tag> <suite> inline:<key_b64>`` and switch to RTP/SAVP.

    ``tag`` defaults to one above the highest present (RFC 4568 §9.1: unique per
    media section). In an answer, pass the tag of the offered line accepted.
    """
    existing = crypto_attributes(media)
    if tag is None:
        tag = max((c.tag for c in existing), default=0) + 1
    elif any(c.tag == tag for c in existing):
        raise ValueError(f"a=crypto tag {tag} is already used")
    crypto = Crypto(tag, suite, (f"inline:{key_b64}",))
    crypto.key()  # validates base64 and length before it reaches a peer
    media = replace(media, attributes=(*media.attributes, Attribute("crypto", str(crypto))))
    return set_secure(media, True)


def strip_crypto(media: Media) -> Media:
    """Remove every ``a=crypto`` and switch to plain RTP/AVP (the leg without SRTP)."""
    attrs = tuple(a for a in media.attributes if a.name != "crypto")
    return set_secure(replace(media, attributes=attrs), False)
