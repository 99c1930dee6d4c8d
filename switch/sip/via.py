"""Via handling at the transport boundary: stamping requests, routing responses.

Two pure functions, used by the transaction layer for every request it receives
and every response it sends:

- ``stamp_received(request, source)``: RFC 3261 §18.2.1 ``received`` and
  RFC 3581 §4 ``rport`` on the top Via of an incoming request; it returns that
  (stamped) top Via, so that the caller routes the response without parsing it
  again;
- ``response_destination(top_via, source)``: RFC 3261 §18.2.2 (with RFC 3581 §4)
  where a response to that request goes.

Neither resolves names: a sent-by that is a domain name comes back as an
``Endpoint`` whose host is that name, and the adapter resolves it (RFC 3263 §5).
"""

from __future__ import annotations

import functools
import ipaddress

from switch.sip.endpoint import Endpoint
from switch.sip.headers import Via, parse_via
from switch.sip.message import Request

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: "The branch ID inserted by an element compliant with this
specification MUST always begin with the characters "z9hG4bK"."."""

DEFAULT_PORT = 5060
DEFAULT_TLS_PORT = 5061


def has_magic_cookie(branch: str | None) -> bool:
    """True when ``branch`` was minted by an RFC 3261 element (§17.2.3)."""
    return branch is not None and branch.startswith(MAGIC_COOKIE)


def default_port(transport: str) -> int:
    """RFC 3261 §19.1.2: 5060 for UDP/TCP/SCTP, 5061 for TLS (and WSS here)."""
    return DEFAULT_TLS_PORT if transport.upper() in ("TLS", "WSS") else DEFAULT_PORT


def bare_host(host: str) -> str:
    """Host without IPv6 brackets, as ``Endpoint.host`` wants it."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


@functools.lru_cache(maxsize=4096)
def is_ip(text: str) -> bool:
    """True when ``text`` is an IP address literal (no brackets), not a name.

    Called with packet source and destination addresses: few distinct values,
    bounded anyway.
    """
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _same_address(host: str, address: str) -> bool:
    """True when ``host`` is an IP literal equal to ``address``.

    A domain name never equals an address: RFC 3261 §18.2.1 stamps ``received``
    whenever "the host portion of the "sent-by" parameter contains a domain name".

    Compared as text first (the usual case: the phone wrote the address it sends
    from). Different texts can only be the same address in IPv6 forms (case,
    zero compression, embedded IPv4): ``ipaddress`` accepts a single spelling of
    an IPv4 address (dotted decimal, no leading zeros), and an IPv4 address
    never equals an IPv6 one.
    """
    host = bare_host(host)
    address = bare_host(address)
    if host == address:
        return is_ip(address)
    if ":" not in host or ":" not in address:
        return False
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        return False


def stamp_received(request: Request, source: Endpoint) -> Via | None:
    """Add ``received`` / fill ``rport`` on the top Via of a received request.

    RFC 3261 §18.2.1: "If the host portion of the "sent-by" parameter contains a
    domain name, or if it contains an IP address that differs from the packet
    source address, the server MUST add a "received" parameter to that Via
    header field value. This parameter MUST contain the source address from
    which the packet was received."

    RFC 3581 §4: "If this Via header field value contains an "rport" parameter
    with no value, it MUST set the value of the parameter to the source port of
    the request. [...] the server MUST insert a "received" parameter containing
    the source IP address that the request came from, even if it is identical
    to the value of the "sent-by" component."

    The top Via is rewritten in place (only the first Via value; the others are
    left as they are). A request without Via is left alone (None is returned):
    the parser refuses those before they get here.

    Return the top Via as it now stands in the request (``parse_via`` of its
    new text): a fresh object the caller owns, e.g. for
    ``response_destination``.
    """
    raw = request.headers.get("Via")
    if raw is None:
        return None
    via = parse_via(raw)
    params = via.params
    changed = False
    if "rport" in params and params["rport"] is None:
        params["rport"] = str(source.port)
        params["received"] = source.host
        changed = True
    if params.get("received") != source.host and not _same_address(via.host, source.host):
        params["received"] = source.host
        changed = True
    if changed:
        request.headers.replace_first("Via", str(via))
    return via


def response_destination(top_via: Via, source: Endpoint) -> Endpoint:
    """Where a response to a request with this (stamped) top Via goes.

    RFC 3261 §18.2.2, in its order:

    - reliable transport: "the response MUST be sent using the existing
      connection to the source of the original request that created the
      transaction, if that connection is still open" → ``source`` itself,
      ``conn_id`` included (the adapter falls back to received/sent-by when
      that connection has closed);
    - "Otherwise, if the Via header field value contains a "maddr" parameter,
      the response MUST be forwarded to the address listed there, using the
      port indicated in "sent-by", or port 5060 if none is present";
    - RFC 3581 §4: with ``rport=<port>``, "the server MUST send the response to
      the IP address indicated in received and the port in rport";
    - "Otherwise (for unreliable unicast transports), if the top Via has a
      "received" parameter, the response MUST be sent to the address in the
      "received" parameter, using the port indicated in the "sent-by" value,
      or using port 5060 if none is present";
    - "Otherwise, [...] the response MUST be sent to the address indicated by
      the "sent-by" value".
    """
    if source.reliable:
        return source
    # A request that came over UDP is answered over UDP whatever transport its
    # Via names: otherwise a forged Via could make us open TCP/TLS connections
    # to any host (the request's own transport is the only one we know works).
    port = top_via.port if top_via.port is not None else default_port(source.transport)
    maddr = top_via.params.get("maddr")
    if maddr:
        return _towards(source, bare_host(maddr), port)
    received = top_via.params.get("received")
    rport = top_via.params.get("rport")
    if rport is not None and rport.isdigit():
        return _towards(source, bare_host(received) if received else source.host, int(rport))
    if received:
        return _towards(source, bare_host(received), port)
    return _towards(source, bare_host(top_via.host), port)


def _towards(source: Endpoint, host: str, port: int) -> Endpoint:
    """``host:port`` over the source's transport: ``source`` itself when it is
    that address (the usual answer, and one object less per transaction)."""
    if host == source.host and port == source.port:
        return source
    return Endpoint(source.transport, host, port)
