"""Restriction profiles on live calls: a barred destination never reaches the trunk.

The company table (``restrictions:`` of a company in ``directory.yaml``) on the
paths that are not a plain call out: a forward at activation (star code) and at
call time, a speed dial under a custom profile. The full matrix of profiles and
classes is ``tests/interop/test_restrictions_matrix.py``.
"""

from __future__ import annotations

from pathlib import Path

from routing.linesettings import Forwarding, LineSettings
from tests.adapter.raw_ua import RawUa, running_switch
from tests.adapter.test_call_lifecycle import cdr, settings, until
from tests.adapter.test_features import dial_code, open_trunk, stored, trunk_settings
from tests.sip_support import free_port

# The example company with a table: every line is barred from 06 99…; profile 8 allows
# free numbers and, by prefix, 06 39 (Mayotte mobiles: +262639…); 601 gets profile 8.
TABLE = """\
    restrictions:
      profiles:
        8: {name: Atelier, classes: [free], allow: ["06 39"]}
      deny: ["06 99"]
"""


def with_table(config: Path) -> None:
    path = config / "directory.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count("\n    lines:\n") == 1
    text = text.replace("\n    lines:\n", "\n" + TABLE + "    lines:\n")
    text = text.replace("restrictions: {direct: 1, forwarded: 1}", "restrictions: {direct: 8}")
    path.write_text(text, encoding="utf-8")


async def test_a_barred_destination_gets_403_with_its_reason_and_a_cdr_row(
    tmp_path: Path,
) -> None:
    """Line 601 has profile 1 (emergency, free): a premium number is refused."""
    async with running_switch(tmp_path, settings()) as (server, port):
        caller = await RawUa.open("601", "secret601", port)
        try:
            out = await caller.call("0899123456")
            response = await out.failed(403)
            assert response.reason == "Destination barred (premium)"
            await until(lambda: len(cdr(server)) == 1)
            row = cdr(server)[0]
            assert (row["outcome"], row["cause"]) == ("rejected", "barred:premium")
            assert row["because"] == ["profil 1 « Urgences, Gratuits et SAV » : surtaxé interdit"]
            assert server.b2bua is not None
            assert server.b2bua.stats["trunk_out"] == 0
        finally:
            caller.close()


async def test_forwards_follow_the_company_deny_list_at_activation_and_at_call_time(
    tmp_path: Path,
) -> None:
    """401 has profile 10 for forwards, but its company bars 06 99 for every line."""
    async with running_switch(tmp_path, settings(), prepare=with_table) as (server, port):
        ua401 = await RawUa.open("401", "secret401", port)
        try:
            heard, _ = await dial_code(ua401, "**21*0699123456#")
            assert heard == "refused"
            assert stored(server, "401@pbx.test") == LineSettings()
            heard, _ = await dial_code(ua401, "**21*0612345678#")
            assert heard == "accepted"
            # A forward stored before the company barred its target: ignored at call time.
            barred = LineSettings(forwarding=Forwarding(unconditional="+33699123456"))
            assert server.b2bua is not None
            await server.b2bua.line_settings.save("401@pbx.test", barred)
            await ua401.register()
            ua402 = await RawUa.open("402", "secret402", port)
            try:
                call = await ua402.call("401")
                await call.answered()  # 401 itself, as if the forward were not set
                assert len(ua401.incoming) == 1
                await call.bye()
            finally:
                ua402.close()
        finally:
            ua401.close()
        await until(lambda: any(r["called"] == "401" for r in cdr(server)))
        row = next(r for r in cdr(server) if r["called"] == "401")
        trace = "\n".join(row["because"])  # type: ignore[arg-type]
        assert "liste d'interdiction de l'entreprise : préfixe 0699 (+33699) interdit" in trace


async def test_a_speed_dial_goes_out_under_the_custom_profile_lists(tmp_path: Path) -> None:
    """601 has the company's profile 8: free numbers, and 06 39 by prefix. Speed dial
    701 (06 39 98 12 34, Mayotte) is allowed by the prefix, a mobile is not."""
    trunk_port = free_port()
    extra = trunk_settings(trunk_port)
    async with running_switch(tmp_path, extra, prepare=with_table) as (server, port):
        trunk = await open_trunk(trunk_port, port)
        ua = await RawUa.open("601", "secret601", port)
        try:
            out = await ua.call("701")
            await out.failed(486)  # the trunk's answer: the call went out
            (invite,) = (c.invite for c in trunk.incoming.values())
            assert str(invite.uri).startswith("sip:+262639981234@127.0.0.1")
            mobile = await ua.call("0612345678")
            response = await mobile.failed(403)
            assert response.reason == "Destination barred (mobile)"
            denied = await ua.call("0699123456")
            response = await denied.failed(403)
            assert response.reason == "Destination barred (deny list)"
            assert len(trunk.incoming) == 1
        finally:
            ua.close()
            trunk.close()
        await until(lambda: len(cdr(server)) == 3)
        causes = {r["called"]: r["cause"] for r in cdr(server)}
        assert causes["0612345678"] == "barred:mobile"
        assert causes["0699123456"] == "barred:company-deny"


async def test_a_forward_to_a_short_number_goes_out_as_dialled(tmp_path: Path) -> None:
    """401 (forward profile 10) forwards to 3639 (premium short): the trunk gets 3639,
    not +333639 nor a 404 from the switch."""
    trunk_port = free_port()
    async with running_switch(tmp_path, trunk_settings(trunk_port)) as (server, port):
        trunk = await open_trunk(trunk_port, port)
        assert server.b2bua is not None
        forward = LineSettings(forwarding=Forwarding(unconditional="3639"))
        await server.b2bua.line_settings.save("401@pbx.test", forward)
        ua = await RawUa.open("402", "secret402", port)
        try:
            call = await ua.call("401")
            await call.failed(486)  # the trunk's answer
            (invite,) = (c.invite for c in trunk.incoming.values())
            assert str(invite.uri).startswith("sip:3639@127.0.0.1")
        finally:
            ua.close()
            trunk.close()
