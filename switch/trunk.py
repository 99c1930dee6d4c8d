"""SIP trunks (opérateurs): who may call in from one, who may call out through one.

Pure decisions, no sockets; ``switch.b2bua`` asks and executes. The rules, all
of them against an open relay (nothing reaches a trunk on behalf of an unknown
source, and a trunk never reaches another trunk):

1. **Trunk source.** A request whose source is a trunk's ``address`` (host and
   port), or whose source host lies in one of its ``inbound`` networks, comes
   from that trunk (``Trunks.by_source``). It is not challenged (a carrier does
   not answer our digest), but it may only call the **direct number** of one of
   our lines (``Trunks.inbound``): anything else is ``404``, never routed out
   again.
2. **Calls out.** Only an *authenticated line* calls out (the B2BUA has already
   checked its digest). The dialled number is normalised
   (``routing.numbering.normalize``) and checked against the line's profile for
   the calls it dials and its company's restriction table
   (``routing.restrictions.check``: emergency numbers always pass; a barred call
   is ``403`` with the verdict's reason phrase and cause). A public number (E.164)
   that is not one of ours goes to the first trunk (``Trunks.outbound``) in the
   trunk's ``number_format``; a short number (``112``, ``3639``, ``118712``, an
   unlisted ``special`` one that only profile 10 allows) goes as dialled, never
   prefixed. A three-digit number that is not an emergency number is an internal
   number (a line or group we do not have): ``404``, never sent out.
3. **Identity towards the trunk** (RFC 3325, RFC 3323; ``identity_headers``).
   ``P-Asserted-Identity`` always carries the line's real number (its direct
   number, else the company number), for the carrier (emergency location,
   traceability). ``From`` shows the *presented* number, the line's
   ``presented_number`` option (``presented_number``): its direct line, the
   company number, or a group's direct number. When the caller's identity is
   withheld (``*65*1`` on the line, or ``*66*`` for one call) ``From`` is
   ``"Anonymous" <sip:anonymous@anonymous.invalid>`` and ``Privacy: id`` asks the
   carrier not to pass the PAI on.
4. **Digest towards the trunk.** A 401/407 from the trunk is answered once per
   INVITE (``Trunk.authorize``): the realm is the challenge's, the credentials
   the trunk's (``password``, or a stored ``ha1`` for that realm).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from routing.linesettings import is_internal_number
from routing.numbering import destination_class, normalize, to_national
from routing.restrictions import NO_TABLE
from routing.restrictions import check as check_restriction
from switch.directory import Company, Line
from switch.settings import TrunkSettings
from switch.sip.auth import answer_challenge, parse_challenge
from switch.sip.endpoint import Endpoint
from switch.sip.errors import ParseError
from switch.sip.message import Request, Response

# Status -> (challenge header, answer header), RFC 3261 §22.2 and §22.3.
_CHALLENGES = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


@dataclass(frozen=True, slots=True)
class Trunk:
    """One configured trunk, resolved from ``TrunkSettings``."""

    name: str
    dest: Endpoint
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    number_format: str  # "e164" | "national"
    max_calls: int | None
    username: str | None = None
    password: str | None = None
    ha1: str | None = None

    @classmethod
    def from_settings(cls, settings: TrunkSettings) -> Trunk:
        return cls(
            name=settings.name,
            dest=Endpoint(settings.transport.upper(), settings.address.host, settings.address.port),
            networks=tuple(ipaddress.ip_network(n, strict=False) for n in settings.inbound),
            number_format=settings.number_format,
            max_calls=settings.max_calls,
            username=settings.username,
            password=settings.password,
            ha1=settings.ha1,
        )

    @property
    def key(self) -> str:
        """The key of the trunk's calls in the B2BUA's counters."""
        return f"trunk:{self.name}"

    def sends_from(self, source: Endpoint) -> bool:
        if source.host == self.dest.host and source.port == self.dest.port:
            return True
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(source.host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def format(self, number: str) -> str:
        """``number`` (E.164, or short) in the trunk's number format; a short number
        is sent as dialled whatever the format."""
        if self.number_format == "national" and number.startswith("+"):
            return to_national(number)
        return number

    def authorize(self, response: Response, invite: Request) -> tuple[str, str] | None:
        """The header answering the trunk's 401/407 to ``invite``; None when we cannot
        (no credentials, no digest challenge we know): the failure then stands."""
        names = _CHALLENGES.get(response.status)
        if names is None or not self.username or (self.password is None and self.ha1 is None):
            return None
        challenge_name, answer_name = names
        for value in response.headers.get_all(challenge_name):
            try:
                challenge = parse_challenge(value)
                if self.ha1 is not None and len(self.ha1) != (
                    32 if challenge.algorithm == "MD5" else 64
                ):
                    continue
                answer = answer_challenge(
                    challenge,
                    username=self.username,
                    password=self.password or "",
                    ha1_hex=self.ha1,
                    method="INVITE",
                    uri=str(invite.uri),
                    cnonce=secrets.token_hex(8),
                )
            except ParseError:
                continue
            return answer_name, answer
        return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """No call: ``status`` to the caller, ``cause`` in the CDR."""

    status: int
    cause: str
    reason: str | None = None  # the SIP reason phrase, when not the default one
    because: str = field(default="", compare=False)  # the decision's trace, for the CDR


ANONYMOUS = '"Anonymous" <sip:anonymous@anonymous.invalid>'
"""The From of a call whose caller withholds its identity (RFC 3323 §4.1.1.3)."""


@dataclass(frozen=True, slots=True)
class Outbound:
    """A call out: the B leg's Request-URI user, presented number and trunk."""

    trunk: Trunk
    number: str  # as the trunk wants it (number_format; a short number as dialled)
    e164: str  # normalised (E.164, or the short number)
    presented: str  # the number shown to the called party (From)
    asserted: str = ""  # the caller's real number (P-Asserted-Identity); "" none
    withheld: bool = False  # CLIR: From anonymous, Privacy: id


