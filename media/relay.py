"""The media relay: RTP/RTCP between the two legs of a call, on 127.0.0.1 or any address.

The asyncio shell around the pure parts: ``media.latching`` decides whom to
believe and where to send, ``media.player`` which announcement frames are due,
``media.ports`` which ports to bind. A session owns two legs (``a`` = caller
side, ``b`` = callee side); each leg binds an RTP socket on an even port and an
RTCP socket on the port above (RFC 3550 §11), each with its own
``DatagramProtocol``. What arrives on one leg goes out of the other leg's
socket of the same kind, so the phone sees its media come from the address and
port its SDP answer named (symmetric RTP, RFC 4961). A leg whose SDP gives one
address for RTP and RTCP multiplexes them (rtcp-mux, RFC 5761): its RTP socket
tells RTCP apart by the second octet (§4) and sends it RTCP as well.

Per packet (the fast path, ``_RtpProtocol.datagram_received``): a version check,
the RTCP demultiplexing test, SRTP decryption when the leg has keys, one tuple
comparison with the latched source, counters, the tap, then SRTP encryption and
``sendto`` toward the other leg. SSRC, sequence numbers and timestamps pass
unchanged; the only rewrite is the marker bit on the first bridged packet after
an announcement (RFC 3551 §4.1: the content jumps there). No per-packet
allocation beyond what SRTP needs, no per-packet log line.

SRTP (RFC 3711, SDES keys of RFC 4568) is terminated per leg with libsrtp
(``pylibsrtp``): ``set_srtp(inbound, outbound)`` gives the keys the phone
encrypts with (decrypt what arrives) and the ones we encrypt with (what the
phone decrypts). SRTCP uses the same sessions. A packet that fails
authentication or the replay check is dropped and counted as ``srtp_errors``.

Playing (``RelayLeg.play``): while a ``Player`` is set on a leg, media toward
that leg comes from the player (its own SSRC, sequence numbers and timestamps,
paced by ``loop.call_at`` on ``next_deadline``; a timer the loop runs counts as
its deadline reached, see ``_play_tick``), and bridged packets toward that leg
are dropped. When the player is done (or ``play(None)``), bridging resumes
and the next bridged packet carries the marker bit; ``on_done`` is called.

RTP timeout: once a session is answered, a leg whose phone is expected to send
(direction ``sends`` and not on hold) and from which no accepted RTP arrived for
``rtp_timeout`` seconds fires the session's ``on_timeout`` callback, once, with
reason ``"rtp_timeout"``. The fast path stores the arrival time; one timer per
session re-arms at the earliest possible deadline, so a talking call wakes the
timer about once per ``rtp_timeout``.

Errors: a peer's garbage is counted (``dropped``, ``srtp_errors``), never raised.
``PortsExhausted`` (from ``media.ports``) when no port pair is free::

    ValueError
     ├── PortError / PortsExhausted     (media.ports) no relay port free
     └── SrtpKeysError                  unknown suite or wrong key length
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import math
import socket
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import pylibsrtp

from media.latching import Address, Latch, LatchConfig, rtcp_accept
from media.player import Player
from media.ports import PortAllocator, PortsExhausted
from media.rtp import RTP_HEADER_LENGTH, peek_header
from media.sdp import SRTP_KEY_LENGTHS

__all__ = [
    "SRTP_PROFILES",
    "MediaRelay",
    "RelayLeg",
    "RelaySession",
    "SrtpKeys",
    "SrtpKeysError",
]

logger = logging.getLogger(__name__)

# RFC 4568 crypto-suite names (and RFC 7714's AEAD ones) to libsrtp profiles.
# AES_256_CM_HMAC_SHA1_* (RFC 6188) have no libsrtp profile constant in pylibsrtp.
SRTP_PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}

# DSCP EF (RFC 3246, 46) in the IPv4 TOS byte: voice is expedited forwarding.
_TOS_EF = 46 << 2
# A port that fails to bind this many times is retired (someone else owns it).
_BIND_FAILURES_TO_RETIRE = 3
_BIND_ATTEMPTS = 16

TimeoutCallback = Callable[["RelaySession", str], None]
TapCallback = Callable[[bytes], None]


class SrtpKeysError(ValueError):
    """The crypto-suite is not supported, or the key has the wrong length for it."""


@dataclass(frozen=True)
class SrtpKeys:
    """One direction's SRTP master key and salt, concatenated (``Crypto.key()``)."""

    suite: str
    key: bytes

    def __post_init__(self) -> None:
        if self.suite not in SRTP_PROFILES:
            raise SrtpKeysError(f"unsupported SRTP crypto-suite {self.suite!r}")
        expected = SRTP_KEY_LENGTHS[self.suite]
        if len(self.key) != expected:
            raise SrtpKeysError(
                f"SRTP key of {self.suite} must be {expected} bytes, not {len(self.key)}"
            )

    def session(self, *, inbound: bool) -> pylibsrtp.Session:
        policy = pylibsrtp.Policy(
            key=self.key,
            ssrc_type=(
                pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND
            ),
            srtp_profile=SRTP_PROFILES[self.suite],
        )
        if not inbound:
            # A duplicate from the network is passed on, not an error.
            policy.allow_repeat_tx = True
        return pylibsrtp.Session(policy=policy)


