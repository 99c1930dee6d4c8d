"""REFER building blocks: Refer-To, Replaces, Referred-By, sipfrag NOTIFY bodies.

Parsing and building only; the B2BUA decides what a transfer does.

    Refer-To    = ("Refer-To" / "r") HCOLON ( name-addr / addr-spec ) *(SEMI generic-param)
                                                               (RFC 3515 §2.1)
    Replaces    = "Replaces" HCOLON callid *(SEMI replaces-param)
    replaces-param = to-tag / from-tag / early-flag / generic-param
    to-tag      = "to-tag" EQUAL token
    from-tag    = "from-tag" EQUAL token
    early-flag  = "early-only"                                 (RFC 3891 §6.1)
    Referred-By = ("Referred-By" / "b") HCOLON referrer-uri
                  *( SEMI (referredby-id-param / generic-param) )  (RFC 3892 §3)
    sipfrag     = start-line *message-header [ CRLF [ message-body ] ]  (RFC 3420)

In a Refer-To URI the Replaces header is escaped (``?Replaces=cid%40h%3Bto-tag%3D1``):
``refer_to_with_replaces`` escapes, ``ReferTo.replaces`` unescapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from switch.sip.dialog import Dialog, DialogState
from switch.sip.errors import SipError
from switch.sip.headers import NameAddr, parse_name_addr, parse_params
from switch.sip.message import Request
from switch.sip.uri import Uri

SIPFRAG = "message/sipfrag;version=2.0"


class BadReplaces(SipError):
    status_code = 400


# -------------------------------------------------------------------- Replaces


@dataclass(frozen=True, slots=True)
class Replaces:
    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    def __str__(self) -> str:
        early = ";early-only" if self.early_only else ""
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{early}"


def parse_replaces(value: str) -> Replaces:
    """RFC 3891 §6.1; the to-tag and from-tag are mandatory (§3: "MUST")."""
    call_id, _, rest = value.strip().partition(";")
    call_id = call_id.strip()
    if not call_id:
        raise BadReplaces("Bad Replaces")
    try:
        params = parse_params(rest) if rest else {}
    except SipError as err:
        raise BadReplaces("Bad Replaces") from err
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not to_tag or not from_tag:
        raise BadReplaces("Replaces lacks to-tag or from-tag")
    return Replaces(call_id, to_tag, from_tag, "early-only" in params)


def replaces_for(dialog: Dialog, *, early_only: bool = False) -> Replaces:
    """The Replaces naming ``dialog`` in an INVITE that goes to our *peer* in it.

    RFC 3891 §3: the to-tag and from-tag are those of the dialog as seen by the
    UA receiving the INVITE with Replaces. That UA is our peer, whose local tag
    is our remote tag: to-tag = our remote tag, from-tag = our local tag (what a
    transferor writes into the Refer-To of an attended transfer).
    """
    return Replaces(dialog.call_id, dialog.remote_tag, dialog.local_tag, early_only)


def names_dialog(replaces: Replaces, dialog: Dialog, *, either_way: bool = False) -> bool:
    """Whether ``replaces`` names ``dialog`` as seen by us (RFC 3891 §3: "the
    Call-ID, to-tag, and from-tag [...] match [...] the local tag is the to-tag
    and the remote tag is the from-tag").

    ``either_way`` also accepts the tags swapped: the dialog as the *far phone*
    sees it. A B2BUA stands in for that phone, and a BLF key builds its Replaces
    from the watched phone's dialog information (RFC 4235: to-tag = the phone's
    local tag), not from ours. Safe to accept: the Call-ID and both tags must
    still match, only the roles of the two tags are not checked.
    """
    if dialog.call_id != replaces.call_id:
        return False
    ours = (dialog.local_tag, dialog.remote_tag)
    if ours == (replaces.to_tag, replaces.from_tag):
        return True
    return either_way and ours == (replaces.from_tag, replaces.to_tag)


class ReplacesOutcome:
    """How an INVITE with Replaces is answered (RFC 3891 §3)."""

    REPLACE = 0  # go on: the matched dialog is replaced
    NO_DIALOG = 481
    EARLY_ONLY_CONFIRMED = 486
    UAS_EARLY = 481  # early dialog we did not initiate: must not be replaced
    DECLINE = 603


@dataclass(frozen=True, slots=True)
class ReplacesMatch:
    status: int  # 0 to go on, else the response status
    dialog: Dialog | None
    because: str


def match_replaces(
    replaces: Replaces, dialogs: Iterable[Dialog], *, either_way: bool = False
) -> ReplacesMatch:
    """RFC 3891 §3 rules for the UA receiving the INVITE with Replaces.

    Dialog match: "the Call-ID, to-tag, and from-tag [...] match [...] the
    local tag is the to-tag and the remote tag is the from-tag".

    - no match, or a terminated dialog: "the UAS MUST [...] respond with a 481";
    - "If the Replaces header field matches a confirmed dialog, and the
      early-only flag is present, the UA MUST NOT replace the dialog and MUST
      return a 486 Busy response";
    - "If the Replaces header field matches an early dialog that was not
      initiated by this UA, it returns a 481 (Call/Transaction Does Not Exist)"
      (an early dialog we are the UAS of: a ringing call is picked up through
      the B2BUA with a new INVITE, not replaced);
    - a confirmed or early (UAC-side) dialog otherwise matches.

    ``either_way``: see ``names_dialog``.
    """
    for dialog in dialogs:
        if names_dialog(replaces, dialog, either_way=either_way):
            if dialog.state is DialogState.TERMINATED:
                return ReplacesMatch(481, dialog, "dialog terminated")
            if dialog.state is DialogState.CONFIRMED and replaces.early_only:
                return ReplacesMatch(486, dialog, "early-only on a confirmed dialog")
            if dialog.state is DialogState.EARLY and not dialog.is_uac:
                return ReplacesMatch(481, dialog, "early dialog not initiated by us")
            return ReplacesMatch(0, dialog, f"replaces {dialog.state.value} dialog")
    return ReplacesMatch(481, None, "no such dialog")


# -------------------------------------------------------------------- Refer-To

# URI header values are escaped (RFC 3261 §19.1.1 "hvalue"); keep what a
# header value needs literally and escape the rest (";", "=", "@", "%"...).
_HVALUE_SAFE = "-_.!~*'()[]/:+$"


@dataclass(frozen=True, slots=True)
class ReferTo:
    address: NameAddr

    @property
    def uri(self) -> Uri:
        return self.address.uri

    @property
    def replaces(self) -> Replaces | None:
        raw = next(
            (v for k, v in self.address.uri.headers.items() if k.lower() == "replaces"), None
        )
        return parse_replaces(unquote(raw)) if raw is not None else None

    def target(self) -> Uri:
        """The URI to INVITE, without its ``?headers`` (RFC 3515 §2.4.2)."""
        uri = self.address.uri.copy()
        uri.headers.clear()
        return uri

    def __str__(self) -> str:
        return str(self.address)


def parse_refer_to(value: str) -> ReferTo:
    """RFC 3515 §2.1; exactly one Refer-To is required (§2.4.1: else 400)."""
    return ReferTo(parse_name_addr(value))


def refer_to(target: Uri, replaces: Replaces | None = None) -> str:
    """A Refer-To value, with ``Replaces`` escaped into the URI (RFC 3891 §7)."""
    uri = target.copy()
    if replaces is not None:
        uri.headers["Replaces"] = quote(str(replaces), safe=_HVALUE_SAFE)
    return f"<{uri}>"


def refer_to_of(request: Request) -> ReferTo:
    values = request.headers.get_all("Refer-To")
    if len(values) != 1:
        raise SipError("Exactly one Refer-To", status_code=400)
    return parse_refer_to(values[0])


# ----------------------------------------------------------------- Referred-By


@dataclass(frozen=True, slots=True)
class ReferredBy:
    address: NameAddr

    @property
    def cid(self) -> str | None:
        return self.address.params.get("cid")

    def __str__(self) -> str:
        return str(self.address)


def parse_referred_by(value: str) -> ReferredBy:
    return ReferredBy(parse_name_addr(value))


# ------------------------------------------------------------ sipfrag NOTIFY


@dataclass(frozen=True, slots=True)
class SipFrag:
    """The status line of a ``message/sipfrag`` NOTIFY body (RFC 3515 §2.4.5)."""

    status: int
    reason: str

    @property
    def final(self) -> bool:
        return self.status >= 200

    def to_bytes(self) -> bytes:
        return f"SIP/2.0 {self.status} {self.reason}\r\n".encode()


def parse_sipfrag(body: bytes) -> SipFrag:
    """RFC 3515 §2.4.5: "the body of a NOTIFY MUST begin with a SIP Response
    Status-Line"; the rest of the fragment is ignored."""
    line = body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    parts = line.split(" ", 2)
    if (
        len(parts) < 2
        or parts[0].upper() != "SIP/2.0"
        or not parts[1].isdigit()
        or (len(parts[1]) != 3)
    ):
        raise SipError("Bad sipfrag", status_code=400)
    return SipFrag(int(parts[1]), parts[2] if len(parts) > 2 else "")


def subscription_state(frag: SipFrag, *, expires: int = 60) -> str:
    """RFC 3515 §2.4.7: the final NOTIFY terminates the implicit subscription."""
    if frag.final:
        return "terminated;reason=noresource"
    return f"active;expires={expires}"


def notify_headers(
    frag: SipFrag, *, refer_cseq: int | None = None, expires: int = 60
) -> list[tuple[str, str]]:
    """Event (with the REFER's CSeq as id for a second REFER, §2.4.6),
    Subscription-State and Content-Type of a REFER progress NOTIFY."""
    event = "refer" if refer_cseq is None else f"refer;id={refer_cseq}"
    return [
        ("Event", event),
        ("Subscription-State", subscription_state(frag, expires=expires)),
        ("Content-Type", SIPFRAG),
    ]
