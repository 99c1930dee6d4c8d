"""The four transaction machines alone (RFC 3261 §17, RFC 6026), in simulated time.

Each test drives one machine with ``fire`` and reads its outputs; ``advance``
fires its due timers in deadline order, as the layer's heap would. The builders
at the top (requests, responses, layers) are shared with the other
``test_transaction_*`` files and ``sip_legs``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from switch.sip.events import Event
from switch.sip.headers import CSeq
from switch.sip.message import Headers, Request, Response, make_response
from switch.sip.transaction import (
    TIMER_INPUT,
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Output,
    PassUp,
    State,
    Step,
    TimedOut,
    Timer,
    TimerArmed,
    TimerConfig,
    Transaction,
    Transmit,
    TransportFailed,
    UnexpectedInput,
    build_cancel,
    response_input,
    tu_response_input,
)
from switch.sip.transaction_layer import TransactionLayer
from switch.sip.uri import parse_uri

CONFIG = TimerConfig()
T1, T2, T4 = CONFIG.t1, CONFIG.t2, CONFIG.t4


# ------------------------------------------------------------------------ builders


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-1",
    via_host: str = "192.0.2.1",
    via_port: int | None = 5060,
    transport: str = "UDP",
    extra_vias: Iterable[str] = (),
    uri: str = "sip:bob@192.0.2.2",
    call_id: str = "call-1@192.0.2.1",
    cseq: int = 1,
    cseq_method: str | None = None,
    from_tag: str = "from-1",
    to_tag: str | None = None,
    routes: Iterable[str] = (),
    rport: bool = False,
) -> Request:
    port = f":{via_port}" if via_port is not None else ""
    params = (";rport" if rport else "") + (f";branch={branch}" if branch is not None else "")
    headers = Headers([("Via", f"SIP/2.0/{transport} {via_host}{port}{params}")])
    for via in extra_vias:
        headers.add("Via", via)
    headers.add("Max-Forwards", "70")
    headers.add("From", f"Alice <sip:alice@example.com>;tag={from_tag}")
    headers.add("To", "Bob <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""))
    headers.add("Call-ID", call_id)
    headers.add("CSeq", str(CSeq(cseq, cseq_method or method)))
    for route in routes:
        headers.add("Route", route)
    headers.add("Contact", "<sip:alice@192.0.2.1:5060>")
    return Request(method, parse_uri(uri), headers)


def response_to(request: Request, status: int, *, to_tag: str | None = "to-1") -> Response:
    return make_response(request, status, to_tag=None if status == 100 else to_tag)


def new_layer(config: TimerConfig | None = None, *, prefix: str = "-gen") -> TransactionLayer:
    """A layer whose branches are ``z9hG4bK<prefix>1``, ``z9hG4bK<prefix>2``..."""
    counter = itertools.count(1)
    return TransactionLayer(
        config=config or CONFIG, new_branch=lambda: f"z9hG4bK{prefix}{next(counter)}"
    )


def drain(layer: TransactionLayer) -> list[Event]:
    """The layer's events not yet consumed, oldest first."""
    events = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    return events


class Driver:
    """Runs one machine in simulated time and records everything it outputs."""

    def __init__(self, machine: Transaction) -> None:
        self.machine = machine
        self.now = 0.0
        self.outputs: list[Output] = []
        self.fired: list[tuple[float, Timer]] = []

    def state(self) -> State:
        return self.machine.state

    def fire(self, input_: Input, message: Request | Response | None = None) -> list[Output]:
        out = self.machine.fire(input_, self.now, message)
        self.outputs.extend(out)
        return out

    def advance(self, until: float) -> list[Output]:
        """Move the clock to ``until``, firing due timers in deadline order."""
        start = len(self.outputs)
        while self.machine.timers:
            timer, deadline = min(self.machine.timers.items(), key=lambda item: item[1])
            if deadline > until:
                break
            self.now = max(self.now, deadline)
            self.fired.append((self.now, timer))
            self.fire(TIMER_INPUT[timer])
        self.now = max(self.now, until)
        return self.outputs[start:]


