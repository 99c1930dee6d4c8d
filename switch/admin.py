"""The admin HTTP API (metrics, reload, plans de secours) and its command-line client.

Endpoints, on ``admin.host:admin.port`` of switch.yaml (127.0.0.1:8080 by default)::

    GET  /metrics                       Prometheus text exposition
    GET  /health                        {"ok": true, "version": ..., "routing": {...}}
    GET  /plans                         {"ok": true, "plans": [{number, plan, by, at, source}]}
    POST /reload                        200 {"ok": true, "numbers": N}
                                        422 {"ok": false, "errors": ["file:line:col: ..."]}
    POST /plans/{number}/activate       {"plan": "name", "by": "who"} -> 200 the new state
    POST /plans/{number}/deactivate     {"by": "who"}                 -> 200 the new state
                                        404 unknown number or plan
    POST /groups/{company}/{number}/daynight
                                        {"mode": "day"|"night"|"auto", "by": "who"}
                                        -> 200 {"ok": true, "company", "group", "mode"}
                                        404 unknown company or group, 422 bad mode
                                        (service de nuit of a hunt group, docs/groups.md)

Security by default: reads are open to whoever reaches the port (it listens on
loopback unless told otherwise); the ``POST`` endpoints change how calls are
routed, so

- without ``admin.token``: only peers on a loopback address (127.0.0.0/8, ::1)
  may use them (403 otherwise);
- with ``admin.token``: every peer, loopback included, must send
  ``Authorization: Bearer <token>`` (401 otherwise). The token is what makes
  remote administration possible; compare it in constant time.

The server is ``asyncio.start_server`` around h11, the sans-I/O HTTP/1.1 state
machine (the same shape as the SIP stack: bytes in, events out; no framework).
Requests are small and bounded: a 16 KiB head, a 64 KiB body, 30 s for a whole
request to arrive, 64 connections; keep-alive is honoured for scrapers.

The client half (``aiguilleur plan ...``, ``aiguilleur reload``) uses
``urllib.request``: the CLI stays free of the asyncio stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import hmac
import ipaddress
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import h11

from switch.plans import PlanChange, PlanError

log = logging.getLogger("switch.admin")

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = 30.0  # seconds for a whole request to arrive (and keep-alive idleness)
MAX_CONNECTIONS = 64
READ_SIZE = 65536
TOKEN_ENV = "AIGUILLEUR_ADMIN_TOKEN"
"""Environment variable the CLI reads the token from, before switch.yaml's."""

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Reloaded:
    """The result of a routing reload: no ``errors`` means the new library runs."""

    errors: list[str] = field(default_factory=list)
    numbers: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


class Backend(Protocol):
    """What the admin API drives: the running switch (``switch.app.Server``)."""

    def render_metrics(self) -> tuple[bytes, str]:
        """(exposition body, its content type)."""
        ...

    async def reload(self, by: str) -> Reloaded: ...

    def activate_plan(self, number: str, plan: str, by: str) -> PlanChange: ...

    def deactivate_plan(self, number: str, by: str) -> PlanChange: ...

    def active_plans(self) -> list[dict[str, str | None]]: ...

    def health(self) -> dict[str, Any]: ...


class GroupModes(Protocol):
    """The day/night override of hunt groups (``switch.daynight.GroupDayNight``)."""

    async def set_group_mode(self, company: str, number: str, mode: str, by: str) -> dict[str, Any]:
        """The new state; ``LookupError``: unknown company or group; ``ValueError``:
        not ``day``, ``night`` or ``auto``."""
        ...


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def authorize(peer_host: str | None, authorization: bytes | None, token: str | None) -> int:
    """0 when a state-changing request may proceed, else its HTTP status (401, 403)."""
    if token is not None:
        expected = b"Bearer " + token.encode()
        if authorization is not None and hmac.compare_digest(authorization.strip(), expected):
            return 0
        return 401
    return 0 if is_loopback(peer_host) else 403


