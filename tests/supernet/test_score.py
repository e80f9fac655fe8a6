"""Scoring with inherited weights: BatchNorm recalibration changes statistics only; scores are deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from tinyevo.data import Dataset
from tinyevo.errors import ConfigError, DataError
from tinyevo.ir import same_pads
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.supernet import Supernet, resize_batch
from tinyevo.supernet.score import (CalibratedSubnet, ScoreConfig, SupernetScorer, _geometry, finetune_data,
                                    finetune_recipe)
from tinyevo.training import Recipe, fit_data_to_ir, train
from tinyevo.training.evaluate import recalibrate_batchnorm


def test_recalibration_changes_statistics_only(space: BlocksSpace, scramble, tiny_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    net = scramble(Supernet(space), 0).eval()
    genome = space.sample(np.random.default_rng(0))
    model = net.extract(genome).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.tensor(np.asarray(tiny_data.x_train)[:64])
    recalibrate_batchnorm(model, torch.nn.functional.interpolate(x, size=genome.resolution), batches=1, batch_size=64)
    after = model.state_dict()
    stats = [k for k in after if "running_" in k]
    assert stats and all(not torch.equal(after[k], before[k]) for k in stats)
    assert all(torch.equal(after[k], before[k]) for k in after if "running_" not in k and "num_batches" not in k)


def test_scoring_leaves_the_supernet_alone(space: BlocksSpace, scramble, tiny_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    net = scramble(Supernet(space), 1).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scorer = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=50, batch_size=16))
    scorer.score_many([space.sample(np.random.default_rng(s)) for s in range(3)])
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_score_equals_an_independent_evaluation(space: BlocksSpace, scramble, tiny_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    """The score is the accuracy of the extracted sub-network whose BatchNorm statistics are the plain mean and
    (unbiased) variance of the calibration images' activations, computed here with hooks and numpy."""
    torch.manual_seed(0)
    net = scramble(Supernet(space), 2).eval()
    genome = space.parse("r12_w1.0-conv_d1_k3_c16-conv_d1_k5_c24-conv_d1_k3_c32")
    cfg = ScoreConfig(calibration_rows=40, batch_size=1000, seed=5)
    score = SupernetScorer(net, tiny_data, config=cfg).score(genome)

    rows = np.sort(np.random.default_rng(5).choice(len(tiny_data.x_train), size=40, replace=False))
    calib = torch.nn.functional.interpolate(torch.tensor(np.asarray(tiny_data.x_train)[rows]), size=12,
                                            mode="bilinear", antialias=True, align_corners=False)
    model = net.extract(genome).eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:  # layer by layer: each BN's input depends on the statistics of the BNs before it
        seen: list[np.ndarray] = []
        handle = bn.register_forward_hook(lambda m, i, o, seen=seen: seen.append(i[0].detach().numpy()))
        with torch.no_grad():
            model(calib)
        handle.remove()
        a = seen[0].transpose(1, 0, 2, 3).reshape(bn.num_features, -1)
        with torch.no_grad():
            bn.running_mean.copy_(torch.from_numpy(a.mean(1)))
            bn.running_var.copy_(torch.from_numpy(a.var(1, ddof=1)))
    x_val = torch.nn.functional.interpolate(torch.tensor(np.asarray(tiny_data.x_val)), size=12, mode="bilinear",
                                            antialias=True, align_corners=False)
    with torch.no_grad():
        expected = float((model(x_val).argmax(1).numpy() == np.asarray(tiny_data.y_val)).mean())
    assert score == pytest.approx(expected)


def test_scores_are_deterministic_and_cached(space: BlocksSpace, scramble, tiny_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    net = scramble(Supernet(space), 3).eval()
    genomes = [space.sample(np.random.default_rng(s)) for s in range(4)]
    a = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=60, batch_size=32))
    b = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=60, batch_size=32))
    first = a.score_many(genomes)
    assert first == b.score_many(list(reversed(genomes)))[::-1]
    assert a.score_many([str(g) for g in genomes]) == first and a.calls == len({str(g) for g in genomes})
    assert all(0.0 <= s <= 1.0 for s in first)


