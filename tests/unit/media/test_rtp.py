"""RTP packets: parse/serialize, one test per malformed variant, the fast paths."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.rtp import RtpError, RtpPacket, is_rtcp, pack_header, peek_header

# A PCMU packet as a phone sends it: V=2, M=1, PT=0, seq 1234, ts 160, ssrc.
PCMU = bytes.fromhex("8080 04d2 000000a0 deadbeef") + bytes(160)


def test_parse_plain_packet() -> None:
    packet = RtpPacket.parse(PCMU)
    assert packet == RtpPacket(
        payload_type=0,
        sequence_number=1234,
        timestamp=160,
        ssrc=0xDEADBEEF,
        marker=True,
        payload=bytes(160),
    )
    assert packet.serialize() == PCMU


def test_parse_csrc_extension_and_padding() -> None:
    data = (
        bytes([0x80 | 0x20 | 0x10 | 2, 8])
        + struct.pack("!HII", 7, 8, 9)
        + struct.pack("!II", 1, 2)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\xaa\x00\x00"
        + b"abc"
        + b"\x00\x00\x03"
    )
    packet = RtpPacket.parse(data)
    assert packet.csrc == (1, 2)
    assert packet.extension == (0xBEDE, b"\x10\xaa\x00\x00")
    assert packet.padding_size == 3
    assert packet.payload == b"abc"
    assert packet.payload_type == 8
    assert not packet.marker
    assert packet.serialize() == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\x80\x00\x00", "RTP packet length is less than 12 bytes", id="short"),
        pytest.param(b"\x40" + bytes(11), "RTP packet has invalid version", id="version-1"),
        pytest.param(
            b"\x82\x00" + bytes(10) + bytes(4), "RTP packet has truncated CSRC", id="csrc"
        ),
        pytest.param(
            b"\x90\x00" + bytes(10) + b"\x00\x00",
            "RTP packet has truncated extension profile / length",
            id="extension-header",
        ),
        pytest.param(
            b"\x90\x00" + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4),
            "RTP packet has truncated extension value",
            id="extension-value",
        ),
        pytest.param(
            b"\xa0\x00" + bytes(10) + b"ab\x00",
            "RTP packet padding length is invalid",
            id="padding-zero",
        ),
        pytest.param(
            b"\xa0\x00" + bytes(10) + b"ab\x04",
            "RTP packet padding length is invalid",
            id="padding-too-long",
        ),
    ],
)
def test_malformed_packet(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        pytest.param(RtpPacket(payload_type=128), "RTP payload type must be in 0..127", id="pt"),
        pytest.param(
            RtpPacket(sequence_number=65536), "RTP sequence number must be in 0..65535", id="seq"
        ),
        pytest.param(RtpPacket(timestamp=2**32), "RTP timestamp must be in 0..4294967295", id="ts"),
        pytest.param(RtpPacket(ssrc=-1), "RTP SSRC must be in 0..4294967295", id="ssrc"),
        pytest.param(RtpPacket(csrc=(0,) * 16), "RTP packet has more than 15 CSRC", id="csrc"),
        pytest.param(
            RtpPacket(padding_size=256), "RTP padding size must be in 0..255", id="padding"
        ),
        pytest.param(
            RtpPacket(extension=(1, b"abc")),
            "RTP extension value length must be a multiple of 4 below 2**18",
            id="extension-length",
        ),
        pytest.param(
            RtpPacket(extension=(70000, b"")),
            "RTP extension profile must be in 0..65535",
            id="extension-profile",
        ),
    ],
)
def test_serialize_rejects_out_of_range(packet: RtpPacket, message: str) -> None:
    with pytest.raises(RtpError) as info:
        packet.serialize()
    assert str(info.value) == message


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(
        st.integers(0, 0xFFFF), st.binary(max_size=16).map(lambda b: b + bytes(-len(b) % 4))
    ),
    padding_size=st.integers(0, 255),
    payload=st.binary(max_size=200),
)


@settings(max_examples=200, deadline=None)
@given(packets)
def test_parse_serialize_round_trip(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert RtpPacket.parse(data) == packet
    assert peek_header(data) == (
        packet.payload_type,
        packet.sequence_number,
        packet.timestamp,
        packet.ssrc,
        packet.marker,
    )


def test_peek_header() -> None:
    assert peek_header(PCMU) == (0, 1234, 160, 0xDEADBEEF, True)
    assert peek_header(PCMU[:11]) is None
    assert peek_header(b"\x40" + PCMU[1:]) is None


def test_pack_header_wraps_counters() -> None:
    header = pack_header(8, 65536 + 5, 2**32 + 7, 1, marker=False)
    assert peek_header(header) == (8, 5, 7, 1, False)
    assert pack_header(0, 1234, 160, 0xDEADBEEF, marker=True) == PCMU[:12]


@pytest.mark.parametrize(
    ("second_byte", "expected"),
    [
        (200, True),
        (201, True),
        (192, True),
        (223, True),
        (0, False),
        (0x80, False),
        (127, False),
        (224, False),
    ],
)
def test_rtcp_demux(second_byte: int, expected: bool) -> None:
    assert is_rtcp(bytes([0x80, second_byte]) + bytes(6)) is expected


def test_rtcp_demux_short() -> None:
    assert not is_rtcp(b"\x80")
