"""A training run's configuration: one YAML file, typed, overridable with ``--set key.sub=value``."""

from __future__ import annotations

from dataclasses import dataclass, field

from sjscc.common.model import ModelSpec


@dataclass
class DataConfig:
    root: str = "../shared/data"
    dataset: str = "cifar10"
    val_fraction: float = 0.1
    split_seed: int = 0
    augment: bool = True
    download: bool = False
    limit: int = 0
    """Use only the first ``limit`` training images (0: all); for smoke runs."""


@dataclass
class OptimConfig:
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 30
    batch_size: int = 128
    schedule: str = "cosine"
    """``cosine`` (per iteration, to zero), ``step`` (x gamma every step_epochs), ``constant``."""
    step_epochs: int = 10
    gamma: float = 0.5


@dataclass
class ChannelConfig:
    kind: str = "bsc"
    p: float = 0.15
    p_max: float | None = None
    """When set, p is drawn uniformly from [p, p_max] for every batch."""
    erasure_policy: str = "random"
    burst: float = 8.0
    """``kind: ge`` only: the Gilbert-Elliott channel's mean burst length in bits (p at most L/(L+1))."""
    interleave: int | None = None
    """Seed of the bit interleaver around the channel (null: none); the same seed at eval and serving."""
    snr_db: float = 6.0
    """``kind: awgn | rayleigh`` (radio link, :class:`sjscc.common.channels.LinkSettings`): Eb/N0 in dB."""
    snr_db_max: float | None = None
    """Radio link: when set, Eb/N0 is drawn uniformly from [snr_db, snr_db_max] for every batch."""
    modulation: str = "bpsk"
    coherence: str = "packet"
    decisions: str = "hard"
    soft_bits: int = 4


@dataclass
class TrainConfig:
    step: int = 1
    """1: backbone with CE; 2: codec with the backbone frozen; 3: everything jointly."""
    out: str = "runs/backbone"
    init: str = ""
    """Run folder of the previous step, whose ``model.safetensors`` initialises this one."""
    init_bundle: str = ""
    """A bundle folder (e.g. ``bundles/default``) whose weights initialise this run instead of ``init``: the
    backbone (head, tail) and, with ``init_bundle_codec``, every codec tensor whose name and shape fit (a fixed-T
    ``snn`` bundle's encoder and reconstructor, prefix converters derived from its converter)."""
    init_bundle_codec: bool = True
    prefixes: int = 0
    """Progressive codec only: prefix lengths in the loss per batch (0: all 1..T; k: T and k-1 drawn ones)."""
    model: ModelSpec = field(default_factory=ModelSpec)
    alpha: float | None = 0.5
    """Target firing rate of the regularizer ``(alpha - rate)^2`` (SNN only); null turns it off."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing in [0, 1); a regularizer for a backbone that overfits (train >> val)."""
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    cache_features: bool = True
    """Fast path when the head is frozen (step 2, or step 3 with ``freeze_head``): compute its features once.
    Cached features carry no augmentation."""
    feature_cache: str = ""
    """Folder to keep cached head features in, keyed by a hash of the head's weights and the data, so the
    many codec runs on one backbone compute them once."""
    freeze_head: bool = False
    """Step 3 only: fine-tune codec and tail jointly but keep the device head frozen (CPU-scale step 3)."""
    seed: int = 0
    device: str = "auto"
    export: str = ""
    """Bundle folder written at the end (empty: none)."""
    export_repeats: int = 3
