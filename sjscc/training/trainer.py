"""The training loop of one step, with checkpoint/resume and DDP.

What a step freezes, loads, corrupts and penalises is data in :mod:`sjscc.training.steps`; this module runs it.
With the head frozen the head's features can be computed once (see :func:`cache_features`). The channel (BSC/BEC/GE
at a fixed p, or p drawn per batch) is one object the loop calls, a straight-through identity in the backward pass.

Every epoch appends one JSON line to ``log.jsonl`` and then rewrites ``checkpoint.pt`` (weights, optimizer,
scheduler; loaded with ``weights_only=True``), so a killed run continues with ``--resume`` at the next epoch with
the same state: all randomness of an epoch (shuffle, augmentation, channel noise, p draws) is seeded from ``(seed,
epoch)``, and log lines of epochs the checkpoint does not hold are dropped on resume.

Under ``torchrun`` (``WORLD_SIZE > 1``) every global batch is split across the ranks, gradients are averaged
by DistributedDataParallel, the epoch's metrics are summed over all ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from sjscc.common.codecs import CodecOutput, is_progressive
from sjscc.common.config import to_yaml
from sjscc.common.devices import select_device
from sjscc.common.firing_rate import firing_rate_penalty
from sjscc.common.model import SplitModel, build_split_model
from sjscc.training.config import TrainConfig
from sjscc.training.data import ImageSet, Normalize, augment, batches, first, load_cifar, train_val_split
from sjscc.training.prefix_loss import bundle_init_state, prefix_logits, prefix_loss, sample_prefixes
from sjscc.training.steps import build_training_channel, training_step

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
LOG = "log.jsonl"


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(hash(parts) & 0x7FFF_FFFF_FFFF)


@torch.no_grad()
def cache_features(model: SplitModel, images: torch.Tensor, normalize: Normalize, device: torch.device,
                   batch_size: int = 500) -> torch.Tensor:
    """The frozen head's split features for all ``images`` (eval mode, so BN uses running statistics).

    The input goes in channels-last, exactly as :meth:`Trainer._inputs` feeds the uncached path, so both
    paths compute the same numbers.
    """
    model.head.eval()
    parts = [model.head(normalize(images[i : i + batch_size]).to(device, memory_format=torch.channels_last)).cpu()
             for i in range(0, len(images), batch_size)]
    return torch.cat(parts)


class Trainer:
    """Runs one training step as configured; :meth:`run` returns the final metrics."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.step = training_step(config.step)
        self.rank, self.world = _distributed()
        self.device = select_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            local_rank = int(os.environ.get("LOCAL_RANK", self.rank % torch.cuda.device_count()))
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        self.out = Path(config.out)
        spec = config.model
        if not self.step.has_codec:
            spec.codec = None
        elif spec.codec is None:
            raise ValueError(f"step {config.step} trains a codec: set model.codec (snn or cnn-q<n>)")
        if not 0.0 <= config.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
        torch.manual_seed(config.seed)
        # channels_last: ~15% faster convolutions on CPU and on tensor cores alike
        self.model = build_split_model(spec).to(self.device, memory_format=torch.channels_last)
        if config.init and config.init_bundle:
            raise ValueError("set either init (a run folder) or init_bundle (a bundle folder), not both")
        if config.init_bundle:
            self._load_init_bundle(config.init_bundle)
        elif config.init:
            self._load_init(Path(config.init))
        elif self.step.needs_init:
            raise ValueError(f"step {config.step} needs init: the run folder of step {config.step - 1}")
        self.progressive = is_progressive(self.model.codec)
        if self.progressive and self.world > 1:  # DDP wraps forward(), which the prefix loss bypasses
            raise ValueError("the progressive codec's prefix loss runs in one process; launch without torchrun")
        self.regularize = (spec.codec == "snn" or self.progressive) and config.alpha is not None \
            and self.step.regularized
        self.channel = build_training_channel(config.channel) if self.step.noisy else None
        self.normalize = Normalize(spec.mean, spec.std)
        data = config.data
        train_set, val_set = train_val_split(load_cifar(data.root, data.dataset, train=True, download=data.download),
                                             data.val_fraction, data.split_seed)
        self.train_set, self.val_set = first(train_set, data.limit), first(val_set, data.limit)
        if len(self.val_set) == 0:
            raise ValueError(f"empty validation split (data.val_fraction={data.val_fraction}): use e.g. 0.1")
        if len(self.train_set.classes) != spec.backbone.num_classes:
            raise ValueError(f"{data.dataset} has {len(self.train_set.classes)} classes but "
                             f"model.backbone.num_classes is {spec.backbone.num_classes}")
        self.frozen = self.step.frozen_parts(config)
        self.head_frozen = "head" in self.frozen
        self.use_cache = self.head_frozen and config.cache_features
        self.train_features = self.val_features = None
        if self.use_cache:
            self.train_features = self._features("train", self.train_set)
            self.val_features = self._features("val", self.val_set)
        self.step.set_trainable(self.model, self.frozen)
        params = [p for p in self.model.parameters() if p.requires_grad]
        o = config.optim
        if o.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                             nesterov=o.momentum > 0)
        elif o.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {o.optimizer!r}; use sgd or adam")
        steps_per_epoch = math.ceil(len(self.train_set) / (o.batch_size * self.world))
        self.scheduler = self._scheduler(steps_per_epoch)
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self.start_epoch = 0

    # -- set-up -------------------------------------------------------------------------------------
    def _load_init(self, folder: Path) -> None:
        path = folder / WEIGHTS if folder.is_dir() else folder
        if not path.is_file():
            raise FileNotFoundError(f"init weights {path} not found: train the previous step first")
        state = load_file(path)
        own = self.model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if self.step.init_parts is not None:
            prefixes = tuple(f"{part}." for part in self.step.init_parts)
            usable = {k: v for k, v in usable.items() if k.startswith(prefixes)}
        missing_backbone = [k for k in own if k.startswith(("head.", "tail.")) and k not in usable]
        if missing_backbone:
            raise ValueError(f"{path} lacks backbone weights such as {missing_backbone[:3]}")
        missing_codec = [k for k in own if k.startswith("codec.") and k not in usable]
        if self.step.init_requires_codec and missing_codec:
            raise ValueError(f"step 3 starts from a trained codec, but {path} lacks {missing_codec[:3]}: "
                             "set init to the run folder of step 2")
        self.model.load_state_dict(usable, strict=False)

    def _load_init_bundle(self, path: str) -> None:
        """Initialise from a bundle's safetensors (:func:`bundle_init_state`); the backbone must fit entirely."""
        state = bundle_init_state(path, codec=self.config.init_bundle_codec)
        own = self.model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing_backbone = [k for k in own if k.startswith(("head.", "tail.")) and k not in usable]
        if missing_backbone:
            raise ValueError(f"bundle {path} does not fit this model's backbone: e.g. {missing_backbone[:3]}")
        self.model.load_state_dict(usable, strict=False)
        loaded = sum(k.startswith("codec.") for k in usable)
        if self.rank == 0:
            print(f"initialised from bundle {path}: backbone and {loaded} of "
                  f"{sum(k.startswith('codec.') for k in own)} codec tensors", flush=True)

    def _features(self, split: str, images: ImageSet) -> torch.Tensor:
        """Head features of ``images``, from ``feature_cache`` when this head and data were seen before."""
        if not self.config.feature_cache:
            return cache_features(self.model, images.images, self.normalize, self.device)
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.head.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        d = self.config.data
        digest.update(f"{d.dataset}|{d.val_fraction}|{d.split_seed}|{d.limit}|{split}|{len(images)}".encode())
        path = Path(self.config.feature_cache) / f"{digest.hexdigest()[:20]}-{split}.safetensors"
        if path.is_file():
            return load_file(path)["features"]
        features = cache_features(self.model, images.images, self.normalize, self.device)
        if self.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # parallel runs may fill the same cache entry
            save_file({"features": features.contiguous()}, tmp)
            os.replace(tmp, path)
        return features

    def _scheduler(self, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        o = self.config.optim
        if o.schedule == "cosine":
            total = max(1, o.epochs * steps_per_epoch)
            return torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * i / total))
            )
        if o.schedule == "step":
            per = max(1, o.step_epochs * steps_per_epoch)
            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda i: o.gamma ** (i // per))
        if o.schedule == "constant":
            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda i: 1.0)
        raise ValueError(f"unknown schedule {o.schedule!r}; use cosine, step or constant")

    def _train_mode(self) -> None:
        self.step.train_mode(self.model, self.frozen)

    # -- checkpoints --------------------------------------------------------------------------------
    def resume(self) -> None:
        """Load the last checkpoint (if any) and continue after its epoch."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            if self.rank == 0:
                print(f"no checkpoint in {self.out}: starting from epoch 1", flush=True)
            return
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch = int(state["epoch"]) + 1
        if self.rank == 0:
            self._truncate_log(self.start_epoch)
            print(f"resuming {self.out} after epoch {self.start_epoch}", flush=True)

    def _truncate_log(self, epochs_done: int) -> None:
        """Keep the log lines of the epochs the checkpoint holds (a kill may leave one more)."""
        log = self.out / LOG
        if not log.is_file():
            return
        kept = []
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the kill
                continue
            if isinstance(record, dict) and record.get("epoch", 0) <= epochs_done:
                kept.append(line)
        log.write_text("".join(line + "\n" for line in kept))

    def _save_checkpoint(self, epoch: int) -> None:
        if self.rank != 0:
            return
        tmp = self.out / (CHECKPOINT + ".tmp")
        torch.save({"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, tmp)
        os.replace(tmp, self.out / CHECKPOINT)

    # -- loops --------------------------------------------------------------------------------------
    def _channel_p(self, generator: torch.Generator) -> float:
        c = self.config.channel
        if c.p_max is None:
            return c.p
        return c.p + (c.p_max - c.p) * float(torch.rand((), generator=generator))

    def _inputs(self, images: ImageSet, features: torch.Tensor | None, index: torch.Tensor,
                generator: torch.Generator | None) -> torch.Tensor:
        if features is not None:
            return features[index].to(self.device, memory_format=torch.channels_last)
        batch = images.images[index]
        if generator is not None and self.config.data.augment:
            batch = augment(batch, generator)
        return self.normalize(batch).to(self.device, memory_format=torch.channels_last)

    def _sum_over_ranks(self, totals: dict[str, float]) -> dict[str, float]:
        if self.world == 1:
            return totals
        values = torch.tensor([float(v) for v in totals.values()], dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return dict(zip(totals, values.tolist(), strict=True))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        self._train_mode()
        # Rank 0 keeps the single-process seed; other ranks draw their own channel noise.
        torch.manual_seed(cfg.seed * 1000 + epoch + 1_000_003 * self.rank)
        shuffle = _seeded(cfg.seed, epoch, 1)
        noise = _seeded(cfg.seed, epoch, 2)
        order = list(batches(len(self.train_set), cfg.optim.batch_size * self.world, shuffle, drop_last=False))
        totals = {"loss": 0.0, "correct": 0, "seen": 0, "rate": 0.0}
        bar = tqdm(order, desc=f"step {cfg.step} epoch {epoch + 1}/{cfg.optim.epochs}", leave=False,
                   disable=self.rank != 0 or None)
        for index in bar:
            if len(index) < self.world:  # a last global batch too small to give every rank an image
                continue
            index = index[self.rank :: self.world]
            inputs = self._inputs(self.train_set, self.train_features, index, shuffle)
            labels = self.train_set.labels[index].to(self.device)
            p = self._channel_p(noise) if self.channel is not None else 0.0
            if self.progressive:
                logits, loss, coded = self._progressive_step(inputs, labels, p, noise)
            else:
                logits, coded = self.net(inputs, self.channel, p, None, self.use_cache)
                loss = nn.functional.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
            if self.regularize and coded is not None:
                loss = loss + firing_rate_penalty(coded.bits, cfg.alpha)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            totals["loss"] += loss.item() * len(index)
            totals["correct"] += int((logits.argmax(1) == labels).sum())
            totals["seen"] += len(index)
            totals["rate"] += float(coded.firing_rate.detach()) * len(index) if coded is not None else 0.0
            seen = totals["seen"]
            bar.set_postfix(loss=f"{totals['loss'] / seen:.3f}", acc=f"{totals['correct'] / seen:.3f}")
        totals = self._sum_over_ranks(totals)
        seen = max(1, totals["seen"])
        return {"train_loss": totals["loss"] / seen, "train_accuracy": totals["correct"] / seen,
                "train_firing_rate": totals["rate"] / seen, "train_images": int(totals["seen"])}

    def _progressive_step(self, inputs: torch.Tensor, labels: torch.Tensor, p: float,
                          noise: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, CodecOutput]:
        """The loss over prefixes (:mod:`sjscc.training.prefix_loss`); returns the full-T logits for accuracy."""
        prefixes = sample_prefixes(self.model.codec.timesteps, self.config.prefixes, noise)
        logits, bits = prefix_logits(self.model, inputs, prefixes, self.channel, p, None, self.use_cache)
        loss = prefix_loss(logits, labels, self.config.label_smoothing)
        return logits[-1], loss, CodecOutput(torch.empty(0), bits, bits, bits.mean())

    @torch.no_grad()
    def evaluate_prefixes(self, p: float | None = None, seed: int = 0) -> dict[str, list[float]]:
        """Progressive codec: validation accuracy after each prefix t = 1..T through the training channel."""
        self.model.eval()
        generator = torch.Generator(device=self.device).manual_seed(seed)
        p = self.config.channel.p if p is None else p
        prefixes = list(range(1, self.model.codec.timesteps + 1))
        correct = [0] * len(prefixes)
        for index in batches(len(self.val_set), 500):
            inputs = self._inputs(self.val_set, self.val_features, index, None)
            logits, _ = prefix_logits(self.model, inputs, prefixes, self.channel, p, generator, self.use_cache)
            labels = self.val_set.labels[index]
            for i, part in enumerate(logits):
                correct[i] += int((part.argmax(1).cpu() == labels).sum())
        return {"val_prefix_accuracy": [c / len(self.val_set) for c in correct]}

    @torch.no_grad()
    def evaluate(self, p: float | None = None, seed: int = 0) -> dict[str, float]:
        """Validation accuracy (and firing rate) through the training channel at ``p`` (default: its p)."""
        self.model.eval()
        generator = torch.Generator(device=self.device).manual_seed(seed)
        p = self.config.channel.p if p is None else p
        correct, rate, seen = 0, 0.0, 0
        for index in batches(len(self.val_set), 500):
            inputs = self._inputs(self.val_set, self.val_features, index, None)
            logits, coded = self.model(inputs, self.channel, p, generator, self.use_cache)
            correct += int((logits.argmax(1).cpu() == self.val_set.labels[index]).sum())
            rate += float(coded.firing_rate) * len(index) if coded is not None else 0.0
            seen += len(index)
        return {"val_accuracy": correct / seen, "val_firing_rate": rate / seen}

    def run(self, resume: bool = False) -> dict[str, Any]:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "config.yaml").write_text(to_yaml(cfg))
            if not resume:  # a fresh run: forget an earlier run's checkpoint and log in the same folder
                (self.out / CHECKPOINT).unlink(missing_ok=True)
                (self.out / LOG).unlink(missing_ok=True)
        if self.world > 1:
            dist.barrier()
        if resume:
            self.resume()
        record: dict[str, Any] = {}
        for epoch in range(self.start_epoch, cfg.optim.epochs):
            started = time.time()
            record = {"epoch": epoch + 1, "step": cfg.step, **self.train_epoch(epoch)}
            record.update(self.evaluate())
            if self.progressive:
                record.update(self.evaluate_prefixes())
            record.update({"lr": self.optimizer.param_groups[0]["lr"], "seconds": round(time.time() - started, 1),
                           "world_size": self.world})
            if self.rank == 0:
                with (self.out / LOG).open("a") as log:
                    log.write(json.dumps(record) + "\n")
                print(json.dumps(record), flush=True)
            self._save_checkpoint(epoch)
        if self.rank == 0:
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
            save_file(state, self.out / WEIGHTS)
        if self.world > 1:
            dist.barrier()
        return record


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run one step; export a bundle at the end when ``config.export`` is set."""
    trainer = Trainer(config)
    try:
        record = trainer.run(resume=resume)
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if config.export and trainer.rank == 0 and trainer.step.has_codec:
        from sjscc.training.export import export_bundle

        record["bundle"] = export_bundle(trainer, record)
        print(json.dumps(record["bundle"]), flush=True)
    return record
