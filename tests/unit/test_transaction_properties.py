"""Hypothesis over sequences of (input, time advance) for each machine.

Invariants checked after every step:

- a client transaction passes at most one final response up, except 2xx to an
  INVITE in Accepted (RFC 6026 §7.2: every 2xx goes to the TU); never a final
  after a non-2xx final, never a non-2xx after a 2xx;
- a refused input changes nothing (state and timers);
- a terminated machine stays terminated, with no timer;
- deadlines are never in the past, timers fire in deadline order, and a state
  only holds the timers it owns;
- retransmission intervals: A doubles; E and G double up to T2; E is T2 in
  Proceeding; a machine stuck in a state with a timeout leaves it by then.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.endpoint import Endpoint
from switch.sip.events import RequestReceived
from switch.sip.message import Request, Response
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
    TimedOut,
    Timer,
    TimerArmed,
    TimerConfig,
    Transaction,
    Transmit,
    UnexpectedInput,
)
from switch.sip.transaction_layer import NoSuchTransaction
from tests.unit.test_transaction import make_request, new_layer, response_to

CONFIG = TimerConfig()
T1, T2 = CONFIG.t1, CONFIG.t2

CLIENT_INPUTS = [
    Input.PROVISIONAL,
    Input.SUCCESS,
    Input.FAILURE,
    Input.TRANSPORT_ERROR,
    Input.CANCEL_SENT,
]
SERVER_INPUTS = [
    Input.REQUEST,
    Input.ACK,
    Input.PROVISIONAL_FROM_TU,
    Input.SUCCESS_FROM_TU,
    Input.FAILURE_FROM_TU,
    Input.TRANSPORT_ERROR,
]

advance = st.tuples(st.just("advance"), st.floats(min_value=0, max_value=20))


def actions(inputs: list[Input]) -> st.SearchStrategy[list[tuple[str, object]]]:
    step = st.one_of(advance, st.tuples(st.just("input"), st.sampled_from(inputs)))
    return st.lists(step, max_size=40)


@dataclass
class Run:
    machine: Transaction
    now: float = 0.0
    start: float = 0.0
    fired_at: list[float] = field(default_factory=list)
    armed: list[tuple[float, TimerArmed]] = field(default_factory=list)
    up: list[Request | Response] = field(default_factory=list)
    sent: list[tuple[State, Request | Response]] = field(default_factory=list)
    timeouts: int = 0

    def record(self, before: State, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, TimerArmed):
                assert output.deadline >= self.now, "a deadline in the past"
                self.armed.append((self.now, output))
            elif isinstance(output, PassUp):
                self.up.append(output.message)
            elif isinstance(output, Transmit):
                assert output.message is not None  # never released: no layer here
                self.sent.append((before, output.message))
            elif isinstance(output, TimedOut):
                self.timeouts += 1

    def fire(self, input_: Input, message: Request | Response | None) -> None:
        machine = self.machine
        before, timers_before = machine.state, dict(machine.timers)
        try:
            outputs = machine.fire(input_, self.now, message)
        except UnexpectedInput:
            assert machine.state is before
            assert machine.timers == timers_before
            return
        self.record(before, outputs)

    def advance(self, dt: float) -> None:
        until = self.now + dt
        while self.machine.timers:
            timer, deadline = min(self.machine.timers.items(), key=lambda item: item[1])
            if deadline > until:
                break
            assert deadline >= self.now
            self.now = deadline
            self.fired_at.append(deadline)
            self.fire(TIMER_INPUT[timer], None)
        self.now = until

    def check(self) -> None:
        machine = self.machine
        assert self.fired_at == sorted(self.fired_at)
        owned = machine.TIMERS.get(machine.state, frozenset())
        assert set(machine.timers) <= owned
        assert all(deadline >= self.now for deadline in machine.timers.values())
        if machine.state is State.TERMINATED:
            assert machine.timers == {}
        assert self.timeouts <= 1


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def check_intervals(run: Run) -> None:
    previous: dict[Timer, float] = {}
    for now, armed in run.armed:
        delay = armed.deadline - now
        timer = armed.timer
        if timer is Timer.A:
            assert close(delay, 2 * previous[timer] if timer in previous else T1)
        elif timer in (Timer.E, Timer.G):
            if timer not in previous:
                assert close(delay, T1)
            else:
                expected = min(2 * previous[timer], T2)
                assert close(delay, expected) or close(delay, T2)
            assert delay <= T2 + 1e-9
        previous[timer] = delay


def client_message(run: Run, input_: Input, tag: int) -> Response | None:
    status = {Input.PROVISIONAL: 180, Input.SUCCESS: 200, Input.FAILURE: 486}.get(input_)
    if status is None:
        return None
    return response_to(run.machine.request, status, to_tag=f"tag-{tag}")


def check_client_finals(run: Run, invite: bool) -> None:
    finals = [m for m in run.up if isinstance(m, Response) and m.status >= 200]
    if not invite:
        assert len(finals) <= 1
        return
    statuses = [m.status for m in finals]
    failures = [s for s in statuses if s >= 300]
    assert len(failures) <= 1
    if failures:
        assert len(statuses) == 1  # nothing after a non-2xx, nothing before it
    provisional_after_final = False
    seen_final = False
    for m in run.up:
        assert isinstance(m, Response)
        if m.status >= 200:
            seen_final = True
        elif seen_final:
            provisional_after_final = True
    assert not provisional_after_final


@settings(max_examples=300, deadline=None)
@given(
    steps=actions(CLIENT_INPUTS),
    reliable=st.booleans(),
    invite=st.booleans(),
    tags=st.lists(st.integers(0, 2), min_size=40, max_size=40),
)
def test_client_machines(
    steps: list[tuple[str, object]], reliable: bool, invite: bool, tags: list[int]
) -> None:
    cls = InviteClientTransaction if invite else NonInviteClientTransaction
    request = make_request("INVITE" if invite else "OPTIONS")
    run = Run(cls(request, reliable=reliable, config=CONFIG))
    run.fire(Input.REQUEST_FROM_TU, None)
    terminated_at: int | None = None
    for i, (kind, value) in enumerate(steps):
        if kind == "advance":
            assert isinstance(value, float)
            run.advance(value)
        else:
            assert isinstance(value, Input)
            run.fire(value, client_message(run, value, tags[i]))
        run.check()
        if run.machine.state is State.TERMINATED and terminated_at is None:
            terminated_at = len(run.up) + len(run.sent)
        # requests only go out before a final response, and never more than
        # the initial transmission plus retransmissions until the timeout
        assert all(
            state in (State.IDLE, State.CALLING, State.TRYING, State.PROCEEDING)
            for state, m in run.sent
            if isinstance(m, Request) and m.method != "ACK"
        )
        # a machine with a running timeout cannot outlive it
        if run.machine.state in (State.CALLING, State.TRYING) or (
            not invite and run.machine.state is State.PROCEEDING
        ):
            assert run.now < run.start + 64 * T1
    if terminated_at is not None:
        assert len(run.up) + len(run.sent) == terminated_at  # silent once terminated
    requests_sent = [m for _, m in run.sent if isinstance(m, Request) and m.method != "ACK"]
    assert len(requests_sent) <= (1 if reliable else 11)
    if reliable:
        assert not any(a.timer in (Timer.A, Timer.E) for _, a in run.armed)
    check_intervals(run)
    check_client_finals(run, invite)


def server_message(run: Run, input_: Input) -> Request | Response | None:
    request = run.machine.request
    if input_ is Input.REQUEST:
        return request
    if input_ is Input.ACK:
        return make_request("ACK", to_tag="to-1")
    status = {
        Input.PROVISIONAL_FROM_TU: 180,
        Input.SUCCESS_FROM_TU: 200,
        Input.FAILURE_FROM_TU: 486,
    }.get(input_)
    return response_to(request, status) if status is not None else None


@settings(max_examples=300, deadline=None)
@given(
    steps=actions(SERVER_INPUTS),
    reliable=st.booleans(),
    invite=st.booleans(),
    trying_delay=st.sampled_from([0.0, 0.2]),
)
def test_server_machines(
    steps: list[tuple[str, object]], reliable: bool, invite: bool, trying_delay: float
) -> None:
    config = TimerConfig(trying_delay=trying_delay)
    cls = InviteServerTransaction if invite else NonInviteServerTransaction
    request = make_request("INVITE" if invite else "OPTIONS")
    run = Run(cls(request, reliable=reliable, config=config))
    run.fire(Input.REQUEST, request)
    assert run.up == [request]
    for kind, value in steps:
        if kind == "advance":
            assert isinstance(value, float)
            run.advance(value)
        else:
            assert isinstance(value, Input)
            run.fire(value, server_message(run, value))
        run.check()
        if run.machine.state is State.COMPLETED and invite:
            assert run.now < run.start + run.machine.timers[Timer.H]
    # the request reaches the TU once; ACKs only from Accepted
    assert run.up[0] is request
    assert all(isinstance(m, Request) and m.method == "ACK" for m in run.up[1:])
    responses = [m for _, m in run.sent if isinstance(m, Response)]
    finals = [m.status for m in responses if m.status >= 200]
    assert len(set(finals)) <= 1  # one final response, possibly retransmitted
    if not invite:
        assert all(m.status != 100 for m in responses if m.status < 200) or not responses
    if reliable:
        assert not any(a.timer is Timer.G for _, a in run.armed)
    check_intervals(run)


# ------------------------------------------------------------------ the whole layer

METHODS = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"]
BRANCHES = ["z9hG4bK-1", "z9hG4bK-2", None, "rfc2543-x"]


@st.composite
def network_input(draw: st.DrawFn) -> tuple[str, object]:
    kind = draw(st.sampled_from(["request", "response", "advance", "answer"]))
    if kind == "advance":
        return ("advance", draw(st.floats(min_value=0, max_value=20)))
    if kind == "answer":
        return ("answer", draw(st.sampled_from([100, 180, 200, 486])))
    method = draw(st.sampled_from(METHODS))
    request = make_request(
        method,
        branch=draw(st.sampled_from(BRANCHES)),
        to_tag=draw(st.sampled_from([None, "to-1", "to-2"])),
        cseq=draw(st.integers(1, 2)),
    )
    if kind == "request":
        return ("request", request)
    return ("response", response_to(request, draw(st.sampled_from([100, 180, 200, 486]))))


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(network_input(), max_size=30), send_first=st.booleans())
def test_layer_survives_any_sequence_of_network_input(
    steps: list[tuple[str, object]], send_first: bool
) -> None:
    """Whatever arrives, in whatever order: no exception, deadlines in the
    future after ``handle_timer``, and every server transaction the TU answers
    stays consistent (an answer it may not give raises only ``UnexpectedInput``)."""
    peer = Endpoint("UDP", "192.0.2.1", 5060)
    tx = new_layer(prefix="-")
    if send_first:
        tx.send_request(make_request("INVITE", branch="z9hG4bK-1"), peer, 0.0)
        tx.send_request(make_request("BYE", branch="z9hG4bK-2"), peer, 0.0)
    now = 0.0
    pending: list[Request] = []
    for kind, value in steps:
        if kind == "advance":
            assert isinstance(value, float)
            now += value
            tx.handle_timer(now)
            deadline = tx.get_timer()
            assert deadline is None or deadline > now
        elif kind == "answer":
            assert isinstance(value, int)
            if pending:
                with contextlib.suppress(UnexpectedInput, NoSuchTransaction):
                    tx.send_response(response_to(pending[-1], value), now)
        else:
            assert isinstance(value, Request | Response)
            tx.receive(value, peer, now)
        while (event := tx.next_event()) is not None:
            if isinstance(event, RequestReceived):
                pending.append(event.request)
        tx.datagrams_to_send()
    tx.handle_timer(now + 1000)
    # only transactions waiting for someone else (a Proceeding INVITE, either
    # side) may remain, and they hold no timer
    assert tx.get_timer() is None
