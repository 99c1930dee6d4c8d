"""Forwarding at call time on live calls, with raw SIP UAs over UDP.

Settings are written to the switch's store directly (as star codes would). Each forward
condition is checked on the B leg the target receives: its ``Diversion`` (RFC 5806) and
``History-Info`` (RFC 7044) headers; a loop ends as ``routing.forwarding`` specifies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from routing.linesettings import Forwarding, LineSettings
from switch.app import Server
from switch.line_settings import AsyncLineSettingsStore
from switch.sip.message import Request
from tests.adapter.raw_ua import RawUa, running_switch
from tests.adapter.test_call_lifecycle import cdr, settings, until

N401 = "<sip:+33140000401@pbx.test;user=phone>"
N402 = "<sip:+33140000402@pbx.test;user=phone>"
N403 = "<sip:+33140000403@pbx.test;user=phone>"


def store(server: Server) -> AsyncLineSettingsStore:
    assert server.b2bua is not None
    return server.b2bua.line_settings


async def forward(server: Server, extension: str, **kwargs: object) -> None:
    await store(server).save(
        f"{extension}@pbx.test",
        LineSettings(forwarding=Forwarding(**kwargs)),  # type: ignore[arg-type]
    )


@asynccontextmanager
async def switch(tmp_path: Path) -> AsyncIterator[tuple[Server, int]]:
    async with running_switch(tmp_path, settings()) as running:
        yield running


async def phone(extension: str, port: int, answer: int = 200) -> RawUa:
    ua = await RawUa.open(extension, f"secret{extension}", port)
    ua.answer = answer
    await ua.register()
    return ua


def only_invite(ua: RawUa) -> Request:
    assert len(ua.incoming) == 1, list(ua.incoming)
    return next(iter(ua.incoming.values())).invite


def header(request: Request, name: str) -> str:
    """Every value of ``name``, comma-joined (the parser splits header lists)."""
    return ", ".join(request.headers.get_all(name))


def because(server: Server, called: str) -> str:
    row = next(r for r in cdr(server) if r["called"] == called)
    trace = row["because"]
    assert isinstance(trace, list)
    return "\n".join(trace)


async def test_unconditional_forward_rings_the_target_only_with_diversion_and_history(
    tmp_path: Path,
) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", unconditional="403")
        forwarding = await phone("401", port)
        target = await phone("403", port)
        caller = await phone("402", port)
        call = await caller.call("401")
        await call.answered()
        invite = only_invite(target)
        assert forwarding.incoming == {}
        assert header(invite, "Diversion") == (f"{N401};reason=unconditional;counter=1;privacy=off")
        assert header(invite, "History-Info") == (
            "<sip:+33140000401@pbx.test;user=phone?Reason=SIP%3Bcause%3D302>;index=1, "
            "<sip:+33140000403@pbx.test;user=phone;cause=302>;index=1.1;mp=1"
        )
        assert '"Bruno Durand" <sip:402@pbx.test>' in (invite.headers.get("From") or "")
        await call.bye()
        await until(lambda: bool(cdr(server)))
        assert "renvoi immédiat de 401 vers le poste 403" in because(server, "401")
        for ua in (forwarding, target, caller):
            ua.close()


@pytest.mark.parametrize(
    ("condition", "answer", "reason"),
    [("busy", 486, "user-busy"), ("unreachable", 503, "unavailable")],
)
async def test_a_failing_phone_forwards_with_its_reason_and_cause(
    tmp_path: Path, condition: str, answer: int, reason: str
) -> None:
    """A 486 is the busy forward (``user-busy``), a 503 the unreachable one."""
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", **{condition: "403"})
        failing = await phone("401", port, answer=answer)
        target = await phone("403", port)
        caller = await phone("402", port)
        call = await caller.call("401")
        await call.answered()
        assert len(failing.incoming) == 1
        invite = only_invite(target)
        assert header(invite, "Diversion") == f"{N401};reason={reason};counter=1;privacy=off"
        assert f"cause%3D{answer}" in header(invite, "History-Info")
        assert f";cause={answer}>;index=1.1;mp=1" in header(invite, "History-Info")
        await call.bye()
        for ua in (failing, target, caller):
            ua.close()


async def test_no_answer_forward_after_the_line_ring_time(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", no_answer="403", ring_s=5)
        silent = await phone("401", port, answer=180)
        target = await phone("403", port)
        caller = await phone("402", port)
        call = await caller.call("401")
        await until(lambda: len(silent.incoming) == 1)
        assert target.incoming == {}
        await until(lambda: len(target.incoming) == 1, within=10)
        await call.answered()
        first = next(iter(silent.incoming.values()))
        assert "cancel" in first.events
        invite = only_invite(target)
        assert header(invite, "Diversion") == f"{N401};reason=no-answer;counter=1;privacy=off"
        assert ";cause=408>;index=1.1;mp=1" in header(invite, "History-Info")
        await call.bye()
        for ua in (silent, target, caller):
            ua.close()


async def test_unregistered_line_forwards_on_disconnection_to_402(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", unreachable="402")  # as *24*402 stores it
        target = await phone("402", port)
        caller = await phone("403", port)
        call = await caller.call("401")  # 401 has never registered
        await call.answered()
        invite = only_invite(target)
        assert header(invite, "Diversion") == (f"{N401};reason=unavailable;counter=1;privacy=off")
        assert ";cause=503>;index=1.1;mp=1" in header(invite, "History-Info")
        await call.bye()
        for ua in (target, caller):
            ua.close()


async def test_busy_line_without_busy_forward_still_answers_486(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", no_answer="403", ring_s=5)  # a forward, not for busy
        busy = await phone("401", port, answer=486)
        caller = await phone("402", port)
        call = await caller.call("401")
        await call.failed(486)
        for ua in (busy, caller):
            ua.close()


async def test_two_hops_keep_both_diversions_most_recent_first(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", unconditional="402")
        await forward(server, "402", busy="403")
        busy = await phone("402", port, answer=486)
        target = await phone("403", port)
        caller = await phone("601", port)
        call = await caller.call("401")
        await call.answered()
        invite = only_invite(target)
        assert header(invite, "Diversion") == (
            f"{N402};reason=user-busy;counter=1;privacy=off, "
            f"{N401};reason=unconditional;counter=1;privacy=off"
        )
        history = header(invite, "History-Info") or ""
        assert ";index=1.1.1;mp=1.1" in history
        assert len(busy.incoming) == 1
        await call.bye()
        for ua in (busy, target, caller):
            ua.close()


async def test_forward_loop_of_three_lines_ends_without_ringing(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", unconditional="402")
        await forward(server, "402", unconditional="403")
        await forward(server, "403", unconditional="401")
        phones = [await phone(ext, port) for ext in ("401", "402", "403")]
        caller = await phone("601", port)
        call = await caller.call("401")
        # The loop is broken at the last line of the chain with a voicemail (403);
        # voicemail is not served yet: 480 at once, no phone rang.
        await call.failed(480)
        assert all(p.incoming == {} for p in phones)
        await until(lambda: bool(cdr(server)))
        trace = because(server, "401")
        assert "boucle de renvois 401 → 402 → 403 → 401" in trace
        assert "messagerie du poste 403" in trace
        for ua in (*phones, caller):
            ua.close()


async def test_mixed_forward_loop_rings_each_line_once_within_its_ring_time(
    tmp_path: Path,
) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", unconditional="402")
        await forward(server, "402", busy="403")
        await forward(server, "403", no_answer="401", ring_s=5)
        first = await phone("401", port)
        busy = await phone("402", port, answer=486)
        silent = await phone("403", port, answer=180)
        caller = await phone("601", port)
        call = await caller.call("401")
        await until(lambda: len(silent.incoming) == 1)
        # 403 rings its 5 s once, then the loop back to 401 ends the call.
        await until(lambda: "cancel" in next(iter(silent.incoming.values())).events, within=10)
        await call.failed(480)
        assert first.incoming == {}  # unconditional: never rung
        assert len(busy.incoming) == 1
        assert len(silent.incoming) == 1
        assert "cancel" in next(iter(silent.incoming.values())).events
        await until(lambda: bool(cdr(server)))
        trace = because(server, "401")
        assert "boucle de renvois 401 → 402 → 403 → 401" in trace
        assert "messagerie du poste 403" in trace
        for ua in (first, busy, silent, caller):
            ua.close()


async def test_forward_to_a_protected_line_is_ignored(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await forward(server, "401", unconditional="402")
        await store(server).save("402@pbx.test", LineSettings(forward_protection=True))
        original = await phone("401", port)
        protected = await phone("402", port)
        caller = await phone("403", port)
        call = await caller.call("401")
        await call.answered()
        assert protected.incoming == {}
        assert header(only_invite(original), "Diversion") == ""
        await call.bye()
        await until(lambda: bool(cdr(server)))
        assert "poste 402 protégé (*89*1)" in because(server, "401")
        for ua in (original, protected, caller):
            ua.close()


async def test_caller_withholding_keeps_its_identity_private_on_diversion(
    tmp_path: Path,
) -> None:
    async with switch(tmp_path) as (server, port):
        await store(server).save(
            "401@pbx.test",
            LineSettings(forwarding=Forwarding(unconditional="403"), clir=True),
        )
        target = await phone("403", port)
        caller = await phone("402", port)
        call = await caller.call("401")
        await call.answered()
        invite = only_invite(target)
        assert header(invite, "Diversion") == (
            f"{N401};reason=unconditional;counter=1;privacy=full"
        )
        assert "Privacy=history" in header(invite, "History-Info")
        await call.bye()
        for ua in (target, caller):
            ua.close()
