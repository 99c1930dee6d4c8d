"""Dialogs (RFC 3261 §12): the state two user agents share between requests.

A dialog is identified by (Call-ID, local tag, remote tag) and holds what an
in-dialog request is built from: the local and remote URIs (From/To), the local
CSeq, the remote target (the peer's Contact) and the route set.

Creation (§12.1):

- UAC side, from a response to the dialog-creating request: a 1xx with a To tag
  makes an **early** dialog, a 2xx a **confirmed** one (§12.1.2). "The route set
  MUST be set to the list of URIs in the Record-Route header field from the
  response, taken in reverse order"; "The remote target MUST be set to the URI
  from the Contact header field of the response".
- UAS side, when sending a 1xx/2xx with its To tag (§12.1.1): "The route set
  MUST be set to the list of URIs in the Record-Route header field from the
  request, taken in order"; remote target = the request's Contact.

States (a dialog only moves forward; a missing pair is refused)::

    EARLY --2xx--> CONFIRMED --BYE--> TERMINATED
      |                                  ^
      +--------- non-2xx final ----------+

Via. ``create_request`` stamps ``Via: SIP/2.0/<transport> <sent-by>`` from the
``via`` the caller passes (the stack knows which transport and sent-by it will
use), without a branch: the transaction layer adds the branch (or the caller
adds one, as the ACK for a 2xx does). Without ``via`` the request has no Via and
the caller must prepend one before ``TransactionLayer.send_request``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from switch.sip.errors import SipError
from switch.sip.headers import CSeq, NameAddr, parse_name_addr
from switch.sip.message import Headers, Request, Response
from switch.sip.uri import Uri

MAX_FORWARDS = "70"

# Requests that refresh the remote target (RFC 3261 §12.2: re-INVITE; RFC 3311
# §5.2: UPDATE; RFC 6665 §4.1: SUBSCRIBE/NOTIFY are target refreshes too).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

# RFC 3261 §19.1.1 Table 1: parameters not allowed in a Request-URI.
_NOT_IN_REQUEST_URI = frozenset({"method"})


class DialogError(SipError):
    """A dialog rule was broken; ``status_code`` is the answer to send."""


class CSeqOutOfOrder(DialogError):
    """§12.2.2: "If the remote sequence number was not empty, but the sequence
    number of the request is lower than the remote sequence number, the request
    is out of order and MUST be rejected with a 500 (Server Internal Error)"."""

    status_code = 500


class NoSuchDialog(DialogError):
    """§12.2.2: "If the UAS wishes to reject the request because it does not wish
    to recreate the dialog, it MUST respond to the request with a 481"."""

    status_code = 481


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(enum.Enum):
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    BYE = "BYE"


# (state, input) -> next state. Anything else is refused (DialogError).
TRANSITIONS: dict[tuple[DialogState, DialogInput], DialogState] = {
    (DialogState.EARLY, DialogInput.PROVISIONAL): DialogState.EARLY,
    (DialogState.EARLY, DialogInput.SUCCESS): DialogState.CONFIRMED,
    # §12.3: "an early dialog [...] terminated by a non-2xx final response".
    (DialogState.EARLY, DialogInput.FAILURE): DialogState.TERMINATED,
    (DialogState.EARLY, DialogInput.BYE): DialogState.TERMINATED,
    # RFC 6026 §7.2: further 2xx retransmissions leave the dialog confirmed.
    (DialogState.CONFIRMED, DialogInput.SUCCESS): DialogState.CONFIRMED,
    (DialogState.CONFIRMED, DialogInput.BYE): DialogState.TERMINATED,
    (DialogState.TERMINATED, DialogInput.BYE): DialogState.TERMINATED,
}


@dataclass(frozen=True, slots=True)
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str


def incoming_dialog_id(message: Request | Response, *, received_as_uas: bool) -> DialogId:
    """The dialog id a received message names, from our point of view.

    §12.2.2: for a request we receive, "the local tag [is] the To tag and the
    remote tag the From tag"; for a response to our request, local = From tag,
    remote = To tag.
    """
    if received_as_uas:
        return DialogId(message.call_id, message.to_tag or "", message.from_tag or "")
    return DialogId(message.call_id, message.from_tag or "", message.to_tag or "")


