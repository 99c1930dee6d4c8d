"""Dialog-info documents (RFC 4235, ``application/dialog-info+xml``): build and parse.

One document describes the dialogs of one *entity* (the monitored line,
``sip:402@pbx.test``) as that line's phone sees them::

    <dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"
                 version="3" state="full" entity="sip:402@pbx.test">
      <dialog id="..." call-id="..." local-tag="..." remote-tag="..."
              direction="recipient">
        <state>early</state>
        <local><identity>sip:402@pbx.test</identity><target uri="sip:402@..."/></local>
        <remote><identity display="Accueil">sip:401@pbx.test</identity></remote>
      </dialog>
    </dialog-info>

Rules kept here (RFC 4235 §4.1):

- ``version``: "The first NOTIFY sent MUST contain a version of 0 [...]
  incremented by exactly one for each NOTIFY within a subscription": the
  subscription counts, this module only writes the number it is given.
- ``state``: ``full`` (every dialog of the entity) or ``partial`` (only those
  that changed). The switch sends ``full`` every time (``docs/blf.md``).
- ``<dialog>``: ``id`` is mandatory; ``call-id``, ``local-tag`` and
  ``remote-tag`` are the dialog's identifiers *from the entity's side*
  (local-tag is the monitored phone's own tag); ``direction`` is
  ``initiator`` (the entity sent the INVITE) or ``recipient``.
- ``<state>``: trying | proceeding | early | confirmed | terminated, with an
  optional ``event`` (cancelled, rejected, replaced, local-bye, remote-bye,
  error, timeout) and ``code`` on terminated dialogs.
- Child order (the schema is a sequence): state, duration, local, remote.

Idle (no dialog): RFC 4235 allows an empty ``<dialog-info>``, but Aastra/Mitel
67xxi phones need at least one ``<dialog>`` (PHONES.md): ``idle_document``
writes one terminated dummy dialog instead.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

CONTENT_TYPE = "application/dialog-info+xml"
NAMESPACE = "urn:ietf:params:xml:ns:dialog-info"
_NS = f"{{{NAMESPACE}}}"


class DialogInfoError(ValueError):
    """A document that is not dialog-info (parse only; tests and diagnostics)."""


class DialogState(enum.StrEnum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Direction(enum.StrEnum):
    INITIATOR = "initiator"
    RECIPIENT = "recipient"


@dataclass(frozen=True, slots=True)
class Participant:
    """``<local>`` or ``<remote>``: who (identity, with a display name) and where
    (target: the phone's Contact), both optional."""

    identity: str | None = None
    display: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class DialogView:
    """One ``<dialog>`` element: a dialog as the entity's phone sees it."""

    id: str
    state: DialogState
    call_id: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None
    direction: Direction | None = None
    event: str | None = None  # terminated only: why (RFC 4235 §4.1.6.2)
    code: int | None = None  # terminated only: the final status, if any
    local: Participant | None = None
    remote: Participant | None = None


@dataclass(frozen=True, slots=True)
class DialogInfo:
    """A parsed document."""

    version: int
    state: str  # "full" | "partial"
    entity: str
    dialogs: tuple[DialogView, ...]


def idle_dialog(entity: str) -> DialogView:
    """The dummy dialog of an idle line: terminated, no call-id (67i needs one)."""
    user = entity.split(":", 1)[-1].split("@", 1)[0]
    return DialogView(id=f"idle-{user}", state=DialogState.TERMINATED)


def document(
    entity: str,
    version: int,
    dialogs: Iterable[DialogView],
    *,
    state: str = "full",
) -> bytes:
    """The ``dialog-info+xml`` body; a full document without dialogs gets the
    terminated dummy dialog (``idle_dialog``)."""
    if state not in ("full", "partial"):
        raise ValueError(f"state must be full or partial, not {state!r}")
    if version < 0:
        raise ValueError("version is a non-negative integer")
    items = list(dialogs)
    if not items and state == "full":
        items = [idle_dialog(entity)]
    return _assemble(entity, version, state, [_dialog(d) for d in items])


def _assemble(entity: str, version: int, state: str, dialogs: list[str]) -> bytes:
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<dialog-info xmlns="{NAMESPACE}" version="{version}" state="{state}"'
        f" entity={quoteattr(entity)}>\n"
    )
    return (head + "".join(dialogs) + "</dialog-info>\n").encode("utf-8")


def with_version(body: bytes, version: int) -> bytes:
    """``body`` (a document written with version 0) with ``version`` instead: a
    notifier renders a state once and stamps each subscription's version."""
    return body.replace(b' version="0" state=', f' version="{version}" state='.encode(), 1)


def idle_document(entity: str, version: int) -> bytes:
    """A full document for a line with no dialog: one terminated dummy dialog."""
    return document(entity, version, ())


