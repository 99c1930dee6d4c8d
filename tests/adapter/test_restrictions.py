"""Restriction profiles on live calls: a barred destination never reaches the trunk."""

from __future__ import annotations

from pathlib import Path

from tests.adapter.raw_ua import RawUa, running_switch
from tests.adapter.test_call_lifecycle import cdr, settings, until


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
            assert server.b2bua is not None
            assert server.b2bua.stats["trunk_out"] == 0
        finally:
            caller.close()
