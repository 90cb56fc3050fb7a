"""The services keep to their lanes: device/ and edge/ import only common/ and proto/ (never each other or
training/), no part imports tools/, the package root holds only the CLI and the parts, ``sjscc edge`` does not
load FastAPI, the root parser loads no torch, and every service option is in ``--help``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sjscc"


def sjscc_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "sjscc":  # from sjscc import tools
                names.update(f"sjscc.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "sjscc" or name.startswith("sjscc.")}


@pytest.mark.parametrize("service", ["device", "edge"])
def test_service_imports_only_common_proto_and_itself(service: str) -> None:
    allowed = ("sjscc.common", "sjscc.proto", f"sjscc.{service}")
    for path in sorted((PACKAGE / service).glob("*.py")):
        stray = {name for name in sjscc_imports(path) if not name.startswith(allowed)}
        assert not stray, f"{path.name} imports {sorted(stray)}"


@pytest.mark.parametrize("part", ["common", "device", "edge", "training"])
def test_no_part_imports_the_tools(part: str) -> None:
    for path in sorted((PACKAGE / part).rglob("*.py")):
        stray = {name for name in sjscc_imports(path) if name == "sjscc.tools" or name.startswith("sjscc.tools.")}
        assert not stray, f"{path.relative_to(PACKAGE)} imports {sorted(stray)}"


def test_the_package_root_holds_only_the_cli_and_the_parts() -> None:
    entries = {path.name for path in PACKAGE.iterdir() if path.name != "__pycache__"}
    assert entries <= {"__init__.py", "__main__.py", "cli.py", "common", "device", "edge", "training", "proto",
                       "tools"}, sorted(entries)


def test_building_the_root_parser_loads_neither_torch_nor_the_web_stack() -> None:
    """``sjscc --help`` reads names (``common/channels/settings.py``, the settings tables), never the modules that
    need torch, Sionna, ONNX Runtime or FastAPI (seconds to import)."""
    heavy = ("torch", "sionna", "onnxruntime", "fastapi", "uvicorn", "sjscc.tools.demo")
    code = ("import sys; from sjscc.cli import build_parser; build_parser(); "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_edge_command_does_not_load_the_web_stack() -> None:
    code = "import sys, sjscc.edge.commands; print(sorted(m for m in ('fastapi', 'uvicorn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("command", "flags"), [
    ("edge", ["--bundle", "--host", "--port", "--compute-device", "--max-batch-size", "--max-wait-ms"]),
    ("device", ["--bundle", "--edge", "--host", "--port", "--channel", "--p", "--seed", "--erasure-policy",
                "--max-image-bytes", "--max-image-pixels", "--rpc-timeout"]),
    ("demo", ["--bundle", "--serve", "--images", "--channel", "--p", "--seed"]),
])
def test_help_lists_every_option(command: str, flags: list[str]) -> None:
    from sjscc.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    text = subparsers.choices[command].format_help()
    for flag in flags:
        assert flag in text, f"sjscc {command} --help lacks {flag}"


def test_the_tests_mirror_the_package() -> None:
    """Each test file lives in the folder of the part it tests (plus e2e/ and deploy/ for whole-system runs);
    only the root parser's and this layout's tests sit at the top."""
    tests = PACKAGE.parent / "tests"
    parts = {"common", "device", "edge", "training", "tools", "proto"} | {"e2e", "deploy"}
    misplaced = [str(path.relative_to(tests)) for path in tests.rglob("test_*.py")
                 if path.parent != tests and path.parent.name not in parts]
    top = sorted(path.name for path in tests.glob("test_*.py"))
    assert misplaced == []
    assert top == ["test_cli.py", "test_service_layout.py"]
    names = [path.name for path in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), "test file names must be unique across tests/"