def transmitted(outputs: Iterable[Output]) -> list[Request | Response]:
    """The messages sent; a machine driven alone is never released, so it has them all."""
    out: list[Request | Response] = []
    for o in outputs:
        if isinstance(o, Transmit):
            assert o.message is not None
            assert o.message.to_bytes() == o.data
            out.append(o.message)
    return out


def passed_up(outputs: Iterable[Output]) -> list[Request | Response]:
    return [o.message for o in outputs if isinstance(o, PassUp)]


def ict(*, reliable: bool = False, config: TimerConfig = CONFIG) -> Driver:
    d = Driver(InviteClientTransaction(make_request(), reliable=reliable, config=config))
    d.fire(Input.REQUEST_FROM_TU)
    return d


def nict(*, reliable: bool = False, config: TimerConfig = CONFIG) -> Driver:
    request = make_request("BYE", to_tag="to-1", cseq=2)
    d = Driver(NonInviteClientTransaction(request, reliable=reliable, config=config))
    d.fire(Input.REQUEST_FROM_TU)
    return d


def ist(*, reliable: bool = False, config: TimerConfig = CONFIG) -> Driver:
    request = make_request()
    d = Driver(InviteServerTransaction(request, reliable=reliable, config=config))
    d.fire(Input.REQUEST, request)
    return d


def nist(*, reliable: bool = False, config: TimerConfig = CONFIG) -> Driver:
    request = make_request("OPTIONS")
    d = Driver(NonInviteServerTransaction(request, reliable=reliable, config=config))
    d.fire(Input.REQUEST, request)
    return d


# ---------------------------------------------------------------- table consistency

MACHINES: list[type[Transaction]] = [
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]


@pytest.mark.parametrize("cls", MACHINES)
def test_every_timer_a_state_owns_has_a_transition(cls: type[Transaction]) -> None:
    for state, timers in cls.TIMERS.items():
        for timer in timers:
            assert (state, TIMER_INPUT[timer]) in cls.TABLE, (state, timer)


@pytest.mark.parametrize("cls", MACHINES)
def test_terminated_and_idle_are_dead_ends_except_the_entry_arrow(cls: type[Transaction]) -> None:
    assert not any(state is State.TERMINATED for state, _ in cls.TABLE)
    entries = [inp for state, inp in cls.TABLE if state is State.IDLE]
    assert len(entries) == 1
    assert cls.TIMERS.get(State.TERMINATED) is None


def test_every_step_has_an_implementation() -> None:
    from switch.sip.transaction import _STEPS

    assert set(_STEPS) == set(Step)


def test_timer_config_is_validated() -> None:
    with pytest.raises(ValueError, match="t1"):
        TimerConfig(t1=0)
    with pytest.raises(ValueError, match="t1"):
        TimerConfig(t1=5, t2=4)
    with pytest.raises(ValueError, match="negative"):
        TimerConfig(trying_delay=-1)
    assert TimerConfig(t1=0.1).timeout == pytest.approx(6.4)


def test_input_classification() -> None:
    req = make_request()
    assert response_input(response_to(req, 100)) is Input.PROVISIONAL
    assert response_input(response_to(req, 299)) is Input.SUCCESS
    assert response_input(response_to(req, 300)) is Input.FAILURE
    assert tu_response_input(response_to(req, 183)) is Input.PROVISIONAL_FROM_TU
    assert tu_response_input(response_to(req, 202)) is Input.SUCCESS_FROM_TU
    assert tu_response_input(response_to(req, 699)) is Input.FAILURE_FROM_TU


# ------------------------------------------------------------------------------ ICT


def test_ict_sends_invite_and_arms_a_and_b() -> None:
    d = ict()
    assert d.state() is State.CALLING
    assert transmitted(d.outputs) == [d.machine.request]
    assert d.machine.timers == {Timer.A: T1, Timer.B: 64 * T1}


def test_ict_timer_a_doubles_until_timer_b_times_out() -> None:
    d = ict()
    d.advance(64 * T1)
    sends = [t for t, timer in d.fired if timer is Timer.A]
    # §17.1.1.2: retransmitted "with intervals that double after each transmission".
    assert sends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert len(transmitted(d.outputs)) == 7
    assert d.fired[-1] == (32.0, Timer.B)
    assert d.outputs[-1] == TimedOut(Timer.B)
    assert d.state() is State.TERMINATED
    assert d.machine.timers == {}


