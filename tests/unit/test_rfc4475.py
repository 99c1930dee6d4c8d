"""RFC 4475 "SIP Torture Test Messages": one test per message file.

Each row: file -> expected outcome, with the RFC 4475 section that states it.
``OK`` rows must parse and survive ``parse_message(msg.to_bytes())``; ``Reject``
rows must raise ``ParseError`` with that status code and ``respondable`` flag
(RFC 4475 §3.1.2: a server answers 4xx when it can, drops responses).
Semantic cases that a parser rightly accepts while the core answers an error
(483 for Max-Forwards 0, 420 for Require, 415 for Content-Type...) assert the
parsed fact the core acts on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from switch.sip.errors import BadUriScheme, ParseError
from switch.sip.headers import parse_name_addr
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message

TORTURE = Path("/work/shared/rfc4475")

pytestmark = pytest.mark.skipif(not TORTURE.is_dir(), reason="RFC 4475 messages not present")


@dataclass(frozen=True)
class OK:
    kind: type[Request] | type[Response] = Request
    check: Callable[[Request | Response], None] | None = None


@dataclass(frozen=True)
class Reject:
    status: int
    respondable: bool
    reason: str


def _wsinv(m: Request | Response) -> None:
    assert isinstance(m, Request)
    assert m.headers.get("Max-Forwards") == "0068"
    assert m.cseq.seq == 9
    assert m.cseq.method == "INVITE"
    assert m.to.tag == "1918181833n"
    assert m.from_.display == '"J Rosenberg \\\\\\""'
    assert m.from_.tag == "98asjd8"
    assert [v.transport for v in m.vias] == ["UDP", "TCP", "UDP"]
    assert m.vias[2].branch == "z9hG4bK30239"
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    contact = parse_name_addr(m.headers.get("Contact") or "")
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(m.body) == 150


def _intmeth(m: Request | Response) -> None:
    assert isinstance(m, Request)
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.from_.tag == "_token~1'+`*%!-."


def _esc01(m: Request | Response) -> None:
    assert isinstance(m, Request)
    assert m.uri.user == "sips%3Auser%40example.com"  # kept escaped, as written
    assert m.uri.host == "example.net"
    contact = parse_name_addr(m.headers.get("Contact") or "")
    assert contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}


def _esc02(m: Request | Response) -> None:
    assert isinstance(m, Request)
    assert m.method == "RE%47IST%45R"
    # "C%6Fntact" is another header, not Contact (no unescaping of names).
    assert len(m.headers.get_all("Contact")) == 2
    assert m.headers.get("C%6fntact") == "<sip:alias2@host2.example.com>"


def _escnull(m: Request | Response) -> None:
    assert m.to.uri.user == "null-%00-null"
    assert len(m.headers.get_all("Contact")) == 2


def _lwsdisp(m: Request | Response) -> None:
    assert m.from_.display == "caller"
    assert m.from_.uri.user == "caller"


def _longreq(m: Request | Response) -> None:
    assert isinstance(m, Request)
    assert len(m.vias) == 34  # 34 Via values over several fields
    assert m.to.uri.port == 6000


def _dblreq(m: Request | Response) -> None:
    # §3.1.1.8: the REGISTER is the message; the INVITE after it is ignored.
    assert isinstance(m, Request)
    assert m.method == "REGISTER"
    assert m.body == b""


def _semiuri(m: Request | Response) -> None:
    assert isinstance(m, Request)
    assert m.uri.user == "user;par=u%40example.net"
    assert m.uri.params == {}
    assert len(m.headers.get_all("Accept")) == 6


def _transports(m: Request | Response) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def _mpart01(m: Request | Response) -> None:
    assert m.content_type == "multipart/mixed"
    assert len(m.body) == int(m.headers.get("Content-Length") or -1)


def _unreason(m: Request | Response) -> None:
    assert isinstance(m, Response)
    assert m.status == 200
    assert m.reason.startswith("= 2**3 * 5**2 ")
    assert "\u043d\u043e" in m.reason  # UTF-8 text kept


def _noreason(m: Request | Response) -> None:
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (100, "")


def _unksm2(m: Request | Response) -> None:
    assert m.to.uri.scheme == "isbn"
    assert m.to.uri.opaque == "2983792873"
    assert m.from_.uri.scheme == "http"
    assert parse_name_addr(m.headers.get("Contact") or "").uri.scheme == "name"


def _bext01(m: Request | Response) -> None:
    # §3.3.5: the core answers 420 Bad Extension listing the unknown options.
    assert m.headers.get_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.headers.get_all("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def _invut(m: Request | Response) -> None:
    # §3.3.6: the core answers 415 Unsupported Media Type.
    assert m.content_type == "application/unknownformat"


def _regaut01(m: Request | Response) -> None:
    # §3.3.7: unknown scheme, kept whole (Authorization is never split).
    assert m.headers.get_all("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]


def _bcast(m: Request | Response) -> None:
    # §3.3.10: the second Via is a broadcast address; the core drops it upstream.
    assert m.vias[1].host == "255.255.255.255"


def _zeromf(m: Request | Response) -> None:
    # §3.3.11: Max-Forwards 0 on OPTIONS: the core answers (483 or itself).
    assert m.headers.get("Max-Forwards") == "0"


def _cparam01(m: Request | Response) -> None:
    # §3.3.12: addr-spec form: ";unknownparam" is a Contact parameter.
    contact = parse_name_addr(m.headers.get("Contact") or "")
    assert contact.params == {"unknownparam": None}
    assert contact.uri.params == {}


def _cparam02(m: Request | Response) -> None:
    # §3.3.13: in <>, ";unknownparam" is a URI parameter.
    contact = parse_name_addr(m.headers.get("Contact") or "")
    assert contact.params == {}
    assert contact.uri.params == {"unknownparam": None}


def _regescrt(m: Request | Response) -> None:
    # §3.3.14: the escaped Route is a URI header of the Contact, kept escaped.
    contact = parse_name_addr(m.headers.get("Contact") or "")
    assert contact.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}


def _sdp01(m: Request | Response) -> None:
    # §3.3.15: the core answers 415 with an Accept of what it understands.
    assert m.headers.get_all("Accept") == ["text/nobodyKnowsThis"]


def _inv2543(m: Request | Response) -> None:
    # §3.4.1: RFC 2543 style (no branch cookie, no From tag): accepted.
    assert m.branch is None
    assert m.from_.tag is None
    assert "Max-Forwards" not in m.headers


def _baddate(m: Request | Response) -> None:
    # §3.1.2.12: "An element choosing to be liberal ... could ignore the value
    # of the Date header field". Date is not interpreted: kept as text.
    assert m.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


CASES: dict[str, OK | Reject] = {
    # 3.1.1 Valid messages
    "wsinv": OK(check=_wsinv),  # 3.1.1.1 short tortuous INVITE
    "intmeth": OK(check=_intmeth),  # 3.1.1.2 wide range of valid characters
    "esc01": OK(check=_esc01),  # 3.1.1.3 valid use of % escaping
    "escnull": OK(check=_escnull),  # 3.1.1.4 escaped nulls in URIs
    "esc02": OK(check=_esc02),  # 3.1.1.5 use of % when it is not an escape
    "lwsdisp": OK(check=_lwsdisp),  # 3.1.1.6 no LWS between display name and <
    "longreq": OK(check=_longreq),  # 3.1.1.7 long values in header fields
    "dblreq": OK(check=_dblreq),  # 3.1.1.8 extra trailing octets in a datagram
    "semiuri": OK(check=_semiuri),  # 3.1.1.9 semicolon-separated params in user part
    "transports": OK(check=_transports),  # 3.1.1.10 varied and unknown transports
    "mpart01": OK(check=_mpart01),  # 3.1.1.11 multipart MIME message
    "unreason": OK(Response, _unreason),  # 3.1.1.12 unusual reason phrase
    "noreason": OK(Response, _noreason),  # 3.1.1.13 empty reason phrase
    # 3.1.2 Invalid messages
    "badinv01": Reject(400, True, "Bad Via: empty element"),  # 3.1.2.1 extra separators
    "clerr": Reject(400, True, "Bad Content-Length: larger than body"),  # 3.1.2.2
    "ncl": Reject(400, True, "Bad Content-Length"),  # 3.1.2.3 negative Content-Length
    "scalar02": Reject(400, True, "Bad CSeq: sequence number too large"),  # 3.1.2.4
    "scalarlg": Reject(400, False, "Bad CSeq: sequence number too large"),  # 3.1.2.5 response
    "quotbal": Reject(400, True, "Bad To: unterminated quoted string"),  # 3.1.2.6
    "ltgtruri": Reject(400, True, "Bad Request-URI"),  # 3.1.2.7 <> around Request-URI
    "lwsruri": Reject(400, True, "Bad Request-Line"),  # 3.1.2.8 LWS in Request-URI
    "lwsstart": Reject(400, True, "Bad Request-Line"),  # 3.1.2.9 several SP in start line
    "trws": Reject(400, True, "Bad Request-Line"),  # 3.1.2.10 SP at end of Request-Line
    "escruri": Reject(400, True, "Bad Request-URI: headers not allowed"),  # 3.1.2.11
    "baddate": OK(check=_baddate),  # 3.1.2.12 invalid time zone in Date: liberal
    "regbadct": Reject(400, True, "Bad Contact: URI with , or ? not in <>"),  # 3.1.2.13
    "badaspec": Reject(400, True, "Bad To: spaces inside <>"),  # 3.1.2.14
    "baddn": Reject(400, True, "Bad From: bad display name"),  # 3.1.2.15
    "badvers": Reject(505, True, "Version Not Supported"),  # 3.1.2.16 SIP/7.0
    "mismatch01": Reject(400, True, "Bad CSeq: method mismatch"),  # 3.1.2.17
    # 3.1.2.18: 501 is preferred, 400 acceptable; the parser cannot tell.
    "mismatch02": Reject(400, True, "Bad CSeq: method mismatch"),
    "bigcode": Reject(400, False, "Bad Status-Code"),  # 3.1.2.19 response: dropped
    # 3.2 Transaction layer semantics
    "badbranch": Reject(400, True, "Bad Via: empty branch"),  # 3.2.1 bare magic cookie
    # 3.3 Application layer semantics
    "insuf": Reject(400, True, "Missing From"),  # 3.3.1 missing required fields
    "unkscm": Reject(416, True, "Unsupported URI Scheme"),  # 3.3.2 unknown scheme
    "novelsc": Reject(416, True, "Unsupported URI Scheme"),  # 3.3.3 soap.beep
    "unksm2": OK(check=_unksm2),  # 3.3.4 unknown schemes in header fields
    "bext01": OK(check=_bext01),  # 3.3.5 Require / Proxy-Require (core: 420)
    "invut": OK(check=_invut),  # 3.3.6 unknown Content-Type (core: 415)
    "regaut01": OK(check=_regaut01),  # 3.3.7 unknown authorization scheme
    "multi01": Reject(400, True, "Multiple From"),  # 3.3.8 several single-value fields
    "mcl01": Reject(400, True, "Multiple Content-Length"),  # 3.3.9
    "bcast": OK(Response, _bcast),  # 3.3.10 broadcast Via in a 200
    "zeromf": OK(check=_zeromf),  # 3.3.11 Max-Forwards 0 (core: 483 unless OPTIONS here)
    "cparam01": OK(check=_cparam01),  # 3.3.12 Contact header parameter
    "cparam02": OK(check=_cparam02),  # 3.3.13 Contact URI parameter
    "regescrt": OK(check=_regescrt),  # 3.3.14 escaped header in a Contact URI
    "sdp01": OK(check=_sdp01),  # 3.3.15 unacceptable Accept (core: 415)
    # 3.4 Backward compatibility
    "inv2543": OK(check=_inv2543),  # 3.4.1 RFC 2543 INVITE
}


def test_every_torture_file_has_a_verdict() -> None:
    files = {p.stem for p in TORTURE.glob("*.dat")}
    assert files == set(CASES)


def test_files_match_their_checksums() -> None:
    for line in (TORTURE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((TORTURE / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_torture_message(name: str) -> None:
    data = (TORTURE / f"{name}.dat").read_bytes()
    expected = CASES[name]
    if isinstance(expected, OK):
        msg = parse_message(data)
        assert isinstance(msg, expected.kind)
        again = parse_message(msg.to_bytes())
        if isinstance(msg, Response) and msg.reason == "":
            # Response.reason "" serialises as the default phrase (message.py).
            assert isinstance(again, Response)
            again.reason = ""
        assert again == msg
        if expected.check is not None:
            expected.check(msg)
        return
    with pytest.raises(ParseError) as info:
        parse_message(data)
    err = info.value
    assert (err.status_code, err.respondable, str(err)) == (
        expected.status,
        expected.respondable,
        expected.reason,
    )
    if expected.status == 416:
        assert isinstance(err, BadUriScheme)
    if err.respondable:
        # Enough to answer: a request whose top Via routes the response back.
        assert isinstance(err.partial, Request)
        assert err.partial.top_via.host
    else:
        assert err.partial is None
