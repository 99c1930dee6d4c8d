r"""The four SIP transaction state machines (RFC 3261 §17, updated by RFC 6026).

Each machine is a table ``(state, input) -> (steps, next state)``. A pair that is
not in a table is the error path: ``fire()`` raises ``UnexpectedInput`` and
changes nothing. The transaction layer turns that into "discard" for inputs from
the network (a late provisional, an ACK before any final response...) and lets
it propagate for inputs from the TU (a programming error, like h11's
``LocalProtocolError``). Where the RFC says an input is absorbed, the table says
so explicitly with no steps.

Timers are owned by states (``TIMERS``): leaving a state cancels the timers the
next state does not own; entering TERMINATED cancels them all. The machines read
no clock: every input carries ``now`` and every timer is an absolute deadline.
Outputs are returned (``Transmit``, ``PassUp``, ``TimedOut``, ``TransportFailed``,
``TimerArmed``); the layer routes them.

Completed, Confirmed and Accepted only absorb retransmissions, for up to 64*T1
(Timers D, H, J, L, M: 32 s by default). The layer calls ``release()`` on a
machine in those states: it drops the parsed request and responses and keeps
what absorbing needs, the serialised last response (and ACK). At a few hundred
calls per second that is thousands of transactions lingering at once, and each
parsed message is a few dozen objects the garbage collector would walk again
and again.

Timer values (RFC 3261 Table 4, RFC 6026 §7.1/§7.2), "reliable" meaning the
request travels over TCP/TLS/SCTP/WS::

    A  INVITE retransmit   T1, doubling     UDP only        ICT Calling
    B  INVITE timeout      64*T1                            ICT Calling
    D  response absorb     32 s (UDP), 0 (reliable)         ICT Completed
    E  request retransmit  T1, doubling up to T2; T2 in Proceeding, UDP only
    F  non-INVITE timeout  64*T1                            NICT Trying/Proceeding
    K  response absorb     T4 (UDP), 0 (reliable)           NICT Completed
    G  response retransmit T1, doubling up to T2, UDP only  IST Completed
    H  ACK wait            64*T1                            IST Completed
    I  ACK absorb          T4 (UDP), 0 (reliable)           IST Confirmed
    J  request absorb      64*T1 (UDP), 0 (reliable)        NIST Completed
    L  INVITE absorb       64*T1                            IST Accepted (RFC 6026)
    M  2xx wait            64*T1                            ICT Accepted (RFC 6026)
    TRYING                 trying_delay (0: at once)        IST Proceeding
    CANCEL                 64*T1 after CANCEL sent (§9.1)   ICT Proceeding

Timer A doubles without a cap: RFC 3261 §17.1.1.2 "the request is retransmitted
with intervals that double after each transmission" (Timer B ends it); E and G
are capped at T2 (§17.1.2.2, §17.2.1).

INVITE client transaction (RFC 3261 Figure 5, with RFC 6026 Figure 3)::

                               |INVITE from TU
             Timer A fires     |INVITE sent      Timer B fires
             Reset A,          V                 or Transport Err.
             INVITE sent +-----------+           inform TU
               +---------|           |--------------------------+
               |         |  Calling  |                          |
               +-------->|           |-----------+              |
  300-699                +-----------+ 2xx       |              |
  ACK sent                  |  |       2xx to TU |              |
  resp. to TU               |  |1xx              |              |
  +-------------------------+  |1xx to TU        |              |
  |                            |                 |              |
  |                1xx         V                 |              |
  |                1xx to TU  -----------+       |              |
  |                +---------|           |       |              |
  |                |         |Proceeding |       |              |
  |                +-------->|           |       |              |
  |                          +-----------+ 2xx   |              |
  |         300-699             |    |     2xx to TU            |
  |         ACK sent,  +--------+    +---------------+          |
  |         resp. to TU|                             |          |
  |                    V                             V          |
  |              +-----------+                   +----------+   |
  +------------->|           |Transport Err.     |          |   |
                 | Completed |Inform TU          | Accepted |   |
              +--|           |-------+           |          |-+ |
      300-699 |  +-----------+       |           +----------+ | |
      ACK sent|    ^  |              |               |  ^     | |
              +----+  |Timer D fires |  Timer M fires|  +-----+ |
                      |-             |             - |    2xx   |
                      +--------+     |   +-----------+ 2xx to TU|
                               V     V   V                      |
                            +------------+                      |
                            | Terminated |<---------------------+
                            +------------+

Not drawn in Figure 5, from RFC 3261 §9.1: once the layer has sent a CANCEL for
it (input CANCEL_SENT, Proceeding only), an ICT that gets no final response
within 64*T1 (Timer CANCEL) informs the TU of a timeout and terminates.

Non-INVITE client transaction (RFC 3261 Figure 6)::

                                   |Request from TU
                                   |send request
               Timer E             V
               send request  +-----------+
                   +---------|           |-------------------+
                   |         |  Trying   |  Timer F          |
                   +-------->|           |  or Transport Err.|
                             +-----------+  inform TU        |
                200-699         |  |                         |
                resp. to TU     |  |1xx                      |
                +---------------+  |resp. to TU              |
                |                  |                         |
                |   Timer E        V       Timer F           |
                |   send req +-----------+ or Transport Err. |
                |  +---------|           | inform TU         |
                |  |         |Proceeding |------------------>|
                |  +-------->|           |-----+             |
                |            +-----------+     |1xx          |
                |              |      ^        |resp to TU   |
                | 200-699      |      +--------+             |
                | resp. to TU  |                             |
                |              |                             |
                |              V                             |
                |            +-----------+                   |
                |            |           |                   |
                +----------->| Completed |                   |
                             |           |                   |
                             +-----------+                   |
                               ^   |                         |
                               |   | Timer K                 |
                               +---+ -                       |
                                   |                         |
                                   V                         |
             NOTE:           +-----------+                   |
                             |           |                   |
         transitions         | Terminated|<------------------+
         labeled with        |           |
         the event           +-----------+
         over the action
         to take

INVITE server transaction (RFC 3261 Figure 7, with RFC 6026 Figure 5; transport
errors inform the TU and leave the state unchanged, as RFC 6026 draws them)::

                                    |INVITE
                                    |pass INV to TU
                 INVITE             V send 100 if TU won't in 200 ms
                 send response+------------+
                     +--------|            |--------+ 101-199 from TU
                     |        |            |        | send response
                     +------->|            |<-------+
                              | Proceeding |
                              |            |--------+ Transport Err.
                              |            |        | Inform TU
                              |            |<-------+
                              +------------+
                 300-699 from TU |    |2xx from TU
                 send response   |    |send response
                  +--------------+    +------------+
                  |                                |
 INVITE           V          Timer G fires         |
 send response +-----------+ send response         |
      +--------|           |--------+              |
      |        |           |        |              |
      +------->| Completed |<-------+      INVITE  |  Transport Err.
               |           |               -       |  Inform TU
      +--------|           |----+          +-----+ |  +---+
      |        +-----------+    | ACK      |     | v  |   v
      |          ^   |          | -        |  +------------+
      |          |   |          |          |  |            |---+ ACK
      +----------+   |          |          +->|  Accepted  |   | to TU
      Transport Err. |          |             |            |<--+
      Inform TU      |          V             +------------+
                     |      +-----------+        |  ^     |
                     |      |           |        |  |     |
                     |      | Confirmed |        |  +-----+
                     |      |           |        |  2xx from TU
       Timer H fires |      +-----------+        |  send response
       -             |          |                |
                     |          | Timer I fires  |
                     |          | -              | Timer L fires
                     |          V                | -
                     |        +------------+     |
                     |        |            |<----+
                     +------->| Terminated |
                              |            |
                              +------------+

Non-INVITE server transaction (RFC 3261 Figure 8)::

                                  |Request received
                                  |pass to TU
                                  V
                            +-----------+
                            |           |
                            | Trying    |-------------+
                            |           |             |
                            +-----------+             |200-699 from TU
                                  |                   |send response
                                  |1xx from TU        |
                                  |send response      |
                                  |                   |
               Request            V      1xx from TU  |
               send response+-----------+send response|
                   +--------|           |--------+    |
                   |        | Proceeding|        |    |
                   +------->|           |<-------+    |
            +<--------------|           |             |
            |Trnsprt Err    +-----------+             |
            |Inform TU            |                   |
            |                     |                   |
            |                     |200-699 from TU    |
            |                     |send response      |
            |  Request            V                   |
            |  send response+-----------+             |
            |      +--------|           |             |
            |      |        | Completed |<------------+
            |      +------->|           |
            +<--------------|           |
            |Trnsprt Err    +-----------+
            |Inform TU            |
            |                     |Timer J fires
            |                     |-
            |                     V
            |               +-----------+
            +-------------->| Terminated|
                            +-----------+

Every machine starts in IDLE, before the entry arrow of its figure: the first
input (``REQUEST_FROM_TU`` for clients, ``REQUEST`` for servers) takes that
arrow.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from switch.sip.headers import CSeq
from switch.sip.message import Headers, Message, Request, Response, make_response
from switch.sip.parser import parse_message

# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 §17.1.1.1 timer base values, in seconds.

    "T1 is an estimate of the round-trip time (RTT), and it defaults to 500 ms."
    T2 (4 s) caps non-INVITE and response retransmission intervals; T4 (5 s) is
    how long the network may hold a message. ``timer_d`` is "at least 32 seconds
    for unreliable transports". ``trying_delay`` is how long an INVITE server
    transaction waits for the TU before sending 100 Trying itself (§17.2.1:
    "send 100 if TU won't in 200 ms"); 0 sends it at once.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0
    trying_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.t1 <= 0 or self.t2 < self.t1 or self.t4 < 0:
            raise ValueError("TimerConfig needs 0 < t1 <= t2 and t4 >= 0")
        if self.timer_d < 0 or self.trying_delay < 0:
            raise ValueError("TimerConfig delays must not be negative")

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M."""
        return 64 * self.t1