class HttpError(Exception):
    """A request the API refuses: ``status_code`` and a message for the JSON body."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any, *headers: tuple[str, str]) -> Answer:
        return cls(status, json.dumps(payload, ensure_ascii=False).encode() + b"\n", JSON, headers)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class AdminServer:
    """The admin API on one TCP address; ``start()`` binds, ``close()`` stops."""

    def __init__(
        self,
        backend: Backend,
        *,
        host: str,
        port: int,
        token: str | None = None,
        groups: GroupModes | None = None,
    ) -> None:
        self.backend = backend
        self.groups = groups
        self.host = host
        self.port = port
        self.token = token
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind (raises ``OSError``); ``port`` is then the bound one (0 picks a free port)."""
        self._server = await asyncio.start_server(
            self._accepted, self.host, self.port, limit=READ_SIZE
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    # -- connections ---------------------------------------------------------------------------
    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # close(): the connection goes with the server
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_host = peer[0] if isinstance(peer, tuple) else None
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        while True:
            try:
                # One deadline per request, not per read: a client trickling a
                # byte at a time cannot hold a connection slot for long.
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    got = await self._read_request(conn, reader, writer)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    await self._send(
                        conn, writer, Answer.json(status, {"ok": False, "errors": [str(exc)]})
                    )
                return
            except HttpError as exc:
                await self._send(conn, writer, _error(exc.status_code, str(exc)))
                return
            if got is None:
                return
            request, body = got
            answer = await self._dispatch(request, body, peer_host)
            await self._send(conn, writer, answer)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    writer.write(
                        conn.send(
                            h11.InformationalResponse(
                                status_code=100, headers=[], reason="Continue"
                            )
                        )
                        or b""
                    )
                conn.receive_data(await reader.read(READ_SIZE))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise HttpError(413, f"request body larger than {MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, answer: Answer
    ) -> None:
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            ("Cache-Control", "no-store"),
            *answer.headers,
        ]
        out = conn.send(
            h11.Response(
                status_code=answer.status, headers=headers, reason=_REASONS.get(answer.status, "")
            )
        )
        out = (out or b"") + (conn.send(h11.Data(data=answer.body)) or b"")
        out += conn.send(h11.EndOfMessage()) or b""
        writer.write(out)
        await writer.drain()

    # -- requests ------------------------------------------------------------------------------
    async def _dispatch(self, request: h11.Request, body: bytes, peer_host: str | None) -> Answer:
        method = request.method.decode("ascii", "replace")
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        try:
            route = _route(path)
            if route is None:
                raise HttpError(404, f"no such endpoint: {path}")
            name, number, allowed = route
            if method not in allowed:
                return _error(
                    405, f"{path} accepts {', '.join(allowed)}", ("Allow", ", ".join(allowed))
                )
            if method == "POST":
                refusal = authorize(peer_host, _header(request, b"authorization"), self.token)
                if refusal:
                    log.warning(
                        "admin.refused",
                        extra={"peer": peer_host, "path": path, "status": refusal},
                    )
                    if refusal == 401:
                        return _error(
                            401,
                            "send Authorization: Bearer <admin.token>",
                            ("WWW-Authenticate", 'Bearer realm="aiguilleur"'),
                        )
                    return _error(
                        refusal,
                        "state-changing requests are accepted from loopback only "
                        "(set admin.token to allow other addresses)",
                    )
            return await self._handle(name, number, body, peer_host)
        except (HttpError, PlanError) as exc:
            return _error(exc.status_code, str(exc))
        except Exception:
            log.exception("admin.failed", extra={"method": method, "path": path})
            return _error(500, "internal error (see the switch's log)")

    async def _handle(
        self, name: str, number: str | None, body: bytes, peer_host: str | None
    ) -> Answer:
        backend = self.backend
        if name == "metrics":
            data, content_type = backend.render_metrics()
            return Answer(200, data, content_type)
        if name == "health":
            return Answer.json(200, {"ok": True, **backend.health()})
        if name == "plans":
            return Answer.json(200, {"ok": True, "plans": backend.active_plans()})
        args = _json_body(body)
        by = _text(args, "by", required=False) or f"admin@{peer_host}"
        if name == "reload":
            result = await backend.reload(by)
            if result.ok:
                return Answer.json(200, {"ok": True, "numbers": result.numbers})
            return Answer.json(422, {"ok": False, "errors": result.errors})
        assert number is not None
        if name == "daynight":
            return await self._daynight(number, args, by)
        if name == "activate":
            plan = _text(args, "plan", required=True)
            assert plan is not None
            change = backend.activate_plan(number, plan, by)
        else:
            change = backend.deactivate_plan(number, by)
        return Answer.json(200, {"ok": True, **change.as_json()})

    async def _daynight(self, path: str, args: dict[str, Any], by: str) -> Answer:
        if self.groups is None:
            raise HttpError(404, "no hunt groups on this switch")
        company, number = path.split("/", 1)
        mode = _text(args, "mode", required=True)
        assert mode is not None
        try:
            state = await self.groups.set_group_mode(company, number, mode, by)
        except LookupError as exc:
            raise HttpError(404, str(exc.args[0] if exc.args else exc)) from None
        except ValueError as exc:
            raise HttpError(422, str(exc)) from None
        return Answer.json(200, {"ok": True, **state})


# Path -> (endpoint name, allowed methods); plus /plans/{number}/(de)activate and
# /groups/{company}/{number}/daynight.
_FIXED_ROUTES = {
    "/metrics": ("metrics", ("GET",)),
    "/health": ("health", ("GET",)),
    "/plans": ("plans", ("GET",)),
    "/reload": ("reload", ("POST",)),
}


