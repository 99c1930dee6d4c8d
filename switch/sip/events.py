"""What the transaction layer tells its TU, as facts in the past tense.

``TransactionLayer.next_event()`` returns these, one at a time, in the order
they happened. They are small slotted dataclasses, read-only by convention
(not ``frozen``: a frozen dataclass's ``__init__`` sets every field through
``object.__setattr__``, a cost paid on every message); the messages they carry are
the layer's own parsed objects (do not mutate a request you still expect the
layer to answer from, e.g. a server transaction's request).

    Event
     ├── RequestReceived          a new server transaction (not ACK, not CANCEL)
     ├── AckReceived              ACK for a 2xx, a stray ACK, or an ACK an
     │                            Accepted INVITE server transaction passed up
     ├── CancelReceived           a CANCEL matched a pending INVITE server
     │                            transaction (the layer already answered 200)
     ├── ResponseReceived         a response a client transaction passed up
     ├── StrayResponseReceived    a response no client transaction matched
     ├── TransactionTimedOut      Timer B, F or H fired (or §9.1 CANCEL wait)
     ├── TransportErrorOccurred   §17.1.4 / §17.2.4: the transport failed
     └── TransactionTerminated    the transaction is gone (any reason)
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.sip.endpoint import Endpoint
from switch.sip.message import Request, Response
from switch.sip.transaction import ClientKey, ServerKey, TransactionKey


@dataclass(slots=True)
class RequestReceived:
    """A request created server transaction ``key``; answer it with
    ``TransactionLayer.send_response``. Its top Via carries ``received`` /
    ``rport`` already (RFC 3261 §18.2.1, RFC 3581)."""

    request: Request
    source: Endpoint
    key: ServerKey


@dataclass(slots=True)
class AckReceived:
    """An ACK the transaction layer does not absorb.

    ``key`` is None for an ACK that matched no server transaction: the ACK for a
    2xx (its own branch, RFC 3261 §17.1.1.3) or a stray one. It is the INVITE
    server transaction's key when that transaction, in the Accepted state, passed
    the ACK up (RFC 6026 §7.1: "Any ACKs received from the network while in the
    "Accepted" state MUST be passed directly to the TU and not absorbed").
    """

    request: Request
    source: Endpoint
    key: ServerKey | None = None


@dataclass(slots=True)
class CancelReceived:
    """A CANCEL matched INVITE server transaction ``invite_key``, still pending.

    The layer has answered the CANCEL with 200 itself (RFC 3261 §9.2). The TU
    SHOULD now answer the INVITE: "the UAS SHOULD respond to the INVITE with a
    487 (Request Terminated)".
    """

    invite_key: ServerKey
    cancel_request: Request


@dataclass(slots=True)
class ResponseReceived:
    """Client transaction ``key`` passed a response up: a provisional, the final
    response, or (INVITE, Accepted state) any further 2xx (RFC 6026 §7.2)."""

    response: Response
    key: ClientKey


@dataclass(slots=True)
class StrayResponseReceived:
    """A response that matched no client transaction (RFC 3261 §18.1.2).

    A 2xx to an INVITE after Timer M is the case a UA cares about (its ACK may
    have been lost); anything else can be dropped.
    """

    response: Response
    source: Endpoint


@dataclass(slots=True)
class TransactionTimedOut:
    """Timer B (INVITE client), F (non-INVITE client) or H (INVITE server, no
    ACK) fired, or an INVITE got no final response 64*T1 after its CANCEL
    (RFC 3261 §9.1). For a client transaction the TU treats this as a 408."""

    key: TransactionKey
    method: str


@dataclass(slots=True)
class TransportErrorOccurred:
    """The transport failed for transaction ``key`` (RFC 3261 §17.1.4, §17.2.4:
    "the client transaction SHOULD inform the TU that a transport failure has
    occurred"). A client transaction is terminated; an INVITE server transaction
    stays where it was (RFC 6026 Figure 5)."""

    key: TransactionKey


@dataclass(slots=True)
class TransactionTerminated:
    """Transaction ``key`` reached the Terminated state and was destroyed
    (§17.1.1.2: "The client transaction MUST be destroyed the instant it enters
    the "Terminated" state")."""

    key: TransactionKey


Event = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | StrayResponseReceived
    | TransactionTimedOut
    | TransportErrorOccurred
    | TransactionTerminated
)
