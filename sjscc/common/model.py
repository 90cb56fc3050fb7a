"""The whole split classifier: ``tail(decoder(channel(encoder(head(x)))))``.

The device half is ``head`` + ``codec.encoder``; the edge half is ``codec.decoder`` + ``tail``. Both
halves are rebuilt from a :class:`ModelSpec` (what the bundle manifest stores) and loaded by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from sjscc.common.backbones import BackboneConfig, build_backbone, split_checked
from sjscc.common.channels import NoiselessChannel
from sjscc.common.codecs import Codec, CodecConfig, CodecOutput, build_codec
from sjscc.common.config import from_dict

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class ModelSpec:
    """Everything needed to rebuild the architecture (not the weights)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    codec: str | None = "snn"
    codec_config: CodecConfig = field(default_factory=CodecConfig)
    image_size: int = 32
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return from_dict(cls, data, "model")


class SplitModel(nn.Module):
    """Head (device), codec (device encoder + edge decoder), tail (edge)."""

    def __init__(self, head: nn.Module, codec: Codec | None, tail: nn.Module, feature_shape: tuple[int, ...]):
        super().__init__()
        self.head = head
        self.codec = codec
        self.tail = tail
        self.feature_shape = tuple(feature_shape)

    @property
    def latent_shape(self) -> list[int]:
        if self.codec is None:
            raise ValueError("a backbone without a codec has no latent shape")
        return self.codec.latent_shape(self.feature_shape[1:])

    def forward(
        self,
        inputs: torch.Tensor,
        channel: NoiselessChannel | None = None,
        p: float = 0.0,
        generator: torch.Generator | None = None,
        is_feature: bool = False,
    ) -> tuple[torch.Tensor, CodecOutput | None]:
        """Logits and the codec's output. ``is_feature=True``: ``inputs`` is already the split feature
        (step 2 on cached head features)."""
        feature = inputs if is_feature else self.head(inputs)
        if self.codec is None:
            return self.tail(feature), None
        coded = self.codec(feature, channel, p, generator)
        return self.tail(coded.feature), coded

    def device_state(self) -> dict[str, torch.Tensor]:
        """Weights the device needs: ``head.*`` and ``codec.encoder.*``."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("head.", "codec.encoder."))}

    def edge_state(self) -> dict[str, torch.Tensor]:
        """Weights the edge needs: ``codec.decoder.*`` and ``tail.*``."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("codec.decoder.", "tail."))}


def build_split_model(spec: ModelSpec) -> SplitModel:
    """Build (randomly initialised) head, codec and tail for ``spec``; the codec's input width is checked."""
    cfg = spec.backbone
    backbone = build_backbone(cfg.name, cfg.num_classes, **cfg.kwargs)
    head, tail, shape = split_checked(backbone, cfg.split_at, image_shape=(3, spec.image_size, spec.image_size))
    codec = None
    if spec.codec is not None:
        if spec.codec_config.in_channels != shape[0]:
            raise ValueError(
                f"codec in_channels={spec.codec_config.in_channels} but the split feature has {shape[0]} channels"
            )
        codec = build_codec(spec.codec, spec.codec_config)
    return SplitModel(head, codec, tail, shape)