# ------------------------------------------------------------------------- identities


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A client transaction (RFC 3261 §17.1.3): the top Via branch it sent and
    its method. A response matches "if the response has the same value of the
    branch parameter in the top Via header field as the branch parameter in the
    top Via header field of the request that created the transaction" and "if
    the method parameter in the CSeq header field matches the method of the
    request that created the transaction"."""

    branch: str
    method: str

    def __str__(self) -> str:
        return f"{self.method}/{self.branch}"


@dataclass(frozen=True, slots=True)
class ServerKey:
    """A server transaction (RFC 3261 §17.2.3).

    With a magic-cookie branch: "the branch parameter in the request is equal to
    the one in the top Via header field of the request that created the
    transaction, the sent-by value in the top Via of the request is equal to the
    one in the request that created the transaction, and the method of the
    request matches the one that created the transaction, except for ACK, where
    the method of the request that created the transaction is INVITE."

    For an RFC 2543 peer (no magic cookie) ``branch`` is what was sent (maybe
    empty) and ``legacy`` holds the fields the fallback rule compares:
    Request-URI, To tag, From tag, Call-ID, CSeq number and top Via.
    """

    branch: str
    sent_by: tuple[str, int | None]
    method: str
    legacy: tuple[str, ...] = ()

    def __str__(self) -> str:
        host, port = self.sent_by
        where = f"{host}:{port}" if port is not None else host
        return f"{self.method}/{self.branch or '(rfc2543)'}@{where}"


