"""Low-fidelity settings: a data subset, downscaled inputs and width-scaled networks (fewer epochs live in
:class:`~tinyevo.training.TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from tinyevo.data import Dataset, resize, subset
from tinyevo.errors import ConfigError
from tinyevo.estimators.transforms import scale_width, with_input_shape
from tinyevo.ir import ArchIR

SUBSET_SEED = 0
"""Seed of the training subset: one subset for every candidate, so their scores are comparable."""


@dataclass(frozen=True)
class Fidelity:
    """How much cheaper than full training an evaluation is (1.0 everywhere = full fidelity).

    ``data_fraction``: stratified share of the training split; ``resolution_scale``: input height / width
    factor (the IR is rebuilt for the smaller input); ``width_multiplier``: channels of every conv / dense
    layer except the classifier (see :func:`~tinyevo.estimators.transforms.scale_width`).
    """

    data_fraction: float = 1.0
    resolution_scale: float = 1.0
    width_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.data_fraction <= 1.0:
            raise ConfigError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if not 0.0 < self.resolution_scale <= 1.0:
            raise ConfigError(f"resolution_scale must be in (0, 1], got {self.resolution_scale}")
        if not self.width_multiplier > 0:
            raise ConfigError(f"width_multiplier must be positive, got {self.width_multiplier}")

    @property
    def is_full(self) -> bool:
        return self.data_fraction == 1.0 and self.resolution_scale == 1.0 and self.width_multiplier == 1.0

    def transform_data(self, data: Dataset) -> Dataset:
        """The training subset and the downscaled inputs (validation split downscaled, not subsampled)."""
        out = subset(data, self.data_fraction, seed=SUBSET_SEED) if self.data_fraction < 1.0 else data
        if self.resolution_scale < 1.0:
            _, h, w = data.input_shape
            r = self.resolution_scale
            out = resize(out, (max(1, round(h * r)), max(1, round(w * r))))
        return out

    def transform_ir(self, ir: ArchIR, data: Dataset) -> ArchIR:
        """``ir`` for the transformed data's input shape, with scaled widths."""
        out = with_input_shape(ir, data.input_shape)
        return scale_width(out, self.width_multiplier) if self.width_multiplier != 1.0 else out
