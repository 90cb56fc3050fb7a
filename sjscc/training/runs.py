"""Run names and lineages of the CPU-scale reproduction (``scripts/reproduce-cpu.sh``) as code.

A **run name** says what a codec run trains: ``<snn|cnn>-T<T>-<bsc|bec><p>[-<variant>...]``, a variant being a
reconstructor neuron (``if``, ``ihf``, ``ihfm`` or ``ihf-m``), a regularizer target (``a0.3``, ``a0.5``, ``a0.7``),
the latent channels c2 (``c32``) or the training seed (``s1``); e.g. ``cnn-T1-bsc0.15-c32-s2``. :func:`overrides`
turns it into the ``--set`` overrides of ``sjscc train`` on top of the lineage's step-2/3 config pair.

A **lineage** is a backbone and the folders that go with it (v1, v2, v3, v3s; see :data:`LINEAGES`). Kept in
Python, stdlib only, so the script can ask it with any ``python3`` and tests can check it without a shell:
``python -m sjscc.training.runs lineage v3s`` prints shell assignments, ``plan NAME... --shipped S --bundles B``
a bash function ``describe NAME`` for all the runs of a stage at once (one Python start per stage, and a bad name
stops the stage before anything trains), ``overrides NAME`` one argument per line and ``stage STAGE [T]`` one run
name per line. Errors exit with status 2 and a message on stderr.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Lineage:
    """Where a lineage's runs start and land (each can be overridden by the script's variable of that name)."""

    runs: str
    """RUNS: the run folders."""
    backbone: str
    """BACKBONE: the step-1 run (or a bundle, whose head and tail start step 2) the codecs start from."""
    shipped: str
    """SHIPPED: where the two shipped runs (``snn-T8-bsc0.15``, ``cnn-T8-bsc0.15``) export their bundles."""
    results: str
    """RESULTS: the sweeps' JSON files."""
    codec: str
    """CODEC: the step-2/3 config pair, ``sjscc/training/configs/<codec>-step{2,3}.yaml``."""


LINEAGES: dict[str, Lineage] = {
    # the 12-epoch quarter-width backbone most of docs/RESULTS.md was measured on
    "v1": Lineage("runs/cpu", "runs/cpu/backbone", "runs/cpu/shipped", "docs/results", "cpu-codec"),
    # the 42-epoch quarter-width backbone; its "shipped" runs (shipped until v3 replaced them) stay under runs/
    "v2": Lineage("runs/cpu-long", "runs/cpu/backbone-long", "runs/cpu-long/shipped", "docs/results/long",
                  "cpu-codec"),
    # the half-width backbone of the shipped bundles (backbone-wide + backbone-wide-extend); 512 bits at T = 8
    "v3": Lineage("runs/cpu-wide", "runs/cpu/backbone-wide2", "bundles", "docs/results/wide", "cpu-codec-wide"),
    # the same backbone taken from bundles/baseline-cnn-q8 because the step-1 checkpoint (backbone-wide2) was not
    # kept (its head is backbone-wide2's bit for bit; its tail the one CNN-q8's step 3 fine-tuned): every run of
    # issue 16's comparisons (ladder, seeds 0-2) starts from it, so the arms share one start; its "shipped" names
    # are retrained, never written over bundles/
    "v3s": Lineage("runs/cpu-wide-s", "bundles/baseline-cnn-q8", "runs/cpu-wide-s/shipped", "docs/results/wide-s",
                   "cpu-codec-wide"),
}
DEFAULT_LINEAGE = "v3"

SHIPPED_FOLDERS = {"snn-T8-bsc0.15": "default", "cnn-T8-bsc0.15": "baseline-cnn-q8"}
"""The two runs whose bundles are the shipped pair, and their folder names under ``SHIPPED``."""

_NAME = re.compile(r"^(snn|cnn)-T([1-9][0-9]*)-(bsc|bec)(0|1|0?\.[0-9]+)(-.+)?$")
_NEURONS = {"if": "if", "ihf": "ihf", "ihfm": "ihf-m"}
_ALPHAS = {"a0.3", "a0.5", "a0.7"}
_C2 = re.compile(r"^c[1-9][0-9]{0,2}$")
_SEED = re.compile(r"^s([0-9]|[1-9][0-9])$")