def test_ict_reliable_never_retransmits_but_still_times_out() -> None:
    d = ict(reliable=True)
    assert d.machine.timers == {Timer.B: 32.0}
    d.advance(100)
    assert len(transmitted(d.outputs)) == 1
    assert d.fired == [(32.0, Timer.B)]


def test_ict_provisional_stops_retransmissions_and_timeout() -> None:
    d = ict()
    d.advance(0.7)
    d.now = 0.8
    out = d.fire(Input.PROVISIONAL, response_to(d.machine.request, 180))
    assert passed_up(out)[0].status == 180  # type: ignore[union-attr]
    assert d.state() is State.PROCEEDING
    assert d.machine.timers == {}
    assert d.advance(1000) == []  # the INVITE transaction waits for the TU (§17.1.1.2)
    out = d.fire(Input.PROVISIONAL, response_to(d.machine.request, 183))
    assert len(passed_up(out)) == 1


def test_ict_cancel_wait_gives_up_64_t1_after_the_cancel() -> None:
    # RFC 3261 §9.1: no final response 64*T1 after the CANCEL: destroy the ICT.
    d = ict()
    d.fire(Input.PROVISIONAL, response_to(d.machine.request, 180))
    d.now = 10.0
    assert d.fire(Input.CANCEL_SENT) == [TimerArmed(Timer.CANCEL, 10.0 + 64 * T1)]
    d.fire(Input.PROVISIONAL, response_to(d.machine.request, 183))  # keeps the wait
    assert d.machine.timers == {Timer.CANCEL: 42.0}
    d.advance(100)
    assert d.fired == [(42.0, Timer.CANCEL)]
    assert d.outputs[-1] == TimedOut(Timer.CANCEL)
    assert d.state() is State.TERMINATED


def test_ict_cancel_wait_stops_on_the_final_response() -> None:
    d = ict()
    d.fire(Input.PROVISIONAL, response_to(d.machine.request, 180))
    d.fire(Input.CANCEL_SENT)
    d.fire(Input.FAILURE, response_to(d.machine.request, 487))
    assert d.machine.timers == {Timer.D: 32.0}
    with pytest.raises(UnexpectedInput):
        d.fire(Input.CANCEL_SENT)  # only a Proceeding INVITE is cancelled


@pytest.mark.parametrize("first", [None, 180])
def test_ict_2xx_enters_accepted_without_ack_and_passes_retransmissions_up(
    first: int | None,
) -> None:
    d = ict()
    if first is not None:
        d.fire(Input.PROVISIONAL, response_to(d.machine.request, first))
    d.now = 1.0
    ok = response_to(d.machine.request, 200)
    out = d.fire(Input.SUCCESS, ok)
    assert passed_up(out) == [ok]
    assert transmitted(out) == []  # RFC 6026 §7.2: "MUST NOT generate an ACK to any 2xx"
    assert d.state() is State.ACCEPTED
    assert d.machine.timers == {Timer.M: 1.0 + 64 * T1}
    # a retransmission and a 2xx from another fork: both to the TU
    forked = response_to(d.machine.request, 200, to_tag="to-2")
    assert passed_up(d.fire(Input.SUCCESS, ok)) == [ok]
    assert passed_up(d.fire(Input.SUCCESS, forked)) == [forked]
    # a late provisional or a non-2xx has no transition: the layer discards it
    for late, inp in ((180, Input.PROVISIONAL), (486, Input.FAILURE)):
        with pytest.raises(UnexpectedInput):
            d.fire(inp, response_to(d.machine.request, late))
    d.advance(1.0 + 64 * T1)
    assert d.fired[-1] == (33.0, Timer.M)
    assert d.state() is State.TERMINATED


