"""The training loop's optimisers, without :mod:`torch.optim`: Adam, AdamW and SGD (Nesterov momentum) as direct
calls of PyTorch's fused kernels (``torch._fused_adam_``, ``torch._fused_adamw_``, ``torch._fused_sgd_``).

Why not ``torch.optim``: its first ``step`` imports ``torch._dynamo`` (about as long as ``import torch``, the
start-up of every search worker), and its per-step bookkeeping (regrouping the tensors by device and dtype,
profiler ranges, one kernel launch per parameter group) costs more than the update itself on a small network.
Here the tensors are grouped once, a step is one ``_foreach_add_`` of the step counters (Adam) and one fused
kernel per weight-decay value, and gradient clipping rides along as the kernels' ``grad_scale`` (the gradients
are divided by it; :class:`GradClip` computes it on the device, without a host sync).

The updates are bitwise those of ``torch.optim.AdamW(fused=True)`` and ``torch.optim.Adam(fused=True)`` (the same
kernels), and those of ``torch.optim.SGD(momentum, nesterov)`` to float rounding (its CPU update goes tensor by
tensor, op by op; the fused kernel rounds the last bit of some elements differently): tests/training/test_optim.py
compares the weights over many steps. :meth:`~FusedAdam.state_dict` has ``torch.optim``'s layout (``{"state": {index: {...}},
"param_groups": [{..., "params": [indices]}]}``), so checkpoints written with either load into the other.

A parameter without a gradient at a step (``grad is None``: a sub-network of a supernet that did not use it) is
skipped, as ``torch.optim`` skips it: its moments and step count stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from tinyevo.errors import ConfigError

_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class ParamGroup:
    """Parameters that share a weight decay (an optimiser's group)."""

    params: tuple[torch.Tensor, ...]
    weight_decay: float = 0.0


@runtime_checkable
class Optimizer(Protocol):
    """What the loop needs of an optimiser: ``step`` at a learning rate (gradients divided by ``grad_scale``
    when given), ``zero_grad`` (gradients set to None) and a checkpointable state."""

    groups: tuple[ParamGroup, ...]

    def step(self, lr: float, *, grad_scale: torch.Tensor | None = None) -> None: ...

    def zero_grad(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, saved: dict[str, Any]) -> None: ...


class GradClip:
    """Gradient clipping to a global 2-norm of at most ``max_norm`` over ``params`` (one device and dtype), as a
    ``grad_scale`` for the optimiser: calling it gives ``max(1, (norm + 1e-6) / max_norm)`` as a 0-d tensor on
    the gradients' device, computed without a host sync (None when no parameter has a gradient). Dividing by it
    is :func:`torch.nn.utils.clip_grad_norm_`'s multiplication by ``min(1, max_norm / (norm + 1e-6))`` up to float
    rounding, and leaves the gradients exactly as they are when they are not clipped.

    Four ops per step: the per-tensor norms (into a buffer allocated once), their norm, ``* 1/max_norm +
    1e-6/max_norm``, and the clamp."""

    def __init__(self, params: Sequence[torch.Tensor], max_norm: float) -> None:
        if not max_norm > 0:
            raise ConfigError(f"grad_clip must be positive, got {max_norm}")
        self.params = list(params)
        kinds = {(p.device, p.dtype) for p in self.params}
        if len(kinds) > 1:
            raise ConfigError("GradClip needs parameters of one device and dtype")
        device, dtype = next(iter(kinds)) if kinds else (torch.device("cpu"), torch.float32)
        self.max_norm = float(max_norm)
        self._norms = torch.empty(len(self.params), device=device, dtype=dtype)
        self._views = list(self._norms.unbind(0))
        self._offset = torch.full((), 1e-6 / self.max_norm, device=device, dtype=dtype)

    def __call__(self) -> torch.Tensor | None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return None
        if len(grads) == len(self._views):
            torch.ops.aten._foreach_norm.Scalar_out(grads, 2.0, out=self._views)
            total = torch.linalg.vector_norm(self._norms, 2.0)
        else:  # some parameters had no gradient at this step
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
        return torch.add(self._offset, total, alpha=1.0 / self.max_norm).clamp_min_(1.0)


def _check(params: Iterable[torch.Tensor]) -> None:
    for p in params:
        if p.device.type not in _FUSED_DEVICES or p.dtype not in _FUSED_DTYPES:
            raise ConfigError(f"the training optimisers run on {', '.join(_FUSED_DEVICES)} floating-point "
                              f"parameters, got a {p.dtype} parameter on {p.device}")


class _Base:
    """Grouping shared by the optimisers: ``groups`` in order (indices as ``torch.optim`` numbers them), and the
    fused calls, one per (weight decay, device, dtype)."""

    def __init__(self, groups: Sequence[ParamGroup]) -> None:
        self.groups = tuple(groups)
        self.params: list[torch.Tensor] = [p for g in self.groups for p in g.params]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ConfigError("a parameter appears in more than one optimiser group")
        _check(self.params)
        calls: dict[tuple[float, torch.device, torch.dtype], list[int]] = {}
        i = 0
        for g in self.groups:
            for p in g.params:
                calls.setdefault((float(g.weight_decay), p.device, p.dtype), []).append(i)
                i += 1
        self._calls = [(wd, idx) for (wd, _, _), idx in calls.items()]
        self.lr = 0.0  # of the last step (recorded in the state dict, as torch.optim records it)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _group_records(self, hyper: dict[str, Any]) -> list[dict[str, Any]]:
        out, i = [], 0
        for g in self.groups:
            out.append({**hyper, "weight_decay": g.weight_decay, "params": list(range(i, i + len(g.params)))})
            i += len(g.params)
        return out

    def _saved_state(self, saved: dict[str, Any]) -> dict[int, dict[str, Any]]:
        groups = saved["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g.params) for g in self.groups]:
            raise ValueError("the saved optimiser state has other parameter groups than this optimiser")
        order = [i for g in groups for i in g["params"]]  # saved ids in this optimiser's parameter order
        state = saved["state"]
        return {mine: state[theirs] for mine, theirs in enumerate(order) if theirs in state}


class FusedAdam(_Base):
    """Adam (``decoupled_weight_decay=False``: the decay is added to the gradient) or AdamW (``True``: the
    weights shrink by ``lr * weight_decay``), as ``torch.optim.Adam`` / ``AdamW`` with ``fused=True``."""

    def __init__(self, groups: Sequence[ParamGroup], *, decoupled_weight_decay: bool,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(groups)
        self.decoupled = bool(decoupled_weight_decay)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self._kernel = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def step(self, lr: float, *, grad_scale: torch.Tensor | None = None) -> None:
        """One update at learning rate ``lr`` of every parameter that has a gradient."""
        self.lr = lr
        work = []
        counters: list[torch.Tensor] = []
        for wd, idx in self._calls:
            params = [self.params[i] for i in idx]
            grads = [p.grad for p in params]
            if any(g is None for g in grads):
                idx = [i for i, g in zip(idx, grads, strict=True) if g is not None]
                if not idx:
                    continue
                params = [self.params[i] for i in idx]
                grads = [p.grad for p in params]
            steps = [self.steps[i] for i in idx]
            counters += steps
            work.append((wd, idx, params, grads, steps))
        if not work:
            return
        torch._foreach_add_(counters, 1)
        beta1, beta2 = self.betas
        for wd, idx, params, grads, steps in work:
            scale = grad_scale
            if scale is not None and scale.device != params[0].device:
                scale = scale.to(params[0].device)
            self._kernel(params, grads, [self.exp_avgs[i] for i in idx], [self.exp_avg_sqs[i] for i in idx], [],
                         steps, lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd, eps=self.eps, amsgrad=False,
                         maximize=False, grad_scale=scale, found_inf=None)

    def state_dict(self) -> dict[str, Any]:
        state = {i: {"step": self.steps[i], "exp_avg": self.exp_avgs[i], "exp_avg_sq": self.exp_avg_sqs[i]}
                 for i in range(len(self.params))}
        hyper = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "amsgrad": False, "maximize": False,
                 "foreach": None, "capturable": False, "differentiable": False, "fused": True,
                 "decoupled_weight_decay": self.decoupled}
        return {"state": state, "param_groups": self._group_records(hyper)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Load a state of this class or of ``torch.optim.Adam`` / ``AdamW`` (fused or not) over the same groups."""
        own = self._saved_state(saved)
        for i, p in enumerate(self.params):
            s = own.get(i)
            with torch.no_grad():
                if s is None or "exp_avg" not in s:  # never stepped
                    self.steps[i].zero_()
                    self.exp_avgs[i].zero_()
                    self.exp_avg_sqs[i].zero_()
                    continue
                self.steps[i].copy_(torch.as_tensor(s["step"], dtype=torch.float32))
                self.exp_avgs[i].copy_(s["exp_avg"])
                self.exp_avg_sqs[i].copy_(s["exp_avg_sq"])


class FusedSGD(_Base):
    """SGD with momentum (Nesterov's when ``nesterov``) and L2 weight decay added to the gradient, as
    ``torch.optim.SGD(momentum=..., nesterov=...)``: the momentum buffer starts as the first gradient."""

    def __init__(self, groups: Sequence[ParamGroup], *, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(groups)
        if momentum < 0:
            raise ConfigError(f"momentum must be >= 0, got {momentum}")
        if nesterov and momentum <= 0:
            raise ConfigError("Nesterov momentum needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.buffers: list[torch.Tensor] = [torch.zeros_like(p, memory_format=torch.preserve_format)
                                            for p in self.params] if self.momentum else []
        self.started = [False] * len(self.params)  # whether the buffer holds a momentum yet

    def step(self, lr: float, *, grad_scale: torch.Tensor | None = None) -> None:
        """One update at learning rate ``lr`` of every parameter that has a gradient."""
        self.lr = lr
        for wd, idx in self._calls:
            grads = [self.params[i].grad for i in idx]
            if any(g is None for g in grads):
                idx = [i for i, g in zip(idx, grads, strict=True) if g is not None]
            if self.momentum:  # a parameter's first step and the later ones are separate calls
                parts = [[i for i in idx if self.started[i]], [i for i in idx if not self.started[i]]]
            else:
                parts = [idx]
            for part, first in zip(parts, (False, True), strict=False):
                if not part:
                    continue
                params = [self.params[i] for i in part]
                scale = grad_scale
                if scale is not None and scale.device != params[0].device:
                    scale = scale.to(params[0].device)
                torch._fused_sgd_(params, [p.grad for p in params],
                                  [self.buffers[i] for i in part] if self.momentum else [],
                                  weight_decay=wd, momentum=self.momentum, lr=lr, dampening=0.0,
                                  nesterov=self.nesterov, maximize=False, is_first_step=first and bool(self.momentum),
                                  grad_scale=scale, found_inf=None)
                if first:
                    for i in part:
                        self.started[i] = True

    def state_dict(self) -> dict[str, Any]:
        state = {i: {"momentum_buffer": self.buffers[i] if self.started[i] else None}
                 for i in range(len(self.params))} if self.momentum else {}
        hyper = {"lr": self.lr, "momentum": self.momentum, "dampening": 0, "nesterov": self.nesterov,
                 "maximize": False, "foreach": None, "differentiable": False, "fused": True}
        return {"state": state, "param_groups": self._group_records(hyper)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Load a state of this class or of ``torch.optim.SGD`` over the same groups."""
        own = self._saved_state(saved)
        if not self.momentum:
            return
        for i in range(len(self.params)):
            buf = (own.get(i) or {}).get("momentum_buffer")
            self.started[i] = buf is not None
            with torch.no_grad():
                if buf is None:
                    self.buffers[i].zero_()
                else:
                    self.buffers[i].copy_(buf)
