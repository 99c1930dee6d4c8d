"""Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760) as pure functions.

Server side: ``NonceManager`` issues self-verifying nonces (an HMAC over the
issue time and the client's address, so any node holding the secret can check
them, and nothing is stored per challenge) and remembers the highest
nonce-count seen per nonce to refuse replays; ``verify()`` checks one
``Authorization`` value against a stored HA1.

A nonce is bound to the source address it was sent to (the address is in the
HMAC, not in the nonce). Presented from another address it is *stale*: the
answer is a fresh challenge with ``stale=true`` (RFC 7616 §3.3: the previous
nonce was stale, the client may retry with the same username and password).
Credentials captured on the wire and replayed from elsewhere are thus never
accepted, while a phone whose address changed (NAT rebinding, a new DHCP
lease) simply retries, and that does not count as a failure. RFC 7616 §3.3
(after RFC 2617) notes the two limits of binding a nonce to the client's IP:
requests of one user that go through several proxies (not our case: phones
talk to the switch directly, or through one NAT), and address spoofing (the
binding stops replay from elsewhere, not a spoofer who also sees the answers).

Client side: ``answer_challenge()`` builds the ``Authorization`` value for a
challenge from a trunk.

Passwords are never needed at run time: the directory stores
``HA1 = H(username ":" realm ":" password)`` per algorithm (RFC 7616 §3.4.2).

    response = H( HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" H(method ":" uri) )

Randomness and time come in as arguments: the shell passes ``os.urandom`` bytes
and the monotonic clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import itertools
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from switch.sip.errors import ParseError

_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}
ALGORITHMS = tuple(_HASHES)


def _h(algorithm: str, data: str) -> str:
    return _HASHES[algorithm](data.encode("utf-8")).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """``H(username:realm:password)`` in lower-case hex (RFC 7616 §3.4.2)."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def response_digest(
    ha1_hex: str,
    *,
    algorithm: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str | None,
    cnonce: str | None,
    qop: str | None,
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (``qop=auth``) or RFC 2069 (no qop)."""
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1_hex}:{nonce}:{ha2}")


# --- header values ----------------------------------------------------------

#   challenge   = "Digest" LWS digest-cln *(COMMA digest-cln)
#   digest-cln  = realm / domain / nonce / opaque / stale / algorithm / qop-options / auth-param
#   auth-param  = auth-param-name EQUAL ( token / quoted-string )


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a="b", c=d`` into ("Digest", {"a": "b", "c": "d"}).

    Parameter names are lower-cased; quoted values are unquoted (``\\"`` escapes
    resolved). Raises ParseError on an unterminated quote or a missing scheme.
    """
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if not scheme or "=" in scheme:
        raise ParseError("Bad authentication header: no scheme")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        eq = rest.find("=", i)
        if eq < 0:
            raise ParseError("Bad authentication header: parameter without value")
        name = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            if i >= n:
                raise ParseError("Bad authentication header: unterminated quote")
            i += 1
            params[name] = "".join(chars)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[name] = rest[i:end].strip()
            i = end
        if not name:
            raise ParseError("Bad authentication header: empty parameter name")
    return scheme, params


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Credentials:
    """One parsed ``Authorization``/``Proxy-Authorization`` Digest value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @property
    def nonce_count(self) -> int | None:
        if self.nc is None:
            return None
        return int(self.nc, 16)


_NC_CHARS = frozenset("0123456789abcdefABCDEF")


def parse_credentials(value: str) -> Credentials:
    """Parse a Digest credentials value; ParseError (400) when malformed."""
    scheme, p = parse_auth_params(value)
    if scheme.lower() != "digest":
        raise ParseError(f"Unsupported authentication scheme {scheme[:20]}")
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
    if missing:
        raise ParseError(f"Digest credentials without {missing[0]}")
    algorithm = p.get("algorithm", "MD5").upper()
    qop = p.get("qop")
    nc = p.get("nc")
    if qop is not None:
        # RFC 7616 §3.4: with qop, cnonce and nc MUST be present; nc is 8LHEX.
        if "cnonce" not in p or nc is None:
            raise ParseError("Digest qop without cnonce or nc")
        if len(nc) != 8 or not set(nc) <= _NC_CHARS:
            raise ParseError("Digest nc is not 8 hex digits")
    return Credentials(
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"].lower(),
        algorithm=algorithm,
        qop=qop.lower() if qop else None,
        nc=nc,
        cnonce=p.get("cnonce"),
        opaque=p.get("opaque"),
    )


def challenge_value(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    stale: bool = False,
    opaque: str | None = None,
) -> str:
    """A ``WWW-Authenticate``/``Proxy-Authenticate`` value offering ``qop=auth``."""
    parts = [
        f"Digest realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"algorithm={algorithm}",
        'qop="auth"',
    ]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=true")
    return ", ".join(parts)


# --- nonces -----------------------------------------------------------------


class NonceStatus(Enum):
    VALID = "valid"
    # Ours but expired, issued to another address, or not ours (another secret).
    STALE = "stale"
    REPLAY = "replay"  # nonce-count not greater than one already used


def nonce_address(address: str) -> bytes:
    """The form of a client address a nonce is bound to: the packed IP address
    (an IPv4-mapped IPv6 address as its IPv4, brackets and zone left out), or the
    text itself when it is not an address."""
    text = address.strip("[]").partition("%")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return address.encode("utf-8", "surrogateescape")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.packed


class NonceManager:
    """Stateless HMAC nonces with a lifetime, bound to the client's address, and
    nonce-count replay tracking.

    nonce = base64url( issued_at(8 bytes, ms) || salt(8) || mac(12) )
    mac   = HMAC-SHA256(secret, issued_at || salt || address)[:12]

    ``address`` (``nonce_address``: the packed source IP) is not in the nonce: the
    MAC only matches when the nonce comes back from the address it was issued to.

    The nonce-count table is bounded (LRU): a nonce pushed out of it is treated
    as stale, which costs the client one extra round trip, never a false accept.
    """

    def __init__(self, secret: bytes, *, lifetime: float = 300.0, max_tracked: int = 200_000):
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        self._secret = secret
        self.lifetime = lifetime
        self._max_tracked = max_tracked
        self._last_nc: OrderedDict[str, int] = OrderedDict()

    def _mac(self, body: bytes, address: str) -> bytes:
        mac = hmac.new(self._secret, body + nonce_address(address), hashlib.sha256)
        return mac.digest()[:12]

    def issue(self, now: float, salt: bytes, address: str) -> str:
        """A fresh nonce for the client at ``address`` (the source IP the challenge
        goes to); ``salt`` is 8 random bytes from the caller."""
        if len(salt) != 8:
            raise ValueError("salt must be 8 bytes")
        body = struct.pack(">q", int(now * 1000)) + salt
        mac = self._mac(body, address)
        return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")

    def issued_at(self, nonce: str, address: str) -> float | None:
        """The issue time of a nonce we issued to ``address``; None when it is not
        ours, or was issued to another address."""
        raw = _nonce_bytes(nonce)
        if raw is None:
            return None
        body, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, self._mac(body, address)):
            return None
        return _issue_time(body)

    def check(self, nonce: str, nc: int | None, now: float, address: str) -> NonceStatus:
        """Status of a nonce presented from ``address`` with nonce-count ``nc``
        (None without qop).

        RFC 7616 §3.4: the server SHOULD check that nc is greater than any value
        it has seen for that nonce, to detect replays. Call ``accept()`` once the
        digest itself is verified, so a wrong password does not burn a count.
        """
        issued = self.issued_at(nonce, address)
        if issued is None or now - issued > self.lifetime or issued - now > 1.0:
            return NonceStatus.STALE
        last = self._last_nc.get(nonce)
        if last is not None and (nc is None or nc <= last):
            return NonceStatus.REPLAY
        return NonceStatus.VALID

    def accept(self, nonce: str, nc: int | None, now: float) -> None:
        """Record that ``nc`` was used with ``nonce`` (after a verified digest, so
        the nonce is ours: its issue time is read without the MAC)."""
        self._last_nc[nonce] = nc if nc is not None else 2**32
        self._last_nc.move_to_end(nonce)
        while len(self._last_nc) > self._max_tracked:
            self._last_nc.popitem(last=False)
        # Drop expired entries from the old end: they would be refused as stale anyway.
        # Only the oldest few: copying the whole table here cost O(tracked nonces).
        for old in list(itertools.islice(self._last_nc, 8)):
            raw = _nonce_bytes(old)
            if raw is None or now - _issue_time(raw[:16]) > self.lifetime:
                del self._last_nc[old]
            else:
                break


def _nonce_bytes(nonce: str) -> bytes | None:
    """The 28 bytes of a nonce of our shape, or None."""
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    except (ValueError, TypeError):
        return None
    return raw if len(raw) == 28 else None


def _issue_time(body: bytes) -> float:
    ms: int = struct.unpack(">q", body[:8])[0]
    return ms / 1000.0


# --- verification -----------------------------------------------------------


class Verdict(Enum):
    OK = "ok"
    # Right password, but the nonce is expired, foreign or issued to another address:
    # challenge again with stale=true (not a failure).
    STALE = "stale"
    REPLAY = "replay"  # nonce-count reused: refuse
    FAILED = "failed"  # wrong password, unknown user, wrong realm or uri: same answer for all


# A fixed HA1 used for unknown users, so that they cost the same work as known ones.
_DUMMY_HA1 = {alg: _h(alg, "unknown:unknown:unknown") for alg in ALGORITHMS}


def verify(
    creds: Credentials,
    *,
    method: str,
    realm: str,
    stored_ha1: str | None,
    nonces: NonceManager,
    now: float,
    address: str,
    require_qop: bool = True,
) -> Verdict:
    """Check Digest credentials for one request from ``address`` (its source IP).

    ``stored_ha1`` is the user's HA1 for ``creds.algorithm`` (None when the user
    does not exist: the work done and the verdict are the same as for a wrong
    password, so extensions cannot be enumerated). The nonce is only checked
    once the digest is right: a nonce issued to another address is then STALE.
    """
    if creds.algorithm not in _HASHES:
        return Verdict.FAILED
    if require_qop and creds.qop != "auth":
        return Verdict.FAILED
    ha1_hex = stored_ha1 if stored_ha1 is not None else _DUMMY_HA1[creds.algorithm]
    expected = response_digest(
        ha1_hex,
        algorithm=creds.algorithm,
        method=method,
        uri=creds.uri,
        nonce=creds.nonce,
        nc=creds.nc,
        cnonce=creds.cnonce,
        qop=creds.qop,
    )
    digest_ok = hmac.compare_digest(expected, creds.response)
    if stored_ha1 is None or not digest_ok or creds.realm != realm:
        return Verdict.FAILED
    status = nonces.check(creds.nonce, creds.nonce_count, now, address)
    if status is NonceStatus.STALE:
        return Verdict.STALE
    if status is NonceStatus.REPLAY:
        return Verdict.REPLAY
    nonces.accept(creds.nonce, creds.nonce_count, now)
    return Verdict.OK


# --- client side (outbound trunk authentication) -----------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> Challenge:
    scheme, p = parse_auth_params(value)
    if scheme.lower() != "digest":
        raise ParseError(f"Unsupported authentication scheme {scheme[:20]}")
    if "realm" not in p or "nonce" not in p:
        raise ParseError("Digest challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in p.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=p["realm"],
        nonce=p["nonce"],
        algorithm=p.get("algorithm", "MD5").upper(),
        qop=qop,
        opaque=p.get("opaque"),
        stale=p.get("stale", "").lower() == "true",
    )


def answer_challenge(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
    ha1_hex: str | None = None,
) -> str:
    """The ``Authorization`` value answering ``challenge`` (qop=auth when offered).

    ``ha1_hex``, when given, is used instead of ``password`` (a stored HA1 is
    only good for the realm and algorithm it was computed for)."""
    if challenge.algorithm not in _HASHES:
        raise ParseError(f"Unsupported digest algorithm {challenge.algorithm[:20]}")
    key = ha1_hex or ha1(username, challenge.realm, password, challenge.algorithm)
    qop = "auth" if "auth" in challenge.qop else None
    nc_text = f"{nc:08x}" if qop else None
    digest = response_digest(
        key,
        algorithm=challenge.algorithm,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        nc=nc_text,
        cnonce=cnonce if qop else None,
        qop=qop,
    )
    parts = [
        f"Digest username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(digest)}",
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return ", ".join(parts)
