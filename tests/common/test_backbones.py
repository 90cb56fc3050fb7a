"""Backbones and splits: the papers' geometry end to end, tail(head(x)) == model(x), refused cuts, bad names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sjscc.common.backbones import (
    DEFAULT_SPLITS,
    BackboneConfig,
    build_backbone,
    split,
    split_checked,
)
from sjscc.common.backbones.cifar_resnet import Bottleneck
from sjscc.common.codecs import CodecConfig
from sjscc.common.model import ModelSpec, build_split_model


def _images(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_paper_resnet50_geometry_end_to_end() -> None:
    """CIFAR ResNet50 cut after the 14th bottleneck: (2048,4,4) -> bits (B,8,32,4,4) -> (2048,4,4) -> logits."""
    torch.manual_seed(0)
    spec = ModelSpec(backbone=BackboneConfig(name="cifar_resnet50", num_classes=100), codec="snn",
                     codec_config=CodecConfig())
    model = build_split_model(spec).eval()
    assert spec.backbone.split_at == "layer4.0"
    assert model.feature_shape == (2048, 4, 4)
    assert model.latent_shape == [32, 4, 4]
    with torch.no_grad():
        feature = model.head(_images())
        logits, coded = model(_images())
    assert feature.shape == (2, 2048, 4, 4)
    assert coded.bits.shape == (2, 8, 32, 4, 4)
    assert coded.feature.shape == (2, 2048, 4, 4)
    assert logits.shape == (2, 100)


def test_layer4_0_is_the_14th_bottleneck() -> None:
    model = build_backbone("cifar_resnet50", 100)
    names = [name for name, module in model.named_modules() if isinstance(module, Bottleneck)]
    assert len(names) == 16
    assert names[13] == "layer4.0"


def test_paper_vgg16_geometry() -> None:
    torch.manual_seed(0)
    spec = ModelSpec(backbone=BackboneConfig(name="cifar_vgg16_bn", num_classes=100), codec="snn",
                     codec_config=CodecConfig(in_channels=512, c1=64, c2=8, timesteps=8))
    model = build_split_model(spec).eval()
    features = model.head  # check that the cut is right after the 10th conv's max-pool
    backbone = build_backbone("cifar_vgg16_bn", 100)
    convs_before = sum(isinstance(m, nn.Conv2d) for m in list(backbone.features)[:34])
    assert convs_before == 10 and isinstance(backbone.features[33], nn.MaxPool2d)
    assert spec.backbone.split_at == "features.33"
    assert model.feature_shape == (512, 2, 2)
    with torch.no_grad():
        assert features(_images()).shape == (2, 512, 2, 2)
        logits, coded = model(_images())
    assert coded.bits.shape == (2, 8, 8, 2, 2)
    assert coded.feature.shape == (2, 512, 2, 2)
    assert logits.shape == (2, 100)


@pytest.mark.parametrize(
    ("name", "at", "kwargs", "image", "shape"),
    [
        ("cifar_resnet20", "layer3.0", {"width": 8}, 32, (32, 8, 8)),
        ("cifar_resnet18", "layer4.0", {"width": 8}, 32, (64, 4, 4)),
        ("cifar_vgg16_bn", "features.33", {}, 32, (512, 2, 2)),
        ("torchvision:resnet18", "layer4.0", {}, 64, (512, 2, 2)),
    ],
)
def test_tail_of_head_equals_model(name: str, at: str, kwargs: dict, image: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, 10, **kwargs).eval()
    head, tail, feature_shape = split_checked(model, at, expected=shape, image_shape=(3, image, image))
    assert feature_shape == shape
    x = _images(2, image)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(tail(head(x)), expected)
    # parameters keep their names, each half holds only its own side
    assert set(head.state_dict()) <= set(model.state_dict())
    assert set(tail.state_dict()) <= set(model.state_dict())
    assert any(k.startswith(at.split(".")[0]) for k in head.state_dict())
    assert not any(k.startswith("fc.") or k.startswith("classifier.") for k in head.state_dict())


def test_default_splits_are_registered() -> None:
    assert DEFAULT_SPLITS["cifar_resnet50"] == "layer4.0"
    assert BackboneConfig(name="cifar_resnet18").split_at == "layer4.0"
    assert BackboneConfig(name="cifar_resnet20", split="layer2.1").split_at == "layer2.1"


# --- refused splits and bad names ---------------------------------------------------------------------

@pytest.mark.parametrize("at", ["layer3.0.conv1", "layer3.0.bn1", "layer3.0.bn2", "layer2.1.conv2"])
def test_split_crossed_by_a_skip_connection_is_refused(at: str) -> None:
    model = build_backbone("cifar_resnet20", 10, width=8)
    with pytest.raises(ValueError, match=rf"cannot split at '{at}': .* also reads .* from before the cut"):
        split(model, at)


def test_split_at_a_module_used_twice_is_refused() -> None:
    model = build_backbone("cifar_resnet20", 10, width=8)  # a block's ReLU runs twice per forward
    with pytest.raises(ValueError, match=r"module 'layer2.1.relu' is called 2 times"):
        split(model, "layer2.1.relu")


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(self.a(x))


class _SharedScale(nn.Module):
    """A parameter read before and after the cut (fx places its get_attr before the cut)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x * self.scale)) * self.scale


def test_module_called_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="called 2 times"):
        split(_Twice(), "a")


def test_parameter_used_on_both_sides_of_the_cut() -> None:
    model = _SharedScale()
    head, tail = split(model, "a")
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(tail(head(x)), model(x))


@pytest.mark.parametrize("at", ["layer9.0", "layer3.7", "", "fc.weight"])
def test_unknown_split_point(at: str) -> None:
    with pytest.raises(ValueError, match=rf"split point '{at}' is not a module path of CifarResNet"):
        split(build_backbone("cifar_resnet20", 10, width=8), at)


def test_split_checked_names_the_wrong_shape() -> None:
    model = build_backbone("cifar_resnet20", 10, width=8)
    with pytest.raises(ValueError, match=r"gives a feature of shape \(32, 8, 8\), expected \(64, 8, 8\)"):
        split_checked(model, "layer3.0", expected=(64, 8, 8))


def test_unknown_backbone_names() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'"):
        build_backbone("resnet9000", 10)
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet9000'"):
        build_backbone("torchvision:resnet9000", 10)


def test_codec_width_must_match_the_split_feature() -> None:
    spec = ModelSpec(backbone=BackboneConfig(name="cifar_resnet20", split="layer3.0", kwargs={"width": 8}),
                     codec="snn", codec_config=CodecConfig(in_channels=64, c1=8, c2=2, timesteps=2))
    with pytest.raises(ValueError, match="codec in_channels=64 but the split feature has 32 channels"):
        build_split_model(spec)
