"""In-dialog requests for a dialog the switch does not have: 481 (RFC 3261 §12.2.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.sip.message import Response
from tests.adapter.raw_ua import RawUa, running_switch
from tests.adapter.test_call_lifecycle import settings


@pytest.mark.parametrize("method", ["BYE", "INVITE", "UPDATE", "INFO"])
async def test_request_for_an_unknown_dialog_gets_481(tmp_path: Path, method: str) -> None:
    """ "If the remote tag [...] does not match an existing dialog, the UAS MUST
    respond with a 481 (Call/Transaction Does Not Exist)" (§12.2.2)."""
    async with running_switch(tmp_path, settings()) as (_server, port):
        ua = await RawUa.open("401", "secret401", port)
        try:
            call_id = f"no-such-dialog-{method}"
            ua.request(
                method,
                f"sip:402@127.0.0.1:{port}",
                call_id=call_id,
                cseq=2,
                from_tag="caller",
                to_tag="never-issued",
            )
            answer = await ua.expect(call_id, status=481)
            assert isinstance(answer, Response)
            assert answer.cseq.method == method
        finally:
            ua.close()
