"""REFER pieces: Refer-To with Replaces, Replaces matching (RFC 3891 §3), sipfrag."""

from __future__ import annotations

import pytest

from switch.sip.dialog import Dialog, DialogState
from switch.sip.errors import SipError
from switch.sip.message import make_response
from switch.sip.refer import (
    BadReplaces,
    Replaces,
    SipFrag,
    match_replaces,
    names_dialog,
    notify_headers,
    parse_refer_to,
    parse_referred_by,
    parse_replaces,
    parse_sipfrag,
    refer_to,
    replaces_for,
)
from switch.sip.uri import parse_uri
from tests.unit.test_transaction import make_request


def test_replaces_parse_and_str() -> None:
    r = parse_replaces("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only")
    assert r == Replaces("98732@sip.example.com", "ff87ff", "r33th4x0r", True)
    assert parse_replaces(str(r)) == r
    with pytest.raises(BadReplaces, match="to-tag"):
        parse_replaces("abc;from-tag=1")


def test_refer_to_with_escaped_replaces_round_trip() -> None:
    rep = Replaces("c1@h", "tt", "ft")
    value = refer_to(parse_uri("sip:403@pbx.test"), rep)
    assert value == "<sip:403@pbx.test?Replaces=c1%40h%3Bto-tag%3Dtt%3Bfrom-tag%3Dft>"
    parsed = parse_refer_to(value)
    assert parsed.replaces == rep
    assert str(parsed.target()) == "sip:403@pbx.test"
    assert parse_refer_to("<sip:403@pbx.test>").replaces is None


def _dialog(state: DialogState, *, uac: bool) -> Dialog:
    invite = make_request("INVITE", call_id="c1", from_tag="ft")
    if uac:
        d = Dialog.as_uac(
            invite, make_response(invite, 180, to_tag="tt", extra=[("Contact", "<sip:b@h>")])
        )
    else:
        d = Dialog.as_uas(invite, "tt")
    d.state = state
    return d


@pytest.mark.parametrize(
    ("state", "uac", "early_only", "status"),
    [
        (DialogState.CONFIRMED, True, False, 0),
        (DialogState.CONFIRMED, False, False, 0),
        (DialogState.CONFIRMED, False, True, 486),  # early-only on a confirmed dialog
        (DialogState.EARLY, True, False, 0),  # early dialog we initiated
        (DialogState.EARLY, True, True, 0),
        (DialogState.EARLY, False, False, 481),  # early dialog not initiated by us
        (DialogState.TERMINATED, False, False, 481),
    ],
)
def test_match_replaces_table(state: DialogState, uac: bool, early_only: bool, status: int) -> None:
    d = _dialog(state, uac=uac)
    rep = Replaces("c1", d.local_tag, d.remote_tag, early_only)
    result = match_replaces(rep, [d])
    assert result.status == status
    assert result.because


def test_match_replaces_no_dialog() -> None:
    d = _dialog(DialogState.CONFIRMED, uac=True)
    assert match_replaces(Replaces("other", "a", "b"), [d]).status == 481
    # Tags seen the other way round do not match.
    assert match_replaces(Replaces("c1", d.remote_tag, d.local_tag), [d]).status == 481


def test_replaces_for_names_the_dialog_from_the_peer_side() -> None:
    d = _dialog(DialogState.CONFIRMED, uac=True)
    rep = replaces_for(d)
    assert (rep.to_tag, rep.from_tag) == (d.remote_tag, d.local_tag)


def test_referred_by() -> None:
    rb = parse_referred_by('<sip:401@pbx.test>;cid="20398823.2UWQFN309shb3@ref.example"')
    assert str(rb.address.uri) == "sip:401@pbx.test"
    assert rb.cid == '"20398823.2UWQFN309shb3@ref.example"'


@pytest.mark.parametrize(
    ("body", "status", "final"),
    [
        (b"SIP/2.0 100 Trying\r\n", 100, False),
        (b"SIP/2.0 200 OK\r\n", 200, True),
        (b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n", 486, True),
    ],
)
def test_sipfrag_parse(body: bytes, status: int, final: bool) -> None:
    frag = parse_sipfrag(body)
    assert (frag.status, frag.final) == (status, final)


@pytest.mark.parametrize(
    "bad", [b"", b"HTTP/1.1 200 OK", b"SIP/2.0 20 OK", b"INVITE sip:a SIP/2.0"]
)
def test_sipfrag_malformed(bad: bytes) -> None:
    with pytest.raises(SipError, match="Bad sipfrag"):
        parse_sipfrag(bad)


def test_notify_headers_and_body() -> None:
    trying = SipFrag(100, "Trying")
    assert trying.to_bytes() == b"SIP/2.0 100 Trying\r\n"
    assert notify_headers(trying) == [
        ("Event", "refer"),
        ("Subscription-State", "active;expires=60"),
        ("Content-Type", "message/sipfrag;version=2.0"),
    ]
    assert notify_headers(SipFrag(200, "OK"), refer_cseq=7)[:2] == [
        ("Event", "refer;id=7"),
        ("Subscription-State", "terminated;reason=noresource"),
    ]


def test_names_dialog_in_the_rfc_orientation_and_either_way() -> None:
    """RFC 3891 §3: to-tag = our local tag; ``either_way`` also accepts the far
    phone's view (BLF dialog-info), never another Call-ID or another tag."""
    dialog = _dialog(DialogState.EARLY, uac=True)  # local ft, remote tt
    ours = Replaces("c1", dialog.local_tag, dialog.remote_tag)
    theirs = Replaces("c1", dialog.remote_tag, dialog.local_tag)
    assert names_dialog(ours, dialog)
    assert not names_dialog(theirs, dialog)
    assert names_dialog(theirs, dialog, either_way=True)
    for wrong in (
        Replaces("c2", dialog.local_tag, dialog.remote_tag),
        Replaces("c1", dialog.local_tag, "other"),
        Replaces("c1", dialog.local_tag, dialog.local_tag),
    ):
        assert not names_dialog(wrong, dialog, either_way=True)
    assert match_replaces(theirs, [dialog]).status == 481
    assert match_replaces(theirs, [dialog], either_way=True).status == 0
