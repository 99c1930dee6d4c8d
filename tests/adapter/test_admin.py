"""The admin HTTP API of a real switch: metrics, reload (HTTP and SIGHUP), plans, CLI."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from switch.admin import authorize, is_loopback
from switch.app import Server, injected_clock
from switch.cli import main
from switch.metrics import CONTENT_TYPE
from switch.settings import load_settings
from tests.adapter.conftest import UdpClient
from tests.adapter.raw_ua import RawUa
from tests.sip_support import ROOT, SwitchConfig, free_port, options, status_of, write_config

TOKEN = "s3cret-token-for-tests-0123456789"
BROKEN = 'numbers:\n  "0800100101": {program: [\n'  # a YAML syntax error on line 3


@asynccontextmanager
async def switch_on(config: SwitchConfig) -> AsyncIterator[Server]:
    """A Server in-process on the configuration's free ports, stopped at the end."""
    server = Server(load_settings(config.config_dir), config.data_dir, grace=0.5)
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()  # pending when serve() returned (or timed out) instead
    assert server.ready.is_set(), f"switch not ready (serve: {task.done() and task.result()})"
    try:
        yield server
    finally:
        server.handle_exit(signal.SIGTERM)
        server.handle_exit(signal.SIGTERM)
        assert await asyncio.wait_for(task, 15) == 0


