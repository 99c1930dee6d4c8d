"""Where a message came from or goes to, as the pure layers see it.

``conn_id`` names a stream connection (TCP/TLS) owned by the transport; pure code
never touches the connection, it only asks for the reply to go back on it
(RFC 3261 §18.2.2: responses over a reliable transport use the connection the
request arrived on).
"""

from __future__ import annotations

from dataclasses import dataclass

RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "WS", "WSS", "SCTP"})


def hostport(host: str, port: int) -> str:
    """``host:port`` as a SIP URI or a Via sent-by writes it: an IPv6 address in
    brackets (RFC 3261 §25.1, ``IPv6reference``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    transport: str  # upper-case: UDP, TCP, TLS
    host: str  # bare address (no IPv6 brackets)
    port: int
    conn_id: int | None = None

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{hostport(self.host, self.port)}"
