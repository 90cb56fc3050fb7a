"""Regenerate the committed gRPC stubs from ``sjscc.proto``: ``python -m sjscc.proto.generate``.

``grpc_tools.protoc`` writes ``import sjscc_pb2`` in the service stub, which only works with this folder
on ``sys.path``; the import is rewritten to be package-relative so ``sjscc.proto`` works as a package.
tests/proto/test_proto.py regenerates into a temporary folder and compares with the committed files.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILE = "sjscc.proto"
GENERATED_FILES = ("sjscc_pb2.py", "sjscc_pb2.pyi", "sjscc_pb2_grpc.py")


def generate(out_dir: str | Path = PROTO_DIR) -> list[Path]:
    """Run protoc on ``sjscc.proto`` into ``out_dir``; returns the files written."""
    from grpc_tools import protoc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        # protoc records the .proto path it was given; give it the bare name so output never depends on out_dir.
        status = protoc.main([
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            PROTO_FILE,
        ])
        if status != 0:
            raise RuntimeError(f"protoc failed on {PROTO_DIR / PROTO_FILE} (exit status {status})")
        written = []
        for name in GENERATED_FILES:
            text = (Path(scratch) / name).read_text()
            if name.endswith("_grpc.py"):
                text = re.sub(r"^import sjscc_pb2 as ", "from . import sjscc_pb2 as ", text, flags=re.MULTILINE)
            (out / name).write_text(text)
            written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PROTO_DIR), help="output folder (default: next to sjscc.proto)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
