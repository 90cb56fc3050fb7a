"""Backbone registry and splitting a classifier into a device head and an edge tail by module path.

``split(model, at="layer4.0")`` traces the model with ``torch.fx``, keeping the module at ``at`` as one
node, and cuts the graph right after it: the head returns that module's output, the tail takes it as
its only input. This works for the CIFAR nets here and for torchvision classifiers alike, and it refuses
a cut that a skip connection crosses (the tail would need more than the one feature).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torchvision
from torch import fx, nn

from sjscc.common.backbones.cifar_resnet import cifar_resnet18, cifar_resnet20, cifar_resnet50
from sjscc.common.backbones.cifar_vgg import cifar_vgg16_bn

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "cifar_resnet50": cifar_resnet50,
    "cifar_resnet20": cifar_resnet20,
    "cifar_resnet18": cifar_resnet18,
    "cifar_vgg16_bn": cifar_vgg16_bn,
}

# The papers' split points, and the one used for the small CPU backbone (first block of the last stage).
DEFAULT_SPLITS: dict[str, str] = {
    "cifar_resnet50": "layer4.0",
    "cifar_resnet20": "layer3.0",
    "cifar_resnet18": "layer4.0",
    "cifar_vgg16_bn": "features.33",
}


@dataclass
class BackboneConfig:
    """Which classifier, where to cut it, and its constructor arguments."""

    name: str = "cifar_resnet20"
    split: str = ""
    num_classes: int = 10
    kwargs: dict = field(default_factory=dict)

    @property
    def split_at(self) -> str:
        return self.split or DEFAULT_SPLITS.get(self.name, "")


def build_backbone(name: str, num_classes: int, **kwargs) -> nn.Module:
    """A registered backbone, or ``torchvision:<name>`` for any torchvision classifier (random init)."""
    if name.startswith("torchvision:"):
        tv_name = name.split(":", 1)[1]
        try:
            return torchvision.models.get_model(tv_name, weights=None, num_classes=num_classes, **kwargs)
        except ValueError as error:
            raise ValueError(f"unknown torchvision model {tv_name!r}: {error}") from None
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)} or 'torchvision:<name>'")
    return BACKBONES[name](num_classes=num_classes, **kwargs)


class _KeepAsLeaf(fx.Tracer):
    def __init__(self, leaf: str) -> None:
        super().__init__()
        self.leaf = leaf

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if qualified_name == self.leaf:
            return True
        if self.leaf.startswith(qualified_name + ".") or not qualified_name:
            return False
        return super().is_leaf_module(module, qualified_name)


def split(model: nn.Module, at: str) -> tuple[fx.GraphModule, fx.GraphModule]:
    """Cut ``model`` right after the module at path ``at``; returns ``(head, tail)``.

    ``tail(head(x)) == model(x)``. Parameters keep their original names in both halves' state dicts.
    """
    names = dict(model.named_modules())
    if at not in names or not at:
        candidates = [n for n in names if n and n.count(".") <= 1][:20]
        raise ValueError(f"split point {at!r} is not a module path of {type(model).__name__}; e.g. {candidates}")
    tracer = _KeepAsLeaf(at)
    graph = tracer.trace(model)
    nodes = list(graph.nodes)
    cut = [n for n in nodes if n.op == "call_module" and n.target == at]
    if len(cut) != 1:
        raise ValueError(f"module {at!r} is called {len(cut)} times in forward; cannot split there")
    cut_node = cut[0]
    cut_index = nodes.index(cut_node)
    before = set(nodes[: cut_index + 1])
    for node in nodes[cut_index + 1 :]:
        for arg in node.all_input_nodes:
            if arg in before and arg is not cut_node and arg.op not in ("get_attr",):
                raise ValueError(f"cannot split at {at!r}: {node.name} also reads {arg.name} from before the cut")

    head_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in nodes[: cut_index + 1]:
        env[node] = head_graph.node_copy(node, lambda n: env[n])
    head_graph.output(env[cut_node])

    tail_graph = fx.Graph()
    env = {cut_node: tail_graph.placeholder("feature")}

    def tail_input(node: fx.Node) -> fx.Node:
        # A parameter or buffer first read before the cut (get_attr) is re-read in the tail, not passed over.
        if node not in env and node.op == "get_attr":
            env[node] = tail_graph.get_attr(node.target)
        return env[node]

    for node in nodes[cut_index + 1 :]:
        if node.op == "placeholder":
            continue
        env[node] = tail_graph.node_copy(node, tail_input)
    head = fx.GraphModule(model, head_graph, "Head")
    tail = fx.GraphModule(model, tail_graph, "Tail")
    return head, tail


def feature_shape(head: nn.Module, image_shape: tuple[int, int, int] = (3, 32, 32)) -> tuple[int, ...]:
    """The split feature's ``(c, h, w)`` for one image of ``image_shape``."""
    was_training = head.training
    head.eval()
    with torch.no_grad():
        shape = tuple(head(torch.zeros(1, *image_shape)).shape[1:])
    head.train(was_training)
    return shape


def split_checked(
    model: nn.Module, at: str, expected: tuple[int, ...] | None = None, image_shape=(3, 32, 32)
) -> tuple[fx.GraphModule, fx.GraphModule, tuple[int, ...]]:
    """:func:`split` plus the feature shape, checked against ``expected`` when given."""
    head, tail = split(model, at)
    shape = feature_shape(head, image_shape)
    if expected is not None and tuple(expected) != shape:
        raise ValueError(f"split at {at!r} gives a feature of shape {shape}, expected {tuple(expected)}")
    return head, tail, shape
