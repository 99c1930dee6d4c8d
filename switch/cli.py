"""The ``aiguilleur`` command line.

Subcommands import their module lazily so ``aiguilleur check`` starts fast and
does not pull in the asyncio stack.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from switch import __version__

LOG_LEVELS = ("debug", "info", "warning", "error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiguilleur", description="SIP call-routing engine (B2BUA, registrar, routing)"
    )
    parser.add_argument("--version", action="version", version=f"aiguilleur {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the switch until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, metavar="DIR", help="configuration directory")
    run.add_argument(
        "--log-level", default=None, choices=LOG_LEVELS, help="default: switch.yaml, else info"
    )
    run.add_argument("--data-dir", metavar="DIR", help="override the data directory")
    run.add_argument(
        "--clock",
        metavar="ISO-8601",
        help="test hook: start the switch's wall clock at this instant (with its offset, "
        "e.g. 2026-05-14T10:00:00+02:00); it then advances normally",
    )

    check = sub.add_parser("check", help="validate a configuration directory (exit 1 on errors)")
    check.add_argument("config", metavar="DIR")

    explain = sub.add_parser("explain", help="show how a call would be routed, step by step")
    explain.add_argument("config", metavar="DIR")
    explain.add_argument("--to", required=True, dest="to", metavar="NUMBER")
    explain.add_argument("--from", dest="from_", default=None, metavar="NUMBER")
    explain.add_argument("--at", default=None, metavar="ISO-8601", help="arrival time")
    explain.add_argument(
        "--outcomes",
        default="",
        metavar="LIST",
        help="comma-separated outcomes fed to the engine in order "
        "(busy, no_answer, unreachable, rejected, answered, limit)",
    )
    explain.add_argument("--json", action="store_true", help="machine-readable output")

    regs = sub.add_parser("registrations", help="list the current registrations (bindings)")
    regs.add_argument("config", metavar="DIR")
    regs.add_argument("--json", action="store_true", help="machine-readable output")
    regs.add_argument("--aor", default=None, metavar="URI", help="only this address-of-record")
    regs.add_argument("--data-dir", metavar="DIR", help="override the data directory")

    passwd = sub.add_parser(
        "passwd",
        help="print the ha1: lines of a line's password, or hash the clear secrets of a directory",
    )
    passwd.add_argument("extension", nargs="?", metavar="EXTENSION")
    passwd.add_argument("--domain", metavar="DOMAIN", help="the company's SIP domain (realm)")
    passwd.add_argument(
        "--password", default=None, help="default: read from stdin (no echo on a terminal)"
    )
    passwd.add_argument("--pin", action="store_true", help="hash a voicemail PIN (pin_hash:)")
    passwd.add_argument(
        "--rewrite", metavar="DIR", help="replace every password:/pin: of DIR/directory.yaml"
    )

    cdr = sub.add_parser("cdr", help="export call detail records (csv or jsonl)")
    cdr.add_argument("data_dir", metavar="DIR", help="the data directory (cdr.sqlite3)")
    cdr.add_argument("--since", default=None, metavar="ISO-8601", help="calls started from")
    cdr.add_argument("--format", default="jsonl", choices=("csv", "jsonl"))

    calls = sub.add_parser("calls", help="call log of a line or a company (newest first)")
    calls.add_argument("data_dir", metavar="DIR", help="the data directory (cdr.sqlite3)")
    who = calls.add_mutually_exclusive_group(required=True)
    who.add_argument("--line", metavar="EXT", help="a line: 401, or 401@DOMAIN")
    who.add_argument("--company", metavar="ID", help="a company id (directory.yaml)")
    calls.add_argument("--limit", type=int, default=20, metavar="N", help="default: 20")
    calls.add_argument("--format", default="text", choices=("text", "csv", "jsonl"))
    calls.add_argument(
        "--config",
        default="config/example",
        metavar="DIR",
        help="where directory.yaml is (default: config/example)",
    )

    plan = sub.add_parser(
        "plan", help="switch a number's plan de secours on or off in the running switch"
    )
    plan_sub = plan.add_subparsers(dest="plan_command", required=True, metavar="ACTION")
    activate = plan_sub.add_parser("activate", help="switch NUMBER to its backup plan PLAN now")
    activate.add_argument("number", metavar="NUMBER")
    activate.add_argument("plan", metavar="PLAN")
    deactivate = plan_sub.add_parser("deactivate", help="give NUMBER its normal routing back")
    deactivate.add_argument("number", metavar="NUMBER")
    plan_list = plan_sub.add_parser("list", help="the plans de secours in force")
    plan_list.add_argument("--json", action="store_true", help="machine-readable output")
    for action in (activate, deactivate):
        action.add_argument("--by", default=None, metavar="WHO", help="default: the OS user")
    reload = sub.add_parser("reload", help="reload the running switch's routing programs")
    reload.add_argument("--by", default=None, metavar="WHO", help="default: the OS user")
    for admin_command in (activate, deactivate, plan_list, reload):
        admin_command.add_argument(
            "--config",
            default="config/example",
            metavar="DIR",
            help="where switch.yaml says the admin API listens (default: config/example)",
        )
        admin_command.add_argument(
            "--admin",
            default=None,
            metavar="URL",
            help="the admin API, e.g. http://127.0.0.1:8080 (default: from switch.yaml)",
        )

    groups = sub.add_parser("groups", help="hunt groups (groupements)")
    groups_sub = groups.add_subparsers(dest="groups_command", required=True, metavar="ACTION")
    daynight = groups_sub.add_parser(
        "daynight",
        help="force a group's day or night mode (service de nuit), or give it back to its "
        "calendar (auto); a running switch follows it from the next call",
    )
    daynight.add_argument("config", metavar="DIR", help="configuration directory")
    daynight.add_argument("company", metavar="COMPANY", help="a company id (directory.yaml)")
    daynight.add_argument("number", metavar="NUMBER", help="the group's number (999: Standard)")
    daynight.add_argument("mode", choices=("day", "night", "auto"))
    daynight.add_argument("--data-dir", metavar="DIR", help="override the data directory")

    schema = sub.add_parser("routing-schema", help="write the JSON Schema of routing programs")
    schema.add_argument("--output", "-o", default=None, metavar="FILE", help="default: stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from switch.app import run_command

        return run_command(args)
    if args.command == "check":
        from switch.check import check_command

        return check_command(args)
    if args.command == "passwd":
        from switch.passwd import passwd_command

        return passwd_command(args)
    if args.command == "registrations":
        from switch.registrations import registrations_command

        return registrations_command(args)
    if args.command == "cdr":
        from switch.cdr import cdr_command

        return cdr_command(args)
    if args.command == "calls":
        from switch.cdr import calls_command

        return calls_command(args)
    if args.command == "groups":
        from switch.daynight import daynight_command

        return daynight_command(args)
    if args.command in ("plan", "reload"):
        from switch import admin

        return admin.plan_command(args) if args.command == "plan" else admin.reload_command(args)
    if args.command in ("explain", "routing-schema"):
        from switch import cli_routing

        if args.command == "explain":
            return cli_routing.explain_command(args)
        return cli_routing.schema_command(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