TransactionKey = ClientKey | ServerKey


# ------------------------------------------------------------------------- vocabulary

# The enums below key the tables and the timer dicts, looked up several times per
# message: members are singletons, so they hash by identity, in C (``Enum``'s own
# ``__hash__`` is Python code hashing the member's name).
_identity_hash = object.__hash__


class State(enum.Enum):
    __hash__ = _identity_hash

    IDLE = "Idle"  # before the entry arrow of the figure
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Timer(enum.Enum):
    __hash__ = _identity_hash

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "100 Trying"
    CANCEL = "CANCEL wait"


class Input(enum.Enum):
    __hash__ = _identity_hash

    # from the TU
    REQUEST_FROM_TU = "request from TU"
    PROVISIONAL_FROM_TU = "1xx from TU"
    SUCCESS_FROM_TU = "2xx from TU"
    FAILURE_FROM_TU = "300-699 from TU"
    # from the network
    REQUEST = "request"  # the request that created a server transaction, or its retransmission
    ACK = "ACK"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    # from the transport and the clock
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "Timer 100 Trying"
    TIMER_CANCEL = "Timer CANCEL wait"
    # from the transaction layer
    CANCEL_SENT = "CANCEL sent"


TIMER_INPUT: Mapping[Timer, Input] = {
    Timer.A: Input.TIMER_A,
    Timer.B: Input.TIMER_B,
    Timer.D: Input.TIMER_D,
    Timer.E: Input.TIMER_E,
    Timer.F: Input.TIMER_F,
    Timer.G: Input.TIMER_G,
    Timer.H: Input.TIMER_H,
    Timer.I: Input.TIMER_I,
    Timer.J: Input.TIMER_J,
    Timer.K: Input.TIMER_K,
    Timer.L: Input.TIMER_L,
    Timer.M: Input.TIMER_M,
    Timer.TRYING: Input.TIMER_TRYING,
    Timer.CANCEL: Input.TIMER_CANCEL,
}
INPUT_TIMER: Mapping[Input, Timer] = {inp: timer for timer, inp in TIMER_INPUT.items()}

TU_INPUTS = frozenset(
    {
        Input.REQUEST_FROM_TU,
        Input.PROVISIONAL_FROM_TU,
        Input.SUCCESS_FROM_TU,
        Input.FAILURE_FROM_TU,
    }
)


def response_input(response: Response) -> Input:
    """Classify a response received from the network."""
    if response.status < 200:
        return Input.PROVISIONAL
    if response.status < 300:
        return Input.SUCCESS
    return Input.FAILURE


def tu_response_input(response: Response) -> Input:
    """Classify a response the TU hands to a server transaction."""
    if response.status < 200:
        return Input.PROVISIONAL_FROM_TU
    if response.status < 300:
        return Input.SUCCESS_FROM_TU
    return Input.FAILURE_FROM_TU


class Step(enum.Enum):
    """The atomic actions a transition performs, in table order."""

    __hash__ = _identity_hash

    SEND_REQUEST = "send the request"
    SEND_ACK = "send ACK for the non-2xx final response"
    SEND_RESPONSE = "send the TU's response"
    RESEND_RESPONSE = "send the last response again"
    RESEND_PROVISIONAL = "send the last provisional again (or 100 Trying)"
    SCHEDULE_TRYING = "send 100 if TU won't in trying_delay"
    SEND_TRYING = "send 100 Trying"
    STOP_TRYING = "cancel the 100 Trying timer"
    PASS_UP = "pass the message to the TU"
    INFORM_TIMEOUT = "inform the TU of a timeout"
    INFORM_TRANSPORT_ERROR = "inform the TU of a transport error"
    START_A = "start A at T1 (unreliable)"
    DOUBLE_A = "reset A at twice its interval"
    START_B = "start B at 64*T1"
    START_D = "start D"
    START_E = "start E at T1 (unreliable)"
    DOUBLE_E = "reset E at min(2*E, T2)"
    RESET_E_T2 = "reset E at T2"
    START_F = "start F at 64*T1"
    START_G = "start G at T1 (unreliable)"
    DOUBLE_G = "reset G at min(2*G, T2)"
    START_H = "start H at 64*T1"
    START_I = "start I"
    START_J = "start J"
    START_K = "start K"
    START_L = "start L at 64*T1"
    START_M = "start M at 64*T1"
    START_CANCEL = "start the CANCEL wait at 64*T1"


