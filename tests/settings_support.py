"""Checks shared by the device and edge settings-table tests: one row per flag, variable and default."""

from __future__ import annotations

import argparse
import os

import pytest

from sjscc.cli import build_parser
from sjscc.common.cli_support import Setting


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices[command]


def parser_flags(command: str) -> list[str]:
    return [flag for action in subparser(command)._actions for flag in action.option_strings
            if flag not in ("-h", "--help")]


def clear_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SJSCC_")]:
        monkeypatch.delenv(name)


def expected_default(setting: Setting) -> object:
    """argparse converts a string default with the type, and leaves any other default as it is."""
    if isinstance(setting.default, str) and setting.type is not None:
        return setting.type(setting.default)
    return setting.default