def test_ict_non_2xx_sends_ack_per_17_1_1_3() -> None:
    invite = make_request(
        extra_vias=["SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK-proxy"],
        routes=["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"],
        cseq=314,
    )
    d = Driver(InviteClientTransaction(invite, reliable=False, config=CONFIG))
    d.fire(Input.REQUEST_FROM_TU)
    busy = response_to(invite, 486, to_tag="busy-tag")
    out = d.fire(Input.FAILURE, busy)
    ack = transmitted(out)[0]
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.call_id == invite.call_id
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.headers.get("To") == busy.headers.get("To")
    assert ack.to_tag == "busy-tag"
    assert ack.cseq == CSeq(314, "ACK")
    assert ack.headers.get_all("Via") == [invite.headers.get("Via")]
    assert ack.headers.get_all("Route") == invite.headers.get_all("Route")
    assert "Contact" not in ack.headers
    assert passed_up(out) == [busy]
    assert d.state() is State.COMPLETED
    assert d.machine.timers == {Timer.D: 32.0}


def test_ict_completed_resends_the_same_ack_and_absorbs_final_retransmissions() -> None:
    d = ict()
    busy = response_to(d.machine.request, 486)
    first_ack = transmitted(d.fire(Input.FAILURE, busy))[0]
    d.now = 2.0
    out = d.fire(Input.FAILURE, busy)
    assert transmitted(out) == [first_ack]
    assert passed_up(out) == []
    # reordering: a provisional or 2xx after the final has no transition
    with pytest.raises(UnexpectedInput):
        d.fire(Input.PROVISIONAL, response_to(d.machine.request, 180))
    with pytest.raises(UnexpectedInput):
        d.fire(Input.SUCCESS, response_to(d.machine.request, 200))
    d.advance(100)
    assert d.fired == [(32.0, Timer.D)]
    assert d.state() is State.TERMINATED


def test_ict_reliable_timer_d_is_zero() -> None:
    d = ict(reliable=True)
    d.now = 3.0
    d.fire(Input.FAILURE, response_to(d.machine.request, 603))
    assert d.machine.timers == {Timer.D: 3.0}
    d.advance(3.0)
    assert d.state() is State.TERMINATED


def test_ict_custom_timer_d() -> None:
    d = ict(config=TimerConfig(timer_d=40.0))
    d.fire(Input.FAILURE, response_to(d.machine.request, 404))
    assert d.machine.timers == {Timer.D: 40.0}


@pytest.mark.parametrize("setup", ["calling", "proceeding", "completed"])
def test_ict_transport_error_informs_tu_and_terminates(setup: str) -> None:
    d = ict()
    if setup == "proceeding":
        d.fire(Input.PROVISIONAL, response_to(d.machine.request, 180))
    elif setup == "completed":
        d.fire(Input.FAILURE, response_to(d.machine.request, 500))
    out = d.fire(Input.TRANSPORT_ERROR)
    assert out == [TransportFailed()]
    assert d.state() is State.TERMINATED
    assert d.machine.timers == {}


def test_terminated_machine_refuses_everything() -> None:
    d = ict()
    d.advance(100)
    for inp in Input:
        with pytest.raises(UnexpectedInput, match="Terminated"):
            d.machine.fire(inp, 200.0, response_to(d.machine.request, 200))
    assert d.state() is State.TERMINATED


# ----------------------------------------------------------------------------- NICT


def test_nict_timer_e_doubles_up_to_t2_then_f_times_out() -> None:
    d = nict()
    assert d.machine.timers == {Timer.E: T1, Timer.F: 64 * T1}
    d.advance(64 * T1)
    sends = [t for t, timer in d.fired if timer is Timer.E]
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    intervals = [b - a for a, b in zip([0.0, *sends], sends, strict=False)]
    assert intervals == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert d.outputs[-1] == TimedOut(Timer.F)
    assert d.state() is State.TERMINATED


def test_nict_proceeding_retransmits_every_t2() -> None:
    d = nict()
    d.advance(0.6)  # E fired at 0.5, next at 1.5
    trying = response_to(d.machine.request, 100)
    assert passed_up(d.fire(Input.PROVISIONAL, trying)) == [trying]
    assert d.state() is State.PROCEEDING
    assert set(d.machine.timers) == {Timer.E, Timer.F}
    d.advance(20)
    sends = [t for t, timer in d.fired if timer is Timer.E]
    # E pending at 1.5 fires there, then §17.1.2.2 resets it to T2 each time
    assert sends == [0.5, 1.5, 5.5, 9.5, 13.5, 17.5]
    d.advance(64 * T1)
    assert d.outputs[-1] == TimedOut(Timer.F)


