"""``sjscc``: the one command. Each subcommand imports only what it needs (``sjscc edge`` never loads FastAPI).

Each part adds its own subcommands (``device/commands.py``, ``edge/commands.py``, ``training/commands.py``,
``tools/commands.py``); this root parser only puts them in order.

Every service option can also come from an environment variable ``SJSCC_<OPTION>`` (for containers; the tables
are ``sjscc/device/settings.py`` and ``sjscc/edge/settings.py``); a flag on the command line wins over the
environment. A bad value in either is one line that names the option (and the variable) and exit status 2, never
a traceback (:mod:`sjscc.common.cli_support`).
"""

from __future__ import annotations

import argparse
import re
import sys

from sjscc.common.cli_support import DEFAULT_BUNDLE, Parser
from sjscc.device import commands as device_commands
from sjscc.edge import commands as edge_commands
from sjscc.tools import commands as tool_commands
from sjscc.training import commands as training_commands

__all__ = ["DEFAULT_BUNDLE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The root parser: ``train``, ``edge``, ``device``, ``export-device``, ``demo``, ``eval``, ``plot``, ``bench``."""
    parser = Parser(prog="sjscc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    training_commands.add_train(sub)
    edge_commands.add_command(sub)
    device_commands.add_command(sub)
    device_commands.add_export_command(sub)
    tool_commands.add_demo(sub)
    training_commands.add_eval(sub)
    training_commands.add_plot(sub)
    tool_commands.add_bench(sub)
    return parser


_NUMBER_LIST = re.compile(r"^-?[0-9.]+(,-?[0-9.]+)*$")


def _join_negative_lists(argv: list[str]) -> list[str]:
    """``--snr-db -4,-2,0`` -> ``--snr-db=-4,-2,0``: argparse reads a value that starts with '-' and is not a
    single number as an option, so the documented form would fail."""
    joined: list[str] = []
    for token in argv:
        if joined and joined[-1] == "--snr-db" and _NUMBER_LIST.match(token):
            joined[-1] = f"--snr-db={token}"
        else:
            joined.append(token)
    return joined


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_lists(list(sys.argv[1:] if argv is None else argv)))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as error:
        message = " ".join(str(error).split())  # one line
        print(f"sjscc {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