# ---------------------------------------------------------------------------- outputs


@dataclass(slots=True)
class Transmit:
    """Send ``data`` to the transaction's peer.

    ``message`` is the message ``data`` serialises, or None when the machine
    has released it (``Transaction.release()``): the layer sends ``data`` only.
    """

    message: Message | None
    data: bytes


@dataclass(slots=True)
class PassUp:
    """Hand ``message`` to the TU."""

    message: Message


@dataclass(slots=True)
class TimedOut:
    """Timer ``timer`` (B, F or H) fired: the transaction failed."""

    timer: Timer


@dataclass(slots=True)
class TransportFailed:
    """The TU is told of a transport error (§17.1.4, §17.2.4)."""


@dataclass(slots=True)
class TimerArmed:
    """``timer`` now fires at ``deadline`` (replaces any earlier deadline)."""

    timer: Timer
    deadline: float


Output = Transmit | PassUp | TimedOut | TransportFailed | TimerArmed


class TransactionError(Exception):
    """Base of the transaction layer's local errors (misuse by the TU)."""


class UnexpectedInput(TransactionError):
    """``(state, input)`` is not in the machine's table."""

    def __init__(self, machine: str, state: State, input_: Input) -> None:
        super().__init__(f"{machine}: {input_.value!r} not allowed in state {state.value}")
        self.state = state
        self.input = input_


# ----------------------------------------------------------------------------- tables

Transition = tuple[tuple[Step, ...], State]
Table = Mapping[tuple[State, Input], Transition]

S = State
I = Input  # noqa: E741
P = Step

_ICT_TABLE: Table = {
    (S.IDLE, I.REQUEST_FROM_TU): ((P.SEND_REQUEST, P.START_A, P.START_B), S.CALLING),
    (S.CALLING, I.TIMER_A): ((P.SEND_REQUEST, P.DOUBLE_A), S.CALLING),
    (S.CALLING, I.TIMER_B): ((P.INFORM_TIMEOUT,), S.TERMINATED),
    (S.CALLING, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.TERMINATED),
    (S.CALLING, I.PROVISIONAL): ((P.PASS_UP,), S.PROCEEDING),
    (S.CALLING, I.SUCCESS): ((P.PASS_UP, P.START_M), S.ACCEPTED),
    (S.CALLING, I.FAILURE): ((P.SEND_ACK, P.PASS_UP, P.START_D), S.COMPLETED),
    (S.PROCEEDING, I.PROVISIONAL): ((P.PASS_UP,), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS): ((P.PASS_UP, P.START_M), S.ACCEPTED),
    (S.PROCEEDING, I.FAILURE): ((P.SEND_ACK, P.PASS_UP, P.START_D), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.TERMINATED),
    # RFC 3261 §9.1 (not drawn in Figure 5): "If there is no final response for
    # the original request in 64*T1 seconds [...] the client SHOULD then consider
    # the original transaction cancelled and SHOULD destroy the client
    # transaction handling the original request."
    (S.PROCEEDING, I.CANCEL_SENT): ((P.START_CANCEL,), S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_CANCEL): ((P.INFORM_TIMEOUT,), S.TERMINATED),
    (S.COMPLETED, I.FAILURE): ((P.SEND_ACK,), S.COMPLETED),
    (S.COMPLETED, I.TIMER_D): ((), S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.TERMINATED),
    (S.ACCEPTED, I.SUCCESS): ((P.PASS_UP,), S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): ((), S.TERMINATED),
}

_NICT_TABLE: Table = {
    (S.IDLE, I.REQUEST_FROM_TU): ((P.SEND_REQUEST, P.START_E, P.START_F), S.TRYING),
    (S.TRYING, I.TIMER_E): ((P.SEND_REQUEST, P.DOUBLE_E), S.TRYING),
    (S.TRYING, I.TIMER_F): ((P.INFORM_TIMEOUT,), S.TERMINATED),
    (S.TRYING, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.TERMINATED),
    (S.TRYING, I.PROVISIONAL): ((P.PASS_UP,), S.PROCEEDING),
    (S.TRYING, I.SUCCESS): ((P.PASS_UP, P.START_K), S.COMPLETED),
    (S.TRYING, I.FAILURE): ((P.PASS_UP, P.START_K), S.COMPLETED),
    (S.PROCEEDING, I.TIMER_E): ((P.SEND_REQUEST, P.RESET_E_T2), S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): ((P.INFORM_TIMEOUT,), S.TERMINATED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.TERMINATED),
    (S.PROCEEDING, I.PROVISIONAL): ((P.PASS_UP,), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS): ((P.PASS_UP, P.START_K), S.COMPLETED),
    (S.PROCEEDING, I.FAILURE): ((P.PASS_UP, P.START_K), S.COMPLETED),
    # §17.1.2.2: "The "Completed" state exists to buffer any additional response
    # retransmissions that may be received".
    (S.COMPLETED, I.SUCCESS): ((), S.COMPLETED),
    (S.COMPLETED, I.FAILURE): ((), S.COMPLETED),
    (S.COMPLETED, I.TIMER_K): ((), S.TERMINATED),
}

