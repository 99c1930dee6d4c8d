"""dialog-info+xml documents (RFC 4235): what the switch writes, read back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from switch.sip.dialog_info import (
    DialogInfoError,
    DialogState,
    DialogView,
    Direction,
    Participant,
    document,
    fitted,
    idle_document,
    parse,
    with_version,
)

ENTITY = "sip:402@pbx.test"


def ringing() -> DialogView:
    return DialogView(
        id="d1",
        state=DialogState.EARLY,
        call_id="abc@pbx.test",
        local_tag="phone402",
        remote_tag="switch",
        direction=Direction.RECIPIENT,
        local=Participant("sip:402@pbx.test", target="sip:402@127.0.0.1:5062"),
        remote=Participant("sip:401@pbx.test", display='Accueil "A" <&>'),
    )


def test_a_full_document_round_trips_every_attribute() -> None:
    body = document(ENTITY, 7, [ringing()])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    info = parse(body)
    assert (info.version, info.state, info.entity) == (7, "full", ENTITY)
    assert info.dialogs == (ringing(),)


def test_the_namespace_and_element_order_are_rfc_4235s() -> None:
    text = document(ENTITY, 0, [ringing()]).decode()
    assert 'xmlns="urn:ietf:params:xml:ns:dialog-info"' in text
    # <state> comes before <local>, <local> before <remote> (the schema's sequence).
    assert text.index("<state>") < text.index("<local>") < text.index("<remote>")
    assert 'direction="recipient"' in text
    assert 'call-id="abc@pbx.test" local-tag="phone402" remote-tag="switch"' in text


def test_idle_line_gets_one_terminated_dummy_dialog() -> None:
    info = parse(idle_document(ENTITY, 0))
    assert info.state == "full"
    (dummy,) = info.dialogs
    assert dummy.state is DialogState.TERMINATED
    assert dummy.call_id is None
    assert dummy.id == "idle-402"
    # An empty full list is written the same way: 67i phones need a <dialog>.
    assert parse(document(ENTITY, 3, [])).dialogs == (dummy,)


def test_a_partial_document_may_be_empty() -> None:
    info = parse(document(ENTITY, 2, [], state="partial"))
    assert (info.state, info.dialogs) == ("partial", ())


def test_terminated_dialog_carries_event_and_code() -> None:
    view = DialogView("d2", DialogState.TERMINATED, call_id="x", event="rejected", code=486)
    text = document(ENTITY, 1, [view]).decode()
    assert '<state event="rejected" code="486">terminated</state>' in text
    assert parse(text.encode()).dialogs == (view,)


@pytest.mark.parametrize(
    ("state", "version"), [("everything", 0), ("full", -1)], ids=["bad-state", "negative"]
)
def test_bad_arguments_are_refused(state: str, version: int) -> None:
    with pytest.raises(ValueError, match=r"state|version"):
        document(ENTITY, version, [], state=state)


@pytest.mark.parametrize(
    "body",
    [
        b"<dialog-info",
        b'<other xmlns="urn:ietf:params:xml:ns:dialog-info"/>',
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" state="full" entity="e"/>',
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"'
        b' entity="e"><dialog id="1"><state>ringing</state></dialog></dialog-info>',
    ],
    ids=["not-xml", "wrong-root", "no-version", "unknown-state"],
)
def test_parse_refuses_what_is_not_dialog_info(body: bytes) -> None:
    with pytest.raises(DialogInfoError):
        parse(body)


def test_fitted_drops_older_terminated_dialogs_then_participants_to_stay_under_the_limit() -> None:
    live = [replace(ringing(), id=f"d{i}", call_id=f"c{i}") for i in range(3)]
    ended = [
        replace(ringing(), id=name, call_id=name, state=DialogState.TERMINATED)
        for name in ("older", "newer")
    ]
    whole = document(ENTITY, 1, ended + live)
    assert fitted(ENTITY, 1, ended + live, len(whole)) == whole
    one_less = fitted(ENTITY, 1, ended + live, len(whole) - 1)
    assert [d.id for d in parse(one_less).dialogs] == ["newer", "d0", "d1", "d2"]
    bare = parse(fitted(ENTITY, 1, ended + live, 100)).dialogs
    assert [(d.call_id, d.local_tag, d.remote_tag, d.state) for d in bare] == [
        (f"c{i}", "phone402", "switch", DialogState.EARLY) for i in range(3)
    ]
    assert all(d.local is None and d.remote is None for d in bare)


def test_with_version_stamps_a_version_0_document() -> None:
    body = document(ENTITY, 0, [ringing()])
    assert with_version(body, 41) == document(ENTITY, 41, [ringing()])
