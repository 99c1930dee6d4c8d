"""Session timers (RFC 4028): negotiation, refresher choice, deadlines.

    Session-Expires  =  ("Session-Expires" / "x") HCOLON delta-seconds
                        *(SEMI se-params)
    se-params        =  refresher-param / generic-param
    refresher-param  =  "refresher" EQUAL  ("uas" / "uac")
    Min-SE  =  "Min-SE" HCOLON delta-seconds *(SEMI generic-param)

Rules applied (quoted where enforced):

- §4: the minimum is 90 s: "The Min-SE header field MUST NOT be less than 90".
- §8.1 / §9: a Session-Expires below our minimum is answered 422 with Min-SE.
- §9: the UAS picks the refresher when the UAC did not; "If the UAC did not
  support session timers [...] the refresher parameter [...] MUST be set to
  'uas'": the switch refreshes for a phone without ``Supported: timer``.
- §10: "the refresher SHOULD send a refresh [...] at half the session interval";
  the other side sends BYE "before the session expiration", at
  ``interval - min(32, interval / 3)``.

Choice: when the switch as UAC asked for a timer and the 2xx carries no
Session-Expires (the peer ignores RFC 4028), §7.2 says there is no expiration;
``uac_negotiated(..., refresh_anyway=True)`` makes the switch refresh anyway at
its requested interval, as a liveness check of the peer.
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.sip.errors import SipError
from switch.sip.headers import parse_params
from switch.sip.message import Request, Response

MIN_SE_FLOOR = 90
DEFAULT_SESSION_EXPIRES = 1800


class IntervalTooSmall(SipError):
    """§9: "If the Session-Expires [...] is smaller than the minimum [...] the UAS
    MUST reject the request with a 422 response [...] with a Min-SE header
    field containing its minimum allowed value"."""

    status_code = 422

    def __init__(self, min_se: int) -> None:
        super().__init__("Session Interval Too Small")
        self.min_se = min_se


@dataclass(slots=True)
class SessionExpires:
    interval: int
    refresher: str | None = None  # "uac" | "uas"

    def __str__(self) -> str:
        return (
            f"{self.interval};refresher={self.refresher}" if self.refresher else str(self.interval)
        )


def supports_timer(message: Request | Response) -> bool:
    """``timer`` in Supported or Require (RFC 4028 §3)."""
    headers = message.headers
    return "timer" in headers.tokens("Supported") or "timer" in headers.tokens("Require")


def parse_session_expires(value: str) -> SessionExpires:
    head, _, rest = value.strip().partition(";")
    if not head.strip().isdigit():
        raise SipError("Bad Session-Expires", status_code=400)
    params = parse_params(rest) if rest else {}
    refresher = params.get("refresher")
    if refresher is not None:
        refresher = refresher.lower()
        if refresher not in ("uac", "uas"):
            raise SipError("Bad refresher", status_code=400)
    return SessionExpires(int(head), refresher)


def session_expires_of(message: Request | Response) -> SessionExpires | None:
    raw = message.headers.get("Session-Expires")
    return parse_session_expires(raw) if raw is not None else None


def min_se_of(message: Request | Response) -> int | None:
    raw = message.headers.get("Min-SE")
    if raw is None:
        return None
    head = raw.split(";", 1)[0].strip()
    if not head.isdigit():
        raise SipError("Bad Min-SE", status_code=400)
    return int(head)


@dataclass(slots=True)
class Negotiated:
    interval: int
    refresher: str  # "uac" | "uas"
    # whether the peer understood RFC 4028 (decides Require: timer in a 2xx)
    peer_supports: bool = True


def uac_request_headers(
    interval: int, min_se: int, refresher: str | None = None
) -> list[tuple[str, str]]:
    """§7.1: what an INVITE (or refresh) carries: Supported, Session-Expires, Min-SE."""
    return [
        ("Session-Expires", str(SessionExpires(interval, refresher))),
        ("Min-SE", str(min_se)),
    ]


