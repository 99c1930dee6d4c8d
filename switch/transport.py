"""SIP transports on asyncio: UDP datagrams, TCP and TLS streams (RFC 3261 §18).

The transport moves bytes and nothing else. It hands what arrives to a
``TransportUser`` (the stack) and sends what it is given:

- UDP: one ``DatagramProtocol`` per listener; each datagram is one message.
- TCP/TLS: a listener per address; every connection, accepted or opened, owns a
  ``StreamFramer`` that cuts the byte stream into messages (Content-Length
  framing, size cap) and reports CRLF keep-alives, answered here: "When a server
  receives a double CRLF ("ping") on a connection-oriented transport it MUST
  respond with a single CRLF ("pong")" (RFC 5626 §3.5.1).
- Connections have an id (``Endpoint.conn_id``). A send names either a
  connection (a response goes back on the connection its request came on,
  §18.2.2) or an address: an open connection to that address is reused, else
  one is opened and the data waits for it.
- Failures (connect refused, TLS handshake, connection lost with data queued)
  become ``TransportUser.transport_error(dest, exc)``; the stack turns them
  into a transport-error input of the transaction layer.

Load shedding, never unbounded queues: a cap on connections (overall and per
remote host: excess ones are closed at once), a cap on bytes queued per
connection (a peer that does not read is dropped), the framer's message size
cap, and an idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from switch.sip.endpoint import Endpoint
from switch.sip.errors import ParseError
from switch.sip.parser import KEEPALIVE_PING, StreamFramer
from switch.sip.via import is_ip

log = logging.getLogger(__name__)


# Linux <linux/sock_diag.h>: SO_MEMINFO fills nine u32, SK_MEMINFO_RMEM_ALLOC first.
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_MEMINFO_SIZE = 9 * 4


class TransportUser(Protocol):
    """What the transport calls (the stack implements it)."""

    def datagram_received(self, data: bytes, source: Endpoint) -> None:
        """A UDP datagram, unparsed."""

    def stream_message_received(self, data: bytes, source: Endpoint) -> None:
        """One complete message cut from a stream, unparsed."""

    def stream_error(self, error: ParseError, source: Endpoint, chunk: bytes) -> None:
        """The framer refused the stream (too large, bad framing); the connection closes next.

        ``chunk`` is the data that made it fail: it usually holds the header
        section of the offending message, enough to answer 513 or 400.
        """

    def transport_error(self, dest: Endpoint, error: Exception) -> None:
        """Data for ``dest`` could not be delivered."""


@dataclass(frozen=True, slots=True)
class TransportLimits:
    max_message_size: int = 65535
    max_connections: int = 10_000
    max_connections_per_host: int = 256
    max_send_buffer: int = 1_048_576
    idle_timeout: float = 600.0
    connect_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class ListenAddress:
    transport: str  # UDP, TCP, TLS
    host: str
    port: int  # 0: any free port (tests); the bound port is in Transport.bound


def _addr_endpoint(transport: str, addr: Any, conn_id: int | None = None) -> Endpoint:
    return Endpoint(transport, str(addr[0]), int(addr[1]), conn_id)


_SOURCES_MAX = 4096
_WILDCARDS = ("0.0.0.0", "::")


class _UdpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("_sources", "_user", "transport")

    def __init__(self, user: TransportUser) -> None:
        self._user = user
        self.transport: asyncio.DatagramTransport | None = None
        # Socket address -> its (immutable) Endpoint: phones and trunks send
        # from the same address again and again. Bounded by clearing when full.
        self._sources: dict[Any, Endpoint] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio's classes: no isinstance.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # RFC 3261 §7.5: CRLFs before a start line are ignored; a datagram of
        # nothing but CRLF is a NAT keep-alive some phones send over UDP.
        if data[:1] in (b"\r", b"\n") and not data.strip():
            return
        source = self._sources.get(addr)
        if source is None:
            if len(self._sources) >= _SOURCES_MAX:
                self._sources.clear()
            source = self._sources[addr] = Endpoint("UDP", addr[0], addr[1])
        self._user.datagram_received(data, source)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier sendto()s: Linux does not say for which address,
        # so the transaction layer learns of the loss through its own timers.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("udp.error", extra={"error": str(exc)})


class _Connection(asyncio.Protocol):
    """One TCP or TLS connection, accepted or opened."""

    def __init__(self, owner: Transport, kind: str, conn_id: int, dest: Endpoint | None) -> None:
        self.owner = owner
        self.kind = kind
        self.conn_id = conn_id
        self.framer = StreamFramer(max_size=owner.limits.max_message_size)
        self.transport: asyncio.Transport | None = None
        # The remote address; for an outgoing connection known before it exists.
        self.endpoint: Endpoint | None = (
            Endpoint(kind, dest.host, dest.port, conn_id) if dest is not None else None
        )
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.last_activity = owner.loop.time()
        self.closed = False

    # -- asyncio callbacks --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if self.endpoint is None:
            self.endpoint = _addr_endpoint(self.kind, peer, self.conn_id)
        self.transport.set_write_buffer_limits(high=self.owner.limits.max_send_buffer)
        self.owner._connection_made(self)
        if self.pending:
            self.transport.write(b"".join(self.pending))
            self.pending.clear()
            self.pending_size = 0

    def data_received(self, data: bytes) -> None:
        if self.closed:  # refused at accept (limits), or after a framing error
            return
        self.last_activity = self.owner.loop.time()
        assert self.endpoint is not None
        try:
            items = self.framer.feed(data)
        except ParseError as exc:
            # No resynchronisation on a stream: answer if we can, then close.
            self.owner.user.stream_error(exc, self.endpoint, data)
            self.close()
            self.closed = True
            return
        for item in items:
            if item is KEEPALIVE_PING:
                if self.transport is not None:
                    self.transport.write(b"\r\n")
            else:
                self.owner.user.stream_message_received(item, self.endpoint)

    def pause_writing(self) -> None:
        # The peer does not read and max_send_buffer bytes are queued: drop it
        # rather than buffer without bound.
        if self.transport is not None:
            log.warning(
                "connection.dropped",
                extra={"peer": str(self.endpoint), "reason": "send buffer full"},
            )
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner._connection_lost(self)

    # -- used by the owner ----------------------------------------------------
    def write(self, data: bytes) -> None:
        self.last_activity = self.owner.loop.time()
        if self.transport is not None:
            self.transport.write(data)
        elif self.pending_size + len(data) <= self.owner.limits.max_send_buffer:
            self.pending.append(data)
            self.pending_size += len(data)
        else:
            raise ConnectionError("too much data queued on a connection being opened")

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class Transport:
    """Every listener and connection of one switch. Create, ``start()``, ``close()``."""

    def __init__(
        self,
        user: TransportUser,
        *,
        limits: TransportLimits | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.user = user
        self.limits = limits or TransportLimits()
        self.loop = loop or asyncio.get_running_loop()
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._udp: list[tuple[socket.AddressFamily, _UdpProtocol]] = []
        self._udp_sockets: list[Any] = []  # the UDP listeners' sockets (receive backlog)
        self._servers: list[asyncio.Server] = []
        self._conns: dict[int, _Connection] = {}
        self._by_addr: dict[tuple[str, str, int], _Connection] = {}
        self._per_host: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False
        # What was bound, in listener order: (transport, host, port).
        self.bound: list[tuple[str, str, int]] = []
        # Peer host -> our address towards it, for wildcard listeners (local_address).
        self._route_sources: dict[str, str] = {}
        # Called with the endpoint (conn_id set) of every registered TCP/TLS
        # connection that closes, whatever the reason (the registrar marks the
        # bindings that came over it unreachable).
        self.on_connection_lost: Callable[[Endpoint], None] | None = None

    # -- lifecycle --------------------------------------------------------------
    async def start(self, listeners: list[ListenAddress]) -> None:
        """Bind every listener (raise OSError if one cannot be bound)."""
        try:
            for spec in listeners:
                await self._listen(spec)
        except BaseException:
            await self.close()
            raise
        self._schedule_sweep()

    async def _listen(self, spec: ListenAddress) -> None:
        kind = spec.transport.upper()
        if kind == "UDP":
            udp_transport, protocol = await self.loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self.user), local_addr=(spec.host, spec.port)
            )
            sock = udp_transport.get_extra_info("socket")
            with contextlib.suppress(OSError):
                # Bursts of OPTIONS or REGISTER should queue in the kernel, not drop.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self._udp.append((sock.family, protocol))
            self._udp_sockets.append(sock)
            host, port = sock.getsockname()[:2]
        elif kind in ("TCP", "TLS"):
            if kind == "TLS" and self._server_ssl is None:
                raise ValueError("a TLS listener needs a server certificate")
            server = await self.loop.create_server(
                lambda: self._accept(kind),
                spec.host,
                spec.port,
                ssl=self._server_ssl if kind == "TLS" else None,
                reuse_address=True,
                backlog=1024,
            )
            self._servers.append(server)
            host, port = server.sockets[0].getsockname()[:2]
        else:
            raise ValueError(f"unknown transport {spec.transport!r}")
        self.bound.append((kind, host, port))
        log.info("listening", extra={"transport": kind.lower(), "addr": f"{host}:{port}"})

    def local_address(self, transport: str, peer_host: str | None = None) -> tuple[str, int] | None:
        """The address (bare, no IPv6 brackets) and port to write in the Contact and
        Via of a message sent over ``transport`` to ``peer_host``: those of the
        first listener of that transport (None: there is none).

        A listener on a wildcard address (``0.0.0.0``, ``::``) has no address a peer
        could answer to: the address written is then the one the host's routing
        table sends ``peer_host``'s packets from (a connected UDP socket's local
        address, nothing sent), the address the peer sees. Loopback when that
        cannot be told (no route, no peer)."""
        kind = transport.upper()
        for bound_kind, host, port in self.bound:
            if bound_kind == kind:
                if host in _WILDCARDS:
                    host = self._source_towards(host, peer_host)
                return host, port
        return None

    def _source_towards(self, wildcard: str, peer_host: str | None) -> str:
        loopback = "::1" if wildcard == "::" else "127.0.0.1"
        if not peer_host or (wildcard == "0.0.0.0" and ":" in peer_host):
            return loopback  # no peer, or one an IPv4 listener cannot reach
        sources = self._route_sources
        source = sources.get(peer_host)
        if source is not None:
            return source
        family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((peer_host, 5060))  # UDP connect: a route look-up only
                source = str(probe.getsockname()[0])
        except OSError:
            source = loopback
        if len(sources) >= _SOURCES_MAX:
            sources.clear()  # routes may change: a full cache starts afresh
        sources[peer_host] = source
        return source

    def port_of(self, transport: str) -> int:
        """The bound port of the first listener of that transport."""
        for kind, _, port in self.bound:
            if kind == transport.upper():
                return port
        raise LookupError(transport)

    async def stop_accepting(self) -> None:
        """Graceful stop, first step: no new connections; UDP and open ones go on."""
        for server in self._servers:
            server.close()

    async def close(self) -> None:
        """Second step: close every socket and connection."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._conns.values()):
            if conn.transport is not None:
                conn.transport.close()
        for _, protocol in self._udp:
            if protocol.transport is not None:
                protocol.transport.close()
        self._udp.clear()
        self._udp_sockets.clear()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        # Let the loop run connection_lost callbacks (closes the sockets for real).
        for _ in range(3):
            if not self._conns:
                break
            await asyncio.sleep(0)
        for conn in list(self._conns.values()):
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)

    # -- sending -------------------------------------------------------------------
    def send(self, data: bytes, dest: Endpoint) -> None:
        """Queue ``data`` for ``dest``; failures come back as ``transport_error``."""
        if dest.transport == "UDP":
            self._send_udp(data, dest)
            return
        conn = self._conns.get(dest.conn_id) if dest.conn_id is not None else None
        if conn is None or conn.closed:
            conn = self._by_addr.get((dest.transport, dest.host, dest.port))
        if conn is None or conn.closed:
            # §18.2.2: the request's connection is gone; open one to the address.
            try:
                conn = self._connect(dest)
            except OSError as exc:
                self.user.transport_error(dest, exc)
                return
        try:
            conn.write(data)
        except ConnectionError as exc:
            self.user.transport_error(dest, exc)

    def _send_udp(self, data: bytes, dest: Endpoint) -> None:
        if not is_ip(dest.host):
            # sendto() would resolve the name synchronously and block the loop;
            # names are resolved (RFC 3263) before they reach the transport.
            self.user.transport_error(dest, OSError(f"not an IP address: {dest.host}"))
            return
        family = socket.AF_INET6 if ":" in dest.host else socket.AF_INET
        for fam, protocol in self._udp:
            if fam == family and protocol.transport is not None:
                protocol.transport.sendto(data, (dest.host, dest.port))
                return
        self.user.transport_error(dest, OSError(f"no UDP socket for {dest}"))

    def connection_count(self) -> int:
        return len(self._conns)

    def udp_backlog(self) -> int:
        """Bytes waiting in the kernel's receive queue of the fullest UDP socket
        (Linux ``SO_MEMINFO``: buffer memory, about twice the datagrams' bytes);
        0 where the kernel cannot say. One system call per socket."""
        most = 0
        for sock in self._udp_sockets:
            try:
                info = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO_SIZE)
            except OSError:
                continue
            most = max(most, int.from_bytes(info[:4], sys.byteorder))
        return most

    # -- connections ------------------------------------------------------------------
    def _accept(self, kind: str) -> asyncio.Protocol:
        return _Connection(self, kind, next(self._ids), None)

    def _connect(self, dest: Endpoint) -> _Connection:
        if self._closing:
            raise ConnectionError("transport closing")
        if len(self._conns) >= self.limits.max_connections:
            raise ConnectionError("connection limit reached")
        if dest.transport == "TLS" and self._client_ssl is None:
            raise ConnectionError("no TLS client context")
        conn = _Connection(self, dest.transport, next(self._ids), dest)
        self._register(conn)
        task = self.loop.create_task(self._open(conn, dest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn

    async def _open(self, conn: _Connection, dest: Endpoint) -> None:
        tls = dest.transport == "TLS"
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                await self.loop.create_connection(
                    lambda: conn,
                    dest.host,
                    dest.port,
                    ssl=self._client_ssl if tls else None,
                    server_hostname=dest.host if tls else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._unregister(conn)
            conn.closed = True
            log.info("connect.failed", extra={"peer": str(dest), "error": str(exc) or "timeout"})
            self.user.transport_error(dest, exc)

    def _register(self, conn: _Connection) -> None:
        assert conn.endpoint is not None
        self._conns[conn.conn_id] = conn
        key = (conn.kind, conn.endpoint.host, conn.endpoint.port)
        self._by_addr[key] = conn
        self._per_host[conn.endpoint.host] = self._per_host.get(conn.endpoint.host, 0) + 1

    def _unregister(self, conn: _Connection) -> None:
        if self._conns.pop(conn.conn_id, None) is None:
            return
        assert conn.endpoint is not None
        key = (conn.kind, conn.endpoint.host, conn.endpoint.port)
        if self._by_addr.get(key) is conn:
            del self._by_addr[key]
        host = conn.endpoint.host
        left = self._per_host.get(host, 1) - 1
        if left > 0:
            self._per_host[host] = left
        else:
            self._per_host.pop(host, None)

    def _connection_made(self, conn: _Connection) -> None:
        if conn.conn_id in self._conns:  # an outgoing one, registered at connect time
            return
        assert conn.endpoint is not None
        assert conn.transport is not None
        host = conn.endpoint.host
        if (
            self._closing
            or len(self._conns) >= self.limits.max_connections
            or self._per_host.get(host, 0) >= self.limits.max_connections_per_host
        ):
            log.warning("connection.refused", extra={"peer": str(conn.endpoint), "reason": "limit"})
            conn.closed = True
            conn.transport.abort()
            return
        self._register(conn)

    def _connection_lost(self, conn: _Connection) -> None:
        known = conn.conn_id in self._conns
        self._unregister(conn)
        if known and self.on_connection_lost is not None and conn.endpoint is not None:
            self.on_connection_lost(conn.endpoint)

    def _schedule_sweep(self) -> None:
        interval = max(1.0, min(30.0, self.limits.idle_timeout / 4))
        self._sweeper = self.loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        deadline = self.loop.time() - self.limits.idle_timeout
        for conn in list(self._conns.values()):
            if conn.last_activity < deadline:
                conn.close()
        self._schedule_sweep()