def _bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _TOS_EF)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _LegProtocol(asyncio.DatagramProtocol):
    """One socket of a leg: what its phone sends is relayed toward the other leg.

    ``leg`` is None while the socket is parked (``MediaRelay``'s pool): what
    arrives then is dropped, and ``relay`` is told when the socket closes."""

    __slots__ = ("leg", "relay")

    def __init__(self, leg: RelayLeg) -> None:
        self.leg: RelayLeg | None = leg
        self.relay: MediaRelay | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.leg is None:
            if self.relay is not None:
                self.relay._parked_socket_closed()
            return
        session = self.leg._session()
        if session is not None:
            session._socket_closed()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the phone is gone or not there yet.
        session = self.leg._session() if self.leg is not None else None
        if session is not None:
            session._errors += 1


class _RtpProtocol(_LegProtocol):
    """The RTP socket of one leg (RTCP too when the leg multiplexes, RFC 5761)."""

    __slots__ = ("_time",)

    def __init__(self, leg: RelayLeg, time: Callable[[], float]) -> None:
        super().__init__(leg)
        self._time = time

    def datagram_received(self, data: bytes, addr: Any) -> None:
        leg = self.leg
        if leg is None:  # parked
            return
        if len(data) < RTP_HEADER_LENGTH or data[0] & 0xC0 != 0x80:
            leg.session._dropped += 1
            return
        # RFC 5761 §4 (``media.rtp.is_rtcp``, inlined): a second octet of 192-223
        # is RTCP, which a multiplexing leg sends to this port.
        if 192 <= data[1] <= 223 and leg._rtcp_muxed():
            leg._receive_rtcp(data, addr)
            return
        srtp = leg._srtp_in
        if srtp is not None:
            try:
                data = srtp.unprotect(data)
            except pylibsrtp.Error:
                leg.session._srtp_errors += 1
                return
        latch = leg._latch
        if addr == latch.latched:
            latch.last_seen = self._time()
        elif not leg._admit(data, addr, self._time()):
            return
        leg._packets_in += 1
        leg._bytes_in += len(data)
        if leg._tap is not None:
            leg._tap(data)
        if not leg._sends:
            return
        other = leg._peer
        if other is None or other._player is not None or not other._receives:
            return
        dest = other._latch.target
        if dest is None or other._rtp is None:
            return
        if other._marker:
            other._marker = False
            marked = bytearray(data)
            marked[1] |= 0x80
            data = bytes(marked)
        out = other._srtp_out
        if out is not None:
            data = out.protect(data)
        other._rtp.sendto(data, dest)
        other._packets_out += 1
        other._bytes_out += len(data)


class _RtcpProtocol(_LegProtocol):
    """The RTCP socket of one leg: reports go to the other leg's RTCP address."""

    __slots__ = ()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.leg is not None:  # else parked
            self.leg._receive_rtcp(data, addr)


