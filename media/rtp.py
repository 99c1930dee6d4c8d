"""RTP packets (RFC 3550 §5.1) and the RTP/RTCP demultiplexing rule (RFC 5761 §4).

Pure: bytes in, bytes out. A relay only needs a handful of header fields, so
``peek_header`` reads them without building an object; ``RtpPacket`` is the
full parse for players, DTMF and tests. Nothing here formats a packet for a log.

RFC 3550 §5.1, the fixed header::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                             ....                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "RTP_HEADER_LENGTH",
    "RtpError",
    "RtpPacket",
    "is_rtcp",
    "pack_header",
    "peek_header",
]

RTP_HEADER_LENGTH = 12

_HEADER = struct.Struct("!BBHII")
_WORD = struct.Struct("!I")
_EXTENSION = struct.Struct("!HH")


class RtpError(ValueError):
    """The bytes are not a valid RTP packet, or a field is out of range."""


def is_rtcp(data: bytes) -> bool:
    """Tell RTCP from RTP on a multiplexed port.

    RFC 5761 §4: "if the value of the second octet is within the range 192 to
    223 [...] the packet is RTCP" (RTP payload types 64-95 with the marker bit
    set collide with RTCP packet types 192-223, hence those payload types are
    not used for RTP when multiplexing).
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


def peek_header(data: bytes) -> tuple[int, int, int, int, bool] | None:
    """``(payload_type, sequence, timestamp, ssrc, marker)`` or None if not RTP v2.

    The cheap read a relay does on every packet: no object, no copy.
    """
    if len(data) < RTP_HEADER_LENGTH or data[0] >> 6 != 2:
        return None
    _, m_pt, seq, ts, ssrc = _HEADER.unpack_from(data)
    return m_pt & 0x7F, seq, ts, ssrc, bool(m_pt & 0x80)


def pack_header(payload_type: int, sequence: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    """The 12-byte fixed header (no CSRC, extension or padding).

    Sequence and timestamp are taken modulo 2**16 and 2**32 so callers can count
    without wrapping themselves.
    """
    return _HEADER.pack(
        0x80,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. ``extension`` is ``(profile, data)`` with ``len(data) % 4 == 0``."""

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding_size: int = 0
    payload: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < RTP_HEADER_LENGTH:
            raise RtpError(f"RTP packet length is less than {RTP_HEADER_LENGTH} bytes")
        v_p_x_cc, m_pt, seq, ts, ssrc = _HEADER.unpack_from(data)
        if v_p_x_cc >> 6 != 2:
            raise RtpError("RTP packet has invalid version")
        cc = v_p_x_cc & 0x0F
        pos = RTP_HEADER_LENGTH + 4 * cc
        if len(data) < pos:
            raise RtpError("RTP packet has truncated CSRC")
        csrc = tuple(_WORD.unpack_from(data, RTP_HEADER_LENGTH + 4 * i)[0] for i in range(cc))

        extension = None
        if v_p_x_cc & 0x10:
            if len(data) < pos + 4:
                raise RtpError("RTP packet has truncated extension profile / length")
            profile, words = _EXTENSION.unpack_from(data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise RtpError("RTP packet has truncated extension value")
            extension = (profile, bytes(data[pos : pos + 4 * words]))
            pos += 4 * words

        padding_size = 0
        end = len(data)
        if v_p_x_cc & 0x20:
            # RFC 3550 §5.1: "The last octet of the padding contains a count of
            # how many padding octets should be ignored, including itself."
            padding_size = data[-1]
            if padding_size == 0 or padding_size > len(data) - pos:
                raise RtpError("RTP packet padding length is invalid")
            end -= padding_size

        return cls(
            payload_type=m_pt & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            marker=bool(m_pt & 0x80),
            csrc=csrc,
            extension=extension,
            padding_size=padding_size,
            payload=bytes(data[pos:end]),
        )

    def serialize(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise RtpError("RTP payload type must be in 0..127")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpError("RTP sequence number must be in 0..65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError("RTP timestamp must be in 0..4294967295")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("RTP SSRC must be in 0..4294967295")
        if len(self.csrc) > 15:
            raise RtpError("RTP packet has more than 15 CSRC")
        if not 0 <= self.padding_size <= 255:
            raise RtpError("RTP padding size must be in 0..255")
        parts = [
            _HEADER.pack(
                0x80
                | (0x20 if self.padding_size else 0)
                | (0x10 if self.extension is not None else 0)
                | len(self.csrc),
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        parts.extend(_WORD.pack(c) for c in self.csrc)
        if self.extension is not None:
            profile, value = self.extension
            if not 0 <= profile <= 0xFFFF:
                raise RtpError("RTP extension profile must be in 0..65535")
            if len(value) % 4 or len(value) > 4 * 0xFFFF:
                raise RtpError("RTP extension value length must be a multiple of 4 below 2**18")
            parts.append(_EXTENSION.pack(profile, len(value) // 4))
            parts.append(value)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)