def uas_negotiate(
    request: Request,
    *,
    local_min_se: int = MIN_SE_FLOOR,
    local_interval: int | None = DEFAULT_SESSION_EXPIRES,
) -> Negotiated | None:
    """What the UAS answers (§9). Raises ``IntervalTooSmall`` (422).

    Returns None when no timer applies (none requested, none wanted locally).
    """
    local_min_se = max(local_min_se, MIN_SE_FLOOR)
    requested = session_expires_of(request)
    peer = supports_timer(request)
    floor = max(local_min_se, min_se_of(request) or 0)
    if requested is not None:
        if requested.interval < local_min_se:
            raise IntervalTooSmall(local_min_se)
        interval = requested.interval
        if local_interval is not None:
            # §9: "the UAS MAY reduce the interval", never below Min-SE.
            interval = max(min(interval, local_interval), floor)
        refresher = requested.refresher
    elif local_interval is not None:
        interval = max(local_interval, floor)
        refresher = None
    else:
        return None
    if not peer:
        refresher = "uas"
    elif refresher is None:
        # The phone supports timers and did not choose: let it refresh.
        refresher = "uac"
    return Negotiated(interval, refresher, peer)


def uas_response_headers(negotiated: Negotiated) -> list[tuple[str, str]]:
    """§9: Session-Expires with the refresher; ``Require: timer`` only when the
    UAC supports it ("the UAS MUST [...] include a Require header field with
    the value 'timer'" is for a UAC that listed it in Supported)."""
    headers = [("Session-Expires", str(SessionExpires(negotiated.interval, negotiated.refresher)))]
    if negotiated.peer_supports:
        headers.append(("Require", "timer"))
    return headers


def uac_negotiated(
    response: Response, requested: int, *, refresh_anyway: bool = True
) -> Negotiated | None:
    """§7.2: the timer a 2xx sets for the UAC."""
    se = session_expires_of(response)
    if se is None:
        return Negotiated(requested, "uac", False) if refresh_anyway else None
    # §7.2: "If the refresher parameter [...] is missing [...] the UAC [is] the
    # refresher" is how the UAS would have filled it; a missing one means uac.
    return Negotiated(se.interval, se.refresher or "uac", True)


def interval_after_422(response: Response, current: int) -> int:
    """§7.1: retry with "a Session-Expires [...] equal to the Min-SE" of the 422."""
    min_se = min_se_of(response) or MIN_SE_FLOOR
    return max(current, min_se, MIN_SE_FLOOR)


def expiry_margin(interval: float) -> float:
    """§10: BYE "prior to the session expiration [...] the minimum of 32 seconds
    and one third of the session interval"."""
    return min(32.0, interval / 3)


@dataclass(slots=True)
class SessionTimer:
    """The running timer of one leg: one deadline, refresh or expiry."""

    interval: int
    refresher: str
    we_refresh: bool
    started_at: float

    @property
    def refresh_at(self) -> float | None:
        return self.started_at + self.interval / 2 if self.we_refresh else None

    @property
    def expire_at(self) -> float:
        return self.started_at + self.interval - expiry_margin(self.interval)

    def deadline(self) -> float:
        at = self.refresh_at
        return at if at is not None else self.expire_at

    def restart(self, negotiated: Negotiated, we_are_uac: bool, now: float) -> None:
        self.interval = negotiated.interval
        self.refresher = negotiated.refresher
        self.we_refresh = (negotiated.refresher == "uac") == we_are_uac
        self.started_at = now

    @classmethod
    def start(cls, negotiated: Negotiated, we_are_uac: bool, now: float) -> SessionTimer:
        """``we_are_uac`` is our role in the transaction that negotiated it."""
        return cls(
            negotiated.interval,
            negotiated.refresher,
            (negotiated.refresher == "uac") == we_are_uac,
            now,
        )
