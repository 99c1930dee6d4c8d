"""``aiguilleur passwd``: write credentials for ``directory.yaml`` without clear text.

Two uses::

    aiguilleur passwd 401 --domain pbx.test          # password on stdin
    printf 'secret401\\n' | aiguilleur passwd 401 --domain pbx.test

prints the ``ha1:`` lines to paste under the line (``md5`` and ``sha256`` of
``extension:domain:password``, RFC 7616 §3.4.2); ``--pin`` hashes a voicemail
PIN instead and prints ``pin_hash:``::

    aiguilleur passwd --rewrite DIR

replaces, in place, every clear ``password:`` of ``DIR/directory.yaml`` by its
``ha1:`` and every ``pin:`` by ``pin_hash:`` (what the switch also does when it
starts). The password is read from stdin (one line; prompted twice without echo
on a terminal) unless ``--password`` is given, which leaves it in the shell
history and the process list.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

from routing.source import ConfigErrors
from switch.directory import (
    DIRECTORY_FILE,
    Ha1,
    hash_pin,
    is_domain,
    is_extension,
    is_pin,
    normalize_domain,
    rewrite_clear_passwords,
)


def ha1_snippet(extension: str, domain: str, password: str) -> str:
    """The ``ha1:`` block of a line (two-space indents, to paste under the line)."""
    ha1 = Ha1.from_password(extension, domain, password)
    return f"ha1:\n  md5: {ha1.md5}\n  sha256: {ha1.sha256}\n"


def pin_snippet(pin: str, salt: bytes) -> str:
    """The ``pin_hash:`` line of a voicemail box."""
    return f"pin_hash: {hash_pin(pin, salt)}\n"


def read_secret(stdin: TextIO, *, what: str = "password") -> str:
    """One secret from stdin: prompted twice without echo on a terminal, else one line."""
    if stdin.isatty():
        first = getpass.getpass(f"{what}: ")
        if getpass.getpass(f"{what} again: ") != first:
            raise ValueError(f"the two {what}s differ")
        return first
    return stdin.readline().rstrip("\r\n")


def passwd_command(
    args: argparse.Namespace, *, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    """Run ``aiguilleur passwd``; returns the exit status (0 ok, 1 error)."""
    stdin = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    rewrite = getattr(args, "rewrite", None)
    if rewrite:
        return _rewrite(Path(rewrite), out)
    extension = getattr(args, "extension", None)
    domain = getattr(args, "domain", None)
    use_pin = bool(getattr(args, "pin", False))
    if not use_pin:
        if not extension or not is_extension(extension):
            print("passwd: give the line's extension (3 digits, e.g. 401)", file=sys.stderr)
            return 1
        if not domain or not is_domain(domain):
            print("passwd: give the company's SIP domain with --domain", file=sys.stderr)
            return 1
    secret = getattr(args, "password", None)
    if secret is None:
        try:
            secret = read_secret(stdin, what="PIN" if use_pin else "password")
        except (ValueError, EOFError, KeyboardInterrupt) as exc:
            print(f"passwd: {exc or 'cancelled'}", file=sys.stderr)
            return 1
    if use_pin:
        if not is_pin(secret):
            print("passwd: a PIN is 4 to 8 digits", file=sys.stderr)
            return 1
        out.write(pin_snippet(secret, os.urandom(16)))
        return 0
    if not secret:
        print("passwd: empty password", file=sys.stderr)
        return 1
    assert extension is not None
    assert domain is not None
    out.write(ha1_snippet(extension, normalize_domain(domain), secret))
    return 0


def _rewrite(target: Path, out: TextIO) -> int:
    path = target / DIRECTORY_FILE if target.is_dir() else target
    if not path.is_file():
        print(f"passwd: {path}: no such file", file=sys.stderr)
        return 1
    if not os.access(path, os.W_OK):
        print(f"passwd: {path}: not writable", file=sys.stderr)
        return 1
    try:
        count = rewrite_clear_passwords(path)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    print(f"{path}: {count} clear secret(s) replaced by their hash", file=out)
    return 0
