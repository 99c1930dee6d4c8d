"""What an ``InviteSession`` (one call leg) tells the B2BUA, as past facts.

``InviteSession.next_event()`` returns these in the order they happened. Every
event that carries a session description says what it is (``Sdp.kind``: an
offer to answer, or the answer to our offer, RFC 3264 / RFC 6337); the body
itself is opaque here (``media.sdp`` parses it).

    SessionEvent
     ├── ProvisionalReceived      UAC: a 1xx (early dialog when it has a To tag)
     ├── CallAnswered             UAC: the 2xx of the chosen dialog (ACK sent,
     │                            or waiting for ``ack(answer)`` when it offers)
     ├── CallFailed               UAC: final non-2xx, timeout or transport error
     ├── CallCancelled            UAS: CANCEL received, 487 sent
     ├── CallConfirmed            UAS: the ACK for our 2xx arrived
     ├── PrackReceived            UAS: a PRACK acknowledged a reliable 1xx
     ├── InDialogRequestReceived  a re-INVITE, UPDATE, INFO, REFER... to answer
     │                            with ``respond_to``
     ├── InDialogResponseReceived the final response to our re-INVITE, UPDATE...
     ├── RetryScheduled           our re-INVITE/UPDATE got 491 (or 500 with
     │                            Retry-After); it is re-sent at ``retry_at``
     ├── SessionTimerStarted      RFC 4028 negotiated an interval and refresher
     └── SessionEnded             the leg is over (BYE either way, ACK timeout,
                                  session expiry, cancel race...): release media
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.sip.dialog import DialogId
from switch.sip.message import Request, Response


@dataclass(slots=True)
class Sdp:
    """A session description and its offer/answer role."""

    kind: str  # "offer" | "answer"
    body: bytes
    content_type: str = "application/sdp"


@dataclass(slots=True)
class ProvisionalReceived:
    response: Response
    dialog_id: DialogId | None  # None for a 1xx without To tag (100 Trying)
    sdp: Sdp | None
    reliable: bool = False


@dataclass(slots=True)
class CallAnswered:
    response: Response
    dialog_id: DialogId
    sdp: Sdp | None
    # True when the 2xx carried an offer: the ACK waits for ``ack(answer)``.
    awaiting_answer: bool = False


@dataclass(slots=True)
class CallFailed:
    status: int  # 408 for a timeout, 503 for a transport error (RFC 3261 §8.1.3.1)
    response: Response | None


@dataclass(slots=True)
class CallCancelled:
    cancel: Request


@dataclass(slots=True)
class CallConfirmed:
    ack: Request
    sdp: Sdp | None


@dataclass(slots=True)
class PrackReceived:
    prack: Request
    sdp: Sdp | None


@dataclass(slots=True)
class InDialogRequestReceived:
    request: Request
    sdp: Sdp | None


@dataclass(slots=True)
class InDialogResponseReceived:
    request: Request
    response: Response
    sdp: Sdp | None


@dataclass(slots=True)
class RetryScheduled:
    method: str
    status: int
    retry_at: float


@dataclass(slots=True)
class SessionTimerStarted:
    interval: int
    refresher: str  # "uac" | "uas", RFC 4028 §4
    we_refresh: bool


@dataclass(slots=True)
class SessionEnded:
    """The leg is over. ``reason`` is one of: ``bye-received``, ``bye-sent``,
    ``ack-timeout``, ``session-expired``, ``refresh-failed``, ``cancelled``,
    ``rejected``, ``failed``, ``prack-timeout``, ``fork-released``."""

    reason: str
    status: int | None = None


SessionEvent = (
    ProvisionalReceived
    | CallAnswered
    | CallFailed
    | CallCancelled
    | CallConfirmed
    | PrackReceived
    | InDialogRequestReceived
    | InDialogResponseReceived
    | RetryScheduled
    | SessionTimerStarted
    | SessionEnded
)