class RelayLeg:
    """One side of a session: a pair of relay ports facing one phone (or trunk)."""

    def __init__(
        self,
        session: RelaySession,
        name: str,
        address: str,
        rtp_port: int,
        latch: LatchConfig,
    ) -> None:
        # Weak, like ``_peer`` cleared at close: a finished call's session and legs
        # are freed by reference counting, not left as cyclic garbage for the GC.
        self._session = weakref.ref(session)
        self.name = name
        self.address = address
        """What goes into this leg's SDP ``c=``."""
        self.rtp_port = rtp_port
        self.rtcp_port = rtp_port + 1
        self._peer: RelayLeg | None = None  # set by the session, cleared at close
        self._latch = Latch(latch)
        self._rtcp_signalled: Address | None = None
        self._rtcp_latched: Address | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._parked = False  # its sockets went to the relay's pool at close
        self._srtp_in: pylibsrtp.Session | None = None
        self._srtp_out: pylibsrtp.Session | None = None
        self._sends = True
        self._receives = True
        self._tap: TapCallback | None = None
        self._player: Player | None = None
        self._player_done: Callable[[], None] | None = None
        self._player_timer: asyncio.TimerHandle | None = None
        self._marker = False
        self._watch_since = 0.0
        self._packets_in = self._bytes_in = self._packets_out = self._bytes_out = 0
        self._rtcp_in = self._rtcp_out = 0

    @property
    def session(self) -> RelaySession:
        session = self._session()
        if session is None:  # only protocol callbacks may outlive it; they check
            raise RuntimeError(f"relay leg {self.name}: its session is gone")
        return session

    # ------------------------------------------------------------ B2BUA API

    def set_remote(self, rtp: tuple[str, int] | None, rtcp: tuple[str, int] | None = None) -> None:
        """The phone's media address from its SDP; None (or ``0.0.0.0``) is hold.

        ``rtcp`` defaults to the RTP port + 1 (RFC 3605's ``a=rtcp`` overrides it);
        ``rtcp == rtp`` is rtcp-mux (RFC 5761): RTCP shares the RTP port both ways.
        """
        before = self._latch.signalled
        self._latch.signal(rtp)
        if self._latch.signalled is None:
            self._rtcp_signalled = None
        else:
            self._rtcp_signalled = rtcp or (self._latch.signalled[0], self._latch.signalled[1] + 1)
            if self._latch.latched is None:
                self._rtcp_latched = None
        if before != self._latch.signalled:
            self.session._watch_changed(self)

    def set_srtp(self, inbound: SrtpKeys | None, outbound: SrtpKeys | None) -> None:
        """Terminate SRTP on this leg: decrypt with ``inbound``, encrypt with ``outbound``."""
        self._srtp_in = inbound.session(inbound=True) if inbound is not None else None
        self._srtp_out = outbound.session(inbound=False) if outbound is not None else None

    def set_direction(self, sends: bool, receives: bool) -> None:
        """The SDP direction as seen from the phone (``sendonly`` = sends, not receives)."""
        changed = sends != self._sends
        self._sends = sends
        self._receives = receives
        if changed:
            self.session._watch_changed(self)

    def play(self, player: Player | None, *, on_done: Callable[[], None] | None = None) -> None:
        """Media toward this leg from ``player`` instead of the other leg; None = bridge again.

        ``on_done`` is called when the player has sent its last frame (not when it
        is replaced or stopped with ``play(None)``).
        """
        was_playing = self._player is not None
        self._stop_player()
        if player is None:
            if was_playing:
                self._marker = True
            return
        if self.session.closed:
            return
        self._player = player
        self._player_done = on_done
        self._marker = False
        self._play_tick()

    def on_rtp(self, callback: TapCallback | None) -> None:
        """Tap: every RTP packet accepted from this leg's phone, whole and decrypted.

        Header included (DTMF needs the payload type and timestamp:
        ``media.rtp.peek_header``, payload from byte 12 for packets without CSRC
        or extension). Runs on the fast path: keep it cheap, filter on the
        payload type first.
        """
        self._tap = callback

    # ------------------------------------------------------------ read side

    @property
    def remote(self) -> Address | None:
        """Where this leg's media goes now (latched source, else SDP; None on hold)."""
        return self._latch.target

    @property
    def latched(self) -> Address | None:
        return self._latch.latched

    @property
    def playing(self) -> bool:
        return self._player is not None

    # ------------------------------------------------------------ internals

    def _admit(self, data: bytes, addr: Address, now: float) -> bool:
        """The slow path: a packet from an address that is not the latched one."""
        header = peek_header(data)
        assert header is not None  # version checked by the caller
        before = self._latch.latched
        if not self._latch.accept(addr, header[3], header[1], now):
            self.session._dropped += 1
            return False
        if before != addr:
            if before is None:
                logger.debug("%s/%s latched to %s:%d", self.session.name, self.name, *addr)
            else:
                logger.info(
                    "%s/%s re-latched from %s:%d to %s:%d",
                    self.session.name,
                    self.name,
                    *before,
                    *addr,
                )
            if self._rtcp_latched is not None and self._rtcp_latched[0] != addr[0]:
                self._rtcp_latched = None
        return True

    def _receive_rtcp(self, data: bytes, addr: Address) -> None:
        """RTCP from this leg's phone, on its RTCP port or (rtcp-mux) its RTP port."""
        session = self.session
        # RFC 3550 §6.4.1: version 2, and a packet type of 200-204 in the second
        # octet for SR/RR/SDES/BYE/APP (192-223 is the range RFC 5761 §4 reserves).
        if len(data) < 8 or data[0] & 0xC0 != 0x80 or not 192 <= data[1] <= 223:
            session._dropped += 1
            return
        srtp = self._srtp_in
        if srtp is not None:
            try:
                data = srtp.unprotect_rtcp(data)
            except pylibsrtp.Error:
                session._srtp_errors += 1
                return
        if addr != self._rtcp_latched:
            if not rtcp_accept(addr, self._latch, self._rtcp_signalled):
                session._dropped += 1
                return
            self._rtcp_latched = addr
        self._rtcp_in += 1
        other = self._peer
        if other is None:
            return
        dest = other._rtcp_target()
        # RFC 5761 §4: a multiplexing phone gets its RTCP from the RTP port too.
        transport = other._rtp if other._rtcp_muxed() else other._rtcp
        if dest is None or transport is None:
            return
        out = other._srtp_out
        if out is not None:
            data = out.protect_rtcp(data)
        transport.sendto(data, dest)
        other._rtcp_out += 1

    def _rtcp_muxed(self) -> bool:
        """RTCP shares the RTP port (RFC 5761): the SDP gave one address for both."""
        return self._rtcp_signalled is not None and self._rtcp_signalled == self._latch.signalled

    def _rtcp_target(self) -> Address | None:
        signalled = self._latch.signalled
        if signalled is None:
            return None
        if self._rtcp_latched is not None:
            return self._rtcp_latched
        latched = self._latch.latched
        if latched is not None and latched != signalled:
            # RTP latched to a NAT mapping: RTCP's is the same one with rtcp-mux,
            # else a guess, the next port.
            return latched if self._rtcp_muxed() else (latched[0], latched[1] + 1)
        return self._rtcp_signalled

    def _watched(self) -> bool:
        """Whether silence from this phone counts toward the RTP timeout."""
        return self._sends and self._latch.signalled is not None

    def _last_heard(self) -> float:
        return max(self._latch.last_seen, self._watch_since)

    def _play_tick(self, armed: float = -math.inf) -> None:
        """Send what the player has due, then re-arm for its next deadline.

        ``armed``: the deadline of the timer that runs this. The loop ran that
        timer, so the deadline has come at the loop's own resolution, even when
        ``loop.time()`` still reads a little less: uvloop's clock and timers count
        whole milliseconds (libuv's ``uv_now``) and it rounds a delay to the
        nearest one, so it runs a timer up to 0.5 ms early. Asked at
        ``loop.time()`` alone, the player would find nothing due and the leg
        would re-arm for the same deadline in a busy loop until the clock ticked
        over (with ``bench/atp.py``, 50 streams kept one core 86 % busy).
        """
        self._player_timer = None
        player = self._player
        if player is None or self.session.closed:
            return
        loop = self.session._loop
        packets = player.due(max(loop.time(), armed))
        dest = self._latch.target if self._receives else None
        if dest is not None and self._rtp is not None:
            out = self._srtp_out
            for packet in packets:
                data = out.protect(packet) if out is not None else packet
                self._rtp.sendto(data, dest)
                self._packets_out += 1
                self._bytes_out += len(data)
        if player.done:
            done = self._player_done
            self._player = None
            self._player_done = None
            self._marker = True
            if done is not None:
                done()
            return
        deadline = player.next_deadline()
        assert deadline is not None
        self._player_timer = loop.call_at(deadline, self._play_tick, deadline)

    def _stop_player(self) -> None:
        if self._player_timer is not None:
            self._player_timer.cancel()
            self._player_timer = None
        self._player = None
        self._player_done = None

    def _stats(self, into: dict[str, int]) -> None:
        p = self.name
        into[f"{p}_packets_in"] = self._packets_in
        into[f"{p}_bytes_in"] = self._bytes_in
        into[f"{p}_packets_out"] = self._packets_out
        into[f"{p}_bytes_out"] = self._bytes_out
        into[f"{p}_rtcp_in"] = self._rtcp_in
        into[f"{p}_rtcp_out"] = self._rtcp_out
        into[f"{p}_latches"] = self._latch.latches