_IST_TABLE: Table = {
    (S.IDLE, I.REQUEST): ((P.PASS_UP, P.SCHEDULE_TRYING), S.PROCEEDING),
    (S.PROCEEDING, I.REQUEST): ((P.RESEND_PROVISIONAL,), S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_TRYING): ((P.SEND_TRYING,), S.PROCEEDING),
    (S.PROCEEDING, I.PROVISIONAL_FROM_TU): ((P.STOP_TRYING, P.SEND_RESPONSE), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS_FROM_TU): ((P.SEND_RESPONSE, P.START_L), S.ACCEPTED),
    (S.PROCEEDING, I.FAILURE_FROM_TU): (
        (P.SEND_RESPONSE, P.START_G, P.START_H),
        S.COMPLETED,
    ),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.PROCEEDING),
    (S.COMPLETED, I.REQUEST): ((P.RESEND_RESPONSE,), S.COMPLETED),
    (S.COMPLETED, I.TIMER_G): ((P.RESEND_RESPONSE, P.DOUBLE_G), S.COMPLETED),
    (S.COMPLETED, I.ACK): ((P.START_I,), S.CONFIRMED),
    (S.COMPLETED, I.TIMER_H): ((P.INFORM_TIMEOUT,), S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.COMPLETED),
    # §17.2.1: "any ACKs that are received are simply absorbed".
    (S.CONFIRMED, I.ACK): ((), S.CONFIRMED),
    (S.CONFIRMED, I.REQUEST): ((), S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I): ((), S.TERMINATED),
    # RFC 6026 §7.1: retransmitted INVITEs "will be absorbed by the machine
    # without changing its state"; ACKs "MUST be passed directly to the TU".
    (S.ACCEPTED, I.REQUEST): ((), S.ACCEPTED),
    (S.ACCEPTED, I.ACK): ((P.PASS_UP,), S.ACCEPTED),
    (S.ACCEPTED, I.SUCCESS_FROM_TU): ((P.SEND_RESPONSE,), S.ACCEPTED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): ((), S.TERMINATED),
}

