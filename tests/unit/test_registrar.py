"""The registrar (RFC 3261 §10.3, RFC 3327, RFC 5626) step by step, with a fake clock.

Every test drives ``Registrar.process`` the way the shell will: look the AOR up
in a store, process, apply the outcome's changes, send the response. Time is
wall-clock epoch seconds, moved by assignment.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.location import MemoryLocationStore
from switch.registrar import (
    Binding,
    RegisterOutcome,
    Registrar,
    RegistrarConfigError,
    address_of_record,
    contact_key,
    format_q,
    live_bindings,
)
from switch.sip.endpoint import Endpoint
from switch.sip.errors import ParseError
from switch.sip.headers import parse_name_addr
from switch.sip.message import Request
from switch.sip.parser import parse_message

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
AOR = "sip:401@pbx.test"
PHONE = Endpoint("UDP", "192.0.2.10", 5062)
PHONE_TCP = Endpoint("TCP", "192.0.2.10", 40312, conn_id=7)
_branch = itertools.count(1)


def register(
    *contacts: str,
    expires: str | None = None,
    call_id: str = "reg-1@192.0.2.10",
    cseq: int = 1,
    extra: tuple[str, ...] = (),
    vias: int = 1,
    to: str = "<sip:401@pbx.test>",
) -> Request:
    """A REGISTER as a phone sends it, parsed from bytes."""
    lines = ["REGISTER sip:pbx.test SIP/2.0"]
    lines += [
        f"Via: SIP/2.0/UDP 192.0.2.{10 + i}:5062;branch=z9hG4bK-r{next(_branch)};rport"
        for i in range(vias)
    ]
    lines += [
        "Max-Forwards: 70",
        f"To: {to}",
        "From: <sip:401@pbx.test>;tag=f401",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "User-Agent: PolycomVVX-VVX_400-UA/6.4.3",
    ]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines += list(extra)
    lines += ["Content-Length: 0", "", ""]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


@dataclass
class World:
    """A registrar, a store and a clock: the shell without sockets."""

    registrar: Registrar = field(
        default_factory=lambda: Registrar(
            min_expires=60, max_expires=3600, default_expires=1800, max_contacts_per_aor=3
        )
    )
    store: MemoryLocationStore = field(default_factory=MemoryLocationStore)
    now: float = T0

    def send(
        self, request: Request, *, source: Endpoint = PHONE, aor: str = AOR
    ) -> RegisterOutcome:
        outcome = self.registrar.process(
            request,
            aor=aor,
            current=self.store.lookup(aor),
            source=source,
            at=self.now,
            to_tag="reg-tag",
        )
        if outcome.response.status == 200:
            self.store.apply(outcome.upserts, outcome.removals)
        else:
            assert not outcome.changed, "a failed REGISTER changes nothing"
        return outcome

    def contacts(self, aor: str = AOR) -> set[str]:
        return {b.contact for b in live_bindings(self.store.lookup(aor), self.now)}


def listed(outcome: RegisterOutcome) -> dict[str, dict[str, str | None]]:
    """The Contact values of a response: URI → header parameters."""
    out: dict[str, dict[str, str | None]] = {}
    for value in outcome.response.headers.get_all("Contact"):
        na = parse_name_addr(value)
        out[str(na.uri)] = na.params
    return out


def expires_of(outcome: RegisterOutcome) -> dict[str, int]:
    return {uri: int(params["expires"] or -1) for uri, params in listed(outcome).items()}


@pytest.fixture
def world() -> World:
    return World()


# -- step 2: Require -------------------------------------------------------------------


def test_unknown_require_is_420_with_unsupported(world: World) -> None:
    # §8.2.2.3: "If a UAS does not understand an option-tag listed in a Require
    # header field, it MUST respond by generating a response with status code
    # 420 (Bad Extension). The UAS MUST add an Unsupported header field".
    outcome = world.send(register("<sip:401@192.0.2.10:5062>", extra=("Require: path, foo",)))
    assert outcome.response.status == 420
    assert outcome.response.headers.get("Unsupported") == "foo"
    assert world.contacts() == set()


def test_known_require_is_accepted(world: World) -> None:
    outcome = world.send(
        register("<sip:401@192.0.2.10:5062>", extra=("Require: outbound", "Require: path"))
    )
    assert outcome.response.status == 200


# -- step 5: the address-of-record -----------------------------------------------------


@pytest.mark.parametrize(
    ("to", "aor"),
    [
        ("<sip:401@pbx.test>", "sip:401@pbx.test"),
        ('"Line 401" <sip:401@PBX.Test;user=phone>;tag=x', "sip:401@pbx.test"),
        ("<sips:401@pbx.test>", "sip:401@pbx.test"),
        ("<sip:%34%30%31@pbx.test>", "sip:401@pbx.test"),
        ("sip:401@pbx.test:5070", "sip:401@pbx.test:5070"),
    ],
)
def test_address_of_record_canonical_form(to: str, aor: str) -> None:
    # §10.3 step 5: "all URI parameters MUST be removed (including the
    # user-parameter), and any escaped characters MUST be converted to their
    # unescaped form."
    assert address_of_record(to) == aor


def test_address_of_record_must_be_sip() -> None:
    # §10.2: "This address-of-record MUST be a SIP URI or SIPS URI."
    with pytest.raises(ParseError):
        address_of_record("<tel:+33123456789>")


# -- step 6: Contact: * ----------------------------------------------------------------


def test_star_with_expires_zero_removes_every_binding(world: World) -> None:
    world.send(register("<sip:401@192.0.2.10:5062>", call_id="a", cseq=1))
    world.send(register("<sip:401@192.0.2.20:5062>", call_id="b", cseq=1))
    assert len(world.contacts()) == 2
    outcome = world.send(register("*", expires="0", call_id="c", cseq=1))
    assert outcome.response.status == 200
    assert outcome.response.headers.get_all("Contact") == []
    assert world.contacts() == set()


@pytest.mark.parametrize(
    ("contacts", "expires"),
    [
        (("*",), None),  # no Expires: the default expiry is not zero
        (("*",), "3600"),
        (("*", "<sip:401@192.0.2.10:5062>"), "0"),
    ],
)
def test_star_needs_expires_zero_and_nothing_else(
    world: World, contacts: tuple[str, ...], expires: str | None
) -> None:
    # §10.3 step 6: "If the request has additional Contact fields or an
    # expiration time other than zero, the request is invalid, and the server
    # MUST return a 400 (Invalid Request) and skip the remaining steps."
    world.send(register("<sip:401@192.0.2.10:5062>", call_id="a"))
    outcome = world.send(register(*contacts, expires=expires, call_id="b"))
    assert outcome.response.status == 400
    assert world.contacts() == {"sip:401@192.0.2.10:5062"}


@pytest.mark.parametrize("cseq", [1, 2])
def test_star_same_call_id_not_higher_cseq_fails(world: World, cseq: int) -> None:
    # §10.3 step 6: "If it does agree, it MUST remove the binding only if the
    # CSeq in the request is higher than the value stored for that binding.
    # Otherwise, the update MUST be aborted and the request fails."
    world.send(register("<sip:401@192.0.2.10:5062>", call_id="a", cseq=2))
    world.send(register("<sip:401@192.0.2.20:5062>", call_id="b", cseq=9))
    outcome = world.send(register("*", expires="0", call_id="a", cseq=cseq))
    assert outcome.response.status == 500
    assert len(world.contacts()) == 2  # nothing removed, not even the other Call-ID's


def test_star_same_call_id_higher_cseq_removes(world: World) -> None:
    world.send(register("<sip:401@192.0.2.10:5062>", call_id="a", cseq=2))
    outcome = world.send(register("*", expires="0", call_id="a", cseq=3))
    assert outcome.response.status == 200
    assert world.contacts() == set()


# -- step 7: expiration ----------------------------------------------------------------


def test_contact_parameter_wins_over_expires_header(world: World) -> None:
    # §10.3 step 7: "If the field value has an "expires" parameter, that value
    # MUST be taken as the requested expiration."
    outcome = world.send(register("<sip:401@192.0.2.10:5062>;expires=120", expires="600"))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 120}
    (binding,) = world.store.lookup(AOR)
    assert binding.expires_at == T0 + 120


def test_expires_header_when_no_parameter(world: World) -> None:
    # "If there is no such parameter, but the request has an Expires header
    # field, that value MUST be used as the requested expiration."
    outcome = world.send(register("<sip:401@192.0.2.10:5062>", expires="600"))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 600}


def test_default_expiry_when_neither(world: World) -> None:
    # "If there is neither, the registrar SHOULD use a locally-configured
    # default value as the requested expiration."
    outcome = world.send(register("<sip:401@192.0.2.10:5062>"))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 1800}


def test_long_expiry_is_shortened_to_the_maximum(world: World) -> None:
    # "The registrar MAY choose an expiration less than the requested
    # expiration interval."
    outcome = world.send(register("<sip:401@192.0.2.10:5062>;expires=86400"))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 3600}
    huge = world.send(register("<sip:401@192.0.2.10:5062>;expires=99999999999999", cseq=2))
    assert expires_of(huge) == {"sip:401@192.0.2.10:5062": 3600}


@pytest.mark.parametrize("value", ["soon", "-5", "1.5"])
def test_malformed_expiry_counts_as_3600(world: World, value: str) -> None:
    # §20.19: "Malformed values SHOULD be treated as equivalent to 3600."
    world.registrar = Registrar(max_expires=7200)
    outcome = world.send(register("<sip:401@192.0.2.10:5062>", expires=value))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 3600}


@pytest.mark.parametrize("requested", [1, 30, 59])
def test_too_brief_is_423_with_min_expires(world: World, requested: int) -> None:
    # "If and only if the requested expiration interval is greater than zero
    # AND smaller than one hour AND less than a registrar-configured minimum,
    # the registrar MAY reject the registration with a response of 423
    # (Interval Too Brief). This response MUST contain a Min-Expires header
    # field that states the minimum expiration interval the registrar is
    # willing to honor."
    outcome = world.send(register(f"<sip:401@192.0.2.10:5062>;expires={requested}"))
    assert outcome.response.status == 423
    assert outcome.response.headers.get("Min-Expires") == "60"
    assert world.contacts() == set()


def test_exactly_the_minimum_is_accepted(world: World) -> None:
    outcome = world.send(register("<sip:401@192.0.2.10:5062>;expires=60"))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 60}


def test_one_brief_contact_fails_the_whole_request(world: World) -> None:
    # §10.3: "The binding updates MUST be committed ... if and only if all
    # binding updates and additions succeed."
    outcome = world.send(
        register("<sip:401@192.0.2.10:5062>;expires=600", "<sip:401@192.0.2.20:5062>;expires=5")
    )
    assert outcome.response.status == 423
    assert world.contacts() == set()


# -- step 7: bindings ------------------------------------------------------------------


def test_new_binding_is_added_with_what_the_shell_needs(world: World) -> None:
    outcome = world.send(register("<sip:401@192.0.2.10:40312;transport=tcp>"), source=PHONE_TCP)
    assert outcome.response.status == 200
    (binding,) = outcome.upserts
    assert binding == Binding(
        aor=AOR,
        contact="sip:401@192.0.2.10:40312;transport=tcp",
        expires_at=T0 + 1800,
        call_id="reg-1@192.0.2.10",
        cseq=1,
        source=PHONE_TCP,
        received_at=T0,
        user_agent="PolycomVVX-VVX_400-UA/6.4.3",
    )
    assert world.store.lookup(AOR) == [binding]


def test_several_contacts_per_aor(world: World) -> None:
    world.send(register("<sip:401@192.0.2.10:5062>", call_id="desk"))
    outcome = world.send(register("<sip:401@198.51.100.7:5060>", call_id="soft"))
    assert set(listed(outcome)) == {"sip:401@192.0.2.10:5062", "sip:401@198.51.100.7:5060"}
    world.send(register("*", expires="0", call_id="clear"))
    both = world.send(
        register("<sip:401@192.0.2.30:5062>", "<sip:401@192.0.2.31:5062>", call_id="two")
    )
    assert set(listed(both)) == {"sip:401@192.0.2.30:5062", "sip:401@192.0.2.31:5062"}


def test_refresh_updates_the_binding_in_place(world: World) -> None:
    world.send(register("<sip:401@192.0.2.10:5062>", expires="600", cseq=1))
    world.now = T0 + 500
    outcome = world.send(register("<sip:401@192.0.2.10:5062>", expires="600", cseq=2))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 600}
    (binding,) = world.store.lookup(AOR)
    assert (binding.cseq, binding.expires_at, binding.received_at) == (2, T0 + 1100, T0 + 500)


@pytest.mark.parametrize("cseq", [4, 5])
def test_same_call_id_not_higher_cseq_fails(world: World, cseq: int) -> None:
    # §10.3 step 7: "If they are the same, the registrar compares the CSeq
    # value. If the value is higher than that of the existing binding, it MUST
    # update or remove the binding as above. If not, the update MUST be aborted
    # and the request fails."
    world.send(register("<sip:401@192.0.2.10:5062>", expires="600", cseq=5))
    before = world.store.lookup(AOR)
    outcome = world.send(
        register(
            "<sip:401@192.0.2.10:5062>",
            "<sip:401@192.0.2.99:5062>",  # a new contact is not added either
            expires="0" if cseq == 4 else "900",
            cseq=cseq,
        )
    )
    assert outcome.response.status == 500
    assert outcome.because == "Out of Order CSeq"
    assert world.store.lookup(AOR) == before


def test_other_call_id_updates_whatever_its_cseq(world: World) -> None:
    # "If the Call-ID value in the existing binding differs from the Call-ID
    # value in the request, the binding MUST be removed if the expiration time
    # is zero and updated otherwise." (A phone that rebooted.)
    world.send(register("<sip:401@192.0.2.10:5062>", call_id="before-reboot", cseq=900))
    outcome = world.send(
        register("<sip:401@192.0.2.10:5062>", expires="300", call_id="after", cseq=1)
    )
    assert outcome.response.status == 200
    (binding,) = world.store.lookup(AOR)
    assert (binding.call_id, binding.cseq) == ("after", 1)


def test_other_call_id_with_zero_removes(world: World) -> None:
    world.send(register("<sip:401@192.0.2.10:5062>", call_id="a", cseq=9))
    world.send(register("<sip:401@192.0.2.20:5062>", call_id="b", cseq=1))
    outcome = world.send(register("<sip:401@192.0.2.10:5062>", expires="0", call_id="c"))
    assert set(listed(outcome)) == {"sip:401@192.0.2.20:5062"}
    assert [b.contact for b in outcome.removals] == ["sip:401@192.0.2.10:5062"]


def test_zero_for_an_unknown_contact_changes_nothing(world: World) -> None:
    outcome = world.send(register("<sip:401@192.0.2.10:5062>;expires=0"))
    assert outcome.response.status == 200
    assert not outcome.changed


def test_contact_comparison_follows_uri_rules(world: World) -> None:
    # §19.1.4: scheme, host and parameters compare case-insensitively; a port
    # written out is not the same URI as no port.
    world.send(register("<sip:401@Phone.Example;Transport=TCP>", cseq=1))
    same = world.send(register("<sip:401@phone.example;transport=tcp>", cseq=2))
    assert len(listed(same)) == 1
    other = world.send(register("<sip:401@phone.example:5060;transport=tcp>", cseq=3))
    assert len(listed(other)) == 2
    user_case = world.send(register("<sip:ABC@phone.example;transport=tcp>", cseq=4))
    assert len(listed(user_case)) == 3  # the user part is case-sensitive


def test_contact_key_is_an_equivalence_on_spelling() -> None:
    assert contact_key("sip:%34%30%31@H.example") == contact_key("sip:401@h.example")
    assert contact_key("sip:401@h;ob") != contact_key("sip:401@h")
    assert contact_key("mailto:a@b") != contact_key("mailto:A@b")


def test_a_contact_listed_twice_the_last_wins(world: World) -> None:
    outcome = world.send(
        register("<sip:401@192.0.2.10:5062>;expires=0", "<sip:401@192.0.2.10:5062>;expires=300")
    )
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 300}


def test_q_is_kept_and_listed(world: World) -> None:
    outcome = world.send(register("<sip:401@192.0.2.10:5062>;q=0.7"))
    assert listed(outcome)["sip:401@192.0.2.10:5062"]["q"] == "0.7"
    assert world.store.lookup(AOR)[0].q == 0.7
    assert [format_q(q) for q in (1.0, 0.5, 0.125, 0.0)] == ["1", "0.5", "0.125", "0"]


@pytest.mark.parametrize(
    "contact", ["<sip:401@192.0.2.10>;q=2", "<sip:401@192.0.2.10>;q", "<sip:401@192.0.2.10"]
)
def test_malformed_contact_is_400(world: World, contact: str) -> None:
    request = register()
    request.headers.add("Contact", contact)  # past the parser, as a built request could be
    outcome = world.send(request)
    assert outcome.response.status == 400


def test_too_many_contacts_is_403(world: World) -> None:
    for i in range(3):
        world.send(register(f"<sip:401@192.0.2.{i}:5062>", call_id=f"c{i}"))
    outcome = world.send(register("<sip:401@192.0.2.99:5062>", call_id="c99"))
    assert (outcome.response.status, outcome.response.reason) == (403, "Too Many Contacts")
    assert len(world.contacts()) == 3


def test_at_the_limit_refresh_and_swap_succeed(world: World) -> None:
    for i in range(3):
        world.send(register(f"<sip:401@192.0.2.{i}:5062>", call_id=f"c{i}"))
    refresh = world.send(register("<sip:401@192.0.2.0:5062>", call_id="c0", cseq=2))
    assert refresh.response.status == 200
    swap = world.send(
        register("<sip:401@192.0.2.1:5062>;expires=0", "<sip:401@192.0.2.50:5062>", call_id="x")
    )
    assert swap.response.status == 200
    assert len(world.contacts()) == 3


def test_lowered_limit_still_lets_refreshes_through(world: World) -> None:
    for i in range(3):
        world.send(register(f"<sip:401@192.0.2.{i}:5062>", call_id=f"c{i}"))
    world.registrar = Registrar(max_contacts_per_aor=1)
    refresh = world.send(register("<sip:401@192.0.2.0:5062>", call_id="c0", cseq=2))
    assert refresh.response.status == 200


def test_expired_bindings_do_not_exist(world: World) -> None:
    world.send(register("<sip:401@192.0.2.10:5062>", expires="60", call_id="old", cseq=7))
    world.send(register("<sip:401@192.0.2.20:5062>", expires="600", call_id="keep"))
    world.now = T0 + 60  # the first one expires now
    # The same Call-ID and CSeq: an expired binding is not compared with.
    outcome = world.send(register("<sip:401@192.0.2.10:5062>", call_id="old", cseq=7))
    assert outcome.response.status == 200
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 1800, "sip:401@192.0.2.20:5062": 540}
    assert outcome.removals == ()  # re-registered: an upsert, not a removal


def test_expired_bindings_are_purged_by_any_successful_register(world: World) -> None:
    world.send(register("<sip:401@192.0.2.10:5062>", expires="60", call_id="old"))
    world.now = T0 + 61
    outcome = world.send(register())  # a query
    assert listed(outcome) == {}
    assert [b.contact for b in outcome.removals] == ["sip:401@192.0.2.10:5062"]
    assert world.store.lookup(AOR) == []


def test_expired_bindings_do_not_count_against_the_limit(world: World) -> None:
    for i in range(3):
        world.send(register(f"<sip:401@192.0.2.{i}:5062>", expires="60", call_id=f"c{i}"))
    world.now = T0 + 100
    outcome = world.send(register("<sip:401@192.0.2.99:5062>", call_id="new"))
    assert outcome.response.status == 200
    assert len(outcome.removals) == 3


# -- step 8: the 200 -------------------------------------------------------------------


def test_200_lists_every_current_binding_with_its_remaining_expiry(world: World) -> None:
    # §10.3 step 8: "The response MUST contain Contact header field values
    # enumerating all current bindings. Each Contact value MUST feature an
    # "expires" parameter indicating its expiration interval chosen by the
    # registrar. The response SHOULD include a Date header field."
    world.send(register("<sip:401@192.0.2.10:5062>", expires="600", call_id="a"))
    world.now = T0 + 200
    outcome = world.send(register("<sip:401@192.0.2.20:5062>", expires="900", call_id="b"))
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 400, "sip:401@192.0.2.20:5062": 900}
    assert outcome.response.headers.get("Date") == "Thu, 01 Jan 2026 00:03:20 GMT"
    assert outcome.response.headers.get("Supported") == "path, outbound"
    assert outcome.response.to_tag == "reg-tag"
    assert outcome.bindings == tuple(world.store.lookup(AOR))


def test_query_without_contact_lists_and_changes_nothing(world: World) -> None:
    # §10.2.3: "A success response to a query MUST contain Contact header
    # fields enumerating all current bindings."
    world.send(register("<sip:401@192.0.2.10:5062>", expires="600"))
    world.now = T0 + 10
    outcome = world.send(register(cseq=2))
    assert outcome.response.status == 200
    assert expires_of(outcome) == {"sip:401@192.0.2.10:5062": 590}
    assert not outcome.changed


def test_process_refuses_other_methods(world: World) -> None:
    request = register("<sip:401@192.0.2.10:5062>")
    request.method = "OPTIONS"
    with pytest.raises(ValueError, match="not a REGISTER"):
        world.send(request)


# -- RFC 3327: Path --------------------------------------------------------------------

PATH = "Path: <sip:edge.pbx.test;lr>"


def test_path_is_stored_and_echoed_when_supported(world: World) -> None:
    outcome = world.send(
        register("<sip:401@192.0.2.10:5062>", vias=2, extra=(PATH, "Supported: path"))
    )
    assert outcome.response.headers.get_all("Path") == ["<sip:edge.pbx.test;lr>"]
    assert world.store.lookup(AOR)[0].path == ("<sip:edge.pbx.test;lr>",)


def test_path_is_stored_but_not_echoed_without_supported(world: World) -> None:
    outcome = world.send(register("<sip:401@192.0.2.10:5062>", vias=2, extra=(PATH,)))
    assert outcome.response.headers.get_all("Path") == []
    assert world.store.lookup(AOR)[0].path == ("<sip:edge.pbx.test;lr>",)


# -- RFC 5626: outbound ----------------------------------------------------------------

INSTANCE = "urn:uuid:00000000-0000-1000-8000-0004f2abcdef"
OB = ("Supported: path, outbound",)


def flow(host: str, reg_id: int = 1, expires: int | None = None) -> str:
    exp = f";expires={expires}" if expires is not None else ""
    return f'<sip:401@{host};transport=tcp;ob>;+sip.instance="<{INSTANCE}>";reg-id={reg_id}{exp}'


def test_outbound_binding_is_keyed_by_instance_and_reg_id(world: World) -> None:
    # RFC 5626 §6: "the corresponding binding is between an AOR and the
    # combination of the instance-id (from the "+sip.instance" Contact header
    # parameter) and the value of "reg-id" Contact header field parameter."
    first = world.send(register(flow("192.0.2.10:40312"), extra=OB, cseq=1), source=PHONE_TCP)
    assert first.response.headers.get("Require") == "outbound"
    params = listed(first)["sip:401@192.0.2.10:40312;transport=tcp;ob"]
    assert (params["+sip.instance"], params["reg-id"]) == (f'"<{INSTANCE}>"', "1")
    # The phone moved (new address, new connection): the new flow replaces the old.
    moved = Endpoint("TCP", "203.0.113.5", 51000, conn_id=8)
    second = world.send(register(flow("203.0.113.5:51000"), extra=OB, cseq=2), source=moved)
    assert set(listed(second)) == {"sip:401@203.0.113.5:51000;transport=tcp;ob"}
    (binding,) = world.store.lookup(AOR)
    assert (binding.instance_id, binding.reg_id, binding.source) == (INSTANCE, 1, moved)
    # A second flow (reg-id 2) of the same instance is a second binding.
    third = world.send(register(flow("203.0.113.5:51002", reg_id=2), extra=OB, cseq=3))
    assert len(listed(third)) == 2


def test_reg_id_without_supported_outbound_is_ignored(world: World) -> None:
    outcome = world.send(register(flow("192.0.2.10:40312")))
    assert outcome.response.headers.get("Require") is None
    (binding,) = world.store.lookup(AOR)
    assert (binding.instance_id, binding.reg_id) == (INSTANCE, None)


def test_reg_id_without_instance_is_ignored(world: World) -> None:
    # RFC 5626 §6: "If the registrar processes a Contact header field value
    # with a reg-id but no instance-id, it simply ignores the reg-id parameter."
    outcome = world.send(register("<sip:401@192.0.2.10:5062>;reg-id=1", extra=OB))
    assert outcome.response.headers.get("Require") is None
    assert world.store.lookup(AOR)[0].reg_id is None


def test_instance_without_reg_id_is_keyed_by_contact(world: World) -> None:
    world.send(register(f'<sip:401@192.0.2.10:5062>;+sip.instance="<{INSTANCE}>"', cseq=1))
    outcome = world.send(
        register(f'<sip:401@192.0.2.11:5062>;+sip.instance="<{INSTANCE}>"', cseq=2)
    )
    assert len(listed(outcome)) == 2
    assert {b.instance_id for b in world.store.lookup(AOR)} == {INSTANCE}


def test_several_nonzero_contacts_with_reg_id_is_400(world: World) -> None:
    # RFC 5626 §6: "if the Contact header field contains more than one header
    # field value with a non-zero expiration and any of these header field
    # values contain a "reg-id" Contact header field parameter, the entire
    # registration SHOULD be rejected with a 400 (Bad Request) response."
    outcome = world.send(register(flow("192.0.2.10:1"), "<sip:401@192.0.2.10:2>", extra=OB))
    assert outcome.response.status == 400
    # Removing others in the same request is allowed.
    ok = world.send(register(flow("192.0.2.10:1"), "<sip:401@192.0.2.10:2>;expires=0", extra=OB))
    assert ok.response.status == 200


def test_not_first_hop_without_ob_in_path_is_439(world: World) -> None:
    # RFC 5626 §6: "if the REGISTER request contains the reg-id and the
    # outbound option tag in a Supported header field, then the registrar MUST
    # respond to the REGISTER request with a 439 (First Hop Lacks Outbound
    # Support) response".
    outcome = world.send(register(flow("192.0.2.10:1"), vias=2, extra=(*OB, PATH)))
    assert (outcome.response.status, outcome.response.reason) == (
        439,
        "First Hop Lacks Outbound Support",
    )
    ob_path = "Path: <sip:edge.pbx.test;lr;ob>"
    ok = world.send(register(flow("192.0.2.10:1"), vias=2, extra=(*OB, ob_path)))
    assert ok.response.status == 200
    assert ok.response.headers.get_all("Path") == ["<sip:edge.pbx.test;lr;ob>"]


def test_bad_reg_id_is_400(world: World) -> None:
    outcome = world.send(register(flow("192.0.2.10:1", reg_id=0), extra=OB))
    assert outcome.response.status == 400


# -- expiry of a binding ---------------------------------------------------------------


def _binding(contact: str, expires_at: float) -> Binding:
    return Binding(
        aor=AOR,
        contact=contact,
        expires_at=expires_at,
        call_id="c",
        cseq=1,
        source=PHONE,
        received_at=T0,
    )


def test_a_binding_expires_exactly_at_expires_at() -> None:
    a, b = _binding("sip:a@h", T0 + 10), _binding("sip:b@h", T0 + 20)
    assert not a.expired(T0 + 9.9)
    assert a.expired(T0 + 10)  # due exactly at expires_at
    assert live_bindings([a, b], T0 + 9.9) == [a, b]
    assert live_bindings([a, b], T0 + 10) == [b]
    assert (a.expires_in(T0), a.expires_in(T0 + 9.8), a.expires_in(T0 + 10)) == (10, 1, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_expires": 0},
        {"min_expires": 7200, "max_expires": 7200, "default_expires": 7200},
        {"min_expires": 600, "default_expires": 300},
        {"default_expires": 7200, "max_expires": 3600},
        {"max_contacts_per_aor": 0},
    ],
)
def test_contradictory_limits_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(RegistrarConfigError):
        Registrar(**kwargs)


def test_registrar_module_is_pure() -> None:
    """No clock, socket or asyncio in the registrar (STYLE.md habit 1)."""
    from tests.unit.test_layering import IO_MODULES, _imports

    path = Path(__file__).resolve().parents[2] / "switch" / "registrar.py"
    found = {module.split(".")[0] for _, module in _imports(path)}
    assert found & (IO_MODULES | {"sqlite3", "switch.location"}) == set()


# -- Hypothesis: invariants over sequences of REGISTERs --------------------------------

CONTACT_POOL = [f"sip:401@192.0.2.{i}:5062" for i in range(5)]
EXPIRES = st.sampled_from([None, "0", "1", "59", "60", "61", "600", "3600", "7200", "junk"])


@st.composite
def a_register(draw: st.DrawFn) -> tuple[Request, float, Endpoint]:
    kind = draw(st.sampled_from(["contacts", "contacts", "contacts", "star", "query"]))
    call_id = draw(st.sampled_from(["a", "b", "c"]))
    cseq = draw(st.integers(min_value=1, max_value=6))
    advance = draw(st.sampled_from([0.0, 0.5, 30.0, 61.0, 700.0, 4000.0]))
    source = draw(st.sampled_from([PHONE, PHONE_TCP]))
    header = draw(EXPIRES)
    if kind == "star":
        request = register("*", expires=draw(st.sampled_from(["0", "0", "60"])), call_id=call_id)
    elif kind == "query":
        request = register(call_id=call_id, cseq=cseq)
    else:
        contacts = []
        for uri in draw(st.lists(st.sampled_from(CONTACT_POOL), min_size=1, max_size=3)):
            param = draw(EXPIRES)
            contacts.append(f"<{uri}>" + (f";expires={param}" if param is not None else ""))
        request = register(*contacts, expires=header, call_id=call_id, cseq=cseq)
    return request, advance, source


@settings(max_examples=300, deadline=None)
@given(st.lists(a_register(), min_size=1, max_size=12))
def test_invariants_over_register_sequences(steps: list[tuple[Request, float, Endpoint]]) -> None:
    world = World()
    reg = world.registrar
    for request, advance, source in steps:
        world.now += advance
        before = {b.key: b for b in live_bindings(world.store.lookup(AOR), world.now)}
        outcome = world.send(request, source=source)
        after = {b.key: b for b in live_bindings(world.store.lookup(AOR), world.now)}
        status = outcome.response.status
        assert status in (200, 400, 403, 423, 500)
        if status != 200:
            assert after == before
            continue
        # Never a binding shorter than the minimum or longer than the maximum.
        for binding in outcome.upserts:
            granted = binding.expires_at - world.now
            assert reg.min_expires <= granted <= reg.max_expires
            assert binding.received_at == world.now
        # The 200 lists exactly the bindings after the change, with their expiry.
        assert expires_of(outcome) == {b.contact: b.expires_in(world.now) for b in after.values()}
        assert {b.key for b in outcome.bindings} == set(after)
        # Nothing beyond the limit unless it was already there.
        assert len(after) <= max(reg.max_contacts_per_aor, len(before))
        # Expired bindings never survive a successful REGISTER.
        assert all(not b.expired(world.now) for b in world.store.lookup(AOR))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CONTACT_POOL),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=1, max_value=100),
)
def test_cseq_rule_is_a_total_order_per_call_id(
    contact: str, expires: int, first: int, second: int
) -> None:
    world = World()
    world.send(register(f"<{contact}>;expires=600", cseq=first))
    outcome = world.send(register(f"<{contact}>;expires={expires}", cseq=second))
    # §10.3 step 7 checks the requested interval before it looks for the binding.
    if 0 < expires < 60:
        assert outcome.response.status == 423
    elif second <= first:
        assert outcome.response.status == 500
    else:
        assert outcome.response.status == 200
        assert world.contacts() == (set() if expires == 0 else {contact})


def test_response_reason_phrases_are_plain() -> None:
    """Reasons fit a status line: no CR/LF, printable ASCII."""
    world = World()
    outcomes = [
        world.send(register("<sip:401@192.0.2.10>;q=2")),
        world.send(register("<sip:401@192.0.2.10>;expires=5")),
        world.send(register("*")),
    ]
    for outcome in outcomes:
        assert re.fullmatch(r"[ -~]+", outcome.response.reason)
