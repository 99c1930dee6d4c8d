"""YAML configuration files with positions kept, and errors that point at them.

Every configuration error an operator sees reads ``file:line:col: path.to.field:
message`` (line and column 1-based), whether it comes from YAML syntax, a
duplicate key, a pydantic validation error, or a cross-reference check done
after validation. ``ruamel.yaml`` keeps the line and column of every key and
sequence item, which plain PyYAML does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One configuration problem, located in its file."""

    file: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigErrors(Exception):
    """Raised by loaders: carries every error found, not only the first."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def format_loc(loc: Loc) -> str:
    """``("numbers", 0, "limit")`` -> ``numbers[0].limit``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass(slots=True)
class YamlDocument:
    """A parsed YAML file: ``data`` (dicts, lists, scalars) and where each node is."""

    path: str
    data: Any

    def position(self, loc: Loc) -> tuple[int, int]:
        """1-based (line, col) of the deepest node of ``loc`` that exists."""
        node: Any = self.data
        line, col = 1, 1
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                kl, kc = node.lc.key(part)
                line, col = kl + 1, kc + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                il, ic = node.lc.item(part)
                line, col = il + 1, ic + 1
                node = node[part]
            elif isinstance(node, CommentedMap | CommentedSeq):
                # A discriminated-union tag or a validator name in pydantic's loc:
                # not a YAML node, stay where we are.
                if (
                    isinstance(node, CommentedMap)
                    and node.lc.line is not None
                    and (line, col)
                    == (
                        1,
                        1,
                    )
                ):
                    line, col = node.lc.line + 1, node.lc.col + 1
                continue
            else:
                break
        return line, col

    def yaml_loc(self, loc: Loc) -> Loc:
        """``loc`` without the parts that are not YAML keys (union tags, validator names)."""
        node: Any = self.data
        out: list[str | int] = []
        for i, part in enumerate(loc):
            if isinstance(node, CommentedMap):
                if part in node:
                    out.append(part)
                    node = node[part]
                    continue
                if i == len(loc) - 1 and isinstance(part, str) and "[" not in part:
                    out.append(part)  # a missing field: name it
                continue
            if isinstance(node, CommentedSeq) and isinstance(part, int):
                out.append(part)
                node = node[part] if 0 <= part < len(node) else None
                continue
            if isinstance(part, str) and "[" in part:
                continue
            out.append(part)
            node = None
        return tuple(out)

    def error(self, loc: Loc, message: str) -> ConfigError:
        line, col = self.position(loc)
        return ConfigError(self.path, line, col, format_loc(self.yaml_loc(loc)), message)


def load_yaml(path: str | Path, *, display_path: str | None = None) -> YamlDocument:
    """Read a YAML file (YAML 1.2: ``08:00`` stays a string, ``no`` stays a string).

    Raises ``ConfigErrors`` for unreadable files, syntax errors and duplicate keys.
    """
    shown = display_path or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(shown, 1, 1, "", f"cannot read file: {exc}")]) from exc
    return load_yaml_text(text, shown)


def load_yaml_text(text: str, path: str) -> YamlDocument:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigErrors([ConfigError(path, line, col, "", f"YAML: {problem}")]) from exc
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. bad tags)
        raise ConfigErrors([ConfigError(path, 1, 1, "", f"YAML: {exc}")]) from exc
    if data is None:
        data = CommentedMap()
    return YamlDocument(path, data)


def validation_errors(doc: YamlDocument, exc: ValidationError) -> list[ConfigError]:
    """Every pydantic error of ``exc`` located in ``doc``."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append(doc.error(loc, message))
    return errors


def validate(doc: YamlDocument, model: type[M], **context: Any) -> M:
    """Validate ``doc.data`` as ``model``; raise ``ConfigErrors`` with positions."""
    try:
        return model.model_validate(doc.data, context=context or None)
    except ValidationError as exc:
        raise ConfigErrors(validation_errors(doc, exc)) from exc
