"""Transfers and pickups in the B2BUA: which calls and which parties, who may.

The call core (``switch.call``) does the SIP and the media of every step (202 and
NOTIFYs, re-INVITEs, CANCELs, answers); this module, driven by the executor
(``switch.b2bua``), finds the calls involved, authorises, creates the new call of
a blind transfer, and moves a party, its Call-ID index and its line count, from
one call to the other. Three ways in:

**REFER** (RFC 3515) from a bridged party, the *referrer*; its peer is the
*transferee*. The referrer must be one of our lines (a trunk's party may not
transfer: 403). The REFER gets 202 and a first NOTIFY ``100 Trying``; each later
step a NOTIFY (RFC 3420 sipfrag): ``180 Ringing``, then the final status.

- *Blind* (``Refer-To: <sip:403@pbx.test>``): a new call is placed *as if the
  referrer dialled* the Refer-To user, through the executor's own dial path
  (``B2bua._setup``: lines, forwards, groups, trunks under the referrer's
  restriction profile), with ``Referred-By`` (RFC 3892). Its A side is a
  ``LocalOrigin`` (no network peer) offering the transferee's media in use; its
  answers are observed, not sent. When the target answers, the transferee moves
  into the new call (``Call.hand_over`` then ``Call.adopt``): a re-INVITE gives it
  the target's media on the new call's relay session, the referrer gets the final
  NOTIFY then its BYE, the first call ends (``transferred``). When the target
  fails, the final NOTIFY says why (``403 Destination barred (premium)``,
  ``486 Busy Here``...) and the first call stays as it was: the referrer may take
  the transferee back off hold; if it had already hung up, the transferee is
  released.
- *Attended* (``Refer-To: <sip:403@pbx.test?Replaces=...>``, RFC 3891): the
  Replaces must name one of the switch's dialogs *towards the referrer's own
  line* (its consultation call; else 403). The transferee moves into that call
  in the referrer's place (re-INVITE with the target's media, resuming both if
  held); the referrer's two legs end. A consultation still *ringing* (Poly's
  "transfer while ringing", ``allowTransferOnProceeding``) is taken over too:
  the transferee waits in the ringing call and gets the target's media when it
  answers (or is released if it does not); the referrer gets ``200`` at once.
  Unknown or ended dialog: NOTIFY ``481``; ``early-only`` on an answered call:
  ``486``.

**INVITE with Replaces** (RFC 3891) from one of our lines, digest-authenticated
like any call, naming one of the switch's dialogs of a line *of the same company*
(else 403; unknown: 481, as §3 says). Both tag orientations are accepted
(``switch.sip.refer.names_dialog``): the RFC's, and the far phone's that BLF keys
copy from dialog-info.

- a *ringing* B leg: **pickup**. The ringing legs are cancelled ("Call completed
  elsewhere"), the picker and the caller are answered on one common codec.
- a *bridged* party: its place is taken (a transferee completing an attended
  transfer itself); the new offer goes to the peer, its answer answers the INVITE.
  ``early-only``: 486.
- the caller's own dialog while it rings (an early dialog the switch did not
  initiate): 481, as §3 says.

**Directed pickup by star code**: ``B2bua.pickup(running, line)``, the star-code
helper's entry: the picker's new call hands its INVITE to the ringing call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from switch.call import (
    SRTP_KEY_MATERIAL,
    Call,
    CallState,
    Party,
    TransferAbandoned,
    TransferRequested,
)
from switch.directory import Line
from switch.sip.errors import SipError
from switch.sip.events import RequestReceived
from switch.sip.invite import InviteSession, LocalOrigin, SendResponse
from switch.sip.message import Response
from switch.sip.refer import Replaces, parse_replaces
from switch.sip.transaction_layer import NoSuchTransaction
from switch.sip.uri import parse_uri
from switch.tokens import token_bytes, token_hex

if TYPE_CHECKING:
    from switch.b2bua import B2bua, _Running

log = logging.getLogger(__name__)

# What a REFER may name: digits, '+', letters of a SIP user; never a star code.
_NOT_A_TARGET = set("*#")


class Transfers:
    """The executor's part of transfers and pickups; see the module docstring."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua

    # -- lookups ---------------------------------------------------------------------
    def line(self, key: str) -> Line | None:
        """The line of a line key (``401@pbx.test``); None for a trunk or nothing."""
        extension, _, domain = key.partition("@")
        if not extension or not domain:
            return None
        found = self.b2bua.directory.line_for(extension, domain)
        return None if found is None else found[1]

    def named(self, replaces: Replaces) -> tuple[_Running, Party] | None:
        """The running call and the party whose dialog ``replaces`` names."""
        running = self.b2bua._by_call_id.get(replaces.call_id)
        if running is None or running.ended:
            return None
        found = running.call.party_named(replaces)
        return None if found is None else (running, found[0])

    # -- moving parties between calls ---------------------------------------------------
    def move(self, src: _Running, dst: _Running, party: Party) -> None:
        """``party`` now belongs to ``dst``: its Call-ID and its line count follow."""
        call_id = party.leg.call_id
        src.call_ids.discard(call_id)
        self.b2bua._index(dst, call_id)
        if party.line and party.line in src.lines:
            src.lines.remove(party.line)
            dst.lines.append(party.line)
        elif party.line:
            self.add_line(dst, party.line)

    def add_line(self, running: _Running, key: str) -> None:
        running.lines.append(key)
        self.b2bua.active[key] += 1

    def drop_line(self, running: _Running, key: str) -> None:
        """``key``'s phone left ``running`` (replaced, picked up from): uncount it."""
        if key and key in running.lines:
            running.lines.remove(key)
            active = self.b2bua.active
            active[key] -= 1
            if active[key] <= 0:
                del active[key]

    # -- REFER ---------------------------------------------------------------------------
    def on_command(self, running: _Running, cmd: TransferRequested | TransferAbandoned) -> None:
        if isinstance(cmd, TransferAbandoned):
            self._abandoned(running)
        else:
            self._refer(running, cmd)

    def _refer(self, running: _Running, cmd: TransferRequested) -> None:
        b2bua = self.b2bua
        now = b2bua.loop.time()
        call = running.call
        referrer = self.line(cmd.referrer.line)
        if referrer is None:
            b2bua.stats["transfer_refused"] += 1
            call.refuse_transfer(cmd, 403, now, reason="Transfer not allowed")
            return
        uri = cmd.refer_to.uri
        replaces = cmd.refer_to.replaces
        if replaces is not None:
            self._attended(running, cmd, replaces, now)
            return
        called = uri.user or ""
        if not (uri.is_sip or uri.scheme == "tel") or not called or _NOT_A_TARGET & set(called):
            b2bua.stats["transfer_refused"] += 1
            call.refuse_transfer(cmd, 403, now, reason="Not a transfer target")
            return
        if not call.accept_transfer(cmd, now):
            return
        b2bua.stats["transfers"] += 1
        self._blind(running, cmd, referrer, called, now)

    def _blind(
        self, running: _Running, cmd: TransferRequested, referrer: Line, called: str, now: float
    ) -> None:
        """The new call towards the target: dialled for the referrer by the dial path."""
        b2bua = self.b2bua
        from_ = f"<sip:{referrer.extension}@{referrer.domain}>"
        origin = LocalOrigin.local(
            b2bua._config(cmd.referrer.dest),
            b2bua._ids,
            from_=from_,
            to=f"<sip:{called}@{referrer.domain}>",
            request_uri=parse_uri(f"sip:{called}@{referrer.domain}"),
            now=now,
            body=running.call.transfer_offer(),
        )
        call = Call(
            origin,
            a_dest=cmd.referrer.dest,
            ids=b2bua._ids,
            media=None,
            now=now,
            started_at=datetime.fromtimestamp(b2bua.wall(), UTC),
            caller=referrer.key,
            called=called,
            id=token_hex(8),
            limits=b2bua.limits,
            srtp_keys=(token_bytes(SRTP_KEY_MATERIAL), token_bytes(SRTP_KEY_MATERIAL)),
        )
        # RFC 3892: the target learns who sent it (as the switch knows the line).
        call.leg_headers = (("Referred-By", from_),)
        call.because.append(f"transfer of call {running.call.id} by {referrer.key}")
        attempt = type(running)(call, lines=[])  # a _Running (b2bua imports us)
        attempt.origin = running
        running.transfer = attempt
        b2bua._index(attempt, origin.call_id)
        log.info(
            "transfer.blind",
            extra={"call": running.call.id, "attempt": call.id, "called": called},
        )
        b2bua._spawn(b2bua._setup(attempt, referrer.domain, referrer, called))

    def origin_response(self, attempt: _Running, response: Response) -> None:
        """A response of a blind transfer's ``LocalOrigin`` (never sent): progress,
        failure, or the target's answer, when the transferee joins it."""
        b2bua = self.b2bua
        now = b2bua.loop.time()
        source = attempt.origin
        status = response.status
        if source is None:
            if 200 <= status < 300:
                attempt.call.hang_up("transfer-abandoned", now)  # nobody to join
            return
        call = source.call
        if status < 200:
            call.transfer_progress(status, response.reason, now)
        elif status >= 300:
            source.transfer = None
            attempt.origin = None
            call.transfer_failed(status, response.reason, now)
            b2bua.stats["transfer_failed"] += 1
        else:
            self._join(source, attempt, now)
        b2bua.execute(source)

    def _join(self, source: _Running, attempt: _Running, now: float) -> None:
        source.transfer = None
        attempt.origin = None
        new = attempt.call
        if new.winner is None or not source.call.transferring:
            # Answered by the switch itself (a service's message), not by a phone.
            source.call.transfer_failed(488, "Not Acceptable Here", now)
            new.hang_up("transfer-failed", now)
            return
        transferee = source.call.hand_over(now)
        self.move(source, attempt, transferee)
        new.adopt(transferee, new.a, now)
        self.b2bua.stats["transferred"] += 1

    def _abandoned(self, running: _Running) -> None:
        """The REFER's call ended while its blind attempt was under way."""
        attempt, running.transfer = running.transfer, None
        if attempt is None:
            return
        attempt.origin = None
        attempt.call.hang_up("transfer-abandoned", self.b2bua.loop.time())
        self.b2bua.execute(attempt)

    def _attended(
        self, running: _Running, cmd: TransferRequested, replaces: Replaces, now: float
    ) -> None:
        """REFER with Replaces: the transferee takes the referrer's place in the
        consultation call the Replaces names."""
        b2bua = self.b2bua
        call = running.call
        found = self.named(replaces)
        if found is not None and found[0] is not running and found[1].line != cmd.referrer.line:
            # Only the referrer's own consultation call may receive its transferee.
            b2bua.stats["transfer_refused"] += 1
            call.refuse_transfer(cmd, 403, now, reason="Not your call")
            return
        if not call.accept_transfer(cmd, now):
            return
        failure: tuple[int, str] | None = None
        if found is None or found[0] is running:
            failure = (481, "Call/Transaction Does Not Exist")
        else:
            other, replaced = found
            target = other.call
            if replaces.early_only and target.bridged(replaced):
                failure = (486, "Busy Here")
            elif not (target.bridged(replaced) or _ringing_caller(target, replaced)):
                failure = (481, "Call/Transaction Does Not Exist")
        if failure is not None:
            call.transfer_failed(*failure, now)
            b2bua.stats["transfer_failed"] += 1
            return
        assert found is not None
        other, replaced = found
        transferee = call.hand_over(now)
        self.move(running, other, transferee)
        self.drop_line(other, replaced.line)
        other.call.adopt(transferee, replaced, now)
        b2bua.stats["transferred"] += 1
        log.info(
            "transfer.attended",
            extra={"call": call.id, "into": other.call.id},
        )
        b2bua.execute(other)

    # -- INVITE with Replaces ----------------------------------------------------------
    def replaces_invite(self, event: RequestReceived, caller: Line, now: float) -> None:
        """An authenticated INVITE with Replaces from ``caller`` (RFC 3891 §3)."""
        b2bua = self.b2bua
        request = event.request
        values = request.headers.get_all("Replaces")
        try:
            if len(values) != 1:
                raise SipError("Exactly one Replaces", status_code=400)
            replaces = parse_replaces(values[0])
        except SipError as err:
            b2bua._refuse(request, err.status_code, err.reason)
            return
        found = self.named(replaces)
        if found is None:
            # §3: "If no match is found, the UAS rejects the INVITE and returns a
            # 481 Call/Transaction Does Not Exist response."
            b2bua._refuse(request, 481)
            return
        running, replaced = found
        owner = self.line(replaced.line)
        if owner is None or owner.company != caller.company:
            # §6: the replacement must be authorised; not across companies.
            b2bua._refuse(request, 403)
            return
        call = running.call
        if call.ringing(replaced):
            if not call.can_pick_up(request.body):
                b2bua._refuse(request, 488)
                return
            party = self._new_party(event, caller, now)
            if not call.pickup(party, now):
                self._refuse_party(running, party, 488, now)
                return
            self.drop_line(running, replaced.line)
            b2bua.stats["pickups"] += 1
        elif call.bridged(replaced):
            if replaces.early_only:
                # §3: "If the Replaces header field matches a confirmed dialog, and
                # the early-only flag is present, [...] MUST return a 486 Busy".
                b2bua._refuse(request, 486)
                return
            if not request.body:
                b2bua._refuse(request, 488)  # the peer needs an offer to answer
                return
            party = self._new_party(event, caller, now)
            if not call.adopt_new(party, replaced, now):
                self._refuse_party(running, party, 491, now)
                return
            self.drop_line(running, replaced.line)
            b2bua.stats["replaced"] += 1
        else:
            # §3: "If the Replaces header field matches an early dialog that was not
            # initiated by this UA, it returns a 481".
            b2bua._refuse(request, 481)
            return
        b2bua._index(running, party.leg.call_id)
        self.add_line(running, caller.key)
        b2bua.execute(running)

    def _new_party(self, event: RequestReceived, caller: Line, now: float) -> Party:
        b2bua = self.b2bua
        leg = InviteSession.uas(
            b2bua._config(event.source), b2bua._ids, event.request, event.key, now=now
        )
        return Party(leg, "b", event.source, label=caller.key, line=caller.key)

    def _refuse_party(self, running: _Running, party: Party, status: int, now: float) -> None:
        with contextlib.suppress(SipError):
            party.leg.respond(status, now=now)
        for command in party.leg.commands():
            if isinstance(command, SendResponse):
                with contextlib.suppress(NoSuchTransaction):
                    self.b2bua.stack.send_response(command.response)

    # -- directed pickup (star code) ----------------------------------------------------
    def pickup(self, running: _Running, line: Line) -> bool:
        """Answer a call ringing at ``line`` with the INVITE of ``running`` (the
        picker's call, unanswered, with an offer); False if none rings there (or it
        cannot be taken: other company, no common codec)."""
        b2bua = self.b2bua
        now = b2bua.loop.time()
        picker_call = running.call
        picker = picker_call.a
        if picker_call.state >= CallState.CONNECTED or picker.leg.initial_sdp is None:
            return False
        own = self.line(picker.line)
        if own is None or own.company != line.company:
            return False
        for other in _unique(b2bua._by_call_id.values()):
            if other is running or other.ended:
                continue
            # ``pickup`` checks the codecs itself, and changes nothing when it refuses.
            if other.call.ringing_line(line.key) is None or not other.call.pickup(picker, now):
                continue
            picker_call.release_a("picked-up", now)
            self.move(running, other, picker)
            self.drop_line(other, line.key)
            b2bua.stats["pickups"] += 1
            b2bua.execute(other)
            b2bua.execute(running)
            return True
        return False


def _ringing_caller(call: Call, party: Party) -> bool:
    """``party`` is the caller of a call still ringing (its INVITE unanswered)."""
    return party is call.a and call.state < CallState.CONNECTED


def _unique(runnings: Iterable[_Running]) -> list[_Running]:
    seen: dict[int, _Running] = {}
    for running in runnings:
        seen.setdefault(id(running), running)
    return list(seen.values())


__all__ = ["Transfers"]