def test_refuses_data_that_does_not_fit(space: BlocksSpace, tiny_data: Dataset) -> None:
    net = Supernet(space)
    rgb = tiny_data.with_splits(x_train=np.repeat(tiny_data.x_train, 3, axis=1), x_val=np.repeat(
        tiny_data.x_val, 3, axis=1), x_test=np.repeat(tiny_data.x_test, 3, axis=1))
    with pytest.raises(DataError, match="channel"):
        SupernetScorer(net, rgb)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 11), w=st.integers(1, 11), kernel=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2]),
       depthwise=st.booleans(), extend=st.booleans(), seed=st.integers(0, 2**16))
def test_conv_geometry_computes_the_builders_same_padded_conv(h: int, w: int, kernel: int, stride: int,
                                                               depthwise: bool, extend: bool, seed: int) -> None:
    """Cut kernels and zero-extended ones compute what an explicit TF "SAME" pad + an unpadded conv computes."""
    gen = torch.Generator().manual_seed(seed)
    c_in, c_out = 3, 3 if depthwise else 4
    groups = c_in if depthwise else 1
    x = torch.randn(2, c_in, h, w, generator=gen)
    weight = torch.randn(c_out, c_in // groups, kernel, kernel, generator=gen)
    top, bottom = same_pads(h, kernel, stride)
    left, right = same_pads(w, kernel, stride)
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, None, stride, 0, 1, groups)
    cut, padding, pads = _geometry(weight, h, w, stride, same=True, extend=extend)
    got = F.conv2d(x if pads is None else F.pad(x, pads), cut, None, stride, padding, 1, groups)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if extend:
        assert pads is None  # no padded copy of the activations
    if kernel > 1 and max(h, w) == 1:
        assert cut.shape[-2:] == (1, 1)  # only the centre tap reads a 1x1 map


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_calibrated_subnet_gives_the_recalibrated_extracted_modules_logits(space: BlocksSpace, scramble,  # type: ignore[no-untyped-def]
                                                                          tiny_data: Dataset, seed: int) -> None:
    net = scramble(Supernet(space), seed % 7).eval()
    genome = space.sample(np.random.default_rng(seed))
    calib = resize_batch(torch.tensor(np.asarray(tiny_data.x_train)[:48]), genome.resolution)
    x = resize_batch(torch.tensor(np.asarray(tiny_data.x_val)), genome.resolution)
    model = net.extract(genome)
    recalibrate_batchnorm(model, calib, batches=1, batch_size=len(calib))
    model.eval()
    with torch.no_grad():
        expected = model(x)
    got = CalibratedSubnet.calibrate(net, genome, calib)(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max() + 1))


def test_validation_rows_are_a_seeded_subset(space: BlocksSpace, scramble, tiny_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    net = scramble(Supernet(space), 4).eval()
    genome = space.sample(np.random.default_rng(4))
    n_val = len(tiny_data.x_val)
    every = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=40, validation_rows=None))
    assert list(every.validation_index) == list(range(n_val))
    some = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=40, validation_rows=n_val // 2))
    rows = some.validation_index
    assert len(set(rows.tolist())) == n_val // 2 and list(rows) == sorted(rows) and rows.max() < n_val
    # the score is the accuracy on exactly those rows (predictions of the full-split scorer's network)
    _, x_val, y_val = every.inputs(genome.resolution)
    correct = (every.calibrated(genome)(x_val).argmax(1) == y_val).numpy()
    assert some.score(genome) == pytest.approx(correct[rows].mean())
    assert every.score(genome) == pytest.approx(correct.mean())
    other = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=40, validation_rows=n_val // 2, seed=1))
    assert list(other.validation_index) != list(rows)


@pytest.mark.parametrize("options", [{"calibration_rows": 1}, {"calibration_rows": 10**6}, {"validation_rows": 0},
                                     {"batch_size": 0}, {"cache_size": -1}])
