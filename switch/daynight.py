"""The day/night override of hunt groups (service de nuit): one rule, two ways in.

- The admin API of a running switch, ``POST /groups/{company}/{number}/daynight``
  (:class:`GroupDayNight`, logged ``group.day_night`` with ``by``).
- The command line, ``aiguilleur groups daynight DIR COMPANY NUMBER day|night|auto``
  (:func:`daynight_command`), which writes the data directory's store itself,
  whether the switch runs or not.

``day`` / ``night`` force the mode until changed; ``auto`` gives the group back to
its calendar. The override is kept with the line settings
(``DATA_DIR/line_settings.sqlite3``, key ``group_key(number, domain)``). A running
switch reads it on every call to the group (``LineCall._hunt``, no cache) and
SQLite serialises writers from several processes, so either way the next call to
the group follows the new mode, and a restart keeps it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from routing.linesettings import DayNight, DayNightOverride, GroupSettings
from routing.source import ConfigErrors
from switch.directory import Directory, load_directory
from switch.line_settings import (
    LineSettingsStoreError,
    SqliteLineSettingsStore,
    group_key,
    line_settings_db_path,
)
from switch.settings import load_settings

if TYPE_CHECKING:
    from switch.b2bua import B2bua

MODES = ("day", "night", "auto")

log = logging.getLogger(__name__)


def group_override(
    directory: Directory, company: str, number: str, mode: str
) -> tuple[str, GroupSettings]:
    """The store key and the settings that put group ``number`` of ``company`` in
    ``mode``. Raises ``LookupError`` (unknown company or group: 404 on the API) or
    ``ValueError`` (not one of ``MODES``: 422)."""
    found = directory.company(company)
    if found is None:
        raise LookupError(f"unknown company: {company}")
    if found.group(number) is None:
        raise LookupError(f"unknown group {number} in {company}")
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} (day, night or auto)")
    override = None if mode == "auto" else DayNightOverride(DayNight(mode))
    return group_key(number, found.domain), GroupSettings(override)


def daynight_command(args: argparse.Namespace) -> int:
    """``aiguilleur groups daynight DIR COMPANY NUMBER MODE [--data-dir DIR]``.

    DIR is the configuration directory: its ``directory.yaml`` says which groups
    exist, its ``switch.yaml`` where the data directory is (``--data-dir``
    overrides it, as for ``aiguilleur run``). Exit 0; 1 on configuration or
    storage errors, or when the data directory has no line-settings store (the
    switch never ran there: a typo would otherwise write a store nobody reads);
    2 for an unknown company or group."""
    config_dir = Path(args.config)
    try:
        settings = load_settings(config_dir)
        directory = load_directory(config_dir)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    try:
        key, group_settings = group_override(directory, args.company, args.number, args.mode)
    except (LookupError, ValueError) as exc:
        print(exc.args[0] if exc.args else exc, file=sys.stderr)
        return 2
    override = getattr(args, "data_dir", None)
    path = line_settings_db_path(settings.data_path(Path(override) if override else None))
    if not path.is_file():
        print(f"{path}: no line settings store (has the switch run there?)", file=sys.stderr)
        return 1
    try:
        store = SqliteLineSettingsStore(path)
        try:
            store.save_group(key, group_settings)
        finally:
            store.close()
    except LineSettingsStoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    forced = {"day": "day (forced)", "night": "night (forced)", "auto": "auto (its calendar)"}
    print(f"group {args.number} of {args.company}: {forced[args.mode]}")
    return 0


class GroupDayNight:
    """The admin API's day/night switch of hunt groups (``switch.admin.GroupModes``):
    ``day`` / ``night`` force the mode until changed, ``auto`` returns the group to its
    calendar. The rule and the store are the command line's (``group_override``,
    the running switch's line-settings store); it survives a restart."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua

    async def set_group_mode(self, company: str, number: str, mode: str, by: str) -> dict[str, str]:
        key, settings = group_override(self.b2bua.directory, company, number, mode)
        await self.b2bua.line_settings.save_group(key, settings)
        log.info(
            "group.day_night",
            extra={"company": company, "group": number, "mode": mode, "by": by},
        )
        return {"company": company, "group": number, "mode": mode}


__all__ = ["MODES", "GroupDayNight", "daynight_command", "group_override"]
