"""The layering rules of ARCHITECTURE.md, enforced on the source tree.

Pure packages (``switch.sip``, ``routing``, the pure parts of ``media``) must not
import asyncio, sockets, clocks or the async shell, not even inside a function:
protocol logic is sans-I/O and routing decisions are reproducible.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "time", "uvloop", "threading"}

RULES: dict[str, set[str]] = {
    "switch/sip": IO_MODULES | {"routing", "media", "ivr", "switch"},
    "routing": IO_MODULES | {"switch", "media", "ivr"},
    # Registrar and admission logic are pure too; only their stores do I/O.
    "switch/registrar.py": IO_MODULES | {"routing", "media", "ivr", "switch.stack", "switch.app"},
    "switch/admission.py": IO_MODULES | {"media", "ivr", "switch.stack", "switch.app"},
    "media/sdp.py": IO_MODULES | {"switch"},
    "media/dtmf.py": IO_MODULES | {"switch"},
    "media/tone.py": IO_MODULES | {"switch"},
    "media/player.py": IO_MODULES | {"switch"},
    "media/ports.py": IO_MODULES | {"switch"},
    "media/rtp.py": IO_MODULES | {"switch"},
    "media/g711.py": IO_MODULES | {"switch"},
    "media/latching.py": IO_MODULES | {"switch"},
}
# switch.sip may import itself.
ALLOWED = {"switch/sip": {"switch.sip"}}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _files(rule: str) -> list[Path]:
    target = ROOT / rule
    if target.is_file():
        return [target]
    return sorted(target.rglob("*.py")) if target.is_dir() else []


def _violations(rule: str) -> list[str]:
    forbidden = RULES[rule]
    allowed = ALLOWED.get(rule, set())
    out = []
    for path in _files(rule):
        for line, module in _imports(path):
            if any(module == a or module.startswith(a + ".") for a in allowed):
                continue
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return out


@pytest.mark.parametrize("rule", sorted(RULES))
def test_pure_layers_import_no_io(rule: str) -> None:
    assert _violations(rule) == []


def test_rule_detects_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import asyncio\n    from time import monotonic\n")
    assert [m for _, m in _imports(bad)] == ["asyncio", "time"]
