"""Deepening a retrained model without changing what it computes (Net2DeeperNet-style network morphism).

``tinyevo deepen RUN --trial N --insert POS:LAYER`` puts a new residual layer of the ``chain`` space (e.g.
``dsc_k5_s1_c64_r``) in front of feature layer ``POS`` of trial ``N``'s retrained model. The new layer's last
BatchNorm starts with zero scale and shift, so its branch outputs zeros and the skip passes its input through the
sum's ReLU unchanged: the deeper network computes exactly what the trained one did, and more training
(``tinyevo retrain RUN --trial NEW --continue``) starts from the trained model's accuracy, with more capacity.
Every other weight is the parent's.

The deeper network is stored as a *derived model* of the run (:class:`tinyevo.storage.DerivedModel`: origin
``deepen``, its parent the trial or derived model it came from, priced by the run's cost model), with the morphed
weights as its retrained model. It is not a search trial, so ``tinyevo resume`` replays the search exactly as
before. Its number addresses it wherever a trial number does (``retrain``/``export``/``deepen --trial N``; its
files are ``final/trial-NNNN``) and is at least the run's trial limit (``max_trials``, default 20 x the budget),
which no search trial reaches: the first derived model of a 100-trial run is number 2000. The morph is checked: the
logits of the new model on validation images must equal the parent's, or nothing is stored.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from tinyevo.errors import ConfigError
from tinyevo.storage import DB_NAME, DerivedModel, RetrainedModel, SQLiteStorage

ORIGIN = "deepen"
_LAYER_KEY = re.compile(r"^layers\.l(\d+)_")  # state_dict keys of the chain space's feature layer i


@dataclass(frozen=True)
class DeepenResult:
    """The new derived model (``number``: its number, used as ``--trial``) and how its morphed model measures
    (``max_logit_diff``: against the parent's, on validation images; ``val_acc`` / ``test_acc`` equal the parent's
    up to ties)."""

    number: int
    parent: int
    genome: str
    cost: Mapping[str, float]
    val_acc: float
    test_acc: float
    max_logit_diff: float
    weights: Path


def parse_insert(spec: str) -> tuple[int, str]:
    """``"POS:LAYER"`` -> (POS, LAYER), e.g. ``"4:dsc_k5_s1_c64_r"``."""
    pos, sep, layer = spec.partition(":")
    if not sep or not pos.strip().isdigit() or not layer.strip():
        raise ConfigError(f"--insert needs POS:LAYER (e.g. 4:dsc_k5_s1_c64_r), got {spec!r}")
    return int(pos), layer.strip()


def shift_layer_keys(state: Mapping[str, torch.Tensor], position: int) -> dict[str, torch.Tensor]:
    """``state`` with the keys of feature layers ``position`` and later moved one layer up (``l4_*`` -> ``l5_*``),
    making room for a layer inserted at ``position``."""
    def move(key: str) -> str:
        m = _LAYER_KEY.match(key)
        if m is None or int(m[1]) < position:
            return key
        return f"layers.l{int(m[1]) + 1}_{key[m.end():]}"

    return {move(k): v for k, v in state.items()}


def deepened_genome(space: Any, genome: str, position: int, layer: str) -> Any:
    """The chain genome ``genome`` with ``layer`` (a layer token) inserted before feature layer ``position``;
    :class:`ConfigError` unless ``layer`` is a residual conv / dsc layer with stride 1 and ``position`` a feature
    layer position whose input has ``layer``'s width (so that the skip is the identity)."""
    from tinyevo.errors import InvalidGenomeError
    from tinyevo.spaces.chain import ChainGenome, parse_chain

    parent = space.parse(genome)
    if not isinstance(parent, ChainGenome):
        raise ConfigError(f"deepen works on the chain space; this run's genomes are {type(parent).__name__}")
    try:
        (new,) = parse_chain(f"{layer}-gap").layers
    except (InvalidGenomeError, ValueError) as exc:  # ValueError: several layer tokens
        raise ConfigError(f"--insert layer {layer!r}: {exc}") from None
    if new.op not in ("conv", "dsc") or not new.residual or new.stride != 1:
        raise ConfigError(f"--insert layer {layer!r} must be a residual conv or dsc layer with stride 1 "
                          "(e.g. dsc_k5_s1_c64_r): only then does it start as the identity")
    if not 1 <= position <= len(parent.layers):
        raise ConfigError(f"--insert position {position} must be in 1..{len(parent.layers)} (a layer's input "
                          "must come out of a ReLU for the new layer to pass it through)")
    widths = [one.channels for one in parent.layers[:position] if one.op in ("conv", "dsc")]
    width = widths[-1] if widths else space.input_shape[0]
    if new.channels != width:
        raise ConfigError(f"--insert layer {layer!r} has {new.channels} channels but its input at position "
                          f"{position} has {width}: the skip would need a projection and would not start as the "
                          f"identity (use c{width})")
    child = replace(parent, layers=parent.layers[:position] + (new,) + parent.layers[position:])
    try:
        return space.validate(child)
    except InvalidGenomeError as exc:
        raise ConfigError(f"{child} is not in this run's space: {exc}") from None


