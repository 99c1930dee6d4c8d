"""``aiguilleur check DIR``: validate every configuration file of a directory.

Prints one ``file:line:col: field: message`` line per error, exits 1 when there
is any, 0 (with a one-line summary) otherwise. Nothing is started.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routing.source import ConfigError, ConfigErrors


def check_directory(config_dir: Path) -> list[ConfigError]:
    """All errors of ``config_dir``: switch settings, directory and routing programs."""
    from routing.loader import load_library
    from switch.directory import load_directory
    from switch.settings import load_settings

    errors: list[ConfigError] = []
    try:
        load_settings(config_dir)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    try:
        load_directory(config_dir)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    if (config_dir / "routing").is_dir():
        try:
            load_library(config_dir / "routing")
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    return errors


def check_command(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    if not config_dir.is_dir():
        print(f"{config_dir}: not a directory", file=sys.stderr)
        return 1
    errors = check_directory(config_dir)
    for error in errors:
        print(error)
    if errors:
        print(f"{len(errors)} error(s) in {config_dir}", file=sys.stderr)
        return 1
    print(f"{config_dir}: configuration OK")
    return 0
