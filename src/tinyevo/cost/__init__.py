"""MCU cost model: MACs, params, flash, peak SRAM, latency and energy of an :class:`~tinyevo.ir.ArchIR`.

``estimate_cost(ir, device="stm32f746").as_metrics()`` gives the metrics searches constrain
(``macs``, ``params``, ``weight_bytes``, ``flash_bytes``, ``peak_sram_bytes``, ``latency_ms``, ``energy_mj``).
"""

from __future__ import annotations

from tinyevo.cost.flash import DEFAULT_LAYOUT, FlashBreakdown, FlatbufferLayout, flash_breakdown
from tinyevo.cost.lowering import (
    INPLACE_KERNELS,
    KERNELS,
    OP_CLASSES,
    PRECISIONS,
    DeployGraph,
    DeployOp,
    Tensor,
    lower,
    scratch_buffers,
)
from tinyevo.cost.memory import (
    PLANNER_CAPTIONS,
    PLANNERS,
    MemoryPlan,
    OpMemory,
    OptimalPlanner,
    Planner,
    SequentialPlanner,
    TFLMArenaPlanner,
    TFLMCmsisPlanner,
    TFLMPlanner,
    check_planner_convention,
    default_planner,
    get_planner,
    sram_caption,
    tflm_persistent_bytes,
)
from tinyevo.cost.model import (
    COST_METRICS,
    DEVICE_METRICS,
    SRAM_CONVENTIONS,
    CostModel,
    CostReport,
    MCUCostModel,
    OpCost,
    estimate_cost,
    op_cycles,
)
from tinyevo.cost.native import NATIVE_INPLACE, NativeLayout, NativePlanner, canonical_graph


def clear_caches() -> None:
    """Forget the cached per-op costs and solved memory segments (for cold-start timing; same results)."""
    from tinyevo.cost.lowering import clear_spec_cache
    from tinyevo.cost.memory import _solve_canonical

    clear_spec_cache()
    _solve_canonical.cache_clear()

__all__ = [
    "COST_METRICS",
    "DEVICE_METRICS",
    "DEFAULT_LAYOUT",
    "INPLACE_KERNELS",
    "KERNELS",
    "OP_CLASSES",
    "PLANNERS",
    "PLANNER_CAPTIONS",
    "PRECISIONS",
    "SRAM_CONVENTIONS",
    "CostModel",
    "CostReport",
    "DeployGraph",
    "DeployOp",
    "FlashBreakdown",
    "FlatbufferLayout",
    "MCUCostModel",
    "MemoryPlan",
    "NATIVE_INPLACE",
    "NativeLayout",
    "NativePlanner",
    "OpCost",
    "OpMemory",
    "OptimalPlanner",
    "Planner",
    "SequentialPlanner",
    "TFLMArenaPlanner",
    "TFLMCmsisPlanner",
    "TFLMPlanner",
    "Tensor",
    "check_planner_convention",
    "canonical_graph",
    "clear_caches",
    "default_planner",
    "estimate_cost",
    "flash_breakdown",
    "get_planner",
    "lower",
    "op_cycles",
    "scratch_buffers",
    "sram_caption",
    "tflm_persistent_bytes",
]