def _contact_uri(message: Request | Response) -> Uri | None:
    raw = message.headers.get("Contact")
    if raw is None:
        return None
    return parse_name_addr(raw).uri


def _with_tag(value: str, tag: str | None) -> NameAddr:
    addr = parse_name_addr(value)
    if tag is not None and addr.tag is None:
        addr.params["tag"] = tag
    return addr


@dataclass(slots=True)
class Dialog:
    """One dialog, either side. Build it with ``as_uac`` or ``as_uas``."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr  # our From (tag included)
    remote_uri: NameAddr  # our To (tag included)
    remote_target: Uri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY
    is_uac: bool = True  # the side that sent the dialog-creating request
    local_contact: str | None = None

    # ------------------------------------------------------------------ creation

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """§12.1.2: the dialog our ``request`` created, from ``response`` (1xx
        with a To tag: early; 2xx: confirmed)."""
        if response.to_tag is None or not (101 <= response.status < 300):
            raise ValueError("a dialog needs a 101-299 response with a To tag")
        target = _contact_uri(response) or request.uri.copy()
        routes = [parse_name_addr(v) for v in reversed(response.headers.get_all("Record-Route"))]
        state = DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY
        return cls(
            call_id=request.call_id,
            local_tag=request.from_tag or "",
            remote_tag=response.to_tag,
            local_uri=parse_name_addr(request.headers.get("From") or ""),
            remote_uri=parse_name_addr(response.headers.get("To") or ""),
            remote_target=target,
            route_set=routes,
            local_seq=request.cseq.seq,
            remote_seq=None,  # "The remote sequence number MUST be empty."
            secure=request.uri.scheme == "sips",
            state=state,
            is_uac=True,
            local_contact=request.headers.get("Contact"),
        )

    @classmethod
    def as_uas(
        cls,
        request: Request,
        local_tag: str,
        *,
        state: DialogState = DialogState.EARLY,
        local_contact: str | None = None,
    ) -> Dialog:
        """§12.1.1: the dialog we create by answering ``request`` with a 1xx
        (early) or 2xx (confirmed) carrying ``local_tag`` in To."""
        target = _contact_uri(request)
        if target is None:
            raise NoSuchDialog("Missing Contact", status_code=400)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_tag or "",
            local_uri=_with_tag(request.headers.get("To") or "", local_tag),
            remote_uri=parse_name_addr(request.headers.get("From") or ""),
            remote_target=target,
            route_set=[parse_name_addr(v) for v in request.headers.get_all("Record-Route")],
            local_seq=None,  # "The local sequence number MUST be empty."
            remote_seq=request.cseq.seq,
            secure=request.uri.scheme == "sips",
            state=state,
            is_uac=False,
            local_contact=local_contact,
        )

    # ------------------------------------------------------------------- identity

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    def matches_request(self, request: Request) -> bool:
        """§12.2.2: a request we receive belongs here when its Call-ID, To tag
        (our local tag) and From tag (the remote tag) match."""
        return (
            request.call_id == self.call_id
            and request.to_tag == self.local_tag
            and request.from_tag == self.remote_tag
        )

    def matches_response(self, response: Response) -> bool:
        return (
            response.call_id == self.call_id
            and response.from_tag == self.local_tag
            and response.to_tag == self.remote_tag
        )

    # ---------------------------------------------------------------------- state

    def advance(self, input_: DialogInput) -> DialogState:
        nxt = TRANSITIONS.get((self.state, input_))
        if nxt is None:
            raise DialogError(f"dialog {self.state.value} cannot take {input_.value}")
        self.state = nxt
        return nxt

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    # ------------------------------------------------------------------- receiving

    def receive_request(self, request: Request) -> None:
        """Apply §12.2.2 to a request that matched this dialog.

        Raises ``CSeqOutOfOrder`` (500). ACK and CANCEL reuse the number of
        the request they belong to and are not checked. A target refresh
        request with a Contact updates the remote target.
        """
        if request.method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            raise CSeqOutOfOrder("CSeq out of order")
        self.remote_seq = seq
        if request.method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request)
            if target is not None:
                # §12.2.2: "it MAY replace the dialog's remote target URI with
                # the URI from the Contact header field in that request."
                self.remote_target = target

    def receive_response(self, request: Request, response: Response) -> None:
        """§12.2.1.2: "When a UAC receives a 2xx response to a target refresh
        request, it MUST replace the dialog's remote target URI with the URI
        from the Contact header field in that response, if present." (A 1xx with
        a To tag refreshes an early dialog's target too, §12.1.2.)"""
        if request.method in TARGET_REFRESH_METHODS and 101 <= response.status < 300:
            target = _contact_uri(response)
            if target is not None:
                self.remote_target = target

    # -------------------------------------------------------------------- sending

    def next_cseq(self) -> int:
        """§12.2.1.1: "the local sequence number MUST be incremented by one"
        (an empty one starts at 1 here; the UAC side starts after its INVITE)."""
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self.local_seq

    def request_target(self) -> tuple[Uri, list[str]]:
        """The Request-URI and Route values for a request in this dialog.

        §12.2.1.1: "If the route set is empty, the UAC MUST place the remote
        target URI into the Request-URI. The UAC MUST NOT add a Route header
        field to the request." "If the route set is not empty, and the first URI
        in the route set contains the lr parameter [...], the UAC MUST place the
        remote target URI into the Request-URI and MUST include a Route header
        field containing the route set values in order". "If the route set is
        not empty, and its first URI does not contain the lr parameter, the UAC
        MUST place the first URI from the route set into the Request-URI,
        stripping any parameters that are not allowed in a Request-URI. The UAC
        MUST add a Route header field containing the remainder of the route set
        values in order, including all parameters. The UAC MUST then place the
        remote target URI into the Route header field as the last value."
        """
        if not self.route_set:
            return self.remote_target.copy(), []
        first = self.route_set[0]
        if "lr" in first.uri.params:
            return self.remote_target.copy(), [str(r) for r in self.route_set]
        uri = first.uri.copy()
        for name in _NOT_IN_REQUEST_URI:
            uri.params.pop(name, None)
        uri.headers.clear()
        routes = [str(r) for r in self.route_set[1:]]
        routes.append(f"<{self.remote_target}>")
        return uri, routes

    def next_hop(self) -> Uri:
        """Where the request goes (RFC 3261 §8.1.2 then RFC 3263): the first
        Route if any, else the Request-URI."""
        if self.route_set and "lr" in self.route_set[0].uri.params:
            return self.route_set[0].uri.copy()
        return self.request_target()[0]  # strict route: the first route; none: target

    def create_request(
        self,
        method: str,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
        via: tuple[str, str] | None = None,
    ) -> Request:
        """Build a request within this dialog (§12.2.1.1).

        ``cseq`` forces the number (ACK and CANCEL reuse their request's; PRACK
        does not); otherwise the local CSeq is incremented. ``via`` is
        ``(transport, sent-by)``, e.g. ``("UDP", "192.0.2.10:5060")``.
        """
        if cseq is None:
            cseq = self.next_cseq()
        uri, routes = self.request_target()
        headers = Headers()
        if via is not None:
            headers.add("Via", f"SIP/2.0/{via[0].upper()} {via[1]}")
        headers.add("Max-Forwards", MAX_FORWARDS)
        headers.add("From", str(self.local_uri))
        headers.add("To", str(self.remote_uri))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", str(CSeq(cseq, method)))
        for route in routes:
            headers.add("Route", route)
        if self.local_contact is not None and method in TARGET_REFRESH_METHODS:
            headers.add("Contact", self.local_contact)
        for name, value in extra:
            headers.add(name, value)
        if body and content_type is not None:
            headers.add("Content-Type", content_type)
        return Request(method, uri, headers, body)


class DialogSet:
    """The dialogs of one stack (or one leg), found by their id.

    Forking (§12.1.2, §13.2.2.4) gives one early dialog per To tag for the same
    INVITE: they are separate entries here.
    """

    __slots__ = ("_dialogs",)

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def add(self, dialog: Dialog) -> Dialog:
        self._dialogs[dialog.id] = dialog
        return dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def match_request(self, request: Request) -> Dialog | None:
        """The dialog a received in-dialog request belongs to, or None (→ 481)."""
        if request.to_tag is None:
            return None
        return self._dialogs.get(incoming_dialog_id(request, received_as_uas=True))

    def match_response(self, response: Response) -> Dialog | None:
        return self._dialogs.get(incoming_dialog_id(response, received_as_uas=False))

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __len__(self) -> int:
        return len(self._dialogs)
