"""The one training loop of tinyevo, for candidates, final retraining, fine-tuning and supernets.

The loop is composed from objects (pymoo style) rather than flags::

    from tinyevo.training import (Checkpoint, CrossEntropy, Distillation, Recipe, RestoreBest, StandardStep,
                                  TimeBudget, train)

    done = train(
        model, data,                                    # any nn.Module NCHW float -> logits; a tinyevo Dataset
        Recipe(epochs=30, optimizer="sgd", lr=0.05, warmup_epochs=1, augment=("shift", "flip")),
        seed=0,
        step=StandardStep(Distillation(teacher, alpha=0.9, temperature=4.0, hard=CrossEntropy(0.1))),
        callbacks=[RestoreBest(), TimeBudget(600), Checkpoint("ckpt.pt")],
    )
    done.history        # tuple of EpochRecord (epoch, train_loss, val_acc, lr, seconds, ...)
    done.stopped_early  # a CurveMonitor stopped it

API:

* :class:`Recipe` -- how to optimise: optimiser, lr, weight decay, schedule (cosine / constant), warm-up, epochs,
  batch size, gradient clipping, augmentation, threads, device, channels_last.
* :class:`Loss` protocol -- ``loss(logits, targets, inputs) -> tensor``; :class:`CrossEntropy`
  ``(label_smoothing)`` and :class:`Distillation` ``(teacher, alpha, temperature, hard)``.
* :class:`Step` protocol -- what one optimisation step does with a batch: ``step(model, inputs, targets) ->
  loss`` runs forward(s), loss(es) and backward(s) (gradients accumulate; the loop zeroes them before, then clips
  and steps the optimiser after). :class:`StandardStep` ``(loss)`` is one forward and one backward. A supernet's
  sandwich rule is a step that runs several sub-networks on the batch. ``prepare`` / ``modules`` / ``signature``:
  set-up on the device, networks run but not trained (teachers), identity in a checkpoint.
* :class:`Callback` protocol (hooks ``on_train_start`` / ``on_evaluate`` / ``on_epoch_end`` / ``on_train_end``
  on a :class:`TrainState`, which holds the model, optimiser, step, plan and curve, and whose
  :meth:`TrainState.request_stop` stops training); :class:`BaseCallback` has no-op hooks. Callbacks:
  :class:`Checkpoint` ``(path, every_s, tag)`` (resume after a kill to the same weights; the file loads with
  ``torch.load(weights_only=True)``), :class:`TimeBudget` ``(seconds)`` (schedule fitted to the time),
  :class:`RestoreBest` ``()`` and :class:`CurveMonitor` ``(fn)`` (learning-curve early stopping).
* :class:`Optimizer` protocol -- ``step(lr, grad_scale=None)``, ``zero_grad()``, ``state_dict()``; the loop's
  :class:`FusedAdam` (Adam / AdamW) and :class:`FusedSGD` (Nesterov momentum) over :class:`ParamGroup` s call
  PyTorch's fused kernels without ``torch.optim`` (whose first step imports ``torch._dynamo``);
  :class:`GradClip` clips as the kernels' ``grad_scale``. :func:`make_optimizer` builds the recipe's.
* :func:`train` ``(model, data, recipe, *, seed, step, callbacks, evals_per_epoch, evaluate) -> Fitted``.
* :func:`accuracy` (of a model), :func:`fraction_correct` (of predictions from any runtime) and
  :func:`recalibrate_batchnorm` -- measuring a model.
* :class:`TrainConfig` -- the flat ``[train]`` record of a run config (recipe + loss options + time limit +
  restore_best + search-time pruning + train_on_val), with :func:`fit` and :func:`train_model` (build an IR,
  train, measure on every split) on top of :func:`train`.
"""

from __future__ import annotations

from tinyevo.training.callbacks import (
    Checkpoint,
    CurveMonitor,
    RestoreBest,
    TimeBudget,
    best_record,
    epochs_within,
    improves,
)
from tinyevo.training.config import TrainConfig
from tinyevo.training.evaluate import accuracy, fraction_correct, recalibrate_batchnorm
from tinyevo.training.loop import Evaluate, Fitted, train
from tinyevo.training.losses import CrossEntropy, Distillation, Loss
from tinyevo.training.optim import FusedAdam, FusedSGD, GradClip, Optimizer, ParamGroup
from tinyevo.training.recipe import (
    AUGMENTATIONS,
    Recipe,
    augment,
    available_cpus,
    lr_at,
    make_optimizer,
    resolve_device,
    torch_threads,
)
from tinyevo.training.state import BaseCallback, Callback, EpochRecord, TrainState
from tinyevo.training.steps import StandardStep, Step
from tinyevo.training.train_ir import Monitor, TrainResult, fit, fit_data_to_ir, train_model, with_val_in_train

__all__ = [
    "AUGMENTATIONS", "BaseCallback", "Callback", "Checkpoint", "CrossEntropy", "CurveMonitor", "Distillation",
    "EpochRecord", "Evaluate", "Fitted", "FusedAdam", "FusedSGD", "GradClip", "Loss", "Monitor", "Optimizer",
    "ParamGroup", "Recipe", "RestoreBest", "StandardStep", "Step",
    "TimeBudget", "TrainConfig", "TrainResult", "TrainState", "accuracy", "augment", "available_cpus",
    "best_record", "epochs_within", "fit", "fraction_correct", "fit_data_to_ir", "improves", "lr_at", "make_optimizer",
    "recalibrate_batchnorm", "resolve_device", "torch_threads", "train", "train_model", "with_val_in_train",
]
