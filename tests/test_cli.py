"""The ``sjscc`` command line: help texts, and ``sjscc bench`` on the tiny model, a bundle and the paper codec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sjscc.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["bench", "--help"]])
def test_help_exits_zero(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "sjscc.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: sjscc" in result.stdout


def test_bench_help_lists_its_options() -> None:
    result = subprocess.run([sys.executable, "-m", "sjscc.cli", "bench", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    for flag in ("--bundle", "--batch-sizes", "--iterations", "--out", "--device", "--paper-geometry"):
        assert flag in result.stdout


def _numbers(row: dict) -> list[float]:
    values = []
    for key, value in row.items():
        if key in ("batch_size", "firing_rate") or value is None:
            continue
        values += list(value.values()) if isinstance(value, dict) else [value]
    return values


def _check_report(report: dict, batch_sizes: list[int], bits: int, naive: bool = True) -> None:
    for key in ("note", "geometry", "payload", "environment", "results", "peak_rss_mib", "iterations"):
        assert key in report, key
    assert "says nothing about accuracy" in report["note"]
    assert report["payload"] == {"bits_per_image": bits, "bytes_per_image": (bits + 7) // 8}
    for key in ("torch", "device", "cpu_count", "timestamp"):
        assert report["environment"][key], key
    assert report["peak_rss_mib"] > 0
    assert [row["batch_size"] for row in report["results"]] == batch_sizes
    for row in report["results"]:
        for key in ("encoder_ms_per_image", "decoder_ms_per_image", "pack_us_per_image", "unpack_us_per_image",
                    "channel_tensor_us_per_image", "channel_packed_us_per_image", "throughput_images_per_s"):
            assert row[key] is not None, key
        assert set(row["channel_tensor_us_per_image"]) == set(row["channel_packed_us_per_image"]) == {"bsc", "bec"}
        assert (row["encoder_speedup"] is not None) == naive
        numbers = _numbers(row)
        assert numbers and all(isinstance(v, float) and v > 0 for v in numbers), row


def test_bench_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--batch-sizes", "1,2", "--iterations", "1", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    _check_report(report, [1, 2], bits=4 * 2 * 8 * 8)
    assert report["geometry"]["source"] == "tiny-random"
    assert report["environment"]["device"] == "cpu"
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "images/s" in printed and str(out) in printed


def test_bench_bundle(tiny_bundle, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--bundle", str(tiny_bundle.path), "--batch-sizes", "3", "--iterations", "1",
                 "--device", "cpu", "--mode", "model", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    _check_report(report, [3], bits=512)
    assert report["geometry"]["model_id"] == tiny_bundle.model_id


def test_bench_paper_geometry(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--paper-geometry", "--batch-sizes", "1", "--iterations", "1", "--device", "cpu",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    _check_report(report, [1], bits=4096)
    geometry = report["geometry"]
    assert geometry["feature_shape"] == [2048, 4, 4] and geometry["latent_shape"] == [32, 4, 4]
    assert geometry["c1"] == 256 and geometry["timesteps"] == 8
    assert "random weights" in geometry["description"]
    assert report["results"][0]["head_ms_per_image"] is None  # codec only


@pytest.mark.parametrize("argv", [["--batch-sizes", "1,x"], ["--batch-sizes", "0"], ["--iterations", "0"]])
def test_bench_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *argv]) == 2
    assert "sjscc bench: error: --" in capsys.readouterr().err


def test_bench_bundle_and_paper_geometry_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--paper-geometry", "--bundle", "x"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_bench_missing_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--bundle", str(tmp_path / "none"), "--iterations", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