def _call(
    url: str, method: str, payload: Any, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


async def http(
    server: Server,
    method: str,
    path: str,
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib (in a thread: the switch runs on this loop)."""
    assert server.admin is not None
    url = f"http://127.0.0.1:{server.admin.port}{path}"
    return await asyncio.to_thread(_call, url, method, payload, headers or {})


async def post(server: Server, path: str, payload: Any = None, **headers: str) -> tuple[int, Any]:
    status, _, body = await http(server, "POST", path, payload, headers)
    return status, json.loads(body)


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


def program(server: Server, number: str) -> tuple[str, str | None]:
    assert server.routing is not None
    library = server.routing.current
    entry = library.find_number(number)
    assert entry is not None
    name, _, plan = library.program_for(entry)
    return name, plan


def call_centre(config: SwitchConfig) -> Path:
    return config.config_dir / "routing" / "call-centre.yaml"


# -- metrics -----------------------------------------------------------------------------------


async def test_metrics_count_sip_messages(
    switch_config: SwitchConfig, udp_client: UdpClient
) -> None:
    async with switch_on(switch_config) as server:
        status, headers, body = await http(server, "GET", "/metrics")
        assert status == 200
        assert headers["Content-Type"] == CONTENT_TYPE  # text/plain, as prometheus-client writes it
        before = body.decode()
        assert sample(before, "aiguilleur_registrations") == 0
        options_in = sample(before, "aiguilleur_sip_requests_received_total", '{method="OPTIONS"}')
        udp_client.send(options(port=udp_client.port), switch_config.sip_port)
        assert status_of(await udp_client.recv()) == 200
        _, _, body = await http(server, "GET", "/metrics")
        after = body.decode()
        assert (
            sample(after, "aiguilleur_sip_requests_received_total", '{method="OPTIONS"}')
            == options_in + 1
        )
        assert sample(after, "aiguilleur_sip_responses_sent_total", '{status="200"}') >= 1
        assert sample(after, "aiguilleur_routing_loaded_timestamp_seconds") > 0


async def test_metrics_export_the_b2bua_counters(switch_config: SwitchConfig) -> None:
    async with switch_on(switch_config) as server:
        _, _, body = await http(server, "GET", "/metrics")
        before = body.decode()
        assert sample(before, "aiguilleur_b2bua_calls_started_total") == 0
        assert sample(before, "aiguilleur_b2bua_calls_shed_total") == 0
        assert "# TYPE aiguilleur_b2bua_requests_refused_total counter" in before
        caller = await RawUa.open("401", "secret401", switch_config.sip_port)
        try:
            out = await caller.call("402")  # 407 first, then the INVITE with credentials
            await out.failed(480)  # 402 is not registered
        finally:
            caller.close()
        # The B2BUA counts in the same step as it sends the 480: no wait.
        _, _, body = await http(server, "GET", "/metrics")
        after = body.decode()
        assert sample(after, "aiguilleur_b2bua_requests_refused_total", '{status="407"}') == 1
        assert sample(after, "aiguilleur_b2bua_calls_started_total") == 1
        assert sample(after, "aiguilleur_b2bua_calls_ended_total", '{outcome="unreachable"}') == 1
        assert sample(after, "aiguilleur_b2bua_calls_shed_total") == 0


async def test_metrics_export_the_registrar_stack_and_blf_counters(
    switch_config: SwitchConfig, udp_client: UdpClient
) -> None:
    async with switch_on(switch_config) as server:
        _, _, body = await http(server, "GET", "/metrics")
        before = body.decode()
        for name in (
            "aiguilleur_registrar_challenges_total",
            "aiguilleur_registrar_registers_accepted_total",
            "aiguilleur_blf_subscribes_received_total",
            "aiguilleur_stack_internal_errors_total",
            "aiguilleur_ban_gate_dropped_total",
        ):
            assert sample(before, name) == 0, name
        received = sample(before, "aiguilleur_stack_messages_received_total")
        phone = await RawUa.open("401", "secret401", switch_config.sip_port)
        try:
            await phone.register()  # 401 first, then the REGISTER with credentials
        finally:
            phone.close()
        udp_client.send(options(port=udp_client.port), switch_config.sip_port)
        assert status_of(await udp_client.recv()) == 200  # the stateless core's answer
        _, _, body = await http(server, "GET", "/metrics")
        after = body.decode()
        assert sample(after, "aiguilleur_registrar_challenges_total") == 1
        assert sample(after, "aiguilleur_registrar_registers_accepted_total") == 1
        assert sample(after, "aiguilleur_stack_messages_received_total") == received + 3
        assert sample(after, "aiguilleur_stack_stateless_responses_total", '{status="200"}') == 1
        assert sample(after, "aiguilleur_blf_subscribes_received_total") == 0


async def test_health_plans_and_unknown_paths(switch_config: SwitchConfig) -> None:
    async with switch_on(switch_config) as server:
        status, _, body = await http(server, "GET", "/health")
        health = json.loads(body)
        assert status == 200
        assert health["ok"] is True
        assert health["routing"]["numbers"] == 3
        status, _, body = await http(server, "GET", "/plans")
        assert (status, json.loads(body)) == (200, {"ok": True, "plans": []})
        status, _, _ = await http(server, "GET", "/nowhere")
        assert status == 404
        status, headers, _ = await http(server, "GET", "/reload")
        assert (status, headers["Allow"]) == (405, "POST")


async def test_keep_alive_and_malformed_requests(switch_config: SwitchConfig) -> None:
    async with switch_on(switch_config) as server:
        assert server.admin is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", server.admin.port)
        for _ in range(2):  # two requests on one connection (scrapers keep it open)
            writer.write(b"GET /health HTTP/1.1\r\nHost: switch\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            assert json.loads(await reader.readexactly(length))["ok"] is True
        writer.write(b"GARBAGE\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        writer.close()
        await writer.wait_closed()


# -- reload ------------------------------------------------------------------------------------


async def test_reload_installs_a_valid_change(switch_config: SwitchConfig) -> None:
    async with switch_on(switch_config) as server:
        assert server.routing is not None
        old = server.routing.current
        path = call_centre(switch_config)
        path.write_text(path.read_text().replace("    limit: 3\n", "    limit: 4\n"))
        assert await post(server, "/reload", {"by": "alice"}) == (200, {"ok": True, "numbers": 3})
        new = server.routing.current
        assert new is not old
        assert new.digest != old.digest
        entry = new.find_number("0800100100")
        assert entry is not None
        assert entry.service.limit == 4
        _, _, body = await http(server, "GET", "/metrics")
        assert sample(body.decode(), "aiguilleur_routing_reloads_total", '{result="ok"}') == 1


async def test_reload_refuses_a_broken_file_and_keeps_the_running_one(
    switch_config: SwitchConfig,
) -> None:
    async with switch_on(switch_config) as server:
        assert server.routing is not None
        old = server.routing.current
        (switch_config.config_dir / "routing" / "broken.yaml").write_text(BROKEN)
        status, body = await post(server, "/reload")
        assert status == 422
        assert body["ok"] is False
        (error,) = body["errors"]
        assert re.match(r".*/routing/broken\.yaml:3:1: YAML: ", error), error
        assert server.routing.current is old
        _, _, metrics = await http(server, "GET", "/metrics")
        assert (
            sample(metrics.decode(), "aiguilleur_routing_reloads_total", '{result="refused"}') == 1
        )


async def test_sighup_reloads_the_same_way(switch_config: SwitchConfig) -> None:
    async with switch_on(switch_config) as server:
        assert server.routing is not None
        old = server.routing.current
        broken = switch_config.config_dir / "routing" / "broken.yaml"
        broken.write_text(BROKEN)
        refused = await server.handle_reload()  # what the SIGHUP handler runs
        assert not refused.ok
        assert "broken.yaml:3:1" in refused.errors[0]
        assert server.routing.current is old
        broken.unlink()
        path = call_centre(switch_config)
        path.write_text(path.read_text().replace("    limit: 3\n", "    limit: 4\n"))
        reloaded = await server.handle_reload()
        assert (reloaded.ok, reloaded.numbers) == (True, 3)
        assert server.routing.current.digest != old.digest


# -- plans de secours --------------------------------------------------------------------------


async def test_plans_switch_at_once_and_survive_a_restart(switch_config: SwitchConfig) -> None:
    async with switch_on(switch_config) as server:
        assert program(server, "0800100100") == ("centre-appels", None)
        status, body = await post(
            server, "/plans/0800100100/activate", {"plan": "site-hors-service", "by": "alice"}
        )
        assert status == 200
        assert body["ok"] is True
        assert (body["number"], body["plan"], body["by"]) == (
            "0800100100",
            "site-hors-service",
            "alice",
        )
        assert datetime.fromisoformat(body["at"]) > datetime.now(UTC) - timedelta(minutes=1)
        assert program(server, "0800100100") == ("secours-403", "site-hors-service")
        status, _, listing = await http(server, "GET", "/plans")
        (active,) = json.loads(listing)["plans"]
        assert (active["number"], active["plan"], active["by"]) == (
            "0800100100",
            "site-hors-service",
            "alice",
        )
        # Unknown number or plan: 404, nothing changes.
        status, body = await post(server, "/plans/0899999999/activate", {"plan": "x"})
        assert status == 404
        assert "unknown number" in body["errors"][0]
        status, body = await post(server, "/plans/0800100100/activate", {"plan": "greve"})
        assert status == 404
        assert "no backup plan 'greve'" in body["errors"][0]
        status, body = await post(server, "/plans/0800100100/activate", {})
        assert status == 400

    async with switch_on(switch_config) as restarted:
        assert program(restarted, "0800100100") == ("secours-403", "site-hors-service")
        # The E.164 form names the same number (percent-encoded "+").
        status, body = await post(restarted, "/plans/%2B33800100100/deactivate", {"by": "bob"})
        assert status == 200
        assert (body["number"], body["plan"], body["by"]) == ("0800100100", None, "bob")
        assert program(restarted, "0800100100") == ("centre-appels", None)

    async with switch_on(switch_config) as again:
        assert program(again, "0800100100") == ("centre-appels", None)


async def test_a_reload_keeps_the_active_plan(switch_config: SwitchConfig) -> None:
    async with switch_on(switch_config) as server:
        status, _ = await post(server, "/plans/0800100100/activate", {"plan": "site-hors-service"})
        assert status == 200
        assert (await server.handle_reload()).ok
        assert program(server, "0800100100") == ("secours-403", "site-hors-service")


# -- who may change things -----------------------------------------------------------------------


def test_state_changes_need_loopback_or_the_token() -> None:
    # Without a token: loopback peers only (IPv4, IPv6, IPv4-mapped).
    for peer in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(peer)
        assert authorize(peer, None, None) == 0
    for outsider in ("192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", None):
        assert authorize(outsider, None, None) == 403
    # With a token: every peer, loopback included, must present it.
    assert authorize("127.0.0.1", None, TOKEN) == 401
    assert authorize("127.0.0.1", b"Bearer wrong", TOKEN) == 401
    assert authorize("192.0.2.7", f"Bearer {TOKEN}".encode(), TOKEN) == 0


async def test_a_token_guards_state_changes_not_reads(tmp_path: Path) -> None:
    sip_port, tls_port = free_port(), free_port()
    config = SwitchConfig(
        write_config(
            tmp_path / "config",
            sip_port=sip_port,
            tls_port=tls_port,
            extra=f"admin:\n  host: 127.0.0.1\n  port: {free_port()}\n  token: {TOKEN}\n",
        ),
        tmp_path / "data",
        sip_port,
        tls_port,
    )
    config.data_dir.mkdir()
    async with switch_on(config) as server:
        status, headers, _ = await http(server, "POST", "/reload")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
        status, _ = await post(server, "/reload", Authorization="Bearer not-the-token")
        assert status == 401
        status, _ = await post(
            server,
            "/plans/0800100100/activate",
            {"plan": "site-hors-service"},
            Authorization="Bearer not-the-token",
        )
        assert status == 401
        assert program(server, "0800100100") == ("centre-appels", None)
        status, body = await post(server, "/reload", Authorization=f"Bearer {TOKEN}")
        assert (status, body["ok"]) == (200, True)
        status, _, _ = await http(server, "GET", "/metrics")
        assert status == 200


# -- the command line ----------------------------------------------------------------------------


async def aiguilleur(*args: str) -> tuple[int, str, str]:
    """``aiguilleur ARGS`` in its own process: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switch",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_plan_and_reload_against_the_running_switch(
    switch_config: SwitchConfig,
) -> None:
    config = ("--config", str(switch_config.config_dir))
    async with switch_on(switch_config) as server:
        code, out, err = await aiguilleur(
            "plan", "activate", "0800100100", "site-hors-service", "--by", "carol", *config
        )
        assert code == 0, err
        assert "0800100100: plan site-hors-service active (by carol at " in out
        assert program(server, "0800100100") == ("secours-403", "site-hors-service")

        code, out, _ = await aiguilleur("plan", "list", *config)
        assert code == 0
        assert re.search(r"^0800100100  site-hors-service  by carol at 20", out, re.M)

        code, _, err = await aiguilleur("plan", "activate", "0800100100", "greve", *config)
        assert code == 1
        assert "no backup plan 'greve'" in err

        code, out, _ = await aiguilleur("plan", "deactivate", "0800100100", *config)
        assert code == 0
        assert "0800100100: normal routing (by " in out
        assert program(server, "0800100100") == ("centre-appels", None)

        (switch_config.config_dir / "routing" / "broken.yaml").write_text(BROKEN)
        code, _, err = await aiguilleur("reload", *config)
        assert code == 1
        assert "broken.yaml:3:1: YAML: " in err


async def test_cli_says_when_the_switch_is_not_running(tmp_path: Path) -> None:
    port = free_port()
    code, _, err = await aiguilleur("reload", "--admin", f"http://127.0.0.1:{port}")
    assert code == 1
    assert f"cannot reach the switch at http://127.0.0.1:{port}" in err


# -- a switch process: real SIGHUP, injected clock -----------------------------------------------


async def _get_json(url: str) -> dict[str, Any]:
    """GET ``url`` (in a thread: urllib blocks) and decode its JSON body."""

    def get() -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    return await asyncio.to_thread(get)


def event(name: str) -> Callable[[str], bool]:
    """Matches a log line of ``event=name`` (``switch.log``: one line per event)."""
    return lambda line: f" event={name} " in f"{line} "


class SwitchOutput:
    """What a switch process writes (its log), read line by line as it comes."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.lines: list[str] = []

    async def until(self, what: str, match: Callable[[str], bool]) -> str:
        """The next line that ``match``es; fails if the process ends first (bounded)."""
        try:
            async with asyncio.timeout(15):
                while raw := await self.stream.readline():
                    line = raw.decode(errors="replace").rstrip("\n")
                    self.lines.append(line)
                    if match(line):
                        return line
        except TimeoutError:
            pass
        raise AssertionError(f"{what} not seen:\n" + "\n".join(self.lines))

    def seen(self, match: Callable[[str], bool]) -> bool:
        return any(match(line) for line in self.lines)


async def test_switch_process_reloads_on_sighup_with_an_injected_clock(tmp_path: Path) -> None:
    sip_port, tls_port, admin_port = free_port(), free_port(), free_port()
    config = write_config(
        tmp_path / "config",
        sip_port=sip_port,
        tls_port=tls_port,
        extra=f"admin:\n  host: 127.0.0.1\n  port: {admin_port}\n",
    )
    health = f"http://127.0.0.1:{admin_port}/health"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switch",
        "run",
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path / "data"),
        "--clock",
        "2026-05-14T10:00:00+02:00",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    out = SwitchOutput(proc.stdout)
    try:
        # The switch logs ``ready`` once its listeners and the admin API are up.
        ready = await out.until("ready", event("ready"))
        assert f"admin=http://127.0.0.1:{admin_port}" in ready
        assert out.seen(event("clock.injected"))
        first = await _get_json(health)
        wall = datetime.fromisoformat(first["wall_time"])
        start = datetime(2026, 5, 14, 10, tzinfo=timezone(timedelta(hours=2)))
        assert start <= wall < start + timedelta(minutes=1)

        (config / "routing" / "broken.yaml").write_text(BROKEN)
        proc.send_signal(signal.SIGHUP)
        await out.until("the refusal", event("routing.reload_refused"))
        await out.until(
            "the error", lambda line: event("routing.invalid")(line) and "broken.yaml:3:1" in line
        )
        now = await _get_json(health)
        assert now["routing"] == first["routing"]  # the running library stayed

        (config / "routing" / "broken.yaml").unlink()
        path = config / "routing" / "call-centre.yaml"
        path.write_text(path.read_text().replace("    limit: 3\n", "    limit: 4\n"))
        proc.send_signal(signal.SIGHUP)
        reloaded = await out.until("the reload", event("routing.reloaded"))
        now = await _get_json(health)
        assert now["routing"]["digest"] != first["routing"]["digest"]
        assert f"digest={now['routing']['digest']}" in reloaded  # installed before logged

        proc.send_signal(signal.SIGTERM)
        await out.until("the stop", event("stopped"))
        await asyncio.wait_for(proc.communicate(), 15)  # the rest of the output, and exit
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- the clock hook ------------------------------------------------------------------------------


def test_injected_clock_starts_at_the_instant_and_advances() -> None:
    at = datetime(2026, 5, 14, 10, tzinfo=timezone(timedelta(hours=2)))
    wall = injected_clock(at)
    first = wall()
    assert at.timestamp() <= first < at.timestamp() + 1
    assert wall() >= first
    with pytest.raises(ValueError, match="time zone offset"):
        injected_clock(datetime(2026, 5, 14, 10))


def test_run_refuses_a_clock_without_offset(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--config", str(ROOT / "config" / "example"), "--clock", "2026-05-14"])
    assert code == 1
    assert "--clock 2026-05-14: the clock needs a time zone offset" in capsys.readouterr().err
