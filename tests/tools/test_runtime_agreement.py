"""The torch/ONNX agreement measurement (sjscc/tools/runtime_agreement.py): its counts on known tensors and one run
on a synthetic data root."""

from __future__ import annotations

import torch

from sjscc.device.runtime import OnnxRuntime
from sjscc.tools.runtime_agreement import locate_differences, measure, mismatch_summary


def test_mismatch_summary_counts_bits_images_and_steps() -> None:
    reference = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    other = reference.clone()
    other[1, 2, 0, 0] = 1
    other[3, 1, 1, 1] = 1
    other[3, 2, 0, 1] = 1
    summary = mismatch_summary(reference, other)
    assert summary["bits"] == 48 and summary["differing_bits"] == 3
    assert summary["bit_mismatch"] == 3 / 48
    assert summary["images_touched"] == 2 and summary["touched_image_indices"] == [1, 3]
    assert summary["differing_bits_per_step"] == [0, 1, 2]
    assert summary["first_step_with_a_difference"] == 2
    assert mismatch_summary(reference, reference)["first_step_with_a_difference"] is None


def test_locate_differences_compares_layer_by_layer(tiny_bundle) -> None:
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    where = locate_differences(tiny_bundle, images, OnnxRuntime(tiny_bundle)(images))
    assert where["images"] == 3 and where["feature_max_abs_difference"] < 1e-4
    assert len(where["layer1_flips_per_step"]) == len(where["layer2_flips_per_step"]) == tiny_bundle.timesteps
    assert where["onnx_reproduced"] is True


def test_measure_reports_both_levels_with_equal_accuracies(tiny_bundle, synthetic_cifar10) -> None:
    report = measure(str(tiny_bundle.path), str(synthetic_cifar10), p=0.2, repeats=2)
    assert report["split"] == "val" and report["n_images"] == 20 and report["model_id"] == tiny_bundle.model_id
    assert report["draw_keys"] == "setting" and report["seed"] == 0
    for level in ("off", "all"):
        row = report["onnx"][level]
        assert row["bits"] == 20 * 4 * 2 * 8 * 8
        assert row["bit_mismatch"] <= 1e-4
        assert len(row["bsc_accuracies"]) == 2
        if row["differing_bits"] == 0:  # the same bits and the same channel seeds: the same accuracies exactly
            assert row["clean_accuracy"] == report["torch"]["clean_accuracy"]
            assert row["bsc_accuracies"] == report["torch"]["bsc_accuracies"]