@pytest.mark.parametrize("status", [200, 481])
def test_nict_final_completes_and_k_absorbs_retransmissions(status: int) -> None:
    d = nict()
    d.advance(0.6)
    final = response_to(d.machine.request, status)
    inp = response_input(final)
    assert passed_up(d.fire(inp, final)) == [final]
    assert d.state() is State.COMPLETED
    assert d.machine.timers == {Timer.K: 0.6 + T4}
    assert d.fire(inp, final) == []  # absorbed, not passed up again
    with pytest.raises(UnexpectedInput):
        d.fire(Input.PROVISIONAL, response_to(d.machine.request, 100))
    d.advance(10)
    assert d.fired[-1] == (0.6 + T4, Timer.K)
    assert d.state() is State.TERMINATED
    assert len(transmitted(d.outputs)) == 2  # the request and its retransmission at 0.5


def test_nict_reliable_no_retransmission_k_zero() -> None:
    d = nict(reliable=True)
    assert d.machine.timers == {Timer.F: 32.0}
    d.fire(Input.PROVISIONAL, response_to(d.machine.request, 100))
    d.now = 1.0
    d.fire(Input.SUCCESS, response_to(d.machine.request, 200))
    assert d.machine.timers == {Timer.K: 1.0}
    d.advance(1.0)
    assert d.state() is State.TERMINATED
    assert len(transmitted(d.outputs)) == 1


def test_nict_f_in_proceeding_and_transport_errors() -> None:
    d = nict()
    d.fire(Input.PROVISIONAL, response_to(d.machine.request, 100))
    assert d.fire(Input.TRANSPORT_ERROR) == [TransportFailed()]
    assert d.state() is State.TERMINATED
    d = nict()
    assert d.fire(Input.TRANSPORT_ERROR) == [TransportFailed()]
    d = nict()
    d.fire(Input.SUCCESS, response_to(d.machine.request, 200))
    with pytest.raises(UnexpectedInput):
        d.fire(Input.TRANSPORT_ERROR)  # nothing is sent in Completed


# ------------------------------------------------------------------------------ IST


def test_ist_passes_invite_up_and_sends_100_at_once() -> None:
    d = ist()
    invite = d.machine.request
    assert passed_up(d.outputs) == [invite]
    (trying,) = transmitted(d.outputs)
    assert isinstance(trying, Response)
    assert trying.status == 100
    assert trying.to_tag is None
    assert trying.headers.get_all("Via") == invite.headers.get_all("Via")
    assert d.state() is State.PROCEEDING
    assert d.machine.timers == {}


def test_ist_delayed_100_trying_fires_after_200ms() -> None:
    d = ist(config=TimerConfig(trying_delay=0.2))
    assert transmitted(d.outputs) == []
    assert d.machine.timers == {Timer.TRYING: 0.2}
    out = d.advance(1.0)
    assert [m.status for m in transmitted(out)] == [100]  # type: ignore[union-attr]
    assert d.machine.timers == {}


def test_ist_delayed_100_not_sent_when_the_tu_answers_first() -> None:
    d = ist(config=TimerConfig(trying_delay=0.2))
    d.now = 0.1
    ringing = response_to(d.machine.request, 180)
    assert transmitted(d.fire(Input.PROVISIONAL_FROM_TU, ringing)) == [ringing]
    assert d.machine.timers == {}
    assert d.advance(1.0) == []


def test_ist_delayed_100_sent_early_on_invite_retransmission() -> None:
    d = ist(config=TimerConfig(trying_delay=0.2))
    d.now = 0.15
    out = d.fire(Input.REQUEST, d.machine.request)
    assert [m.status for m in transmitted(out)] == [100]  # type: ignore[union-attr]
    assert d.machine.timers == {}


def test_ist_invite_retransmission_resends_latest_provisional_not_to_tu() -> None:
    d = ist()
    ringing = response_to(d.machine.request, 180)
    d.fire(Input.PROVISIONAL_FROM_TU, ringing)
    out = d.fire(Input.REQUEST, d.machine.request)
    assert transmitted(out) == [ringing]
    assert passed_up(out) == []