def fitted(entity: str, version: int, dialogs: Iterable[DialogView], max_bytes: int) -> bytes:
    """A full document within ``max_bytes`` if it can be: a NOTIFY over 1300 bytes
    must go over TCP (RFC 3261 §18.1.1), which most UDP phones do not listen on.

    What goes first when the whole state does not fit: the terminated dialogs,
    the first listed first (they only say that a call ended: list the older
    ones first), then ``<local>``/``<remote>`` of each dialog (identifiers and
    states stay: enough for the lamp and for Replaces).
    """
    items = list(dialogs)
    if not items:
        return document(entity, version, items)
    parts = [_dialog(d) for d in items]
    size = len(_assemble(entity, version, "full", [])) + sum(len(p.encode()) for p in parts)
    keep = [True] * len(items)
    for i, item in enumerate(items):
        if size <= max_bytes:
            break
        if item.state is DialogState.TERMINATED:
            keep[i] = False
            size -= len(parts[i].encode())
    kept = [p for p, k in zip(parts, keep, strict=True) if k]
    if size <= max_bytes and kept:
        return _assemble(entity, version, "full", kept)
    live = [d for d, k in zip(items, keep, strict=True) if k]
    bare = [replace(d, local=None, remote=None) for d in live]
    return document(entity, version, bare)


def _dialog(view: DialogView) -> str:
    attrs = [f"id={quoteattr(view.id)}"]
    for name, value in (
        ("call-id", view.call_id),
        ("local-tag", view.local_tag),
        ("remote-tag", view.remote_tag),
        ("direction", view.direction),
    ):
        if value is not None:
            attrs.append(f"{name}={quoteattr(str(value))}")
    state_attrs = ""
    if view.event is not None:
        state_attrs += f" event={quoteattr(view.event)}"
    if view.code is not None:
        state_attrs += f' code="{int(view.code)}"'
    parts = [f"<dialog {' '.join(attrs)}>\n", f"<state{state_attrs}>{view.state}</state>\n"]
    for tag, who in (("local", view.local), ("remote", view.remote)):
        if who is not None:
            parts.append(_participant(tag, who))
    parts.append("</dialog>\n")
    return "".join(parts)


def _participant(tag: str, who: Participant) -> str:
    inner = ""
    if who.identity is not None:
        display = f" display={quoteattr(who.display)}" if who.display else ""
        inner += f"<identity{display}>{escape(who.identity)}</identity>"
    if who.target is not None:
        inner += f"<target uri={quoteattr(who.target)}/>"
    return f"<{tag}>{inner}</{tag}>\n"


# ------------------------------------------------------------------------- parsing


def parse(body: bytes) -> DialogInfo:
    """Read a document (what a watcher does); raises ``DialogInfoError``."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DialogInfoError(f"not XML: {exc}") from exc
    if root.tag != f"{_NS}dialog-info":
        raise DialogInfoError(f"root is {root.tag}, not dialog-info")
    try:
        version = int(root.attrib["version"])
        state = root.attrib["state"]
        entity = root.attrib["entity"]
    except (KeyError, ValueError) as exc:
        raise DialogInfoError(f"dialog-info lacks {exc}") from exc
    dialogs = []
    for element in root.findall(f"{_NS}dialog"):
        state_el = element.find(f"{_NS}state")
        if state_el is None or "id" not in element.attrib:
            raise DialogInfoError("a dialog needs id and <state>")
        try:
            dialog_state = DialogState((state_el.text or "").strip())
            direction = element.attrib.get("direction")
            code = state_el.attrib.get("code")
            dialogs.append(
                DialogView(
                    id=element.attrib["id"],
                    state=dialog_state,
                    call_id=element.attrib.get("call-id"),
                    local_tag=element.attrib.get("local-tag"),
                    remote_tag=element.attrib.get("remote-tag"),
                    direction=Direction(direction) if direction is not None else None,
                    event=state_el.attrib.get("event"),
                    code=int(code) if code is not None else None,
                    local=_read_participant(element.find(f"{_NS}local")),
                    remote=_read_participant(element.find(f"{_NS}remote")),
                )
            )
        except ValueError as exc:
            raise DialogInfoError(str(exc)) from exc
    return DialogInfo(version, state, entity, tuple(dialogs))


def _read_participant(element: ET.Element | None) -> Participant | None:
    if element is None:
        return None
    identity = element.find(f"{_NS}identity")
    target = element.find(f"{_NS}target")
    return Participant(
        identity=(identity.text or "").strip() if identity is not None else None,
        display=identity.attrib.get("display") if identity is not None else None,
        target=target.attrib.get("uri") if target is not None else None,
    )


__all__ = [
    "CONTENT_TYPE",
    "NAMESPACE",
    "DialogInfo",
    "DialogInfoError",
    "DialogState",
    "DialogView",
    "Direction",
    "Participant",
    "document",
    "fitted",
    "idle_dialog",
    "idle_document",
    "parse",
    "with_version",
]