@dataclass(frozen=True)
class RunName:
    """A parsed run name; ``p`` is kept as written so the override carries the same text."""

    codec: str
    timesteps: int
    channel: str
    p: str
    variants: tuple[str, ...]


def lineage(name: str) -> Lineage:
    try:
        return LINEAGES[name]
    except KeyError:
        raise ValueError(f"unknown LINEAGE {name}: want {', '.join(list(LINEAGES)[:-1])} or {list(LINEAGES)[-1]}") \
            from None


def parse_run_name(name: str) -> RunName:
    """The parts of a run name; a name off the grammar or an unknown variant is refused with what was wrong."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"bad run name {name}: want <snn|cnn>-T<T>-<bsc|bec><p>[-<variant>], "
                         "e.g. snn-T8-bsc0.15-ihfm")
    codec, timesteps, channel, p, rest = match.groups()
    variants = tuple(part for part in (rest or "").replace("ihf-m", "ihfm").split("-") if part)
    for part in variants:
        if not (part in _NEURONS or part in _ALPHAS or _C2.match(part) or _SEED.match(part)):
            raise ValueError(f"unknown variant {part}")
    return RunName(codec, int(timesteps), channel, p, variants)


def overrides(name: str) -> list[str]:
    """The ``--set key=value`` arguments (flattened) that make the lineage's config pair train ``name``."""
    run = parse_run_name(name)
    settings = [f"model.codec_config.timesteps={run.timesteps}", f"channel.kind={run.channel}", f"channel.p={run.p}"]
    if run.codec == "cnn":
        settings += [f"model.codec=cnn-q{run.timesteps}", "alpha=null"]
    for part in run.variants:
        if part in _NEURONS:  # an ablation: the neuron alone, without the firing-rate term
            settings += [f"model.codec_config.reconstructor_neuron={_NEURONS[part]}", "alpha=null"]
        elif part in _ALPHAS:
            settings.append(f"alpha={part[1:]}")
        elif part.startswith("c"):
            settings.append(f"model.codec_config.c2={part[1:]}")
        else:
            settings.append(f"seed={part[1:]}")
    return [arg for setting in settings for arg in ("--set", setting)]


def bundle_folder(name: str, shipped: str, bundles: str) -> str:
    """Where a run's bundle goes: the shipped pair under ``shipped``, every other run under ``bundles``."""
    if name in SHIPPED_FOLDERS:
        return f"{shipped}/{SHIPPED_FOLDERS[name]}"
    return f"{bundles}/{name}"


def sweeps(name: str, matched: bool = False) -> list[str]:
    """The channels a run is swept on (``ge-il``: GE with the interleaver).

    By default a run is swept on the channel it was trained on, the shipped pair on BSC and BEC. In issue 16's
    ``matched`` stage, seed 0 of the three compared models gets every channel and the ladder's rungs BSC and BEC.
    """
    if matched:
        if name in {"snn-T8-bsc0.15", "cnn-T8-bsc0.15", "cnn-T1-bsc0.15-c32"}:
            return ["bsc", "bec", "ge", "ge-il"]
        if name in {"cnn-T2-bsc0.15-c16", "cnn-T4-bsc0.15-c8"}:
            return ["bsc", "bec"]
        return ["bsc"]
    if name.endswith("-T8-bsc0.15"):
        return ["bsc", "bec"]
    return ["bec"] if "-bec" in name else ["bsc"]


def fig4_runs(timesteps: int = 8) -> list[str]:
    """Fig. 4: SNN and CNN-q<T> on BSC and BEC at 0.15 and 0.25."""
    return [f"{codec}-T{timesteps}-{channel}" for channel in ("bsc0.15", "bsc0.25", "bec0.15", "bec0.25")
            for codec in ("snn", "cnn")]


_SEEDS_1_2 = ["snn-T8-bsc0.15-s1", "snn-T8-bsc0.15-s2", "cnn-T8-bsc0.15-s1", "cnn-T8-bsc0.15-s2",
              "cnn-T1-bsc0.15-c32-s1", "cnn-T1-bsc0.15-c32-s2"]
