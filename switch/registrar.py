"""REGISTER processing (RFC 3261 §10.3) as a pure function of its inputs.

The registrar decides; the location store (``switch.location``) remembers. One
call, ``Registrar.process(request, aor=..., current=..., source=..., at=...)``,
takes the REGISTER, the bindings the store holds for the address-of-record and
the wall-clock time, and returns a ``RegisterOutcome``: the response, the
bindings to write (``upserts``) and those to delete (``removals``). The shell
applies the changes to the store and only then sends the response: "The
binding updates MUST be committed (that is, made visible to the proxy or
redirect server) if and only if all binding updates and additions succeed. If
any one of them fails (for example, because the back-end database commit
failed), the request MUST fail with a 500 (Server Error) response" (§10.3). A
failed outcome (4xx, 5xx) carries no changes at all.

Who does which step of §10.3:

1. Request-URI is our domain ............................ the caller
2. Require (§8.2.2) → 420 with Unsupported .............. ``process``
3. Authentication (digest, ``switch.sip.auth``) ......... the caller, before
4. Authorization of the user for the AOR ................ the caller (``aor=``)
5. AOR from To, canonical form, 404 when unknown ........ ``address_of_record``
                                                           + the caller's lookup
6. ``Contact: *`` with ``Expires: 0`` ................... ``process``
7. Each contact: expiry, 423, Call-ID/CSeq, add/update .. ``process``
8. 200 listing every current binding with its expires .. ``process``

Time. Bindings must survive a restart, so their expiry is wall-clock time:
``at`` and ``Binding.expires_at`` are POSIX epoch seconds (floats). Nothing here
reads a clock; the shell passes ``time.time()``. The expiry timer is armed from
the store's ``next_expiry()`` (``switch.location``), converted to the loop's
monotonic clock by the shell.

Binding identity (the ``key`` of a binding within its AOR):

- RFC 5626 §6 (outbound), when it applies: the pair instance-id + reg-id. A new
  flow (new Contact URI, new source) for the same pair replaces the old one.
- Otherwise the Contact URI, compared by ``contact_key``: scheme and host
  case-insensitively, user and password exactly (after unescaping), port as
  written (``sip:h`` is not ``sip:h:5060``, §19.1.4), every URI parameter with
  its value case-insensitively, URI headers exactly. This is an equivalence
  (RFC 3261's own URI comparison is not transitive: a parameter present in
  one URI only is ignored); a phone that adds or drops a parameter creates a
  new binding and the old one expires.

Choices where the RFC leaves room, and why:

- A contact whose Call-ID matches and whose CSeq is not higher aborts the whole
  request with ``500 Out of Order CSeq``: §10.3 says only that "the request
  fails", and its failure rule above says 500. A 400 would tell the phone its
  REGISTER is malformed, and some phones stop registering on 400.
- Too many contacts for one AOR → ``403 Too Many Contacts``: a policy refusal
  that retrying will not change (Kamailio answers 503, which invites retries).
  Only requests that would *increase* the count beyond the limit are refused,
  so refreshes and removals always succeed, even after the limit was lowered.
- A contact listed twice in one REGISTER: the last occurrence wins (each is
  processed "in turn", and the Call-ID/CSeq check compares with the bindings
  stored before the request, not with the request's own tentative ones).
- Malformed ``Expires`` values (header or contact parameter) count as 3600:
  "Malformed values SHOULD be treated as equivalent to 3600" (§20.19).
- RFC 5626 processing needs ``Supported: outbound``, ``+sip.instance`` and
  ``reg-id`` on the contact; otherwise ``reg-id`` is ignored and the binding is
  keyed by its Contact URI. "A UAS that wishes to apply some extension when
  generating the response MUST NOT do so unless support for that extension is
  indicated in the Supported header field in the request" (§8.2.2.3).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import unquote

from switch.sip.endpoint import Endpoint
from switch.sip.errors import ParseError
from switch.sip.headers import NameAddr, parse_name_addr, split_list
from switch.sip.message import Request, Response, make_response
from switch.sip.uri import Uri, parse_uri

# Option tags this registrar implements (Require / Supported).
SUPPORTED_OPTIONS: tuple[str, ...] = ("path", "outbound")

# "Malformed values SHOULD be treated as equivalent to 3600." (§20.19)
MALFORMED_EXPIRES = 3600
# §10.3: "If and only if the requested expiration interval is greater than zero
# AND smaller than one hour AND less than a registrar-configured minimum, the
# registrar MAY reject the registration with a response of 423".
ONE_HOUR = 3600
# "delta-seconds ... between 0 and (2**32)-1" (§20.19): larger values are capped.
MAX_DELTA_SECONDS = 2**32 - 1

#   qvalue  =  ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
#   reg-id  =  "reg-id" EQUAL 1*DIGIT  ; 1 to (2^31 - 1)          (RFC 5626 §11)
_REG_ID_RE = re.compile(r"[0-9]{1,10}")
#   delta-seconds  =  1*DIGIT
_DELTA_RE = re.compile(r"[0-9]+")
_SUPPORTED_HEADER = ", ".join(SUPPORTED_OPTIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One contact bound to an address-of-record.

    ``contact`` is the Contact URI as the phone wrote it (no display name, no
    header parameters). ``expires_at`` and ``received_at`` are wall-clock epoch
    seconds. ``source`` is where the REGISTER came from: requests to the phone
    go there, over the same connection when ``source.conn_id`` is set (RFC 5626,
    and phones behind NAT). ``path`` holds the Path values (RFC 3327), first
    hop first. ``reachable`` turns False when the connection dies.
    """

    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    source: Endpoint
    received_at: float
    q: float | None = None
    instance_id: str | None = None  # +sip.instance without "<" ">" and quotes
    reg_id: int | None = None  # only set when RFC 5626 processing applied
    path: tuple[str, ...] = ()
    user_agent: str | None = None
    reachable: bool = True

    @property
    def key(self) -> str:
        """The binding's identity within its AOR (see the module docstring)."""
        return binding_key(self.contact, self.instance_id, self.reg_id)

    def expired(self, at: float) -> bool:
        return self.expires_at <= at

    def expires_in(self, at: float) -> int:
        """Whole seconds left at ``at``, as a 200 announces it: 0 once expired, else
        at least 1 (``expires=0`` would tell the phone it is not registered)."""
        if self.expires_at <= at:
            return 0
        return max(1, round(self.expires_at - at))

    def contact_value(self, at: float) -> str:
        """The Contact header value listing this binding in a 200 (§10.3 step 8)."""
        parts = [f"<{self.contact}>;expires={self.expires_in(at)}"]
        if self.q is not None:
            parts.append(f";q={format_q(self.q)}")
        if self.instance_id is not None:
            parts.append(f';+sip.instance="<{self.instance_id}>"')
        if self.reg_id is not None:
            parts.append(f";reg-id={self.reg_id}")
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    """What to do with a REGISTER: apply the changes, then send ``response``.

    ``bindings`` are the AOR's current bindings once the changes are applied
    (what a 200 lists); on failure they are the unchanged current ones.
    ``because`` says why, in a few words, for logs.
    """

    response: Response
    upserts: tuple[Binding, ...] = ()
    removals: tuple[Binding, ...] = ()
    bindings: tuple[Binding, ...] = ()
    because: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.upserts or self.removals)


