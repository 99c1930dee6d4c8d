"""Symmetric RTP latching ("comedia"): where to send a leg's media, whom to believe.

Pure: addresses, header fields and ``now`` in; decisions out. The relay's
asyncio shell asks ``Latch.accept`` for every packet that does not come from
the latched address (the fast path compares one tuple and never calls here).

Why latch: a phone behind NAT writes its private address in its SDP; the
packets it sends arrive from the NAT's public mapping. RFC 4961 (symmetric RTP)
lets the relay answer to the source it sees: once latched, media for the leg
goes to the address packets come *from*, not the one the SDP named.

Why not latch on anything: an address that sends one packet to a relay port
must not capture a call's audio (RTP injection / hijacking). The rules:

1. **Before latching**, media goes to the SDP address. A packet from the SDP
   address itself latches at once (signalling vouches for it). Any other
   source is a *candidate* on probation: it must send ``packets`` valid RTP
   packets in a row (same SSRC, each sequence number one above the previous,
   RFC 3550 §A.1's probation idea) before it latches; until then its packets are
   dropped, so at most ``packets - 1`` frames (40 ms with the default 3) are
   lost at the start of a NATed call, and a spoofer gains nothing by racing
   the phone. Up to ``MAX_CANDIDATES`` sources are on probation at once; a new
   one evicts the newest of the candidates with the fewest packets, so a spray
   of packets from many addresses cannot keep the real phone from latching.
2. **Once latched**, packets from any other address are dropped, unless the
   latched source has been silent for ``quiet`` seconds: then the newcomer
   goes through probation again and re-latches (a phone whose NAT mapping
   changed, a phone that moved). An injector therefore has to wait for the
   call's own audio to stop for ``quiet`` seconds *and* send a valid stream.
3. **New SDP** (``signal``) with a different address means the media moved
   (re-INVITE, transfer): the latch is forgotten and rules 1-2 start over. The
   same address again (hold/resume) keeps it. ``signal(None)`` is hold
   (``c=0.0.0.0``): nothing is sent, the latch is kept for the resume.
4. **SRTP legs** authenticate before they latch: the shell only calls
   ``accept`` for packets that decrypted, so an injector without the key
   never becomes a candidate.

RTCP (``rtcp_accept``) follows its RTP: RTCP is accepted, and its return address
learnt, only from the host the RTP latched to (before that, from the SDP host).
Reports come every few seconds, too rarely for a probation of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_CANDIDATES", "Address", "Latch", "LatchConfig", "rtcp_accept"]

Address = tuple[str, int]

MAX_CANDIDATES = 4


@dataclass(frozen=True, slots=True)
class LatchConfig:
    """``packets``: consecutive valid packets that latch a new source (>= 1);
    ``quiet``: seconds of silence from the latched source before another may
    latch (re-latch)."""

    packets: int = 3
    quiet: float = 2.0

    def __post_init__(self) -> None:
        if self.packets < 1:
            raise ValueError("latching needs at least 1 packet")
        if self.quiet < 0:
            raise ValueError("quiet time must not be negative")


@dataclass(slots=True)
class _Candidate:
    ssrc: int
    sequence: int
    count: int


class Latch:
    """The latching state of one leg's RTP stream (see the module docstring)."""

    __slots__ = (
        "_candidates",
        "_remembered",
        "config",
        "last_seen",
        "latched",
        "latches",
        "signalled",
        "target",
    )

    def __init__(self, config: LatchConfig | None = None) -> None:
        self.config = config or LatchConfig()
        self.signalled: Address | None = None
        """The SDP address, None on hold or before any SDP."""
        self.latched: Address | None = None
        """The source learnt from the media; the shell's fast path compares with it."""
        self.last_seen = 0.0
        """When the latched source last sent (the shell updates it on its fast path)."""
        self.latches = 0
        """How many times this leg latched (1 normally; more after re-latching)."""
        self.target: Address | None = None
        """Where media for this leg goes: None on hold. Kept up to date by ``signal``
        and latching rather than computed: the shell reads it for every packet."""
        self._remembered: Address | None = None  # the last SDP address, kept across hold
        self._candidates: dict[Address, _Candidate] = {}

    def signal(self, address: Address | None) -> None:
        """The leg's SDP named ``address`` (None or ``0.0.0.0`` = hold)."""
        if address is not None and address[0] in ("0.0.0.0", "::"):
            address = None
        if address is None:
            self.signalled = None
        else:
            if self._remembered is not None and address != self._remembered:
                # The media moved: what we learnt about the old source is void.
                self.latched = None
                self._candidates.clear()
            self.signalled = self._remembered = address
        self._retarget()

    def accept(self, source: Address, ssrc: int, sequence: int, now: float) -> bool:
        """Whether a valid RTP packet from ``source`` is the leg's media (relay it).

        Called for packets that are not from ``latched`` (or, harmlessly, that are).
        """
        if source == self.latched:
            self.last_seen = now
            return True
        if self.latched is not None and now - self.last_seen < self.config.quiet:
            return False  # rule 2: someone else talks over a live stream
        if self.latched is None and source == self.signalled:
            self._latch(source, now)  # rule 1: the SDP address needs no probation
            return True
        candidates = self._candidates
        candidate = candidates.get(source)
        if candidate is None:
            if len(candidates) >= MAX_CANDIDATES:
                # The newest of the weakest goes: a spray of one-packet sources
                # churns among itself and cannot push out an older candidate.
                weakest = min(reversed(candidates), key=lambda a: candidates[a].count)
                del candidates[weakest]
            candidate = candidates[source] = _Candidate(ssrc, sequence, 1)
        elif candidate.ssrc == ssrc and sequence == (candidate.sequence + 1) & 0xFFFF:
            candidate.sequence = sequence
            candidate.count += 1
        else:
            candidate.ssrc, candidate.sequence, candidate.count = ssrc, sequence, 1
        if candidate.count >= self.config.packets:
            self._latch(source, now)
            return True
        return False

    def _latch(self, source: Address, now: float) -> None:
        self.latched = source
        self.last_seen = now
        self.latches += 1
        self._candidates.clear()
        self._retarget()

    def _retarget(self) -> None:
        # ``signalled`` and ``latched`` change only in ``signal`` and ``_latch``.
        self.target = None if self.signalled is None else self.latched or self.signalled


def rtcp_accept(source: Address, rtp: Latch, rtcp_signalled: Address | None) -> bool:
    """Whether RTCP from ``source`` belongs to the leg whose RTP latch is ``rtp``.

    The RTCP host must be the host RTP latched to; before RTP latched, the host
    of the SDP's RTCP (or RTP) address.
    """
    if rtp.latched is not None:
        return source[0] == rtp.latched[0]
    if rtcp_signalled is not None:
        return source[0] == rtcp_signalled[0]
    return rtp.signalled is not None and source[0] == rtp.signalled[0]