_NIST_TABLE: Table = {
    (S.IDLE, I.REQUEST): ((P.PASS_UP,), S.TRYING),
    # §17.2.2: "any retransmissions of the request received while in the
    # "Trying" state MUST be discarded".
    (S.TRYING, I.REQUEST): ((), S.TRYING),
    (S.TRYING, I.PROVISIONAL_FROM_TU): ((P.SEND_RESPONSE,), S.PROCEEDING),
    (S.TRYING, I.SUCCESS_FROM_TU): ((P.SEND_RESPONSE, P.START_J), S.COMPLETED),
    (S.TRYING, I.FAILURE_FROM_TU): ((P.SEND_RESPONSE, P.START_J), S.COMPLETED),
    (S.PROCEEDING, I.REQUEST): ((P.RESEND_RESPONSE,), S.PROCEEDING),
    (S.PROCEEDING, I.PROVISIONAL_FROM_TU): ((P.SEND_RESPONSE,), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS_FROM_TU): ((P.SEND_RESPONSE, P.START_J), S.COMPLETED),
    (S.PROCEEDING, I.FAILURE_FROM_TU): ((P.SEND_RESPONSE, P.START_J), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.TERMINATED),
    (S.COMPLETED, I.REQUEST): ((P.RESEND_RESPONSE,), S.COMPLETED),
    # §17.2.2: "any other final responses passed by the TU to the server
    # transaction MUST be discarded while in the "Completed" state".
    (S.COMPLETED, I.SUCCESS_FROM_TU): ((), S.COMPLETED),
    (S.COMPLETED, I.FAILURE_FROM_TU): ((), S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): ((), S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((P.INFORM_TRANSPORT_ERROR,), S.TERMINATED),
}

del S, I, P

# Timers each state owns: leaving a state cancels the ones the next state does not own.
_ICT_TIMERS: Mapping[State, frozenset[Timer]] = {
    State.CALLING: frozenset({Timer.A, Timer.B}),
    State.PROCEEDING: frozenset({Timer.CANCEL}),
    State.COMPLETED: frozenset({Timer.D}),
    State.ACCEPTED: frozenset({Timer.M}),
}
_NICT_TIMERS: Mapping[State, frozenset[Timer]] = {
    State.TRYING: frozenset({Timer.E, Timer.F}),
    State.PROCEEDING: frozenset({Timer.E, Timer.F}),
    State.COMPLETED: frozenset({Timer.K}),
}
_IST_TIMERS: Mapping[State, frozenset[Timer]] = {
    State.PROCEEDING: frozenset({Timer.TRYING}),
    State.COMPLETED: frozenset({Timer.G, Timer.H}),
    State.CONFIRMED: frozenset({Timer.I}),
    State.ACCEPTED: frozenset({Timer.L}),
}
_NIST_TIMERS: Mapping[State, frozenset[Timer]] = {State.COMPLETED: frozenset({Timer.J})}

_NO_TIMERS: frozenset[Timer] = frozenset()


# --------------------------------------------------------------------------- machines


class Transaction:
    """One transaction: its table, its state, its timers and its messages.

    ``request`` is the request that created the transaction (sent for client
    transactions, received for server ones), until ``release()``. ``reliable``
    is the transport's (``Endpoint.reliable``): no A/E/G retransmissions,
    D/I/J/K of zero.
    """

    __slots__ = (
        "_ack_bytes",
        "_provisional",
        "_request",
        "_request_bytes",
        "_response_bytes",
        "ack",
        "config",
        "input",
        "interval",
        "last_response",
        "method",
        "reliable",
        "state",
        "timers",
    )

    NAME: ClassVar[str] = "transaction"
    TABLE: ClassVar[Table]
    TIMERS: ClassVar[Mapping[State, frozenset[Timer]]]

    def __init__(self, request: Request, *, reliable: bool, config: TimerConfig) -> None:
        self._request: Request | None = request
        self.method = request.method
        self.reliable = reliable
        self.config = config
        self.state = State.IDLE
        self.input: Input | None = None  # the input being (or last) handled
        self.timers: dict[Timer, float] = {}
        self.interval = config.t1  # of the retransmission timer (A, E or G) last armed
        self.last_response: Response | None = None
        self.ack: Request | None = None
        self._request_bytes: bytes | None = None
        self._response_bytes: bytes | None = None
        self._provisional: tuple[Response, bytes] | None = None
        self._ack_bytes: bytes | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state.value}>"

    @property
    def request(self) -> Request:
        """The request that created the transaction; gone after ``release()``."""
        if self._request is None:
            raise TransactionError(f"{self.NAME} released its request ({self.state.value})")
        return self._request

    @property
    def released(self) -> bool:
        return self._request is None

    @property
    def response_to_tag(self) -> str | None:
        """The To tag of the last response sent, None if none (or untagged).

        Read back from the bytes kept after ``release()``: only a CANCEL that
        crosses the final response asks for it then.
        """
        if self.last_response is not None:
            return self.last_response.to_tag
        if self._response_bytes is None:
            return None
        return parse_message(self._response_bytes).to_tag

    def release(self) -> None:
        """Drop the parsed messages once only retransmissions are left to absorb.

        For the layer, in Completed, Confirmed, Accepted and Terminated: what
        those states still send (the last response, the ACK for a non-2xx) goes
        out as the bytes kept; an input that would need the request is not in
        their tables. Calling it again (after a 2xx retransmission in
        Accepted) drops what that input kept.
        """
        self._request = None
        self._request_bytes = None
        self._provisional = None
        self.last_response = None
        self.ack = None

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def allows(self, input_: Input) -> bool:
        """True when ``input_`` is in the table for the current state."""
        return (self.state, input_) in self.TABLE

    def fire(self, input_: Input, now: float, message: Message | None = None) -> list[Output]:
        """Apply one input at time ``now``; return what to do about it.

        ``message`` is the response received (client) or handed by the TU
        (server), or the request/ACK received (server).
        """
        transition = self.TABLE.get((self.state, input_))
        if transition is None:
            raise UnexpectedInput(self.NAME, self.state, input_)
        steps, next_state = transition
        self.input = input_
        if next_state is not self.state:
            keep = self.TIMERS.get(next_state, _NO_TIMERS)
            for timer in [t for t in self.timers if t not in keep]:
                del self.timers[timer]
            self.state = next_state
        out: list[Output] = []
        for step in steps:
            _STEPS[step](self, now, message, out)
        return out

    # -- step helpers --------------------------------------------------------------

    def _arm(self, timer: Timer, delay: float, now: float, out: list[Output]) -> None:
        deadline = now + delay
        self.timers[timer] = deadline
        out.append(TimerArmed(timer, deadline))

    def _transmit_request(self, out: list[Output]) -> None:
        request = self.request
        if self._request_bytes is None:
            self._request_bytes = request.to_bytes()
        out.append(Transmit(request, self._request_bytes))

    def _set_response(self, response: Response) -> bytes:
        data = response.to_bytes()
        self.last_response = response
        self._response_bytes = data
        if response.status < 200:
            self._provisional = (response, data)
        return data


# Each step: (machine, now, message, outputs) -> None.
StepFunction = Callable[[Transaction, float, Message | None, list[Output]], None]


