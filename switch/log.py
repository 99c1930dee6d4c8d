"""Structured logging: one ``key=value`` line per event, on stderr.

    ts=2024-05-01T10:00:00.123Z level=debug logger=switch.stack event=sip.in
      call_id=a84b4c76e66710 method=OPTIONS ruri=sip:pbx.test peer=udp:192.0.2.4:5060

(one line on the wire; wrapped here).

SIP lines always carry the Call-ID (``call_id=``), so ``grep call_id=abc`` gives
a call's story. Nothing is formatted below the active level: callers on hot
paths test ``logger.isEnabledFor(DEBUG)`` before building fields, and
``sip_fields()`` is only evaluated behind that test.

One level for the whole process (``aiguilleur run --log-level``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

from switch.sip.endpoint import Endpoint
from switch.sip.message import Request, Response

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# Attributes every LogRecord has; anything else came from ``extra=`` and is a field.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=… logger=… event=<msg> k=v …`` (values quoted when needed)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"event={_quote(record.getMessage())}",
        ]
        parts.extend(
            f"{key}={_quote(value)}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and value is not None
        )
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """Install the key=value handler on the root logger at ``level`` (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # asyncio logs "socket.send() raised exception" per failed write: keep it quiet.
    logging.getLogger("asyncio").setLevel(max(LEVELS[level], logging.WARNING))


def sip_fields(message: Request | Response, peer: Endpoint | None = None) -> dict[str, Any]:
    """The fields of a SIP log line; ``call_id`` is always present."""
    fields: dict[str, Any] = {"call_id": message.headers.get("Call-ID") or "-"}
    if isinstance(message, Request):
        fields["method"] = message.method
        fields["ruri"] = str(message.uri)
    else:
        fields["status"] = message.status
        fields["cseq"] = message.headers.get("CSeq")
    if peer is not None:
        fields["peer"] = str(peer)
    return fields


def log_sip(
    logger: logging.Logger,
    level: int,
    event: str,
    message: Request | Response,
    peer: Endpoint | None = None,
    **extra: Any,
) -> None:
    """Log one SIP event with its Call-ID; costs one level test when disabled."""
    if logger.isEnabledFor(level):
        fields = sip_fields(message, peer)
        fields.update(extra)
        logger.log(level, event, extra=fields)
