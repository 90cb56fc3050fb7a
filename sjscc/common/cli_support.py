"""What every ``sjscc`` subcommand's parser shares: settings read from flags or ``SJSCC_*`` variables, converters
whose one-line errors name where a bad value came from, and a parser that exits 2 with that line.

Every option can also come from an environment variable (for containers); a flag on the command line wins over the
environment. A bad value in either is one line that names the option (and the variable) and exit status 2, never a
traceback; ``--help`` works whatever the environment holds, because values from the environment are only converted
once the command line is parsed. A service declares each of its settings once, as a :class:`Setting` in its
``settings.py``; :func:`add_settings` builds the parser from that table.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

DEFAULT_BUNDLE = str(Path(__file__).resolve().parents[2] / "bundles" / "default")
ENV_PREFIX = "SJSCC_"


class EnvValue(str):
    """A default read from ``SJSCC_<NAME>``: converters name the variable when its value is invalid."""

    variable: str = ""


def env_value(variable: str, default: object) -> object:
    """The variable's value from the environment (as an :class:`EnvValue`), else ``default``."""
    raw = os.environ.get(variable)
    if raw is None:
        return default
    value = EnvValue(raw)
    value.variable = variable
    return value


def env_default(name: str, default: object) -> object:
    """``SJSCC_<NAME>`` from the environment (as an :class:`EnvValue`), else ``default``."""
    return env_value(f"{ENV_PREFIX}{name.upper()}", default)


def converter(name: str, convert: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` that says where a bad value came from (flag or variable) and why it is bad."""

    def parse(text: str) -> object:
        try:
            return convert(text.strip())
        except (ValueError, TypeError) as error:
            where = f"{text.variable}={text!r}" if isinstance(text, EnvValue) else repr(text)
            reason = str(error) if str(error) else f"not a valid {name}"
            raise argparse.ArgumentTypeError(f"{where}: {reason}") from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


# --- checks of one text value (raise ValueError with the reason) --------------------------------------------------

def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise ValueError(f"expected an integer {bounds}, got {value}")
        return value

    return convert


def number(low: float, high: float = math.inf, low_open: bool = False) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high) or (low_open and value == low):
            opening = "(" if low_open else "["
            interval = f"in {opening}{low:g}, {high:g}]" if high != math.inf else f"{'>' if low_open else '>='} {low:g}"
            raise ValueError(f"expected a finite number {interval}, got {text}")
        return value

    return convert


def choice(*options: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return text

    return convert


def address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT with a port in 1..65535, e.g. 127.0.0.1:50051")
    return text


def seed_text(text: str) -> str:
    """Checked here, parsed by the service (``parse_seed``); empty means no seed."""
    if text.lower() not in ("", "none"):
        integer(0, 2**63 - 1)(text)
    return str(text)


def edge_address(text: str) -> str:
    """One HOST:PORT, a comma-separated list of them, or a target in gRPC's own syntax (``dns:``, ``ipv4:``...);
    the device's edge target turns it into the channel's target."""
    if text.strip().startswith(("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")):
        return text
    for part in text.split(","):
        address(part.strip())
    return text


def interleave_text(text: str) -> str:
    """Checked here, parsed by the service (``parse_interleave``); empty/none/off: none."""
    if text.lower() not in ("", "none", "off"):
        integer(0, 2**63 - 1)(text)
    return str(text)


PORT = converter("port", integer(0, 65535))
POSITIVE_INT = converter("positive integer", integer(1))
NON_NEGATIVE_INT = converter("non-negative integer", integer(0))
PROBABILITY = converter("probability", number(0.0, 1.0))
NON_NEGATIVE = converter("non-negative number", number(0.0))
POSITIVE = converter("positive number", number(0.0, low_open=True))
EDGE_ADDRESS = converter("edge address", edge_address)
SEED = converter("seed", seed_text)
BURST = converter("burst", number(1.0))
INTERLEAVE = converter("interleaver seed", interleave_text)


TORCH_THREADS_HELP = ("intra-op torch threads for the model (0: torch's default, all cores); on a machine shared with "
                      "the other service, half the cores each (see docs/PERFORMANCE.md)")


def named_choice(name: str, options: Iterable[str]) -> Callable[[str], object]:
    """A converter for one of ``options`` (e.g. a registry's names), its errors saying where the value came from."""
    return converter(name, choice(*options))


# --- settings declared once per service ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """One service option: its flag, the variable that can set it, its default, converter and help, in one row."""

    flag: str
    variable: str
    default: object
    help: str
    type: Callable[[str], object] | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        """The attribute the parsed value lands in (``--max-batch-size`` -> ``max_batch_size``)."""
        return self.flag.removeprefix("--").replace("-", "_")


def add_settings(parser: argparse.ArgumentParser, settings: Iterable[Setting]) -> None:
    """One argument per setting; its default is the variable's value when the environment sets it."""
    for setting in settings:
        parser.add_argument(setting.flag, type=setting.type, default=env_value(setting.variable, setting.default),
                            metavar=setting.metavar, help=setting.help)


def setting_values(args: argparse.Namespace, settings: Iterable[Setting]) -> dict[str, object]:
    """The parsed value of every setting, by its ``dest``."""
    return {setting.dest: getattr(args, setting.dest) for setting in settings}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``sjscc device: error: argument --p: SJSCC_P='abc': ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
