"""Hypothesis: generated messages round-trip; mutated ones raise only ParseError."""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.sip.errors import ParseError
from switch.sip.message import Headers, Request, Response
from switch.sip.parser import KEEPALIVE_PING, StreamFramer, parse_message
from switch.sip.uri import Uri

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CORPUS = [p.read_bytes() for p in sorted((Path(__file__).parent / "corpus").glob("*.sip"))]

ALNUM = string.ascii_letters + string.digits
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda g: "[" + ":".join(f"{x:x}" for x in g) + "]"
)
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.none() | st.integers(1, 65535)
users = st.none() | st.text(ALNUM + "-_.!~*'()&=+$,;?/", min_size=1, max_size=12)
param_values = st.none() | st.text(ALNUM + "-_.!~*'()[]/:&+$", min_size=1, max_size=10)
uri_params = st.dictionaries(
    st.text(string.ascii_lowercase + "-", min_size=1, max_size=8), param_values, max_size=3
)


@st.composite
def sip_uris(draw: st.DrawFn) -> Uri:
    return Uri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=draw(users),
        host=draw(hosts),
        port=draw(ports),
        params=draw(uri_params),
    )


tel_uris = st.builds(
    lambda n, p: Uri("tel", user=n, params=p),
    st.text(string.digits + "+-.()", min_size=1, max_size=15),
    uri_params,
)
request_uris = st.one_of(sip_uris(), tel_uris)
gen_values = st.none() | tokens | st.text(ALNUM + " ,;:<>@", max_size=10).map(lambda s: f'"{s}"')
header_params = st.dictionaries(
    st.text(string.ascii_lowercase, min_size=1, max_size=8), gen_values, max_size=3
)
display_names = st.none() | st.text(ALNUM + " ,;<>@é", max_size=15).map(lambda s: f'"{s}"') | tokens


@st.composite
def name_addrs(draw: st.DrawFn, tag: bool) -> str:
    uri = draw(sip_uris())
    display = draw(display_names)
    params = draw(header_params)
    if tag:
        params["tag"] = draw(tokens)
    text = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
    disp = f"{display} " if display else ""
    return f"{disp}<{uri}>{text}"


@st.composite
def vias(draw: st.DrawFn) -> str:
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"]))
    host = draw(hosts)
    port = draw(ports)
    branch = "z9hG4bK" + draw(tokens)
    extra = draw(st.sampled_from(["", ";rport", ";received=192.0.2.1", ";rport=5060;alias"]))
    hostport = host if port is None else f"{host}:{port}"
    return f"SIP/2.0/{transport} {hostport};branch={branch}{extra}"


text_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=","),
    max_size=30,
).map(lambda s: s.strip(" \t\u00a0"))
extension_headers = st.lists(st.tuples(tokens.map(lambda t: "X-" + t), text_values), max_size=5)


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    method = draw(
        st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS"]) | tokens
    )
    headers = Headers()
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        headers.add("Via", via)
    if draw(st.booleans()):
        headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
    headers.add("From", draw(name_addrs(True)))
    headers.add("To", draw(name_addrs(draw(st.booleans()))))
    headers.add("Call-ID", draw(tokens) + "@" + draw(hostnames))
    headers.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    for contact in draw(st.lists(name_addrs(False), max_size=2)):
        headers.add("Contact", contact)
    for name, value in draw(extension_headers):
        headers.add(name, value)
    body = draw(st.binary(max_size=200))
    headers.add("Content-Length", str(len(body)))
    if draw(st.booleans()):
        return Request(method=method, uri=draw(request_uris), headers=headers, body=body)
    reason = draw(text_values.filter(bool))
    return Response(status=draw(st.integers(100, 699)), reason=reason, headers=headers, body=body)


@SETTINGS
@given(messages())
def test_generated_messages_round_trip(msg: Request | Response) -> None:
    assert parse_message(msg.to_bytes()) == msg


@SETTINGS
@given(messages(), st.integers(1, 50))
def test_stream_framer_cuts_generated_messages(msg: Request | Response, chunk: int) -> None:
    data = msg.to_bytes()
    stream = b"\r\n\r\n" + data + data
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += framer.feed(stream[i : i + chunk])
    assert out == [KEEPALIVE_PING, data, data]


def _check_only_parse_errors(data: bytes) -> None:
    error: ParseError | None = None
    try:
        msg = parse_message(data)
    except ParseError as err:
        error = err
    if error is not None:
        reason = str(error)
        assert reason.isascii()
        assert "\r" not in reason
        assert "\n" not in reason
        assert isinstance(error.partial, Request) == error.respondable
        return
    # Whatever parses serialises to something that parses to the same.
    again = parse_message(msg.to_bytes())
    if isinstance(msg, Response) and isinstance(again, Response) and msg.reason == "":
        again.reason = ""
    assert again == msg


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [b"\r\n", b" ", b",", b";", b'"', b"<", b">", b":", b"\x00", b"\xff"]
                )
                | st.binary(max_size=8)
            )
        elif data:
            del data[pos : pos + draw(st.integers(1, 20))]
    return bytes(data)


@SETTINGS
@given(mutations())
def test_mutated_corpus_raises_only_parse_error(data: bytes) -> None:
    _check_only_parse_errors(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    _check_only_parse_errors(data)


@SETTINGS
@given(mutations(), st.integers(1, 64))
def test_mutated_stream_raises_only_parse_error(data: bytes, chunk: int) -> None:
    framer = StreamFramer()
    try:
        for i in range(0, len(data), chunk):
            for frame in framer.feed(data[i : i + chunk]):
                if frame is not KEEPALIVE_PING:
                    _check_only_parse_errors(frame)
    except ParseError:
        pass