def _route(path: str) -> tuple[str, str | None, tuple[str, ...]] | None:
    """(endpoint name, number from the path, allowed methods) or None."""
    fixed = _FIXED_ROUTES.get(path)
    if fixed is not None:
        name, allowed = fixed
        return name, None, allowed
    parts = path.split("/")
    # ["", "plans", "{number}", "activate"]
    if len(parts) == 4 and parts[1] == "plans" and parts[3] in ("activate", "deactivate"):
        number = urllib.parse.unquote(parts[2])  # "+" stays "+" in a path
        if number:
            return parts[3], number, ("POST",)
    # ["", "groups", "{company}", "{number}", "daynight"]
    if len(parts) == 5 and parts[1] == "groups" and parts[4] == "daynight":
        company, group = urllib.parse.unquote(parts[2]), urllib.parse.unquote(parts[3])
        if company and group and "/" not in company:
            return "daynight", f"{company}/{group}", ("POST",)
    return None


def _header(request: h11.Request, name: bytes) -> bytes | None:
    for key, value in request.headers:
        if key == name:
            return bytes(value)
    return None


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpError(400, "the body must be a JSON object")
    return value


def _text(args: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = args.get(key)
    if value is None:
        if required:
            raise HttpError(400, f"missing {key!r}")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise HttpError(400, f"{key!r} must be a non-empty string of at most 200 characters")
    return value.strip()


def _error(status: int, message: str, *headers: tuple[str, str]) -> Answer:
    return Answer.json(status, {"ok": False, "errors": [message]}, *headers)


# --- the command-line client -----------------------------------------------------------------


class AdminUnreachable(Exception):
    """The switch's admin API did not answer (not running, wrong address)."""


def admin_url(host: str, port: int) -> str:
    """The URL a local client uses for a listen address (a wildcard means this host)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def request(
    url: str,
    method: str,
    path: str,
    payload: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, Any]]:
    """One JSON request to the admin API; (status, decoded body). Raises AdminUnreachable."""
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Accept": JSON}
    if data is not None:
        headers["Content-Type"] = JSON
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminUnreachable(f"cannot reach the switch at {url}: {reason}") from None
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"errors": [raw.decode("utf-8", "replace")]}
    return status, body if isinstance(body, dict) else {"value": body}


def _target(args: argparse.Namespace) -> tuple[str, str | None] | None:
    """(admin URL, token) from ``--admin``, the environment and DIR/switch.yaml."""
    from routing.source import ConfigErrors
    from switch.settings import load_settings

    token = os.environ.get(TOKEN_ENV) or None
    url: str | None = getattr(args, "admin", None)
    if url is not None and token is not None:
        return url, token
    try:
        settings = load_settings(Path(args.config))
    except ConfigErrors as exc:
        if url is not None:
            return url, token  # --admin given: the configuration was only for the token
        for error in exc.errors:
            print(error, file=sys.stderr)
        return None
    admin = settings.admin
    return url or admin_url(admin.host, admin.port), token or admin.token


def _run(
    args: argparse.Namespace, call: Callable[[str, str | None], tuple[int, dict[str, Any]]]
) -> int:
    target = _target(args)
    if target is None:
        return 1
    url, token = target
    try:
        status, body = call(url, token)
    except AdminUnreachable as exc:
        print(exc, file=sys.stderr)
        return 1
    if status == 200 and body.get("ok"):
        _print_ok(args, body)
        return 0
    for error in body.get("errors") or [f"HTTP {status}"]:
        print(error, file=sys.stderr)
    return 1


def _print_ok(args: argparse.Namespace, body: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(body, ensure_ascii=False, indent=2))
    elif args.command == "reload":
        print(f"reloaded: {body.get('numbers')} service numbers")
    elif args.plan_command == "list":
        plans = body.get("plans") or []
        if not plans:
            print("no plan de secours is active")
        for p in plans:
            who = f"by {p['by']} at {p['at']}" if p.get("by") else "(routing file)"
            print(f"{p['number']}  {p['plan']}  {who}")
    elif body.get("plan") is None:
        print(f"{body['number']}: normal routing (by {body['by']} at {body['at']})")
    else:
        print(f"{body['number']}: plan {body['plan']} active (by {body['by']} at {body['at']})")


def default_user() -> str:
    """The OS user running the command: the default ``--by``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def plan_command(args: argparse.Namespace) -> int:
    """``aiguilleur plan activate|deactivate|list``: exit 0, or 1 with the switch's errors."""
    sub = args.plan_command
    if sub == "list":
        return _run(args, lambda url, token: request(url, "GET", "/plans", token=token))
    number = urllib.parse.quote(args.number, safe="")
    by = args.by or default_user()
    if sub == "activate":
        payload: dict[str, Any] = {"plan": args.plan, "by": by}
    else:
        payload = {"by": by}
    path = f"/plans/{number}/{sub}"
    return _run(args, lambda url, token: request(url, "POST", path, payload, token=token))


def reload_command(args: argparse.Namespace) -> int:
    """``aiguilleur reload``: exit 0, or 1 with every error of the refused files."""
    by = args.by or default_user()
    return _run(args, lambda url, token: request(url, "POST", "/reload", {"by": by}, token=token))


__all__ = [
    "AdminServer",
    "AdminUnreachable",
    "Answer",
    "Backend",
    "HttpError",
    "Reloaded",
    "admin_url",
    "authorize",
    "is_loopback",
    "plan_command",
    "reload_command",
    "request",
]
