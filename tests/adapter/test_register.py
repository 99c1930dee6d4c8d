"""REGISTER against the composed switch in-process, over real sockets on 127.0.0.1.

Each test starts ``Server`` on a copy of config/example whose ``registrar:``
section is tuned for the test (short expiries, small failure limits, fast
timers). Every client is 127.0.0.1, so a test that gets the address banned
uses its own server.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from switch.app import Server
from switch.registrar import Binding
from switch.registrar_service import RegistrarService
from switch.settings import load_settings
from switch.sip.auth import NonceManager, answer_challenge, parse_challenge
from tests.adapter.conftest import TIMEOUT, UdpClient
from tests.adapter.test_b2bua import invite
from tests.sip_support import free_port, header, options, status_of, write_config

_n = itertools.count(1)

FAST = """
registrar:
  min_expires: 1
  default_expires: 60
  max_expires: 3600
  keepalive: {interval: 0}
  admission: {max_failures: 3, window: 60, ban_seconds: 60, challenge_grace: 30}
"""


@asynccontextmanager
async def running(
    tmp_path: Path, settings: str = FAST, *, data_dir: Path | None = None, timers: str = ""
) -> AsyncIterator[tuple[Server, int]]:
    """A switch on free ports with ``settings`` appended to its switch.yaml."""
    port, tls_port = free_port(), free_port()
    config = write_config(
        tmp_path / f"config-{next(_n)}", sip_port=port, tls_port=tls_port, extra=settings
    )
    if timers:
        text = (config / "switch.yaml").read_text()
        (config / "switch.yaml").write_text(text.replace("{t1: 0.5, t2: 4.0, t4: 5.0}", timers))
    data = data_dir or tmp_path / "data"
    data.mkdir(exist_ok=True)
    server = Server(load_settings(config), data, grace=0.5)
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 10)
    try:
        yield server, port
    finally:
        server.handle_exit(signal.SIGTERM)
        assert await asyncio.wait_for(task, 10) == 0


def service(server: Server) -> RegistrarService:
    assert server.registrar is not None
    return server.registrar


class Registering:
    """Builds REGISTERs for one line and answers challenges (a minimal phone)."""

    def __init__(
        self,
        user: str,
        password: str,
        *,
        domain: str = "pbx.test",
        transport: str = "UDP",
        port: int,
        contact_port: int | None = None,
        extra: str = "",
    ) -> None:
        self.user, self.password, self.domain = user, password, domain
        self.transport = transport
        self.port = port
        self.contact_port = contact_port or port
        self.extra = extra
        self.call_id = f"reg-{next(_n)}@127.0.0.1"
        self.cseq = 0
        self.nc = 0

    def request(self, *, authorization: str | None = None, expires: int = 60) -> bytes:
        self.cseq += 1
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        return (
            f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/{self.transport} 127.0.0.1:{self.port}"
            f";branch=z9hG4bK-r{next(_n)};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:{self.user}@{self.domain}>;tag=t{self.cseq}\r\n"
            f"To: <sip:{self.user}@{self.domain}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f"Contact: <sip:{self.user}@127.0.0.1:{self.contact_port}"
            f";transport={self.transport.lower()}>\r\n"
            f"Expires: {expires}\r\n"
            f"{self.extra}{auth}"
            f"Content-Length: 0\r\n\r\n"
        ).encode()

    def answer(
        self, challenge: bytes, *, algorithm: str = "MD5", password: str | None = None
    ) -> str:
        values = re.findall(rb"\r\nWWW-Authenticate: ([^\r]*)", challenge)
        chosen = next(
            parse_challenge(v.decode())
            for v in values
            if parse_challenge(v.decode()).algorithm == algorithm
        )
        self.nc += 1
        return answer_challenge(
            chosen,
            username=self.user,
            password=self.password if password is None else password,
            method="REGISTER",
            uri="sip:127.0.0.1",
            cnonce=f"c{self.nc}",
            nc=self.nc,
        )


async def exchange(client: UdpClient, port: int, data: bytes) -> bytes:
    client.send(data, port)
    return await client.recv()


async def register(
    client: UdpClient, port: int, phone: Registering, *, algorithm: str = "MD5", expires: int = 60
) -> bytes:
    """REGISTER, answer the 401, return the final answer."""
    challenge = await exchange(client, port, phone.request(expires=expires))
    assert status_of(challenge) == 401, challenge
    auth = phone.answer(challenge, algorithm=algorithm)
    return await exchange(client, port, phone.request(authorization=auth, expires=expires))


async def wait_until(server: Server, predicate: Callable[[list[Binding]], bool]) -> list[Binding]:
    """Wait (bounded) for a change of the stored bindings that satisfies ``predicate``."""
    registrar = service(server)
    async with asyncio.timeout(5):
        while True:
            changed = asyncio.ensure_future(registrar.changed())
            bindings = await registrar.store.all()
            if predicate(bindings):
                changed.cancel()
                return bindings
            await changed


# -- digest ---------------------------------------------------------------------------------


async def test_challenge_offers_md5_then_sha256_and_sha256_answer_registers(
    tmp_path: Path, udp_client: UdpClient
) -> None:
    async with running(tmp_path) as (server, port):
        phone = Registering("401", "secret401", port=udp_client.port)
        challenge = await exchange(udp_client, port, phone.request())
        assert status_of(challenge) == 401
        offered = [
            parse_challenge(v.decode())
            for v in re.findall(rb"\r\nWWW-Authenticate: ([^\r]*)", challenge)
        ]
        assert [c.algorithm for c in offered] == ["MD5", "SHA-256"]
        assert {c.realm for c in offered} == {"pbx.test"}
        assert all(c.qop == ("auth",) and not c.stale for c in offered)

        ok = await exchange(
            udp_client,
            port,
            phone.request(authorization=phone.answer(challenge, algorithm="SHA-256")),
        )
        assert status_of(ok) == 200, ok
        assert f"<sip:401@127.0.0.1:{udp_client.port};transport=udp>;expires=60" in (
            header(ok, "Contact") or ""
        )
        # Committed before the 200 left.
        [binding] = await service(server).store.lookup("sip:401@pbx.test")
        assert binding.source.port == udp_client.port


async def test_nonce_from_another_secret_is_stale(tmp_path: Path, udp_client: UdpClient) -> None:
    async with running(tmp_path) as (_, port):
        phone = Registering("402", "secret402", port=udp_client.port)
        challenge = await exchange(udp_client, port, phone.request())
        # A nonce the switch did not sign (e.g. before its secret changed): the
        # right password gets a new challenge with stale=true, not a failure.
        other = NonceManager(b"another secret, 32 bytes long!!!")
        foreign = other.issue(time.time(), b"12345678", "127.0.0.1")
        forged = challenge.replace(
            re.search(rb'nonce="([^"]*)"', challenge).group(1),  # type: ignore[union-attr]
            foreign.encode(),
        )
        again = await exchange(udp_client, port, phone.request(authorization=phone.answer(forged)))
        assert status_of(again) == 401
        assert b"stale=true" in again
        ok = await exchange(udp_client, port, phone.request(authorization=phone.answer(again)))
        assert status_of(ok) == 200


@asynccontextmanager
async def udp_client_on(host: str) -> AsyncIterator[UdpClient]:
    """A UDP client bound to ``host`` (any 127.0.0.0/8 address is local)."""
    transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpClient, local_addr=(host, 0)
    )
    try:
        yield client
    finally:
        transport.close()


async def test_a_nonce_from_another_address_is_stale_and_not_a_failure(tmp_path: Path) -> None:
    async with (
        running(tmp_path) as (server, port),
        udp_client_on("127.0.0.2") as first,
        udp_client_on("127.0.0.3") as moved,
    ):
        phone = Registering("402", "secret402", port=first.port)
        challenge = await exchange(first, port, phone.request())
        auth = phone.answer(challenge)  # right password, nonce issued to 127.0.0.2
        # The same Authorization from 127.0.0.3 (the phone's NAT rebound, or someone
        # replays what they captured): a new challenge with stale=true, each time;
        # FAST bans at the third failure, and none is counted.
        phone.port = phone.contact_port = moved.port
        for _ in range(4):
            again = await exchange(moved, port, phone.request(authorization=auth))
            assert status_of(again) == 401, again
            assert b"stale=true" in again
        registrar = service(server)
        assert registrar.stats["auth_failures"] == 0
        assert registrar.stats["stale"] == 4
        assert registrar.admission.check("127.0.0.3", registrar.clock()) is None
        # From the address it was issued to, the nonce is still good.
        phone.port = phone.contact_port = first.port
        ok = await exchange(first, port, phone.request(authorization=auth))
        assert status_of(ok) == 200, ok
        # The phone that moved simply answers the stale challenge.
        phone.port = phone.contact_port = moved.port
        ok = await exchange(moved, port, phone.request(authorization=phone.answer(again)))
        assert status_of(ok) == 200, ok
        bindings = await registrar.store.lookup("sip:402@pbx.test")  # one per contact
        assert {(b.source.host, b.source.port) for b in bindings} == {
            ("127.0.0.2", first.port),
            ("127.0.0.3", moved.port),
        }


async def test_replayed_nonce_count_is_refused(tmp_path: Path, udp_client: UdpClient) -> None:
    async with running(tmp_path) as (_, port):
        phone = Registering("403", "secret403", port=udp_client.port)
        challenge = await exchange(udp_client, port, phone.request())
        auth = phone.answer(challenge)
        assert status_of(await exchange(udp_client, port, phone.request(authorization=auth))) == 200
        # The same Authorization (nonce, nc=1) in a new transaction: a replay.
        replay = await exchange(udp_client, port, phone.request(authorization=auth))
        assert status_of(replay) == 403


ANSWERS = [401, 401, 403, 403]


@pytest.mark.parametrize(
    ("user", "domain"),
    [("402", "pbx.test"), ("499", "pbx.test"), ("402", "unknown.test")],
    ids=["wrong-password", "unknown-user", "unknown-domain"],
)
async def test_wrong_password_unknown_user_and_domain_get_the_same_answers(
    tmp_path: Path, udp_client: UdpClient, user: str, domain: str
) -> None:
    """401 (same nonce again) until the third failure, then 403; identical for all."""
    async with running(tmp_path) as (server, port):
        seen = []
        for _ in range(3):
            phone = Registering(user, "not-the-password", domain=domain, port=udp_client.port)
            challenge = await exchange(udp_client, port, phone.request())
            assert status_of(challenge) == 401
            answer = await exchange(
                udp_client, port, phone.request(authorization=phone.answer(challenge))
            )
            seen.append(status_of(answer))
            if status_of(answer) == 401:
                # Same nonce: the client learns its credentials are wrong.
                nonce = re.compile(rb'nonce="([^"]*)"')
                assert nonce.search(answer).group(1) == nonce.search(challenge).group(1)  # type: ignore[union-attr]
                assert _shape(answer) == _shape(challenge)
        # Banned now: 403 whatever it sends.
        seen.append(status_of(await exchange(udp_client, port, phone.request())))
        assert seen == ANSWERS
        assert service(server).stats["bans_source"] == 1


def _shape(response: bytes) -> bytes:
    """A response without what differs between any two (nonce, tags, branch, CSeq)."""
    text = re.sub(rb'nonce="[^"]*"', b'nonce=""', response)
    text = re.sub(rb"(tag|branch)=[^;\r>]*", rb"\1=", text)
    return re.sub(rb"CSeq: \d+", b"CSeq: ", text)


async def test_unknown_user_challenge_looks_like_a_known_one(
    tmp_path: Path, udp_client: UdpClient
) -> None:
    async with running(tmp_path) as (_, port):
        known = await exchange(
            udp_client, port, Registering("401", "x", port=udp_client.port).request()
        )
        unknown = await exchange(
            udp_client, port, Registering("498", "x", port=udp_client.port).request()
        )
    assert status_of(known) == status_of(unknown) == 401
    strip = re.compile(rb"(sip:)4\d\d@|Call-ID: [^\r]*")
    assert strip.sub(b"", _shape(known)) == strip.sub(b"", _shape(unknown))


# -- declared devices -----------------------------------------------------------------------


async def test_device_not_declared_then_declared_device_registers(
    tmp_path: Path, udp_client: UdpClient
) -> None:
    async with running(tmp_path) as (_, port):
        # 404 is declared as a Poly VVX 00:04:f2:00:04:04; an Aastra claims it.
        wrong = Registering(
            "404", "secret404", port=udp_client.port, extra="User-Agent: Aastra 6757i/3.3.1\r\n"
        )
        refused = await register(udp_client, port, wrong)
        assert refused.startswith(b"SIP/2.0 403 Device not declared\r\n")
        right = Registering(
            "404",
            "secret404",
            port=udp_client.port,
            extra="User-Agent: PolycomVVX-VVX_411-UA/6.3.1.8427\r\n",
        )
        assert status_of(await register(udp_client, port, right)) == 200


# -- bans -----------------------------------------------------------------------------------


async def wrong_passwords(client: UdpClient, port: int, times: int) -> list[int]:
    """Line 402 registered ``times`` times from ``client`` with a wrong password: the
    status of each answered challenge."""
    seen = []
    for _ in range(times):
        phone = Registering("402", "wrong", port=client.port)
        challenge = await exchange(client, port, phone.request())
        answer = await exchange(client, port, phone.request(authorization=phone.answer(challenge)))
        seen.append(status_of(answer))
    return seen


async def test_silent_ban_answers_nothing_at_all(tmp_path: Path, udp_client: UdpClient) -> None:
    settings = FAST.replace("ban_seconds: 60,", "ban_seconds: 60, silent: true,")
    async with running(tmp_path, settings) as (server, port):
        seen = await wrong_passwords(udp_client, port, 3)
        assert seen == [401, 401, 403]  # the failure that bans still gets its 403
        # Then silence for every request from the address, OPTIONS included.
        udp_client.send(Registering("401", "secret401", port=udp_client.port).request(), port)
        udp_client.send(options(port=udp_client.port), port)
        await udp_client.nothing(0.3)
        assert service(server).gate is not None
        assert service(server).gate.dropped == 2  # type: ignore[union-attr]


async def test_unanswered_invite_challenges_ban_the_caller_at_once(
    tmp_path: Path, udp_client: UdpClient
) -> None:
    """A caller that never answers the B2BUA's 407s (a scanner trying INVITEs) is
    banned by the first request after the grace period, INVITE or not: the ban is
    logged, counted and, with silent bans, gated there and then, not at the next
    REGISTER."""
    settings = FAST.replace("challenge_grace: 30", "challenge_grace: 0.05, silent: true")
    async with running(tmp_path, settings) as (server, port):

        async def final(data: bytes) -> int:
            udp_client.send(data, port)
            while (status := status_of(await udp_client.recv())) < 200:
                pass
            return status

        own = udp_client.port
        for cseq, user in enumerate(("401", "402", "403"), 1):
            assert await final(invite(own, port, user=user, cseq=cseq)) == 407
        await asyncio.sleep(0.1)  # the time the grace period lasts, not a synchronisation
        assert await final(invite(own, port, user="401", cseq=4)) == 403
        registrar = service(server)
        assert registrar.stats["bans_source"] == 1
        assert registrar.gate is not None
        udp_client.send(options(port=own), port)
        await udp_client.nothing(0.3)
        assert registrar.gate.dropped == 1


async def test_a_ban_survives_a_restart(tmp_path: Path, udp_client: UdpClient) -> None:
    data = tmp_path / "data"
    async with running(tmp_path, data_dir=data) as (_, port), udp_client_on("127.0.0.4") as guesser:
        seen = await wrong_passwords(guesser, port, 3)
        assert seen == [401, 401, 403]  # banned at the third failure
    # A new process on the same data directory: still banned, from its first request.
    async with (
        running(tmp_path, data_dir=data) as (server, port),
        udp_client_on("127.0.0.4") as guesser,
    ):
        again = Registering("401", "secret401", port=guesser.port)
        assert status_of(await exchange(guesser, port, again.request())) == 403
        registrar = service(server)
        assert registrar.stats["refused_banned"] == 1
        assert registrar.stats["bans_source"] == 0  # restored, not banned anew
        # Only that address: the others are challenged as usual.
        phone = Registering("401", "secret401", port=udp_client.port)
        assert status_of(await register(udp_client, port, phone)) == 200


# -- persistence and expiry -----------------------------------------------------------------


async def test_binding_survives_restart_then_expires(tmp_path: Path, udp_client: UdpClient) -> None:
    data = tmp_path / "data"
    async with running(tmp_path, data_dir=data) as (_, port):
        phone = Registering("401", "secret401", port=udp_client.port)
        assert status_of(await register(udp_client, port, phone, expires=2)) == 200
    # A new process on the same data directory: the binding is there ...
    async with running(tmp_path, data_dir=data) as (server, _):
        [binding] = await service(server).store.lookup("sip:401@pbx.test")
        assert binding.contact == f"sip:401@127.0.0.1:{udp_client.port};transport=udp"
        # ... until its expiry timer purges it.
        await wait_until(server, lambda bindings: not bindings)


# -- connections and keep-alives ------------------------------------------------------------


async def test_tcp_binding_unreachable_when_its_connection_closes(tmp_path: Path) -> None:
    async with running(tmp_path) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        local_port = writer.get_extra_info("sockname")[1]
        phone = Registering("401", "secret401", transport="TCP", port=local_port)

        async def tcp_exchange(data: bytes) -> bytes:
            writer.write(data)
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)

        challenge = await tcp_exchange(phone.request())
        ok = await tcp_exchange(phone.request(authorization=phone.answer(challenge)))
        assert status_of(ok) == 200
        [binding] = await service(server).store.lookup("sip:401@pbx.test")
        assert binding.reachable
        assert binding.source.conn_id is not None
        writer.close()
        await writer.wait_closed()
        [binding] = await wait_until(server, lambda bs: bool(bs) and not bs[0].reachable)
        assert binding.aor == "sip:401@pbx.test"


KEEPALIVE = FAST.replace("keepalive: {interval: 0}", "keepalive: {interval: 0.2, udp: nat}")


async def test_udp_keepalive_options_then_unreachable_when_unanswered(
    tmp_path: Path, udp_client: UdpClient
) -> None:
    # T1 = 20 ms: an OPTIONS transaction times out after 64*T1 = 1.28 s.
    timers = "{t1: 0.02, t2: 0.08, t4: 0.1}"
    async with running(tmp_path, KEEPALIVE, timers=timers) as (server, port):
        # The Contact names another port than the one the REGISTER comes from: NAT.
        phone = Registering("401", "secret401", port=udp_client.port, contact_port=5999)
        assert status_of(await register(udp_client, port, phone)) == 200
        ping = await udp_client.recv()
        assert ping.startswith(b"OPTIONS sip:401@127.0.0.1:5999;transport=udp SIP/2.0\r\n")
        # Answered: still reachable. Then the phone goes silent.
        udp_client.send(_ok(ping), port)
        await wait_until(server, lambda bs: bool(bs) and not bs[0].reachable)
        assert service(server).stats["keepalives_lost"] >= 1
        # It answers again (every ping from now on): reachable again.

        async def answer_pings() -> None:
            while True:
                ping = await udp_client.queue.get()
                if ping[0].startswith(b"OPTIONS "):
                    udp_client.send(_ok(ping[0]), port)

        answering = asyncio.create_task(answer_pings())
        try:
            await wait_until(server, lambda bs: bool(bs) and bs[0].reachable)
        finally:
            answering.cancel()


def _ok(request: bytes) -> bytes:
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    copied = [
        h for h in head if h.split(b":", 1)[0] in (b"Via", b"From", b"To", b"Call-ID", b"CSeq")
    ]
    return b"SIP/2.0 200 OK\r\n" + b"\r\n".join(copied) + b"\r\nContent-Length: 0\r\n\r\n"


async def test_tcp_binding_gets_crlf_pings(tmp_path: Path) -> None:
    settings = FAST.replace("keepalive: {interval: 0}", "keepalive: {interval: 0.2, stream: true}")
    async with running(tmp_path, settings) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        local_port = writer.get_extra_info("sockname")[1]
        phone = Registering("402", "secret402", transport="TCP", port=local_port)
        writer.write(phone.request())
        challenge = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        writer.write(phone.request(authorization=phone.answer(challenge)))
        ok = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert status_of(ok) == 200
        assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"\r\n\r\n"
        writer.close()
        await writer.wait_closed()
