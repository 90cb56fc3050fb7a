"""VGG16 with batch norm for 32x32 inputs; ``features.33`` (the max-pool after the 10th conv) -> (512, 2, 2)."""

from __future__ import annotations

from torch import Tensor, nn

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class CifarVGG(nn.Module):
    """13 Conv-BN-ReLU layers with max-pools in ``features``, 3 fully connected layers in ``classifier``."""

    def __init__(self, config: list[int | str] = VGG16, num_classes: int = 100) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), 3, padding=1, bias=False), nn.BatchNorm2d(int(item)),
                           nn.ReLU(inplace=True)]
                in_channels = int(item)
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, 512), nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


def cifar_vgg16_bn(num_classes: int = 100) -> CifarVGG:
    return CifarVGG(VGG16, num_classes)