def test_ist_2xx_enters_accepted_timer_l() -> None:
    d = ist()
    d.now = 2.0
    ok = response_to(d.machine.request, 200)
    assert transmitted(d.fire(Input.SUCCESS_FROM_TU, ok)) == [ok]
    assert d.state() is State.ACCEPTED
    assert d.machine.timers == {Timer.L: 2.0 + 64 * T1}
    # RFC 6026 §7.1: retransmitted INVITEs absorbed; the TU's 2xx retransmissions
    # are sent; ACKs go to the TU.
    assert d.fire(Input.REQUEST, d.machine.request) == []
    assert transmitted(d.fire(Input.SUCCESS_FROM_TU, ok)) == [ok]
    ack = make_request("ACK", to_tag="to-1")
    assert passed_up(d.fire(Input.ACK, ack)) == [ack]
    assert d.state() is State.ACCEPTED
    with pytest.raises(UnexpectedInput):
        d.fire(Input.PROVISIONAL_FROM_TU, response_to(d.machine.request, 180))
    with pytest.raises(UnexpectedInput):
        d.fire(Input.FAILURE_FROM_TU, response_to(d.machine.request, 500))
    d.advance(100)
    assert d.fired == [(34.0, Timer.L)]
    assert d.state() is State.TERMINATED


def test_ist_non_2xx_retransmitted_by_g_up_to_t2_until_h() -> None:
    d = ist()
    busy = response_to(d.machine.request, 486)
    d.fire(Input.FAILURE_FROM_TU, busy)
    assert d.state() is State.COMPLETED
    assert d.machine.timers == {Timer.G: T1, Timer.H: 64 * T1}
    out = d.advance(64 * T1)
    sends = [t for t, timer in d.fired if timer is Timer.G]
    intervals = [b - a for a, b in zip([0.0, *sends], sends, strict=False)]
    assert intervals[:5] == [0.5, 1, 2, 4, 4]
    assert set(intervals[3:]) == {4}
    assert all(m is busy for m in transmitted(out))
    assert d.fired[-1] == (32.0, Timer.H)
    assert out[-1] == TimedOut(Timer.H)
    assert d.state() is State.TERMINATED


def test_ist_ack_confirms_stops_g_and_h_then_i_absorbs() -> None:
    d = ist()
    busy = response_to(d.machine.request, 486)
    d.fire(Input.FAILURE_FROM_TU, busy)
    d.advance(0.6)  # one retransmission
    d.now = 0.7
    assert transmitted(d.fire(Input.REQUEST, d.machine.request)) == [busy]
    ack = make_request("ACK", to_tag="to-1")
    assert d.fire(Input.ACK, ack) == [TimerArmed(Timer.I, 0.7 + T4)]
    assert d.state() is State.CONFIRMED
    assert d.machine.timers == {Timer.I: 0.7 + T4}
    assert d.fire(Input.ACK, ack) == []  # "simply absorbed"
    assert d.fire(Input.REQUEST, d.machine.request) == []
    d.advance(100)
    assert d.fired[-1] == (0.7 + T4, Timer.I)
    assert d.state() is State.TERMINATED


def test_ist_reliable_no_g_and_i_zero() -> None:
    d = ist(reliable=True)
    d.fire(Input.FAILURE_FROM_TU, response_to(d.machine.request, 404))
    assert d.machine.timers == {Timer.H: 32.0}
    d.now = 1.0
    d.fire(Input.ACK, make_request("ACK", to_tag="to-1"))
    assert d.machine.timers == {Timer.I: 1.0}
    d.advance(1.0)
    assert d.state() is State.TERMINATED


def test_ist_ack_before_final_has_no_transition() -> None:
    d = ist()
    with pytest.raises(UnexpectedInput):
        d.fire(Input.ACK, make_request("ACK"))


