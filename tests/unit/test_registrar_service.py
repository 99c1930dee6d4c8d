"""The REGISTER transaction user with a fake stack, a memory store and fake clocks.

No sockets: ``FakePort`` records what the service sends; time is assigned.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from pathlib import Path

import pytest

from switch.admission import Admission, Ban
from switch.bans import BanStore, bans_db_path
from switch.directory import load_directory
from switch.location import AsyncStore, LocationStoreError, MemoryLocationStore
from switch.registrar import Binding
from switch.registrar_service import BanGate, RegistrarService, behind_nat, load_nonce_secret
from switch.settings import RegistrarSettings
from switch.sip.auth import answer_challenge, parse_challenge
from switch.sip.core import Capabilities, StatelessCore
from switch.sip.endpoint import Endpoint
from switch.sip.events import RequestReceived, ResponseReceived, TransactionTimedOut
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from switch.sip.transaction import ClientKey, ServerKey

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example"
SOURCE = Endpoint("UDP", "192.0.2.10", 5062)


class FakePort:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.requests: list[tuple[Request, Endpoint]] = []
        self.raw: list[tuple[bytes, Endpoint]] = []

    def send_response(self, response: Response) -> None:
        self.responses.append(response)

    def send_request(self, request: Request, dest: Endpoint) -> ClientKey:
        self.requests.append((request, dest))
        return ClientKey(f"z9hG4bK-{len(self.requests)}", request.method)

    def send_raw(self, data: bytes, dest: Endpoint) -> None:
        self.raw.append((data, dest))

    def local_address(self, transport: str, peer_host: str) -> tuple[str, int] | None:
        return ("192.0.2.1", 5060)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_800_000_000.0

    def mono(self) -> float:
        return self.now


class OrderedStore(MemoryLocationStore):
    """Records when apply ran relative to what the port sent; may fail on demand."""

    def __init__(self, port: FakePort) -> None:
        super().__init__()
        self.port = port
        self.applied_after: list[int] = []
        self.fail = False

    def apply(self, upserts: Iterable[Binding] = (), removals: Iterable[Binding] = ()) -> None:
        if self.fail:
            raise LocationStoreError("disk full")
        self.applied_after.append(len(self.port.responses))
        super().apply(upserts, removals)


async def make(
    *, bans: BanStore | None = None, **settings: object
) -> tuple[RegistrarService, FakePort, OrderedStore, Clock]:
    port = FakePort()
    store = OrderedStore(port)
    clock = Clock()
    counter = itertools.count(1)
    base: dict[str, object] = {"keepalive": {"interval": 30, "udp": "nat"}, "min_expires": 1}
    base.update(settings)
    service = RegistrarService(
        port,
        StatelessCore(Capabilities(server="test", tag_secret=b"k" * 16)),
        directory=load_directory(EXAMPLE),
        store=AsyncStore(store),
        settings=RegistrarSettings.model_validate(base),
        nonce_secret=b"s" * 32,
        domain="pbx.test",
        bans=bans,
        clock=clock.mono,
        wall=lambda: clock.wall,
        random_bytes=lambda n: next(counter).to_bytes(n, "big"),
    )
    return service, port, store, clock


def register(
    user: str = "401",
    *,
    authorization: str | None = None,
    cseq: int = 1,
    contact: str = "sip:401@192.0.2.10:5062",
    extra: str = "",
) -> Request:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    data = (
        f"REGISTER sip:pbx.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-{cseq}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{user}@pbx.test>;tag=a\r\nTo: <sip:{user}@pbx.test>\r\n"
        f"Call-ID: unit@192.0.2.10\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: <{contact}>\r\nExpires: 60\r\n{extra}{auth}Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def answer(challenge: Response, user: str, password: str, nc: int = 1) -> str:
    value = challenge.headers.get_all("WWW-Authenticate")[0]
    return answer_challenge(
        parse_challenge(value),
        username=user,
        password=password,
        method="REGISTER",
        uri="sip:pbx.test",
        cnonce="c",
        nc=nc,
    )


async def registered(service: RegistrarService, user: str = "401") -> Response:
    challenge = await service.process(register(user), SOURCE)
    assert challenge is not None
    assert challenge.status == 401
    ok = await service.process(
        register(user, authorization=answer(challenge, user, f"secret{user}"), cseq=2), SOURCE
    )
    assert ok is not None
    return ok


async def test_challenge_then_200_sent_only_after_the_binding_is_stored() -> None:
    service, port, store, _ = await make()
    key = ServerKey("z9hG4bK-1", ("192.0.2.10", 5062), "REGISTER")
    service.handle_event(RequestReceived(register(), SOURCE, key))
    await asyncio.gather(*service._tasks)
    [challenge] = port.responses
    assert challenge.status == 401
    auth = answer(challenge, "401", "secret401")
    service.handle_event(RequestReceived(register(authorization=auth, cseq=2), SOURCE, key))
    await service.changed()
    await asyncio.gather(*service._tasks)
    ok = port.responses[-1]
    assert ok.status == 200
    assert ok.headers.get("Contact") == "<sip:401@192.0.2.10:5062>;expires=60"
    # apply() ran when only the 401 had been sent: the 200 went out after it.
    assert store.applied_after == [1]
    [binding] = store.lookup("sip:401@pbx.test")
    assert binding.source == SOURCE
    assert service.stats["registered"] == 1


async def test_challenge_lists_algorithms_in_configured_order() -> None:
    service, *_ = await make(digest_algorithms=["SHA-256", "MD5"])
    challenge = await service.process(register(), SOURCE)
    assert challenge is not None
    algorithms = [
        parse_challenge(v).algorithm for v in challenge.headers.get_all("WWW-Authenticate")
    ]
    assert algorithms == ["SHA-256", "MD5"]


async def test_algorithm_not_offered_fails() -> None:
    service, *_ = await make(digest_algorithms=["SHA-256"])
    challenge = await service.process(register(), SOURCE)
    assert challenge is not None
    # An MD5 answer to a SHA-256-only challenge, with the right password.
    md5 = challenge.headers.get_all("WWW-Authenticate")[0].replace("SHA-256", "MD5")
    auth = answer_challenge(
        parse_challenge(md5),
        username="401",
        password="secret401",
        method="REGISTER",
        uri="sip:pbx.test",
        cnonce="c",
    )
    refused = await service.process(register(authorization=auth, cseq=2), SOURCE)
    assert refused is not None
    assert refused.status == 401
    assert service.stats["auth_failures"] == 1


async def test_store_failure_answers_500_and_stores_nothing() -> None:
    service, _, store, _ = await make()
    store.fail = True
    answer_ = await registered(service)
    assert (answer_.status, answer_.reason) == (500, "Binding Not Stored")
    assert store.all() == []


async def test_digest_username_must_be_the_to_user() -> None:
    service, *_ = await make()
    challenge = await service.process(register("402"), SOURCE)
    assert challenge is not None
    # 401's valid credentials used to register 402.
    auth = answer(challenge, "401", "secret401")
    refused = await service.process(register("402", authorization=auth, cseq=2), SOURCE)
    assert refused is not None
    assert refused.status == 401


async def test_expired_nonce_is_stale() -> None:
    service, _, _, clock = await make(nonce_lifetime=10)
    challenge = await service.process(register(), SOURCE)
    assert challenge is not None
    clock.wall += 11
    again = await service.process(
        register(authorization=answer(challenge, "401", "secret401"), cseq=2), SOURCE
    )
    assert again is not None
    assert again.status == 401
    assert all("stale=true" in v for v in again.headers.get_all("WWW-Authenticate"))
    assert service.stats["auth_failures"] == 0


async def test_keepalive_options_for_nat_binding_and_timeout_marks_unreachable() -> None:
    service, port, store, clock = await make()
    await registered(service)  # Contact port 5062 from 5062: not behind NAT
    assert not behind_nat(store.lookup("sip:401@pbx.test")[0])
    challenge = await service.process(register("402"), SOURCE)
    assert challenge is not None
    ok = await service.process(
        register(
            "402",
            authorization=answer(challenge, "402", "secret402"),
            cseq=2,
            contact="sip:402@10.0.0.5:5060",
        ),
        SOURCE,
    )
    assert ok is not None
    assert ok.status == 200
    clock.now += 30
    await service._keepalive_tick()
    [(options, dest)] = port.requests
    assert options.method == "OPTIONS"
    assert str(options.uri) == "sip:402@10.0.0.5:5060"
    assert dest == Endpoint("UDP", "192.0.2.10", 5062)
    key = ClientKey("z9hG4bK-1", "OPTIONS")
    service.handle_event(TransactionTimedOut(key, "OPTIONS"))
    await service.changed()
    assert not any(b.reachable for b in store.all())  # same address: both bindings
    # A later answer brings them back.
    clock.now += 30
    await service._keepalive_tick()
    response = Response(200, "OK", options.headers)
    service.handle_event(ResponseReceived(response, ClientKey("z9hG4bK-2", "OPTIONS")))
    await service.changed()
    assert all(b.reachable for b in store.all())


async def test_one_options_per_address_and_its_answer_revives_restored_bindings() -> None:
    service, port, store, clock = await make()
    # Two lines behind one NAT address, stored unreachable before a restart.
    store.apply(
        [
            Binding(
                aor=f"sip:{user}@pbx.test",
                contact=f"sip:{user}@10.0.0.5:5060",
                expires_at=clock.wall + 600,
                call_id=user,
                cseq=1,
                source=SOURCE,
                received_at=clock.wall,
                reachable=False,
            )
            for user in ("401", "402")
        ]
    )
    await service.start()
    clock.now += 30
    await service._keepalive_tick()
    # Both are due; the address gets one OPTIONS while it runs.
    [(options, dest)] = port.requests
    assert dest == Endpoint("UDP", "192.0.2.10", 5062)
    response = Response(200, "OK", options.headers)
    service.handle_event(ResponseReceived(response, ClientKey("z9hG4bK-1", "OPTIONS")))
    await service.changed()
    assert [b.reachable for b in store.all()] == [True, True]


async def test_connection_lost_marks_its_bindings_unreachable() -> None:
    service, _, store, _ = await make()
    tcp = Endpoint("TCP", "192.0.2.10", 40000, 7)
    challenge = await service.process(register(), tcp)
    assert challenge is not None
    ok = await service.process(
        register(authorization=answer(challenge, "401", "secret401"), cseq=2), tcp
    )
    assert ok is not None
    assert ok.status == 200
    service.connection_lost(tcp)
    await service.changed()
    [binding] = store.all()
    assert not binding.reachable


def test_nonce_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    first = load_nonce_secret(tmp_path)
    assert len(first) == 32
    assert load_nonce_secret(tmp_path) == first
    assert (tmp_path / "nonce-secret").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("contact", "nat"),
    [
        ("sip:401@192.0.2.10:5062", False),
        ("sip:401@192.0.2.10", True),  # 5060 != 5062
        ("sip:401@10.0.0.5:5062", True),
    ],
)
def test_behind_nat(contact: str, nat: bool) -> None:
    binding = Binding(
        aor="sip:401@pbx.test",
        contact=contact,
        expires_at=0,
        call_id="c",
        cseq=1,
        source=SOURCE,
        received_at=0,
    )
    assert behind_nat(binding) is nat


def test_ban_gate_forgets_expired_bans_as_new_ones_come() -> None:
    now = 0.0
    gate = BanGate(None, Admission(), lambda: now)
    gate.ban(Ban("192.0.2.1", "guessing", "source", 0.0, 60.0))
    now = 30.0
    gate.ban(Ban("192.0.2.2", "guessing", "source", 30.0, 90.0))
    assert gate.blocked("192.0.2.1")
    assert gate.blocked("192.0.2.2")
    now = 61.0
    gate.ban(Ban("192.0.2.3", "guessing", "source", 61.0, 121.0))
    # The first ban ended: gone without its address ever coming back.
    assert list(gate._banned) == ["192.0.2.2", "192.0.2.3"]
    assert not gate.blocked("192.0.2.1")
    assert gate.blocked("192.0.2.3")


async def banned_by_a_wrong_password(service: RegistrarService) -> None:
    """401 registers from SOURCE with a wrong password; with ``max_failures: 1`` that
    failure bans SOURCE, and its answer is 403."""
    challenge = await service.process(register(), SOURCE)
    assert challenge is not None
    wrong = answer(challenge, "401", "not-the-password")
    banning = await service.process(register(authorization=wrong, cseq=2), SOURCE)
    assert banning is not None
    assert banning.status == 403


async def test_silent_ban_still_ends_the_transactions_already_past_the_gate() -> None:
    """The gate silences a banned source from its ban on; a REGISTER it had already
    let through has a server transaction waiting (Trying has no timer): it gets 403,
    like the failure that created the ban."""
    service, *_ = await make(admission={"silent": True, "max_failures": 1})
    await banned_by_a_wrong_password(service)
    in_flight = await service.process(register(cseq=3), SOURCE)
    assert in_flight is not None
    assert in_flight.status == 403
    assert service.stats["refused_banned"] == 1


async def test_a_ban_is_kept_in_wall_time_and_restored_after_a_restart(tmp_path: Path) -> None:
    store = BanStore(bans_db_path(tmp_path))
    service, _, _, clock = await make(bans=store, admission={"max_failures": 1})
    await banned_by_a_wrong_password(service)
    (ban,) = store.load(clock.wall)
    assert (ban.address, ban.kind) == ("192.0.2.10", "source")
    assert (ban.since, ban.until) == (clock.wall, clock.wall + 86_400)  # wall clock
    await service.close()

    # A restart an hour later: another monotonic origin, the same wall clock.
    restarted, _, _, later = await make(bans=store, admission={"max_failures": 1})
    later.now, later.wall = 5.0, clock.wall + 3600
    await restarted.start()
    refused = await restarted.process(register(cseq=3), SOURCE)
    assert refused is not None
    assert refused.status == 403
    assert restarted.stats["refused_banned"] == 1
    assert restarted.stats["bans_source"] == 0  # put back, not banned again
    (again,) = restarted.admission.bans(later.now)
    assert again.until == 5.0 + 86_400 - 3600  # what was left of it
    assert restarted.admission.check("192.0.2.10", again.until) is None
    await restarted.close()

    # A day later: the ban is over and its row gone.
    final, _, _, day = await make(bans=store, admission={"max_failures": 1})
    day.wall = clock.wall + 86_400
    await final.start()
    challenged = await final.process(register(cseq=4), SOURCE)
    assert challenged is not None
    assert challenged.status == 401
    assert store.load(day.wall) == []
    await final.close()
    store.close()


async def test_restored_bans_are_silent_at_the_gate_when_bans_are_silent(tmp_path: Path) -> None:
    store = BanStore(bans_db_path(tmp_path))
    clock = Clock()
    store.add(Ban("192.0.2.10", "guessing", "source", clock.wall, clock.wall + 60), clock.wall)
    service, *_ = await make(bans=store, admission={"silent": True})
    gate = BanGate(None, service.admission, service.clock)
    service.gate = gate
    await service.start()
    assert gate.blocked("192.0.2.10")
    assert not gate.blocked("192.0.2.11")
    await service.close()
    store.close()
