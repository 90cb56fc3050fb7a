"""ResNets for 32x32 inputs (3x3 stem, no max-pool), written like torchvision's ``resnet.py``.

- ``cifar_resnet50``: the papers' backbone (bottlenecks [3, 4, 6, 3]); split at ``layer4.0`` (the 14th
  bottleneck) it gives F = (2048, 4, 4).
- ``cifar_resnet20``: He et al.'s CIFAR ResNet-20 ([3, 3, 3] basic blocks), with a width multiplier so
  that the split feature is wide enough for a c/8, c/64 codec; trains on 2 CPU cores.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class CifarResNet(nn.Module):
    """Stem (3x3 conv, BN, ReLU), stages ``layer1..layerN`` (first stride 1, then 2), pool, fc."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        widths: list[int],
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.in_planes = widths[0] if block is BasicBlock else 64
        self.conv1 = conv3x3(3, self.in_planes)
        self.bn1 = nn.BatchNorm2d(self.in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.stage_names = []
        for index, (blocks, width) in enumerate(zip(layers, widths, strict=True)):
            name = f"layer{index + 1}"
            setattr(self, name, self._make_layer(block, width, blocks, stride=1 if index == 0 else 2))
            self.stage_names.append(name)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int):
        layers = []
        for block_stride in [stride] + [1] * (blocks - 1):
            layers.append(block(self.in_planes, planes, block_stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(self.flatten(self.avgpool(x)))


def cifar_resnet50(num_classes: int = 100) -> CifarResNet:
    """The papers' CIFAR ResNet50: bottlenecks [3, 4, 6, 3], widths 64..512 (x4 expansion)."""
    return CifarResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], num_classes)


def cifar_resnet20(num_classes: int = 10, width: int = 16) -> CifarResNet:
    """He et al.'s ResNet-20 for CIFAR: [3, 3, 3] basic blocks of ``width``, 2x, 4x channels."""
    return CifarResNet(BasicBlock, [3, 3, 3], [width, 2 * width, 4 * width], num_classes)


def cifar_resnet18(num_classes: int = 10, width: int = 64) -> CifarResNet:
    """ResNet-18 for CIFAR ([2, 2, 2, 2] basic blocks); ``width=32`` is the half-width CPU variant."""
    return CifarResNet(BasicBlock, [2, 2, 2, 2], [width, 2 * width, 4 * width, 8 * width], num_classes)
