"""The `cassettes` command group: `lint PATH...` and `verify PATH...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _lint(args: argparse.Namespace) -> int:
    from emulator.cassettes.lint import lint_paths

    return lint_paths(args.paths, sys.stdout)


def _verify(args: argparse.Namespace) -> int:
    from emulator.cassettes.verify import verify_paths

    return verify_paths(
        args.paths, sys.stdout, backend=args.backend, isolation=args.isolation, timeout_s=args.timeout
    )


def register(subparsers: Any) -> None:
    """Add `cassettes lint` and `cassettes verify` to an argparse subparsers object."""
    group = subparsers.add_parser(
        "cassettes", help="lint recorded cassettes, or verify them against the sandbox"
    )
    commands = group.add_subparsers(dest="cassettes_command", required=True)
    lint = commands.add_parser(
        "lint", help="validate every recorded request and response (streams event by event) against schemas/"
    )
    lint.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="cassette files or directories")
    lint.set_defaults(handler=_lint)
    verify = commands.add_parser(
        "verify", help="re-run recorded tool calls in the sandbox and report stdout/return code/file drift"
    )
    verify.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="cassette files or directories")
    verify.add_argument("--backend", default="local", help="sandbox backend (default: local)")
    verify.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    verify.add_argument("--timeout", type=float, default=300.0, help="per tool call time limit in seconds")
    verify.set_defaults(handler=_verify)