class RelaySession:
    """The relay side of one call: leg ``a`` (caller) and leg ``b`` (callee)."""

    def __init__(
        self,
        relay: MediaRelay,
        name: str,
        address: str,
        ports: tuple[int, int],
        rtp_timeout: float,
        latch: LatchConfig,
    ) -> None:
        self.name = name
        self._relay = relay
        self._loop = asyncio.get_running_loop()
        self.a = RelayLeg(self, "a", address, ports[0], latch)
        self.b = RelayLeg(self, "b", address, ports[1], latch)
        self.a._peer, self.b._peer = self.b, self.a
        self.rtp_timeout = rtp_timeout
        self.closed = False
        self._answered = False
        self._timeout_callback: TimeoutCallback | None = None
        self._timed_out = False
        self._timer: asyncio.TimerHandle | None = None
        self._open_sockets = 0
        self._all_closed = self._loop.create_future()
        self._dropped = self._srtp_errors = self._errors = 0

    def on_timeout(self, callback: TimeoutCallback) -> None:
        """``callback(session, "rtp_timeout")``, once, when an answered call goes silent."""
        self._timeout_callback = callback

    def set_answered(self, answered: bool) -> None:
        """The RTP timeout runs only while the session is answered."""
        if answered == self._answered:
            return
        self._answered = answered
        now = self._loop.time()
        for leg in (self.a, self.b):
            leg._watch_since = now
        self._arm()

    def close(self) -> None:
        """Stop relaying and give the ports back (idempotent; the sockets close next tick)."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timeout_callback = None
        for leg in (self.a, self.b):
            leg._stop_player()
            leg._tap = None
            leg._peer = None
            if self._relay._park(leg):
                self._open_sockets -= 2  # the relay's now, still open
                continue
            for transport in (leg._rtp, leg._rtcp):
                if transport is not None:
                    transport.close()
        self._relay._forget(self)
        if self._open_sockets == 0 and not self._all_closed.done():
            self._all_closed.set_result(None)

    async def wait_closed(self) -> None:
        """After ``close()``: until the four sockets are really closed (fds released)."""
        await asyncio.shield(self._all_closed)

    def stats(self) -> dict[str, int]:
        """Packets/bytes in/out per leg (``a_packets_in``...), ``dropped``, ``srtp_errors``."""
        out: dict[str, int] = {}
        self.a._stats(out)
        self.b._stats(out)
        out["dropped"] = self._dropped
        out["srtp_errors"] = self._srtp_errors
        out["socket_errors"] = self._errors
        return out

    # ------------------------------------------------------------ internals

    def _socket_closed(self) -> None:
        self._open_sockets -= 1
        if self._open_sockets == 0 and self.closed and not self._all_closed.done():
            self._all_closed.set_result(None)

    def _watch_changed(self, leg: RelayLeg) -> None:
        leg._watch_since = self._loop.time()
        self._arm()

    def _arm(self) -> None:
        """Re-arm the one RTP-timeout timer at the earliest deadline of a watched leg."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._answered or self._timed_out or self.closed:
            return
        heard = [leg._last_heard() for leg in (self.a, self.b) if leg._watched()]
        if heard:
            self._timer = self._loop.call_at(min(heard) + self.rtp_timeout, self._check)

    def _check(self) -> None:
        self._timer = None
        now = self._loop.time()
        for leg in (self.a, self.b):
            if leg._watched() and now - leg._last_heard() >= self.rtp_timeout:
                self._timed_out = True
                logger.info(
                    "%s: no RTP from leg %s for %.1f s", self.name, leg.name, self.rtp_timeout
                )
                if self._timeout_callback is not None:
                    self._timeout_callback(self, "rtp_timeout")
                return
        self._arm()