def presented_number(caller: Line, company: Company | None) -> str:
    """The number ``caller``'s calls out show (its ``presented_number`` option)."""
    company_number = company.company_number if company is not None else ""
    choice = caller.presented_number
    if choice == "company":
        return company_number
    if choice != "direct" and company is not None:
        group = company.group(choice)
        if group is not None and group.direct_number is not None:
            return group.direct_number
    return caller.direct_number or company_number


def identity_headers(route: Outbound, domain: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The From of the B leg and its identity headers (rule 3)::

    not withheld   From: <sip:PRESENTED@domain>
                   P-Asserted-Identity: <sip:REAL@domain;user=phone>
    withheld       From: "Anonymous" <sip:anonymous@anonymous.invalid>
                   P-Asserted-Identity: <sip:REAL@domain;user=phone>
                   Privacy: id
    """
    extra: list[tuple[str, str]] = []
    if route.asserted:
        extra.append(("P-Asserted-Identity", f"<sip:{route.asserted}@{domain};user=phone>"))
    if route.withheld:
        extra.append(("Privacy", "id"))
        return ANONYMOUS, tuple(extra)
    user = route.presented or "anonymous"
    return f"<sip:{user}@{domain}>", tuple(extra)


class Trunks:
    """The configured trunks; see the module docstring."""

    def __init__(self, trunks: Sequence[Trunk] = ()) -> None:
        self.trunks = tuple(trunks)

    @classmethod
    def from_settings(cls, settings: Sequence[TrunkSettings]) -> Trunks:
        return cls([Trunk.from_settings(s) for s in settings])

    def __bool__(self) -> bool:
        return bool(self.trunks)

    def by_source(self, source: Endpoint) -> Trunk | None:
        """The trunk ``source`` belongs to (rule 1), if any."""
        for trunk in self.trunks:
            if trunk.sends_from(source):
                return trunk
        return None

    @staticmethod
    def inbound(
        called: str, find_direct: Callable[[str], tuple[Company, Line] | None]
    ) -> tuple[Company, Line] | Refusal:
        """A trunk's call to ``called``: only a direct number of ours (rule 1)."""
        found = find_direct(called)
        if found is None:
            return Refusal(404, "not-found")
        return found

    def outbound(
        self, called: str, caller: Line, company: Company | None, *, withheld: bool = False
    ) -> Outbound | Refusal:
        """An authenticated line dialled ``called``, which is none of ours (rule 2);
        ``withheld``: its identity is withheld on this call (rule 3)."""
        number = normalize(called)
        if number.kind == "invalid" or is_internal_number(number.value):
            return Refusal(404, "not-found")
        # RESTRICTIONS.md: the line's profile for the calls it dials and its
        # company's table decide; emergency numbers always pass. A barred call
        # gets 403 with a reason, and its cause in the CDR.
        table = company.restriction_table if company is not None else NO_TABLE
        verdict = check_restriction(
            caller.restrictions.direct, destination_class(number), number=number.value, table=table
        )
        if not verdict.allowed:
            return Refusal(403, verdict.cause, verdict.reason_phrase, verdict.because)
        route = self._out(number.value, presented_number(caller, company))
        if isinstance(route, Refusal):
            return route
        asserted = caller.direct_number or (company.company_number if company else "")
        return replace(route, asserted=asserted, withheld=withheld)

    def service_out(self, called: str, service: str) -> Outbound | Refusal:
        """An outside number dialled by a service number's routing (the operator's
        program: no line profile applies) or by a forward (``switch.line_call``: the
        forwarding line's profile was checked by ``routing.forwarding``); ``service``
        is presented. Short numbers go as dialled, as in rule 2; a three-digit
        internal number is never sent out."""
        number = normalize(called)
        if number.kind == "invalid" or is_internal_number(number.value):
            return Refusal(404, "not-found")
        return self._out(number.value, service)

    def _out(self, number: str, presented: str) -> Outbound | Refusal:
        """Through the first trunk, in its number format (short numbers as dialled)."""
        if not self.trunks:
            return Refusal(404, "no-trunk")
        trunk = self.trunks[0]
        return Outbound(trunk, trunk.format(number), number, presented)


__all__ = [
    "ANONYMOUS",
    "Outbound",
    "Refusal",
    "Trunk",
    "Trunks",
    "identity_headers",
    "presented_number",
]
