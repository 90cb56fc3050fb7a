"""``sjscc demo``: its pictures exist without a network, its report reads right, and the command runs the
two services end to end (as subprocesses) and stops them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sjscc.tools.demo import folder_images, format_summary, format_table, sample_images


def fake_result(label: str, total_ms: float) -> dict:
    return {
        "label": label, "class_index": 3, "top": [{"label": label, "prob": 0.75}], "model_id": "abc",
        "bits": {"payload_bits": 512, "timesteps": 4, "latent_shape": [2, 8, 8], "wire_bytes": 132,
                 "firing_rate": 0.1},
        "channel": {"kind": "bsc", "p": 0.1, "flipped_bits": 50, "erased_bits": 0},
        "latency_ms": {"device_compute": 10.0, "pack": 0.2, "channel": 0.5, "rpc": 5.0, "edge_compute": 3.0,
                       "total": total_ms},
        "edge": {"batch_size": 1, "queue_ms": 0.1, "compute_device": "cpu"},
    }


def test_sample_images_are_real_photos_shipped_offline() -> None:
    images = sample_images()
    assert len(images) >= 5
    for name, data in images:
        picture = Image.open(io.BytesIO(data))
        assert picture.size[0] >= 256 and picture.size[1] >= 256, name


def test_report_table_and_summary() -> None:
    results = [("cat.png", fake_result("cat", 20.0)), ("dog.png", fake_result("dog", 40.0)),
               ("bad.png", {"error": "HTTP 415: not an image"})]
    table = format_table(results)
    assert "total ms" in table.splitlines()[0]
    assert "0.750" in table and "512" in table and "HTTP 415: not an image" in table
    summary = format_summary(results)
    assert "2 of 3 images classified" in summary
    assert "total 30.0/30.0/40.0" in summary and "100 bits flipped" in summary


def test_folder_images_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        folder_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="no picture files"):
        folder_images(tmp_path)


def _run_demo(*arguments: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    return subprocess.run([sys.executable, "-m", "sjscc.cli", "demo", *arguments], capture_output=True, text=True,
                          timeout=240, env=env, check=False)


def test_demo_refuses_a_missing_bundle_clearly(tmp_path: Path) -> None:
    result = _run_demo("--bundle", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no model bundle" in result.stderr


@pytest.mark.slow
def test_demo_runs_both_services_end_to_end(tiny_bundle, tmp_path: Path) -> None:
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.jpg", quality=90)
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    result = _run_demo("--bundle", str(tiny_bundle.path), "--images", str(tmp_path), "--channel", "bsc",
                       "--p", "0.1", "--seed", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith(("cat.jpg", "coffee.png"))]
    assert len(rows) == 2 and all(" 512 " in row for row in rows)
    assert any(line.startswith("2 of 2 images classified") for line in lines)
    assert "over bsc (p=0.1)" in result.stdout