STAGE_RUNS: dict[str, list[str]] = {
    "default": ["snn-T8-bsc0.15", "cnn-T8-bsc0.15"],
    "ablations": ["snn-T8-bsc0.15-if", "snn-T8-bsc0.15-ihf", "snn-T8-bsc0.15-ihfm", "snn-T8-bsc0.25-if",
                  "snn-T8-bsc0.25-ihf", "snn-T8-bsc0.25-ihfm", "snn-T8-bsc0.15-a0.3", "snn-T8-bsc0.15-a0.7"],
    # the matched-bits CNN ladder: n-bit quantizers on c2 = 32/n channels, 512 bits like the shipped pair
    "ladder": ["cnn-T1-bsc0.15-c32", "cnn-T2-bsc0.15-c16", "cnn-T4-bsc0.15-c8"],
    "seeds": _SEEDS_1_2,
    "bursts": ["snn-T8-bsc0.15", "cnn-T8-bsc0.15", "cnn-T1-bsc0.15-c32"],
    # seed 0 first (the ladder and the bursts need it), then seeds 1 and 2; long and short runs interleaved
    "matched": ["snn-T8-bsc0.15", "cnn-T1-bsc0.15-c32", "cnn-T8-bsc0.15", "cnn-T2-bsc0.15-c16", "cnn-T4-bsc0.15-c8",
                "snn-T8-bsc0.15-s1", "cnn-T8-bsc0.15-s1", "cnn-T1-bsc0.15-c32-s1", "snn-T8-bsc0.15-s2",
                "cnn-T8-bsc0.15-s2", "cnn-T1-bsc0.15-c32-s2"],
}


def stage_runs(stage: str, timesteps: int = 8) -> list[str]:
    """The run names a stage of the script trains (or sweeps), in the order it starts them."""
    if stage == "fig4":
        return fig4_runs(timesteps)
    try:
        return list(STAGE_RUNS[stage])
    except KeyError:
        raise ValueError(f"stage {stage} has no fixed runs: want fig4 or {', '.join(STAGE_RUNS)}") from None


def _shell_assignments(chosen: Lineage) -> str:
    short = {"runs": "runs", "backbone": "bb", "shipped": "shipped", "results": "results", "codec": "codec"}
    return " ".join(f"{short[key]}={shlex.quote(value)}" for key, value in asdict(chosen).items())


def describe(name: str, shipped: str, bundles: str) -> list[str]:
    """A run as bash: ``run_bundle``, ``run_overrides`` (an array), ``run_sweeps`` and ``run_matched_sweeps``."""
    return [f"run_bundle={shlex.quote(bundle_folder(name, shipped, bundles))}",
            f"run_overrides=({' '.join(shlex.quote(arg) for arg in overrides(name))})",
            f"run_sweeps={shlex.quote(' '.join(sweeps(name)))}",
            f"run_matched_sweeps={shlex.quote(' '.join(sweeps(name, matched=True)))}"]


def plan(names: list[str], shipped: str, bundles: str) -> list[str]:
    """A bash function ``describe NAME`` that sets :func:`describe`'s variables for each of ``names``."""
    lines = ["describe() {", '  case "$1" in']
    for name in dict.fromkeys(names):
        lines.append(f"    {shlex.quote(name)}) {'; '.join(describe(name, shipped, bundles))} ;;")
    lines += ['    *) echo "run $1 was not planned" >&2; return 1 ;;', "  esac", "}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sjscc.training.runs", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("lineage", help="a lineage's folders as shell assignments").add_argument("name")
    commands.add_parser("overrides", help="a run name's --set arguments, one per line").add_argument("name")
    run = commands.add_parser("plan", help="a bash function describing the runs: bundle, overrides, sweeps")
    run.add_argument("names", nargs="+")
    run.add_argument("--shipped", required=True)
    run.add_argument("--bundles", required=True)
    stage = commands.add_parser("stage", help="the run names of a stage")
    stage.add_argument("stage")
    stage.add_argument("timesteps", nargs="?", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        if args.command == "lineage":
            lines = [_shell_assignments(lineage(args.name))]
        elif args.command == "overrides":
            lines = overrides(args.name)
        elif args.command == "plan":
            lines = plan(args.names, args.shipped, args.bundles)
        else:
            lines = stage_runs(args.stage, args.timesteps)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