def _send_request(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    tx._transmit_request(out)


def _send_ack(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    """RFC 3261 §17.1.1.3: the ACK for a non-2xx final response.

    "The ACK request constructed by the client transaction MUST contain values
    for the Call-ID, From, and Request-URI that are equal to the values of
    those header fields in the request passed to the transport by the client
    transaction (call this the "original request"). The To header field in the
    ACK MUST equal the To header field in the response being acknowledged. The
    ACK MUST contain a single Via header field, and this MUST be equal to the
    top Via header field of the original request. The CSeq header field in the
    ACK MUST contain the same value for the sequence number as was present in
    the original request, but the method parameter MUST be equal to "ACK"."
    "If the INVITE request whose response is being acknowledged had Route
    header fields, those header fields MUST appear in the ACK."

    Built once, from the first final response; retransmissions of that
    response resend the same ACK.
    """
    if tx._ack_bytes is None:
        assert isinstance(msg, Response)
        tx.ack = build_ack(tx.request, msg)
        tx._ack_bytes = tx.ack.to_bytes()
    out.append(Transmit(tx.ack, tx._ack_bytes))


def _send_response(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    assert isinstance(msg, Response)
    out.append(Transmit(msg, tx._set_response(msg)))


def _resend_response(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    if tx._response_bytes is not None:
        out.append(Transmit(tx.last_response, tx._response_bytes))


def _resend_provisional(
    tx: Transaction, now: float, msg: Message | None, out: list[Output]
) -> None:
    """§17.2.1: "If a request retransmission is received while in the "Proceeding"
    state, the most recent provisional response that was received from the TU
    MUST be passed to the transport layer for retransmission."

    With a delayed 100 Trying not yet sent, the retransmission shows the client
    is waiting: the 100 goes now.
    """
    if tx._provisional is not None:
        response, data = tx._provisional
        out.append(Transmit(response, data))
    else:
        _send_trying(tx, now, msg, out)


def _schedule_trying(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    """§17.2.1: "the server transaction MUST generate a 100 (Trying) response
    unless it knows that the TU will generate a provisional or final response
    within 200 ms, in which case it MAY generate a 100 (Trying) response"."""
    if tx.config.trying_delay == 0:
        _send_trying(tx, now, msg, out)
    else:
        tx._arm(Timer.TRYING, tx.config.trying_delay, now, out)


def _send_trying(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    tx.timers.pop(Timer.TRYING, None)
    trying = make_response(tx.request, 100)
    out.append(Transmit(trying, tx._set_response(trying)))


def _stop_trying(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    tx.timers.pop(Timer.TRYING, None)


def _pass_up(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    out.append(PassUp(msg if msg is not None else tx.request))


def _inform_timeout(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    assert tx.input is not None
    out.append(TimedOut(INPUT_TIMER[tx.input]))


def _inform_transport_error(
    tx: Transaction, now: float, msg: Message | None, out: list[Output]
) -> None:
    out.append(TransportFailed())


def _start_retransmit(timer: Timer) -> StepFunction:
    """A, E, G: T1 on unreliable transports, never on reliable ones (§17.1.1.2:
    "If an unreliable transport is being used, the client transaction MUST
    start timer A with a value of T1")."""

    def step(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
        if not tx.reliable:
            tx.interval = tx.config.t1
            tx._arm(timer, tx.interval, now, out)

    return step


def _double(timer: Timer, *, capped: bool) -> StepFunction:
    def step(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
        interval = 2 * tx.interval
        tx.interval = min(interval, tx.config.t2) if capped else interval
        tx._arm(timer, tx.interval, now, out)

    return step


def _reset_e_t2(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
    """§17.1.2.2: "If Timer E fires while in the "Proceeding" state, the request
    MUST be passed to the transport layer for retransmission, and Timer E MUST
    be reset with a value of T2 seconds."."""
    tx.interval = tx.config.t2
    tx._arm(Timer.E, tx.interval, now, out)


def _start_fixed(timer: Timer, delay: Callable[[TimerConfig, bool], float]) -> StepFunction:
    def step(tx: Transaction, now: float, msg: Message | None, out: list[Output]) -> None:
        tx._arm(timer, delay(tx.config, tx.reliable), now, out)

    return step


def _unreliable_only(value: Callable[[TimerConfig], float]) -> Callable[[TimerConfig, bool], float]:
    return lambda config, reliable: 0.0 if reliable else value(config)


_STEPS: Mapping[Step, StepFunction] = {
    Step.SEND_REQUEST: _send_request,
    Step.SEND_ACK: _send_ack,
    Step.SEND_RESPONSE: _send_response,
    Step.RESEND_RESPONSE: _resend_response,
    Step.RESEND_PROVISIONAL: _resend_provisional,
    Step.SCHEDULE_TRYING: _schedule_trying,
    Step.SEND_TRYING: _send_trying,
    Step.STOP_TRYING: _stop_trying,
    Step.PASS_UP: _pass_up,
    Step.INFORM_TIMEOUT: _inform_timeout,
    Step.INFORM_TRANSPORT_ERROR: _inform_transport_error,
    Step.START_A: _start_retransmit(Timer.A),
    Step.DOUBLE_A: _double(Timer.A, capped=False),
    Step.START_B: _start_fixed(Timer.B, lambda c, r: c.timeout),
    # §17.1.1.2: "a value of at least 32 seconds for unreliable transports,
    # and a value of zero seconds for reliable transports".
    Step.START_D: _start_fixed(Timer.D, _unreliable_only(lambda c: c.timer_d)),
    Step.START_E: _start_retransmit(Timer.E),
    Step.DOUBLE_E: _double(Timer.E, capped=True),
    Step.RESET_E_T2: _reset_e_t2,
    Step.START_F: _start_fixed(Timer.F, lambda c, r: c.timeout),
    Step.START_G: _start_retransmit(Timer.G),
    Step.DOUBLE_G: _double(Timer.G, capped=True),
    Step.START_H: _start_fixed(Timer.H, lambda c, r: c.timeout),
    # §17.2.1: "Timer I [...] with a value of T4 seconds for unreliable
    # transports, and zero seconds for reliable transports".
    Step.START_I: _start_fixed(Timer.I, _unreliable_only(lambda c: c.t4)),
    # §17.2.2: "Timer J [...] 64*T1 seconds for unreliable transports, and
    # zero seconds for reliable transports".
    Step.START_J: _start_fixed(Timer.J, _unreliable_only(lambda c: c.timeout)),
    # §17.1.2.2: "Timer K [...] T4 seconds for unreliable transports, and zero
    # seconds for reliable transports".
    Step.START_K: _start_fixed(Timer.K, _unreliable_only(lambda c: c.t4)),
    # RFC 6026 §7.1: "the state machine MUST transition to the "Accepted" state
    # and set Timer L to 64*T1"; §7.2: "set Timer M to 64*T1".
    Step.START_L: _start_fixed(Timer.L, lambda c, r: c.timeout),
    Step.START_M: _start_fixed(Timer.M, lambda c, r: c.timeout),
    Step.START_CANCEL: _start_fixed(Timer.CANCEL, lambda c, r: c.timeout),
}


class InviteClientTransaction(Transaction):
    """ICT: RFC 3261 §17.1.1, Figure 5, with RFC 6026 §7.2 (Accepted, Timer M).

    RFC 6026 §7.2: "A 2xx response received while in the "Accepted" state MUST be
    passed to the TU and the machine remains in the "Accepted" state. The client
    transaction MUST NOT generate an ACK to any 2xx response on its own."
    """

    __slots__ = ()

    NAME = "INVITE client transaction"
    TABLE = _ICT_TABLE
    TIMERS = _ICT_TIMERS


class NonInviteClientTransaction(Transaction):
    """NICT: RFC 3261 §17.1.2, Figure 6."""

    __slots__ = ()

    NAME = "non-INVITE client transaction"
    TABLE = _NICT_TABLE
    TIMERS = _NICT_TIMERS


class InviteServerTransaction(Transaction):
    """IST: RFC 3261 §17.2.1, Figure 7, with RFC 6026 §7.1 (Accepted, Timer L).

    RFC 6026 §7.1: "The server transaction MUST NOT generate 2xx retransmissions
    on its own. Any retransmission of the 2xx response passed from the TU to the
    transaction while in the "Accepted" state MUST be passed to the transport
    layer for transmission."
    """

    __slots__ = ()

    NAME = "INVITE server transaction"
    TABLE = _IST_TABLE
    TIMERS = _IST_TIMERS


class NonInviteServerTransaction(Transaction):
    """NIST: RFC 3261 §17.2.2, Figure 8."""

    __slots__ = ()

    NAME = "non-INVITE server transaction"
    TABLE = _NIST_TABLE
    TIMERS = _NIST_TIMERS


def client_transaction(request: Request, *, reliable: bool, config: TimerConfig) -> Transaction:
    """The client machine for ``request``: ICT for INVITE, NICT otherwise."""
    cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
    return cls(request, reliable=reliable, config=config)


def server_transaction(request: Request, *, reliable: bool, config: TimerConfig) -> Transaction:
    """The server machine for ``request``: IST for INVITE, NIST otherwise."""
    cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
    return cls(request, reliable=reliable, config=config)


# ------------------------------------------------------------------ derived requests


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a non-2xx final response (§17.1.1.3)."""
    return _derived_request(invite, "ACK", response.headers.get("To") or "")


def build_cancel(request: Request, extra: tuple[tuple[str, str], ...] = ()) -> Request:
    """RFC 3261 §9.1: the CANCEL for a pending request.

    "The Request-URI, Call-ID, To, the numeric part of CSeq, and From header
    fields in the CANCEL request MUST be identical to those in the request being
    cancelled, including tags. A CANCEL constructed by a client MUST have only a
    single Via header field value matching the top Via value in the request
    being cancelled." "If the request being cancelled contains a Route header
    field, the CANCEL request MUST include that Route header field's values."
    ``extra`` adds fields such as ``Reason`` (RFC 3326).
    """
    return _derived_request(request, "CANCEL", request.headers.get("To") or "", extra)


def _derived_request(
    request: Request, method: str, to: str, extra: tuple[tuple[str, str], ...] = ()
) -> Request:
    """What §17.1.1.3 (ACK) and §9.1 (CANCEL) both ask: the Request-URI, the top
    Via alone, From, Call-ID, the CSeq number and the Route fields of
    ``request``; ``to`` as To; then ``extra``."""
    headers = Headers()
    top_via = request.headers.get("Via")
    if top_via is not None:
        headers.add("Via", top_via)
    headers.add("Max-Forwards", "70")
    headers.add("From", request.headers.get("From") or "")
    headers.add("To", to)
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", str(CSeq(request.cseq.seq, method)))
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    for name, value in extra:
        headers.add(name, value)
    return Request(method, request.uri.copy(), headers)