class _Parked:
    """A port pair whose bound sockets wait in the pool for the next session."""

    __slots__ = ("port", "rtcp", "rtp", "since")

    def __init__(
        self,
        port: int,
        rtp: asyncio.DatagramTransport,
        rtcp: asyncio.DatagramTransport,
        since: float,
    ) -> None:
        self.port = port
        self.rtp = rtp
        self.rtcp = rtcp
        self.since = since


class MediaRelay:
    """Opens relay sessions on ``address`` with ports from ``ports``.

    ``pool``: how many port pairs of finished sessions keep their sockets bound
    for later sessions (0: none, every session binds and closes its four
    sockets, about 75 µs of system calls per call). A parked pair is handed
    out again ``quarantine`` seconds after its session closed at the earliest
    (sooner only when the range has no free pair left), so that packets still
    in flight toward a finished call find nobody (they are dropped while
    parked) rather than the next call's legs; its ports stay within the range,
    out of ``ports.in_use`` while parked. A pair parked for ``linger`` seconds
    is closed and its ports freed: the pool holds what the current call rate
    reuses, and an idle relay holds nothing, so that another process binding
    the same range (a second switch, a test) does not find a run of busy ports.
    ``close()`` closes the pool too.
    """

    def __init__(
        self,
        *,
        address: str = "127.0.0.1",
        ports: PortAllocator,
        rtp_timeout: float = 30.0,
        latch: LatchConfig | None = None,
        pool: int = 0,
        quarantine: float = 0.5,
        linger: float = 2.0,
    ) -> None:
        self.address = address
        self.ports = ports
        self.rtp_timeout = rtp_timeout
        self.latch = latch or LatchConfig()
        self.pool = pool
        self.quarantine = quarantine
        self.linger = max(linger, quarantine)
        self._trim_timer: asyncio.TimerHandle | None = None
        self._sessions: dict[str, RelaySession] = {}
        self._closing: set[RelaySession] = set()
        self._bind_failures: dict[int, int] = {}
        self._parked: deque[_Parked] = deque()  # oldest first
        self._parked_open = 0  # sockets of closed parked pairs not yet gone
        self._parked_gone: asyncio.Future[None] | None = None

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def session(self, name: str) -> RelaySession | None:
        return self._sessions.get(name)

    async def open_session(self, name: str) -> RelaySession:
        """Bind two legs × (RTP, RTCP); raises ``PortsExhausted`` when the range is full."""
        if name in self._sessions:
            raise ValueError(f"relay session {name!r} already open")
        first = self._take()
        try:
            second = self._take()
        except BaseException:
            self._release(first)
            raise
        pairs = (first, second)
        a_port, b_port = (p.port if isinstance(p, _Parked) else p[0] for p in pairs)
        session = RelaySession(
            self, name, self.address, (a_port, b_port), self.rtp_timeout, self.latch
        )
        self._sessions[name] = session
        loop = asyncio.get_running_loop()
        try:
            for leg, pair in ((session.a, pairs[0]), (session.b, pairs[1])):
                if isinstance(pair, _Parked):
                    for transport in (pair.rtp, pair.rtcp):
                        protocol = cast(_LegProtocol, transport.get_protocol())
                        protocol.leg = leg
                        protocol.relay = None
                    leg._rtp, leg._rtcp = pair.rtp, pair.rtcp
                    session._open_sockets += 2
                    continue
                _, rtp_sock, rtcp_sock = pair
                rtp, _ = await loop.create_datagram_endpoint(
                    functools.partial(_RtpProtocol, leg, loop.time), sock=rtp_sock
                )
                session._open_sockets += 1
                leg._rtp = rtp
                rtcp, _ = await loop.create_datagram_endpoint(
                    functools.partial(_RtcpProtocol, leg), sock=rtcp_sock
                )
                session._open_sockets += 1
                leg._rtcp = rtcp
        except BaseException:
            for pair in pairs:
                if not isinstance(pair, _Parked):
                    pair[1].close()
                    pair[2].close()
            session.close()
            raise
        return session

    async def close(self) -> None:
        """Close every session and the pool, and wait for their sockets."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.close()
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        while self._parked:
            self._close_parked(self._parked.popleft())
        waiting: list[Awaitable[None]] = [s.wait_closed() for s in (*sessions, *self._closing)]
        if self._parked_open:
            self._parked_gone = asyncio.get_running_loop().create_future()
            waiting.append(self._parked_gone)
        if waiting:
            await asyncio.gather(*waiting)
        self._parked_gone = None

    # ------------------------------------------------------------ internals

    def _bind_pair(self) -> tuple[int, socket.socket, socket.socket]:
        busy: list[int] = []
        try:
            for _ in range(_BIND_ATTEMPTS):
                port = self.ports.allocate()
                try:
                    rtp = _bind(self.address, port)
                    try:
                        rtcp = _bind(self.address, port + 1)
                    except BaseException:
                        rtp.close()
                        raise
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        self.ports.release(port)
                        raise
                    busy.append(port)
                    continue
                self._bind_failures.pop(port, None)
                return port, rtp, rtcp
            raise OSError(errno.EADDRINUSE, f"{_BIND_ATTEMPTS} relay ports in a row are busy")
        finally:
            for port in busy:
                # Behind the queue (a socket of ours may still be closing), or out
                # for good when another process keeps it.
                failures = self._bind_failures.get(port, 0) + 1
                if failures >= _BIND_FAILURES_TO_RETIRE:
                    self._bind_failures.pop(port, None)
                    self.ports.retire(port)
                    logger.warning("relay port %d retired: always in use", port)
                else:
                    self._bind_failures[port] = failures
                    self.ports.release(port)

    def _take(self) -> _Parked | tuple[int, socket.socket, socket.socket]:
        """A port pair for a new session: a parked pair out of quarantine, else a
        newly bound one, else (no port free, or the free ones busy in the OS) a
        parked pair still in quarantine. Quarantine only orders the choice: a
        call is never refused while the pool holds a pair."""
        pair = self._unpark()
        if pair is not None:
            return pair
        try:
            return self._bind_pair()
        except (PortsExhausted, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno != errno.EADDRINUSE:
                raise
            pair = self._unpark(force=True)
            if pair is None:
                raise
            return pair

    def _release(self, pair: _Parked | tuple[int, socket.socket, socket.socket]) -> None:
        """A pair taken for a session that could not open: back where it came from."""
        if isinstance(pair, _Parked):
            self.ports.park(pair.port)
            self._parked.appendleft(pair)
            return
        port, rtp, rtcp = pair
        rtp.close()
        rtcp.close()
        self.ports.release(port)

    def _unpark(self, *, force: bool = False) -> _Parked | None:
        """The oldest parked pair, once out of quarantine (or when no port is
        free, or ``force``)."""
        parked = self._parked
        if not parked:
            return None
        pair = parked[0]
        if not force and self.ports.available:
            now = asyncio.get_running_loop().time()
            if now - pair.since < self.quarantine:
                return None
        parked.popleft()
        self.ports.unpark(pair.port)
        return pair

    def _park(self, leg: RelayLeg) -> bool:
        """Keep the sockets of a closing session's ``leg`` in the pool, if it has room."""
        rtp, rtcp = leg._rtp, leg._rtcp
        if (
            len(self._parked) >= self.pool
            or rtp is None
            or rtcp is None
            or rtp.is_closing()
            or rtcp.is_closing()
        ):
            return False
        for transport in (rtp, rtcp):
            cast(_LegProtocol, transport.get_protocol()).leg = None
        leg._rtp = leg._rtcp = None
        leg._parked = True
        self.ports.park(leg.rtp_port)
        loop = asyncio.get_running_loop()
        self._parked.append(_Parked(leg.rtp_port, rtp, rtcp, loop.time()))
        if self._trim_timer is None:
            self._trim_timer = loop.call_at(self._parked[0].since + self.linger, self._trim)
        return True

    def _close_parked(self, pair: _Parked) -> None:
        self.ports.release_parked(pair.port)
        for transport in (pair.rtp, pair.rtcp):
            cast(_LegProtocol, transport.get_protocol()).relay = self
            self._parked_open += 1
            transport.close()

    def _trim(self) -> None:
        """Close the pairs parked for ``linger`` seconds; come back for the next one."""
        self._trim_timer = None
        loop = asyncio.get_running_loop()
        parked = self._parked
        while parked and loop.time() - parked[0].since >= self.linger:
            self._close_parked(parked.popleft())
        if parked:
            self._trim_timer = loop.call_at(parked[0].since + self.linger, self._trim)

    def _parked_socket_closed(self) -> None:
        self._parked_open -= 1
        gone = self._parked_gone
        if self._parked_open == 0 and gone is not None and not gone.done():
            gone.set_result(None)

    def _forget(self, session: RelaySession) -> None:
        if self._sessions.get(session.name) is session:
            del self._sessions[session.name]
        for leg in (session.a, session.b):
            if not leg._parked:
                self.ports.release(leg.rtp_port)
        if session._open_sockets:
            self._closing.add(session)
            session._all_closed.add_done_callback(lambda _: self._closing.discard(session))