def derived_number(trial_limit: int, taken: Iterable[int]) -> int:
    """The number of a new derived model: at least ``trial_limit`` (no search trial gets such a number) and
    above every number in ``taken`` (the run's derived models)."""
    return max([trial_limit - 1, *taken]) + 1


def identity_init(model: torch.nn.Module, position: int) -> None:
    """Zero the scale and shift of the last BatchNorm of feature layer ``position`` (its residual branch's
    output), so that the branch adds zeros."""
    prefix = f"layers.l{position}_"
    bns = [m for name, m in model.named_modules()
           if name.startswith(prefix) and isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        raise ConfigError(f"feature layer {position} has no BatchNorm to start it as the identity")
    with torch.no_grad():
        bns[-1].weight.zero_()
        bns[-1].bias.zero_()


def deepen_trial(run_dir: str | Path, *, trial: int | None, position: int, layer: str, seed: int = 0,
                 atol: float = 1e-4) -> DeepenResult:
    """Store a deeper copy of a retrained trial or derived model (default: the run's model) as a derived model;
    see the module docstring. ``seed`` initialises the new layer's weights. A morph whose logits differ from the parent's by more
    than ``atol`` is refused."""
    from tinyevo.fsutil import atomic_write, atomic_write_text, ensure_dir
    from tinyevo.nn import build_model
    from tinyevo.run.engine import assemble_run
    from tinyevo.run.export import find_trial
    from tinyevo.run.retraining import load_weights, model_dir
    from tinyevo.training import accuracy

    view, parent, weights = find_trial(run_dir, trial=trial)
    run_dir = view.run_dir
    parts = assemble_run(view.config)
    space, data = parts.space, parts.data
    child = deepened_genome(space, parent.genome, position, layer)
    cost = dict(parts.cost(child))
    if parts.problem.hard_violation(cost) > 0:
        raise ConfigError(f"{child} violates the run's hard limits (total violation "
                          f"{parts.problem.hard_violation(cost):.1%}); insert a smaller layer")

    old = build_model(space.decode(space.parse(parent.genome)), seed=0)
    old.load_state_dict(load_weights(weights))
    model = build_model(space.decode(child), seed=seed)
    model.load_state_dict({**model.state_dict(), **shift_layer_keys(old.state_dict(), position)})
    identity_init(model, position)
    old.eval()
    model.eval()
    with torch.no_grad():
        x = torch.tensor(data.x_val[:256])
        diff = float((model(x) - old(x)).abs().max())
    if not diff <= atol:
        raise ConfigError(f"inserting {layer} at {position} changes the network's outputs (by up to {diff:.3g}); "
                          "the layer before it must end in a ReLU and have the new layer's width")
    val_acc = accuracy(model, data.x_val, data.y_val)
    test_acc = accuracy(model, data.x_test, data.y_test)

    storage = SQLiteStorage(Path(run_dir) / DB_NAME)
    try:
        number = derived_number(view.config.budget.trial_limit, (d.number for d in storage.derived()))
        now = time.time()
        out = ensure_dir(model_dir(run_dir, number), root=run_dir)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_write(out / "model.pt", lambda fh: torch.save(state, fh), root=run_dir)
        atomic_write_text(out / "genome.txt", f"{child}\n", root=run_dir)
        before = json.loads(weights.with_name("metrics.json").read_text()).get("final", {}) \
            if weights.with_name("metrics.json").is_file() else {}
        final = {"val_acc": val_acc, "test_acc": test_acc, "epochs": 0.0, "final_train_s": 0.0,
                 **{f"{k}_total": float(before.get(f"{k}_total", before.get(k, 0.0)))
                    for k in ("epochs", "final_train_s")}}  # the parent's training, carried over
        derived_from = {"trial": parent.number, "genome": parent.genome, "position": position, "layer": layer,
                        "seed": seed, "max_logit_diff": diff}
        doc = {"trial": number, "derived": True, "genome": str(child), "seed": seed, "final": final,
               "cost": cost, "deepened_from": {**derived_from, "final": before}}
        atomic_write_text(out / "metrics.json", json.dumps(doc, indent=2, allow_nan=True), root=run_dir)
        weights_rel = str((out / "model.pt").relative_to(run_dir))
        storage.add_derived(DerivedModel(number=number, genome=str(child), parent=parent.number, origin=ORIGIN,
                                         cost=cost, weights=weights_rel, info=derived_from, created_at=now))
        storage.add_final(RetrainedModel(trial=number, genome=str(child), metrics={**cost, **final},
                                     weights=weights_rel, created_at=now))
    finally:
        storage.close()
    return DeepenResult(number=number, parent=parent.number, genome=str(child), cost=cost, val_acc=val_acc,
                        test_acc=test_acc, max_logit_diff=diff, weights=out / "model.pt")
