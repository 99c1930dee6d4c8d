"""SDP parse/serialize, anchoring, offer/answer, hold styles, SDES."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.sdp import (
    Attribute,
    Bandwidth,
    Codec,
    Connection,
    Crypto,
    Direction,
    Media,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    add_crypto,
    anchor,
    answer_direction,
    codecs,
    crypto_attributes,
    direction,
    negotiate,
    select_crypto,
    set_direction,
    strip_crypto,
)

KEY1 = base64.b64encode(bytes(range(30))).decode()
KEY2 = base64.b64encode(bytes(range(30, 60))).decode()


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


PJSUA = sdp(
    "v=0",
    "o=- 3912345678 3912345678 IN IP4 127.0.0.1",
    "s=pjmedia",
    "b=AS:117",
    "t=0 0",
    "a=X-nat:0",
    "m=audio 4000 RTP/AVP 0 8 9 101",
    "c=IN IP4 127.0.0.1",
    "b=TIAS:96000",
    "a=rtcp:4001 IN IP4 127.0.0.1",
    "a=sendrecv",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ssrc:1470301455 cname:5c3f0a6e1b2c4d5e",
)

POLY = sdp(
    "v=0",
    "o=- 1700000000 1700000000 IN IP4 192.168.1.50",
    "s=Polycom IP Phone",
    "c=IN IP4 192.168.1.50",
    "t=0 0",
    "a=sendrecv",
    "m=audio 2222 RTP/SAVP 9 0 8 18 127",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:127 telephone-event/8000",
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY1}",
    f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY2}|2^31",
)

AASTRA = sdp(
    "v=0",
    "o=MxSIP 0 1 IN IP4 192.168.1.60",
    "s=SIP Call",
    "c=IN IP4 192.168.1.60",
    "t=0 0",
    "m=audio 3000 RTP/AVP 0 8 18 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:30",
    "a=sendrecv",
)

OLD_HOLD = sdp(
    "v=0",
    "o=MxSIP 0 2 IN IP4 192.168.1.60",
    "s=SIP Call",
    "c=IN IP4 0.0.0.0",
    "t=0 0",
    "m=audio 3000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
)

SIPP = sdp(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
)

# Every optional line type, in RFC 4566 order, two m= sections, an unknown type.
FULL = sdp(
    "v=0",
    "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
    "s=SDP Seminar",
    "i=A Seminar on the session description protocol",
    "u=http://www.example.com/seminars/sdp.pdf",
    "e=j.doe@example.com (Jane Doe)",
    "p=+1 617 555-6011",
    "c=IN IP4 224.2.17.12/127",
    "b=CT:128",
    "t=2873397496 2873404696",
    "r=7d 1h 0 25h",
    "t=0 0",
    "z=2882844526 -1h 2898848070 0",
    "k=prompt",
    "x=unknown line kept",
    "a=recvonly",
    "m=audio 49170 RTP/AVP 0",
    "i=main audio",
    "b=AS:64",
    "k=prompt",
    "a=ptime:20",
    "m=video 51372/2 RTP/AVP 99",
    "c=IN IP4 10.47.16.6",
    "a=rtpmap:99 h263-1998/90000",
    "a=orient:portrait",
    "a=quality:10",
    "a=empty:",
)

SAMPLES = {
    "pjsua": PJSUA,
    "poly-srtp": POLY,
    "aastra": AASTRA,
    "old-hold": OLD_HOLD,
    "sipp": SIPP,
    "rfc4566-full": FULL,
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_is_exact(name: str) -> None:
    data = SAMPLES[name]
    parsed = SessionDescription.parse(data)
    assert parsed.serialize() == data
    assert SessionDescription.parse(parsed.serialize()) == parsed


def test_parse_fields_of_a_pjsua_offer() -> None:
    parsed = SessionDescription.parse(PJSUA)
    assert parsed.origin == Origin("-", "3912345678", 3912345678, "IN", "IP4", "127.0.0.1")
    assert parsed.name == "pjmedia"
    assert parsed.connection is None
    assert parsed.bandwidths == (Bandwidth("AS", 117),)
    assert parsed.attributes == (Attribute("X-nat", "0"),)
    (audio,) = parsed.media
    assert (audio.kind, audio.port, audio.proto) == ("audio", 4000, "RTP/AVP")
    assert audio.formats == ("0", "8", "9", "101")
    assert audio.connection == Connection("IN", "IP4", "127.0.0.1")
    assert audio.attribute("rtcp") == "4001 IN IP4 127.0.0.1"
    assert audio.attribute("sendrecv") == ""
    assert audio.attribute("crypto") is None
    assert codecs(audio) == [
        (0, Codec("PCMU")),
        (8, Codec("PCMA")),
        (9, Codec("G722")),
        (101, Codec("telephone-event")),
    ]


def test_parse_extras_and_timings() -> None:
    parsed = SessionDescription.parse(FULL)
    assert parsed.timings == (Timing(2873397496, 2873404696, ("7d 1h 0 25h",)), Timing(0, 0))
    assert [k for k, _ in parsed.extra] == ["i", "u", "e", "p", "z", "k", "x"]
    audio, video = parsed.media
    assert audio.extra == (("i", "main audio"), ("k", "prompt"))
    assert video.port_count == 2
    assert video.attributes[-1] == Attribute("empty", "")


def test_accepts_bare_lf_and_writes_crlf() -> None:
    parsed = SessionDescription.parse(SIPP.replace(b"\r\n", b"\n"))
    assert parsed.serialize() == SIPP


def test_static_payload_types_need_no_rtpmap() -> None:
    parsed = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 1.2.3.4",
            "s=-",
            "c=IN IP4 1.2.3.4",
            "t=0 0",
            "m=audio 1000 RTP/AVP 18 0 96",
        )
    )
    assert codecs(parsed.media[0]) == [(18, Codec("G729")), (0, Codec("PCMU"))]


HEAD = ("v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=-", "c=IN IP4 1.2.3.4", "t=0 0")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "SDP is empty", id="empty"),
        pytest.param(b"v=0\r\n\xff\r\n", "SDP is not valid UTF-8", id="not-utf8"),
        pytest.param(sdp("o=- 1 1 IN IP4 1.2.3.4"), "line 1: SDP must start with v=", id="no-v"),
        pytest.param(sdp("v=1", *HEAD[1:]), "line 1: unsupported SDP version '1'", id="v1"),
        pytest.param(sdp(*HEAD, "garbage"), "line 6: not a <type>=<value> line", id="no-equals"),
        pytest.param(sdp(*HEAD, ""), "line 6: not a <type>=<value> line", id="empty-line"),
        pytest.param(sdp(*HEAD, "A=x"), "line 6: not a <type>=<value> line", id="uppercase"),
        pytest.param(sdp(*HEAD, "v=0"), "line 6: duplicate v= line", id="dup-v"),
        pytest.param(sdp(*HEAD, "o=- 1 1 IN IP4 1.2.3.4"), "line 6: duplicate o= line", id="dup-o"),
        pytest.param(sdp(*HEAD, "s=again"), "line 6: duplicate s= line", id="dup-s"),
        pytest.param(sdp(*HEAD, "c=IN IP4 1.1.1.1"), "line 6: duplicate c= line", id="dup-c"),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP 0", "c=IN IP4 1.1.1.1", "c=IN IP4 1.1.1.1"),
            "line 8: duplicate c= line",
            id="dup-media-c",
        ),
        pytest.param(
            sdp("v=0", "o=- 1 IN IP4 1.2.3.4"), "line 2: o= needs 6 fields", id="o-fields"
        ),
        pytest.param(
            sdp("v=0", "o=- 1 x IN IP4 1.2.3.4"),
            "line 2: o= session version is not a number",
            id="o-version",
        ),
        pytest.param(sdp(*HEAD[:3], "c=IN IP4"), "line 4: c= needs 3 fields", id="c-fields"),
        pytest.param(sdp(*HEAD, "b=AS"), "line 6: b= needs <bwtype>:<bandwidth>", id="b-no-colon"),
        pytest.param(sdp(*HEAD, "b=AS:x"), "line 6: b= bandwidth is not a number", id="b-number"),
        pytest.param(sdp(*HEAD[:4], "t=0"), "line 5: t= needs 2 fields", id="t-fields"),
        pytest.param(
            sdp(*HEAD[:4], "t=x 0"), "line 5: t= start time is not a number", id="t-start"
        ),
        pytest.param(sdp(*HEAD[:4], "t=0 y"), "line 5: t= stop time is not a number", id="t-stop"),
        pytest.param(sdp(*HEAD[:4], "r=1d 1h 0"), "line 5: r= without a preceding t=", id="r-no-t"),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP"),
            "line 6: m= needs <media> <port> <proto> <fmt> ...",
            id="m-fields",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio x RTP/AVP 0"), "line 6: m= port is not a number", id="m-port"
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 70000 RTP/AVP 0"), "line 6: m= port is out of range", id="m-range"
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1/x RTP/AVP 0"),
            "line 6: m= port count is not a number",
            id="m-count",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP 0", "t=0 0"),
            "line 7: t= is not allowed after m=",
            id="t-in-media",
        ),
        pytest.param(sdp(*HEAD, "a=:x"), "line 6: a= has no attribute name", id="a-no-name"),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP 0", "a=rtpmap:0 PCMU"),
            "line 7: a=rtpmap is malformed: '0 PCMU'",
            id="rtpmap-no-rate",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP 0", "a=rtpmap:200 X/8000"),
            "line 7: a=rtpmap is malformed: '200 X/8000'",
            id="rtpmap-pt",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP 0", "a=fmtp:"),
            "line 7: a=fmtp needs <format> <parameters>",
            id="fmtp",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP 0", "a=ptime:abc"),
            "line 7: a=ptime is not a positive number: 'abc'",
            id="ptime",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/AVP 0", "a=rtcp:1 IN IP4"),
            "line 7: a=rtcp is malformed: '1 IN IP4'",
            id="rtcp",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80"),
            "line 7: a=crypto needs <tag> <crypto-suite> <key-params>: '1 AES_CM_128_HMAC_SHA1_80'",
            id="crypto-fields",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/SAVP 0", f"a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:{KEY1}"),
            "line 7: a=crypto tag is not a number of 1 to 9 digits: 'x'",
            id="crypto-tag",
        ),
        pytest.param(
            sdp(*HEAD, "m=audio 1 RTP/SAVP 0", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY1}"),
            f"line 7: a=crypto key parameter is not inline:<key>: '{KEY1}'",
            id="crypto-inline",
        ),
        pytest.param(sdp("v=0", "s=-", "t=0 0"), "missing o= line", id="missing-o"),
        pytest.param(sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "t=0 0"), "missing s= line", id="no-s"),
        pytest.param(sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=-"), "missing t= line", id="no-t"),
        pytest.param(
            sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=-", "t=0 0", "m=audio 1 RTP/AVP 0"),
            "m= line 1 has no c= and there is no session-level c=",
            id="no-c",
        ),
    ],
)
def test_malformed_sdp(data: bytes, message: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(data)
    assert str(info.value) == message


def test_rejected_stream_may_omit_c() -> None:
    parsed = SessionDescription.parse(
        sdp("v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=-", "t=0 0", "m=video 0 RTP/AVP 31")
    )
    assert parsed.media[0].rejected


# ---------------------------------------------------------------- Hypothesis

token = st.text(string.ascii_letters + string.digits + "-._", min_size=1, max_size=8)
connections = st.builds(Connection, st.just("IN"), st.sampled_from(["IP4", "IP6"]), token)
attributes = st.builds(
    Attribute,
    st.sampled_from(["sendrecv", "X-foo", "label", "mid", "ssrc", "setup", "orient"]),
    st.none() | st.text(string.ascii_letters + string.digits + " :/=-", max_size=12),
)
bandwidths = st.builds(Bandwidth, st.sampled_from(["AS", "CT", "TIAS"]), st.integers(0, 10**6))
free_text = st.text(string.ascii_letters + string.digits + " -.@", min_size=1, max_size=16).filter(
    lambda s: s.strip() == s
)


def _extras(before: str, after: str) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    head = st.lists(st.tuples(st.sampled_from(before), free_text), max_size=2)
    tail = st.lists(st.tuples(st.sampled_from(after), free_text), max_size=2)
    return st.builds(lambda h, t: (*h, *t), head, tail)


media_sections = st.builds(
    Media,
    st.sampled_from(["audio", "video", "image"]),
    st.integers(0, 65535),
    st.sampled_from(["RTP/AVP", "RTP/SAVP", "udptl"]),
    st.lists(st.integers(0, 127).map(str), min_size=1, max_size=5).map(tuple),
    port_count=st.none() | st.integers(1, 4),
    connection=connections,
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    attributes=st.lists(attributes, max_size=5).map(tuple),
    extra=_extras("i", "kx"),
)

descriptions = st.builds(
    SessionDescription,
    st.builds(
        Origin,
        token,
        st.integers(0, 2**63).map(str),
        st.integers(0, 2**63),
        st.just("IN"),
        st.just("IP4"),
        token,
    ),
    free_text,
    st.none() | connections,
    st.lists(
        st.builds(
            Timing,
            st.integers(0, 2**32),
            st.integers(0, 2**32),
            st.lists(free_text, max_size=2).map(tuple),
        ),
        min_size=1,
        max_size=2,
    ).map(tuple),
    st.lists(bandwidths, max_size=2).map(tuple),
    st.lists(attributes, max_size=4).map(tuple),
    st.lists(media_sections, max_size=3).map(tuple),
    _extras("iuep", "zkx"),
)


@settings(max_examples=150, deadline=None)
@given(descriptions)
def test_parse_serialize_round_trip(description: SessionDescription) -> None:
    assert SessionDescription.parse(description.serialize()) == description


# ------------------------------------------------------------------- anchor


def test_anchor_rewrites_addresses_ports_and_rtcp() -> None:
    offer = SessionDescription.parse(PJSUA)
    anchored = anchor(offer, address="10.0.0.1", ports=[30000], session_id=42)
    assert anchored.origin == Origin("aiguilleur", "42", 0, "IN", "IP4", "10.0.0.1")
    (audio,) = anchored.media
    assert audio.port == 30000
    assert audio.connection == Connection("IN", "IP4", "10.0.0.1")
    assert audio.attribute("rtcp") == "30001 IN IP4 10.0.0.1"
    assert audio.formats == offer.media[0].formats
    assert codecs(audio) == codecs(offer.media[0])
    assert b"127.0.0.1" not in anchored.serialize()


def test_anchor_with_rtcp_mux_and_session_level_c() -> None:
    offer = SessionDescription.parse(
        sdp(
            *HEAD,
            "m=audio 5000 RTP/AVP 0",
            "a=rtcp:5000",
            "a=rtcp-mux",
            "a=ice-ufrag:abcd",
            "a=candidate:1 1 UDP 2130706431 1.2.3.4 5000 typ host",
        )
    )
    anchored = anchor(offer, address="10.0.0.1", ports=[30000], session_id=1)
    assert anchored.connection == Connection("IN", "IP4", "10.0.0.1")
    assert anchored.media[0].connection is None
    assert anchored.media[0].attributes == (Attribute("rtcp", "30000"), Attribute("rtcp-mux"))


def test_anchor_keeps_rejected_streams_at_port_zero() -> None:
    offer = SessionDescription.parse(sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "m=video 0 RTP/AVP 31"))
    anchored = anchor(offer, address="::1", ports=[30000, 30002], session_id=1)
    assert [m.port for m in anchored.media] == [30000, 0]
    assert anchored.origin.addrtype == "IP6"


def test_anchor_origin_version_increments_only_on_change() -> None:
    first = anchor(
        SessionDescription.parse(AASTRA), address="10.0.0.1", ports=[30000], session_id=7
    )
    same = anchor(
        SessionDescription.parse(AASTRA),
        address="10.0.0.1",
        ports=[30000],
        session_id=99,
        previous=first,
    )
    assert same == first
    held = anchor(
        SessionDescription.parse(OLD_HOLD),
        address="10.0.0.1",
        ports=[30000],
        session_id=99,
        previous=first,
    )
    assert held.origin == Origin("aiguilleur", "7", 1, "IN", "IP4", "10.0.0.1")
    resumed = anchor(
        SessionDescription.parse(AASTRA),
        address="10.0.0.1",
        ports=[30000],
        session_id=99,
        previous=held,
    )
    assert resumed.origin.session_version == 2


def test_anchor_turns_old_style_hold_into_an_attribute() -> None:
    hold = SessionDescription.parse(OLD_HOLD)
    assert direction(hold.media[0], hold) is Direction.SENDONLY
    anchored = anchor(hold, address="10.0.0.1", ports=[30000], session_id=1)
    assert anchored.connection == Connection("IN", "IP4", "10.0.0.1")
    assert anchored.media[0].attribute("sendonly") == ""
    assert direction(anchored.media[0], anchored) is Direction.SENDONLY


def test_anchor_needs_one_port_per_media() -> None:
    with pytest.raises(ValueError, match="2 ports given for 1 m= lines"):
        anchor(SessionDescription.parse(SIPP), address="1.1.1.1", ports=[1, 2], session_id=1)


# ---------------------------------------------------------------- direction


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(("c=IN IP4 1.2.3.4",), Direction.SENDRECV, id="default"),
        pytest.param(("c=IN IP4 1.2.3.4", "a=sendonly"), Direction.SENDONLY, id="sendonly"),
        pytest.param(("c=IN IP4 1.2.3.4", "a=recvonly"), Direction.RECVONLY, id="recvonly"),
        pytest.param(("c=IN IP4 1.2.3.4", "a=inactive"), Direction.INACTIVE, id="inactive"),
        pytest.param(("c=IN IP4 0.0.0.0",), Direction.SENDONLY, id="old-hold"),
        pytest.param(("c=IN IP4 0.0.0.0", "a=recvonly"), Direction.INACTIVE, id="old-hold-recv"),
        pytest.param(("c=IN IP4 0.0.0.0", "a=inactive"), Direction.INACTIVE, id="old-inactive"),
        pytest.param(("c=IN IP6 ::",), Direction.SENDONLY, id="old-hold-ipv6"),
    ],
)
def test_direction(lines: tuple[str, ...], expected: Direction) -> None:
    parsed = SessionDescription.parse(sdp(*HEAD[:4], "t=0 0", "m=audio 1 RTP/AVP 0", *lines))
    assert direction(parsed.media[0], parsed) is expected


def test_session_level_direction_and_media_override() -> None:
    parsed = SessionDescription.parse(
        sdp(*HEAD, "a=sendonly", "m=audio 1 RTP/AVP 0", "m=audio 2 RTP/AVP 0", "a=sendrecv")
    )
    assert direction(parsed.media[0], parsed) is Direction.SENDONLY
    assert direction(parsed.media[1], parsed) is Direction.SENDRECV
    assert direction(parsed.media[0]) is Direction.SENDRECV


@pytest.mark.parametrize(
    ("offered", "willing", "expected"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
    ],
)
def test_answer_direction(offered: Direction, willing: Direction, expected: Direction) -> None:
    assert answer_direction(offered, willing) is expected


def test_set_direction_replaces_the_attribute() -> None:
    media = SessionDescription.parse(AASTRA).media[0]
    held = set_direction(media, Direction.INACTIVE)
    assert held.attributes[-1] == Attribute("inactive")
    assert not held.has_attribute("sendrecv")


# -------------------------------------------------------------- negotiation


def test_negotiate_with_remote_answer_keeps_offer_payload_types_and_order() -> None:
    offer = SessionDescription.parse(PJSUA)
    # The far end answers with its own numbering: telephone-event on 96.
    remote = SessionDescription.parse(
        sdp(
            *HEAD,
            "m=audio 7000 RTP/AVP 8 0 96",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:96 telephone-event/8000",
            "a=fmtp:96 0-15",
            "a=ptime:20",
        )
    )
    answer = negotiate(offer, remote)
    (audio,) = answer.media
    assert audio.formats == ("0", "8", "101")
    assert audio.attributes == (
        Attribute("rtpmap", "0 PCMU/8000"),
        Attribute("rtpmap", "8 PCMA/8000"),
        Attribute("rtpmap", "101 telephone-event/8000"),
        Attribute("fmtp", "101 0-15"),
        Attribute("ptime", "20"),
    )
    assert audio.port == 7000


def test_negotiate_drops_telephone_event_unless_both_support_it() -> None:
    offer = SessionDescription.parse(PJSUA)
    remote = SessionDescription.parse(SIPP)  # PCMU only, no telephone-event
    assert negotiate(offer, remote).media[0].formats == ("0",)
    answer = negotiate(SessionDescription.parse(SIPP), SessionDescription.parse(PJSUA))
    assert answer.media[0].formats == ("0",)


def test_negotiate_mirrors_rejected_streams_and_rejects_disjoint_ones() -> None:
    offer = SessionDescription.parse(
        sdp(
            *HEAD,
            "m=audio 5000 RTP/AVP 0 101",
            "a=rtpmap:101 telephone-event/8000",
            "m=video 5002 RTP/AVP 31",
        )
    )
    remote = SessionDescription.parse(
        sdp(
            *HEAD,
            "m=audio 6000 RTP/AVP 8 101",
            "a=rtpmap:101 telephone-event/8000",
            "m=video 0 RTP/AVP 31",
        )
    )
    answer = negotiate(offer, remote)
    assert [m.port for m in answer.media] == [0, 0]
    assert answer.media[0].formats == ("0", "101")


def test_negotiate_requires_as_many_m_lines() -> None:
    with pytest.raises(SdpError) as info:
        negotiate(SessionDescription.parse(FULL), SessionDescription.parse(SIPP))
    assert str(info.value) == "answer has 1 m= lines for an offer of 2"


def test_negotiate_with_capabilities() -> None:
    offer = SessionDescription.parse(POLY)
    caps = [Codec("PCMA"), Codec("PCMU"), Codec("telephone-event")]
    answer = negotiate(offer, caps)
    (audio,) = answer.media
    assert audio.formats == ("0", "8", "127")  # the offerer's order and numbers
    assert audio.attribute("crypto") is None
    assert direction(audio, answer) is Direction.SENDRECV
    held = negotiate(SessionDescription.parse(OLD_HOLD), caps)
    assert direction(held.media[0], held) is Direction.RECVONLY
    assert negotiate(offer, [Codec("G7221", 16000)]).media[0].rejected
    assert negotiate(offer, [Codec("telephone-event")]).media[0].rejected


# ---------------------------------------------------------------------- SDES


def test_crypto_attributes_of_a_poly_offer() -> None:
    media = SessionDescription.parse(POLY).media[0]
    first, second = crypto_attributes(media)
    assert first == Crypto(1, "AES_CM_128_HMAC_SHA1_80", (f"inline:{KEY1}",))
    assert first.key() == bytes(range(30))
    assert second.key_b64 == KEY2
    assert str(second) == f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY2}|2^31"
    assert select_crypto(media, ["AES_CM_128_HMAC_SHA1_32"]) == second
    assert select_crypto(media, ["AEAD_AES_256_GCM"]) is None


def test_strip_and_add_crypto_switch_profiles() -> None:
    media = SessionDescription.parse(POLY).media[0]
    plain = strip_crypto(media)
    assert plain.proto == "RTP/AVP"
    assert crypto_attributes(plain) == []
    secure = add_crypto(plain, "AES_CM_128_HMAC_SHA1_80", KEY2)
    assert secure.proto == "RTP/SAVP"
    assert secure.attributes[-1] == Attribute("crypto", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY2}")
    again = add_crypto(secure, "AES_CM_128_HMAC_SHA1_32", KEY1)
    assert [c.tag for c in crypto_attributes(again)] == [1, 2]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param("not*base64", "a=crypto key is not base64: 'not*base64'", id="base64"),
        pytest.param(
            base64.b64encode(bytes(16)).decode(),
            "a=crypto key of AES_CM_128_HMAC_SHA1_80 must be 30 bytes, not 16",
            id="length",
        ),
    ],
)
def test_bad_crypto_key(key: str, message: str) -> None:
    media = SessionDescription.parse(SIPP).media[0]
    with pytest.raises(SdpError) as info:
        add_crypto(media, "AES_CM_128_HMAC_SHA1_80", key)
    assert str(info.value) == message


def test_add_crypto_refuses_a_used_tag() -> None:
    media = SessionDescription.parse(POLY).media[0]
    with pytest.raises(ValueError, match="a=crypto tag 1 is already used"):
        add_crypto(media, "AES_CM_128_HMAC_SHA1_80", KEY1, tag=1)
