"""PT2E int8 quantisation with the TFLite scheme (needs the tinyevo[deploy] extra)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")

from conftest import Trained

from tinyevo.deploy import DeployError, QuantConfig, quantize_int8
from tinyevo.deploy.model import FinetuneConfig, load_weights
from tinyevo.training import fraction_correct


def _q_ops(program: torch.fx.GraphModule) -> list[str]:
    return [str(n.target) for n in program.graph.nodes if "quantize" in str(n.target)]


def test_ptq_quantises_weights_per_channel_and_keeps_accuracy(trained: Trained) -> None:
    model = load_weights(trained.ir, trained.state)
    q = quantize_int8(model, trained.data.x_train, trained.data.y_train,
                      config=QuantConfig(calibration_samples=256, qat_mode="never"), rng=np.random.default_rng(0))
    ops = _q_ops(q.program)
    assert any("quantize_per_channel" in o for o in ops)  # conv / dense weights
    assert any("quantize_per_tensor" in o for o in ops)  # activations
    acc = fraction_correct(q.predict(trained.data.x_test), trained.data.y_test)
    assert acc >= trained.float_test_acc - 0.03
    assert not q.qat_used


def test_qat_always_fine_tunes_a_fake_quantised_program(trained: Trained) -> None:
    model = load_weights(trained.ir, trained.state)
    cfg = QuantConfig(calibration_samples=64, eval_samples=200, qat_mode="always", observer="minmax",
                      qat=FinetuneConfig(epochs=1, lr=1e-4, batch_size=32, max_samples=320))
    q = quantize_int8(model, trained.data.x_train, trained.data.y_train, config=cfg, rng=np.random.default_rng(0))
    assert q.qat_used
    assert fraction_correct(q.predict(trained.data.x_test), trained.data.y_test) >= trained.float_test_acc - 0.05


def test_bad_quantisation_requests_are_refused(trained: Trained) -> None:
    model = load_weights(trained.ir, trained.state)
    with pytest.raises(DeployError, match="training split is empty"):
        quantize_int8(model, trained.data.x_train[:0], rng=np.random.default_rng(0))
    with pytest.raises(DeployError, match="labels"):
        quantize_int8(model, trained.data.x_train[:64], config=QuantConfig(qat_mode="always"),
                      rng=np.random.default_rng(0))
    with pytest.raises(DeployError, match="qat_mode"):
        QuantConfig(qat_mode="sometimes")  # type: ignore[arg-type]