class RegistrarConfigError(ValueError):
    """Registrar limits that contradict each other."""


@dataclass(frozen=True, slots=True)
class _Contact:
    """One Contact value of the request, checked."""

    uri: str
    key: str
    expires: int  # requested, before min/max
    q: float | None
    instance_id: str | None
    reg_id: int | None


class _Refusal(Exception):
    """Stop processing and answer ``status``; never escapes ``process``."""

    def __init__(self, status: int, reason: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


@dataclass(frozen=True, slots=True, kw_only=True)
class Registrar:
    """RFC 3261 §10.3 with RFC 3327 (Path) and RFC 5626 (outbound) bindings.

    ``min_expires``: shorter requests get 423 with Min-Expires (at most one
    hour, since §10.3 allows 423 only below one hour). ``max_expires``: longer
    ones are shortened to it. ``default_expires``: when the request names none.
    """

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts_per_aor: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.min_expires <= ONE_HOUR:
            raise RegistrarConfigError(f"min_expires must be 1..{ONE_HOUR}: {self.min_expires}")
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise RegistrarConfigError(
                "expected min_expires <= default_expires <= max_expires, got "
                f"{self.min_expires}, {self.default_expires}, {self.max_expires}"
            )
        if self.max_contacts_per_aor < 1:
            raise RegistrarConfigError(
                f"max_contacts_per_aor must be at least 1: {self.max_contacts_per_aor}"
            )

    # -- the one entry point ---------------------------------------------------------
    def process(
        self,
        request: Request,
        *,
        aor: str,
        current: Sequence[Binding],
        source: Endpoint,
        at: float,
        to_tag: str | None = None,
    ) -> RegisterOutcome:
        """Process an authenticated, authorized REGISTER for ``aor``.

        ``current`` is what the store holds for ``aor`` (expired bindings
        included: they are ignored and purged). ``source`` is where the
        request came from; ``at`` the wall-clock time in epoch seconds;
        ``to_tag`` the tag the response's To gets (§8.2.6.2).
        """
        if request.method != "REGISTER":
            raise ValueError(f"not a REGISTER: {request.method}")
        live = tuple(b for b in current if not b.expired(at))
        expired = tuple(b for b in current if b.expired(at))
        try:
            return self._process(request, aor, live, expired, source, at, to_tag)
        except _Refusal as refusal:
            response = make_response(
                request, refusal.status, refusal.reason, to_tag=to_tag, extra=refusal.extra
            )
            return RegisterOutcome(response, bindings=live, because=refusal.reason)

    def _process(
        self,
        request: Request,
        aor: str,
        live: tuple[Binding, ...],
        expired: tuple[Binding, ...],
        source: Endpoint,
        at: float,
        to_tag: str | None,
    ) -> RegisterOutcome:
        headers = request.headers
        supported = _option_tags(headers.get_all("Supported"))

        # Step 2. "The registrar MUST process the Require header field values as
        # described for UASs in Section 8.2.2" (§8.2.2.3: "If a UAS does not
        # understand an option-tag listed in a Require header field, it MUST
        # respond by generating a response with status code 420 (Bad Extension).
        # The UAS MUST add an Unsupported header field").
        unsupported = [
            tag for tag in _option_tags(headers.get_all("Require")) if tag not in SUPPORTED_OPTIONS
        ]
        if unsupported:
            raise _Refusal(420, "Bad Extension", (("Unsupported", ", ".join(unsupported)),))

        try:
            call_id = request.call_id
            cseq = request.cseq.seq
            contacts_raw = [v for value in headers.get_all("Contact") for v in split_list(value)]
            path = tuple(p for value in headers.get_all("Path") for p in split_list(value))
            path_first = parse_name_addr(path[0]) if path else None
        except ParseError as exc:
            raise _Refusal(400, exc.reason) from None
        if not call_id:
            raise _Refusal(400, "Missing Call-ID")
        expires_header = headers.get("Expires")
        header_expires = _delta_seconds(expires_header) if expires_header is not None else None

        # RFC 5626 §6: outbound processing needs the registrar to be the first
        # hop (one Via) or a first hop that supports outbound ("ob" on the
        # first Path URI).
        first_hop = len([v for value in headers.get_all("Via") for v in split_list(value)]) <= 1
        edge_ok = first_hop or (path_first is not None and "ob" in path_first.uri.params)
        outbound_offered = "outbound" in supported

        if not contacts_raw:
            # §10.2.3 (queries): "A success response to a query MUST contain
            # Contact header fields enumerating all current bindings."
            return self._ok(request, aor, live, (), expired, at, to_tag, supported, path, False)

        # Step 6. "If the Contact header field ... contains the special value
        # "*", ... If the request has additional Contact fields or an expiration
        # time other than zero, the request is invalid, and the server MUST
        # return a 400 (Invalid Request) and skip the remaining steps."
        if any(value == "*" for value in contacts_raw):
            if len(contacts_raw) != 1 or header_expires != 0:
                raise _Refusal(400, "Contact * needs Expires: 0 and no other Contact")
            return self._remove_all(
                request, aor, live, expired, call_id, cseq, at, to_tag, supported
            )

        contacts = [
            self._contact(value, header_expires, outbound_offered) for value in contacts_raw
        ]

        # RFC 5626 §6: "if the Contact header field contains more than one
        # header field value with a non-zero expiration and any of these header
        # field values contain a "reg-id" Contact header field parameter, the
        # entire registration SHOULD be rejected with a 400 (Bad Request)".
        nonzero = [c for c in contacts if c.expires != 0]
        if len(nonzero) > 1 and any(c.reg_id is not None for c in nonzero):
            raise _Refusal(400, "Several Contacts With reg-id")
        outbound = any(c.reg_id is not None for c in contacts)
        if outbound and not edge_ok:
            # RFC 5626 §6: "if the REGISTER request contains the reg-id and the
            # outbound option tag in a Supported header field, then the
            # registrar MUST respond to the REGISTER request with a 439 (First
            # Hop Lacks Outbound Support) response".
            raise _Refusal(439, "First Hop Lacks Outbound Support")

        # Step 7, expiry. "If the field value has an "expires" parameter, that
        # value MUST be taken as the requested expiration. If there is no such
        # parameter, but the request has an Expires header field, that value
        # MUST be used as the requested expiration. If there is neither, the
        # registrar SHOULD use a locally-configured default value" (in
        # ``_contact``). "If and only if the requested expiration interval is
        # greater than zero AND smaller than one hour AND less than a
        # registrar-configured minimum, the registrar MAY reject the
        # registration with a response of 423 (Interval Too Brief). This
        # response MUST contain a Min-Expires header field".
        for c in contacts:
            if 0 < c.expires < ONE_HOUR and c.expires < self.min_expires:
                raise _Refusal(423, "Interval Too Brief", (("Min-Expires", str(self.min_expires)),))

        # Step 7, bindings. "For each address, the registrar then searches the
        # list of current bindings using the URI comparison rules. If the
        # binding does not exist, it is tentatively added. If the binding does
        # exist, the registrar checks the Call-ID value. If the Call-ID value in
        # the existing binding differs from the Call-ID value in the request,
        # the binding MUST be removed if the expiration time is zero and updated
        # otherwise. If they are the same, the registrar compares the CSeq
        # value. If the value is higher than that of the existing binding, it
        # MUST update or remove the binding as above. If not, the update MUST be
        # aborted and the request fails."
        stored = {b.key: b for b in live}
        result = dict(stored)
        user_agent = headers.get("User-Agent")
        for c in contacts:
            existing = stored.get(c.key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise _Refusal(500, "Out of Order CSeq")
            if c.expires == 0:
                result.pop(c.key, None)
                continue
            # "The registrar MAY choose an expiration less than the requested
            # expiration interval."
            granted = min(c.expires, self.max_expires)
            result[c.key] = Binding(
                aor=aor,
                contact=c.uri,
                expires_at=at + granted,
                q=c.q,
                call_id=call_id,
                cseq=cseq,
                instance_id=c.instance_id,
                reg_id=c.reg_id,
                path=path,
                source=source,
                user_agent=user_agent,
                received_at=at,
            )

        if len(result) > self.max_contacts_per_aor and len(result) > len(stored):
            raise _Refusal(403, "Too Many Contacts")

        upserts = tuple(b for k, b in result.items() if stored.get(k) is not b)
        removals = tuple(b for k, b in stored.items() if k not in result)
        return self._ok(
            request,
            aor,
            tuple(result.values()),
            removals,
            expired,
            at,
            to_tag,
            supported,
            path,
            outbound,
            upserts=upserts,
        )

    def _remove_all(
        self,
        request: Request,
        aor: str,
        live: tuple[Binding, ...],
        expired: tuple[Binding, ...],
        call_id: str,
        cseq: int,
        at: float,
        to_tag: str | None,
        supported: frozenset[str],
    ) -> RegisterOutcome:
        # Step 6. "If not, the registrar checks whether the Call-ID agrees with
        # the value stored for each binding. If not, it MUST remove the binding.
        # If it does agree, it MUST remove the binding only if the CSeq in the
        # request is higher than the value stored for that binding. Otherwise,
        # the update MUST be aborted and the request fails."
        for binding in live:
            if binding.call_id == call_id and cseq <= binding.cseq:
                raise _Refusal(500, "Out of Order CSeq")
        return self._ok(request, aor, (), live, expired, at, to_tag, supported, (), False)

    def _ok(
        self,
        request: Request,
        aor: str,
        bindings: tuple[Binding, ...],
        removals: tuple[Binding, ...],
        expired: tuple[Binding, ...],
        at: float,
        to_tag: str | None,
        supported: frozenset[str],
        path: tuple[str, ...],
        outbound: bool,
        *,
        upserts: tuple[Binding, ...] = (),
    ) -> RegisterOutcome:
        # Step 8. "The registrar returns a 200 (OK) response. The response MUST
        # contain Contact header field values enumerating all current bindings.
        # Each Contact value MUST feature an "expires" parameter indicating its
        # expiration interval chosen by the registrar. The response SHOULD
        # include a Date header field."
        extra: list[tuple[str, str]] = [("Contact", b.contact_value(at)) for b in bindings]
        extra.append(("Date", formatdate(at, usegmt=True)))
        if path and "path" in supported:
            # RFC 3327 §5.3: with "path" in the request's Supported, the
            # registrar returns the stored Path in the 200.
            extra.extend(("Path", p) for p in path)
        if outbound:
            # RFC 5626 §6: the registrar that applied outbound processing says so
            # with "outbound" in a Require header field of the 2xx.
            extra.append(("Require", "outbound"))
        extra.append(("Supported", _SUPPORTED_HEADER))
        response = make_response(request, 200, to_tag=to_tag, extra=extra)
        # Expired bindings of this AOR go too; a re-registered key is an upsert.
        fresh = {b.key for b in upserts}
        stale = tuple(b for b in expired if b.key not in fresh)
        if upserts or removals:
            because = f"{len(upserts)} bound, {len(removals)} removed, {len(bindings)} current"
        else:
            because = f"{len(bindings)} current"
        return RegisterOutcome(
            response,
            upserts=upserts,
            removals=removals + stale,
            bindings=bindings,
            because=because,
        )

    def _contact(self, value: str, header_expires: int | None, outbound_offered: bool) -> _Contact:
        try:
            na: NameAddr = parse_name_addr(value)
        except ParseError as exc:
            raise _Refusal(400, f"Bad Contact: {exc.reason}") from None
        params = na.params
        if "expires" in params:
            raw = params["expires"]
            expires = _delta_seconds(raw) if raw is not None else MALFORMED_EXPIRES
        elif header_expires is not None:
            expires = header_expires
        else:
            expires = self.default_expires
        q = None
        if "q" in params:
            raw_q = params["q"]
            if raw_q is None or _QVALUE_RE.fullmatch(raw_q) is None:
                raise _Refusal(400, "Bad q Value")
            q = float(raw_q)
        instance_id = _instance_id(params.get("+sip.instance"))
        reg_id = None
        raw_reg_id = params.get("reg-id")
        if raw_reg_id is not None and instance_id is not None and outbound_offered:
            # RFC 5626 §6: "If the registrar processes a Contact header field
            # value with a reg-id but no instance-id, it simply ignores the
            # reg-id parameter."
            if _REG_ID_RE.fullmatch(raw_reg_id) is None or not 1 <= int(raw_reg_id) < 2**31:
                raise _Refusal(400, "Bad reg-id")
            reg_id = int(raw_reg_id)
        uri = str(na.uri)
        return _Contact(
            uri=uri,
            key=binding_key(uri, instance_id, reg_id),
            expires=expires,
            q=q,
            instance_id=instance_id,
            reg_id=reg_id,
        )


# -- helpers the shell and the store share --------------------------------------------


def address_of_record(to: str | NameAddr) -> str:
    """The canonical AOR of a To value (§10.3 step 5), e.g. ``sip:401@pbx.test``.

    "all URI parameters MUST be removed (including the user-parameter), and any
    escaped characters MUST be converted to their unescaped form." The scheme
    becomes ``sip`` (a sips AOR names the same user) and the host is
    lower-cased. Raise ``ParseError`` when the To is not a SIP or SIPS URI
    ("This address-of-record MUST be a SIP URI or SIPS URI", §10.2).
    """
    na = parse_name_addr(to) if isinstance(to, str) else to
    uri = na.uri
    if not uri.is_sip or not uri.host:
        raise ParseError("To is not a SIP URI")
    user = unquote(uri.user) + "@" if uri.user is not None else ""
    port = f":{uri.port}" if uri.port is not None else ""
    return f"sip:{user}{uri.host.lower()}{port}"


def binding_key(contact: str, instance_id: str | None, reg_id: int | None) -> str:
    """A binding's identity within its AOR: instance + reg-id, else the contact."""
    if instance_id is not None and reg_id is not None:
        return f"outbound:{instance_id};reg-id={reg_id}"
    return contact_key(contact)


@functools.lru_cache(maxsize=65536)
def contact_key(contact: str) -> str:
    """Normal form of a Contact URI for binding comparison (see the module docstring).

    Falls back to the text itself when it does not parse (bindings read back
    from storage were parsed once already).
    """
    try:
        uri = parse_uri(contact)
    except ParseError:
        return "uri:" + contact
    if not uri.is_sip and uri.scheme != "tel":
        return f"uri:{uri.scheme}:{uri.opaque}"
    return "uri:" + _normal_uri(uri)


def _normal_uri(uri: Uri) -> str:
    user = unquote(uri.user) if uri.user is not None else ""
    password = unquote(uri.password) if uri.password is not None else ""
    port = "" if uri.port is None else str(uri.port)
    params = sorted(
        (name.lower(), unquote(value).lower() if value is not None else "")
        for name, value in uri.params.items()
    )
    headers = sorted((unquote(k), unquote(v)) for k, v in uri.headers.items())
    return "\0".join(
        [
            uri.scheme,
            user,
            password,
            uri.host.lower(),
            port,
            ";".join(f"{n}={v}" for n, v in params),
            "&".join(f"{k}={v}" for k, v in headers),
        ]
    )


def live_bindings(bindings: Iterable[Binding], at: float) -> list[Binding]:
    """The bindings not expired at ``at`` (what routing may target)."""
    return [b for b in bindings if not b.expired(at)]


def format_q(q: float) -> str:
    """A qvalue as the ABNF writes it: ``1``, ``0.5``, ``0.125``."""
    text = f"{q:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _option_tags(values: Iterable[str]) -> frozenset[str]:
    return frozenset(
        tag.strip().lower() for value in values for tag in value.split(",") if tag.strip()
    )


def _delta_seconds(text: str) -> int:
    """``delta-seconds = 1*DIGIT``; malformed → 3600 (§20.19), capped at 2**32-1."""
    text = text.strip()
    if _DELTA_RE.fullmatch(text) is None:
        return MALFORMED_EXPIRES
    if len(text) > 10:
        return MAX_DELTA_SECONDS
    return min(int(text), MAX_DELTA_SECONDS)


def _instance_id(raw: str | None) -> str | None:
    """``+sip.instance="<urn:uuid:...>"`` → ``urn:uuid:...`` (RFC 5626 §4.1)."""
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return value or None


__all__ = [
    "MALFORMED_EXPIRES",
    "SUPPORTED_OPTIONS",
    "Binding",
    "RegisterOutcome",
    "Registrar",
    "RegistrarConfigError",
    "address_of_record",
    "binding_key",
    "contact_key",
    "format_q",
    "live_bindings",
]
