"""Known architectures, written as genomes of the built-in spaces: seeds for a "rich" initial population.

Each entry is a published design transcribed into a space's genome language (approximately where the space
cannot express the original exactly; the docstring of :data:`ZOO` says how). They are starting points, not
answers: the strategy evaluates them first and then mutates them like any other member, and an entry that does
not fit the constraints is simply an infeasible trial.

``resolve_seeds(space, ["zoo", "resnet8-like", "conv_k3_s2_c8-gap"])`` turns user input into genomes:

* ``zoo`` -- every entry of the space that is valid in it (entries using a channel count, kernel or depth that
  the space's options exclude are skipped);
* ``NAME`` or ``zoo:NAME`` -- one named entry (an error if it is not valid in the space);
* anything else -- a genome string, parsed by ``space.parse``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tinyevo.errors import ConfigError, InvalidGenomeError
from tinyevo.spaces.base import Genome, SearchSpace


@dataclass(frozen=True)
class ZooEntry:
    """A known architecture: its genome string in ``space`` and where the design comes from."""

    space: str
    name: str
    genome: str
    source: str


_ENTRIES: tuple[ZooEntry, ...] = (
    # chain space ------------------------------------------------------------------------------------------
    ZooEntry("chain", "lenet5-like", "conv_k5_s1_c8-maxpool_k2_s2-conv_k5_s1_c16-maxpool_k2_s2-flat-dense_c64",
             "LeCun et al. 1998 (LeNet-5: 5x5 convs 6/16 ch, 2x2 pools, dense 120/84), widths rounded to the "
             "space's channel choices, one hidden dense layer"),
    ZooEntry("chain", "resnet8-like",
             "conv_k3_s1_c16-conv_k3_s1_c16_r-conv_k3_s2_c32-conv_k3_s1_c32_r-conv_k3_s2_c64-conv_k3_s1_c64_r-gap",
             "MLPerf Tiny image-classification reference (ResNet-8: 16-32-64 channels, stride-2 stage "
             "transitions, global pooling); each two-conv residual block becomes a conv followed by a conv "
             "with an identity skip"),
    ZooEntry("chain", "ds-cnn-like", "conv_k5_s2_c64-dsc_k3_s1_c64-dsc_k3_s1_c64-dsc_k3_s1_c64-dsc_k3_s1_c64-gap",
             "Zhang et al. 2017 'Hello Edge' DS-CNN (KWS): a strided conv stem and four depthwise-separable "
             "64-channel layers, global pooling; the 10x4 stem kernel becomes 5x5"),
    ZooEntry("chain", "mobilenet-tiny",
             "conv_k3_s2_c8-dsc_k3_s1_c16-dsc_k3_s2_c32-dsc_k3_s1_c32-dsc_k3_s2_c64-dsc_k3_s1_c64-gap",
             "Howard et al. 2017 (MobileNet v1) at width 0.25 and six layers: a strided stem, depthwise-"
             "separable layers doubling the width at each stride 2"),
    # NAS-Bench-201 cell ----------------------------------------------------------------------------------
    ZooEntry("nb201", "resnet", "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
             "the ResNet cell of the NAS-Bench-201 paper (two 3x3 convs and a skip)"),
    # blocks space ---------------------------------------------------------------------------------------
    ZooEntry("blocks", "mobilenetv2-like",
             "r96_w0.5-mb_d1_k3_e1_c16-mb_d2_k3_e6_c24-mb_d3_k3_e6_c32-mb_d4_k3_e6_c64-mb_d3_k3_e6_c96-mb_d1_k3_e6_c160",
             "Sandler et al. 2018 (MobileNetV2) stages at width 0.5, 96 px input, as in MCUNet's starting point"),
)

ZOO: Mapping[str, Mapping[str, ZooEntry]] = {
    s: {e.name: e for e in _ENTRIES if e.space == s} for s in sorted({e.space for e in _ENTRIES})
}
"""space name -> entry name -> :class:`ZooEntry`."""


def zoo_entries(space_name: str) -> tuple[ZooEntry, ...]:
    """The known architectures written for ``space_name`` (empty if none)."""
    return tuple(ZOO.get(space_name, {}).values())


def resolve_seeds(space: SearchSpace[Genome], items: Iterable[str]) -> tuple[Genome, ...]:
    """Genomes for the seed list ``items`` (see the module docstring), duplicates removed, order kept."""
    out: list[Genome] = []
    seen: set[str] = set()

    def add(g: Genome) -> None:
        if str(g) not in seen:
            seen.add(str(g))
            out.append(g)

    known = ZOO.get(space.name, {})
    for raw in items:
        item = str(raw).strip()
        if item == "zoo":
            valid = 0
            for entry in known.values():
                try:
                    add(space.parse(entry.genome))
                    valid += 1
                except InvalidGenomeError:
                    continue  # excluded by this space's options
            if not valid:
                raise ConfigError(f"no zoo architecture is valid in space {space.name!r} with these options")
            continue
        name = item.removeprefix("zoo:")
        if name in known:
            try:
                add(space.parse(known[name].genome))
            except InvalidGenomeError as exc:
                raise ConfigError(f"zoo architecture {name!r} is not valid in this {space.name} space: {exc}") from exc
            continue
        if item.startswith("zoo:"):
            names = ", ".join(known) or "none"
            raise ConfigError(f"unknown zoo architecture {name!r} for space {space.name!r}; known: {names}")
        try:
            add(space.parse(item))
        except InvalidGenomeError as exc:
            raise ConfigError(f"bad seed genome {item!r}: {exc}") from exc
    return tuple(out)