@pytest.mark.parametrize("setup", ["proceeding", "completed", "accepted"])
def test_ist_transport_error_informs_tu_and_stays(setup: str) -> None:
    # RFC 6026 Figure 5 draws these as loops: the TU decides.
    d = ist()
    state = State.PROCEEDING
    if setup == "completed":
        d.fire(Input.FAILURE_FROM_TU, response_to(d.machine.request, 480))
        state = State.COMPLETED
    elif setup == "accepted":
        d.fire(Input.SUCCESS_FROM_TU, response_to(d.machine.request, 200))
        state = State.ACCEPTED
    assert d.fire(Input.TRANSPORT_ERROR) == [TransportFailed()]
    assert d.machine.state is state


# ----------------------------------------------------------------------------- NIST


def test_nist_trying_discards_retransmissions() -> None:
    d = nist()
    assert passed_up(d.outputs) == [d.machine.request]
    assert transmitted(d.outputs) == []  # no 100 Trying for non-INVITE
    assert d.state() is State.TRYING
    assert d.fire(Input.REQUEST, d.machine.request) == []


def test_nist_proceeding_and_completed_resend_last_response() -> None:
    d = nist()
    trying = response_to(d.machine.request, 100)
    d.fire(Input.PROVISIONAL_FROM_TU, trying)
    assert d.state() is State.PROCEEDING
    assert transmitted(d.fire(Input.REQUEST, d.machine.request)) == [trying]
    d.now = 1.0
    ok = response_to(d.machine.request, 200)
    assert transmitted(d.fire(Input.SUCCESS_FROM_TU, ok)) == [ok]
    assert d.state() is State.COMPLETED
    assert d.machine.timers == {Timer.J: 1.0 + 64 * T1}
    assert transmitted(d.fire(Input.REQUEST, d.machine.request)) == [ok]
    # §17.2.2: other finals from the TU "MUST be discarded"
    assert d.fire(Input.FAILURE_FROM_TU, response_to(d.machine.request, 500)) == []
    assert d.fire(Input.SUCCESS_FROM_TU, ok) == []
    d.advance(100)
    assert d.fired == [(33.0, Timer.J)]
    assert d.state() is State.TERMINATED


def test_nist_final_straight_from_trying() -> None:
    d = nist()
    d.fire(Input.FAILURE_FROM_TU, response_to(d.machine.request, 404))
    assert d.state() is State.COMPLETED


def test_nist_reliable_timer_j_zero() -> None:
    d = nist(reliable=True)
    d.now = 4.0
    d.fire(Input.SUCCESS_FROM_TU, response_to(d.machine.request, 200))
    assert d.machine.timers == {Timer.J: 4.0}
    d.advance(4.0)
    assert d.state() is State.TERMINATED


def test_nist_transport_errors() -> None:
    d = nist()
    with pytest.raises(UnexpectedInput):
        d.fire(Input.TRANSPORT_ERROR)  # nothing sent yet
    d.fire(Input.PROVISIONAL_FROM_TU, response_to(d.machine.request, 100))
    assert d.fire(Input.TRANSPORT_ERROR) == [TransportFailed()]
    assert d.state() is State.TERMINATED
    d = nist()
    d.fire(Input.SUCCESS_FROM_TU, response_to(d.machine.request, 200))
    assert d.fire(Input.TRANSPORT_ERROR) == [TransportFailed()]
    assert d.state() is State.TERMINATED


def test_nist_tu_mistakes_raise() -> None:
    d = nist()
    with pytest.raises(UnexpectedInput, match="non-INVITE server transaction"):
        d.fire(Input.ACK, make_request("ACK"))


# -------------------------------------------------------------------------- CANCEL


def test_build_cancel_per_9_1() -> None:
    invite = make_request(
        extra_vias=["SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK-proxy"],
        routes=["<sip:p1.example.com;lr>"],
        cseq=7,
    )
    invite.headers.add("Require", "100rel")
    cancel = build_cancel(invite, (("Reason", 'SIP;cause=200;text="elsewhere"'),))
    assert cancel.method == "CANCEL"
    assert cancel.uri == invite.uri
    for name in ("From", "To", "Call-ID"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert cancel.cseq == CSeq(7, "CANCEL")
    assert cancel.headers.get_all("Via") == [invite.headers.get("Via")]
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert "Require" not in cancel.headers
    assert cancel.headers.get("Reason") == 'SIP;cause=200;text="elsewhere"'