def test_score_config_refuses_bad_values(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        ScoreConfig(**options)


def test_finetuned_score_is_the_accuracy_after_the_documented_steps(space: BlocksSpace, scramble,  # type: ignore[no-untyped-def]
                                                                     tiny_data: Dataset) -> None:
    """A fine-tuned score is the accuracy, counted here on the resampled validation rows, of the sub-network
    extracted with its inherited weights and trained with the documented recipe on the documented rows; the
    supernet is not changed."""
    net = scramble(Supernet(space), 5).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    genome = space.parse("r12_w1.0-mb_d1_k3_e3_c16-res_d1_k5_c24-conv_d2_k3_c32")
    cfg = ScoreConfig(calibration_rows=40, validation_rows=20, finetune_steps=3, finetune_batch_size=16,
                      finetune_lr=0.01, seed=2)
    score = SupernetScorer(net, tiny_data, config=cfg).score(genome)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())

    rows = finetune_data(tiny_data, cfg)
    assert len(rows.x_train) == pytest.approx(3 * 16, abs=3)  # a stratified 48 of the 96 training rows
    train_rows = {r.tobytes() for r in np.asarray(tiny_data.x_train)}
    assert all(r.tobytes() in train_rows for r in np.asarray(rows.x_train))
    val = np.sort(np.random.default_rng([2, 1]).choice(len(tiny_data.x_val), size=20, replace=False))
    np.testing.assert_array_equal(rows.x_val, np.asarray(tiny_data.x_val)[val])
    recipe = Recipe(epochs=1, batch_size=16, optimizer="adamw", lr=0.01)
    model = net.extract(genome)
    train(model, fit_data_to_ir(model.ir, rows), recipe, seed=2)
    model.eval()
    x_val = resize_batch(torch.tensor(np.asarray(tiny_data.x_val)[val]), 12)
    with torch.no_grad():
        expected = float((model(x_val).argmax(1).numpy() == np.asarray(tiny_data.y_val)[val]).mean())
    assert score == pytest.approx(expected)


def test_finetuned_scores_are_deterministic(space: BlocksSpace, scramble, tiny_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    net = scramble(Supernet(space), 6).eval()
    genomes = [space.sample(np.random.default_rng(s)) for s in range(3)]
    cfg = ScoreConfig(calibration_rows=40, finetune_steps=4, finetune_batch_size=16)
    a = SupernetScorer(net, tiny_data, config=cfg).score_many(genomes)
    b = SupernetScorer(net, tiny_data, config=cfg).score_many(list(reversed(genomes)))[::-1]
    assert a == b


def test_finetuning_more_steps_than_the_split_holds_passes_over_it_again(tiny_data: Dataset) -> None:
    n = len(tiny_data.x_train)  # 96 rows: 6 batches of 16 a pass
    cfg = ScoreConfig(finetune_steps=4 * (n // 16), finetune_batch_size=16)
    rows = finetune_data(tiny_data, cfg)
    assert len(rows.x_train) == n
    assert finetune_recipe(cfg, n).epochs == 4  # 4 passes: the steps asked for


@pytest.mark.parametrize("options", [{"finetune_steps": -1}, {"finetune_batch_size": 1}, {"finetune_lr": 0.0}])
def test_score_config_refuses_bad_finetuning(options: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="finetune"):
        ScoreConfig(**options)  # type: ignore[arg-type]


def test_genomes_of_one_network_share_a_score(space: BlocksSpace, scramble, tiny_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    """Two genomes whose first stage's widths round to the same channels at w0.5 (8 and 16 base channels -> 8) are
    one network with the same inherited weights: scored once."""
    net = scramble(Supernet(space), 7).eval()
    a = space.parse("r12_w0.5-mb_d1_k3_e3_c8-res_d1_k5_c24-conv_d2_k3_c32")
    b = space.parse("r12_w0.5-mb_d1_k3_e3_c16-res_d1_k5_c24-conv_d2_k3_c32")
    c = space.parse("r12_w1.0-mb_d1_k3_e3_c16-res_d1_k5_c24-conv_d2_k3_c32")
    assert str(a) != str(b) and space.decode(a) == space.decode(b) != space.decode(c)
    sa, sb = net.extract(a).state_dict(), net.extract(b).state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    scorer = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=40))
    assert scorer.score(a) == scorer.score(b) and scorer.calls == 1
    scorer.score(c)
    assert scorer.calls == 2
    fresh = SupernetScorer(net, tiny_data, config=ScoreConfig(calibration_rows=40))
    assert fresh.score(b) == scorer.score(a)  # the shared score is b's own
