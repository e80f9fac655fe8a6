"""The reinforce strategy (REINFORCE controller) and the MnasNet soft objective (SoftTarget)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from tinyevo.errors import ConfigError
from tinyevo.problem import Objective, Problem, SoftTarget
from tinyevo.spaces import create_space
from tinyevo.spaces.nb201 import OPS
from tinyevo.strategies import STRATEGIES, Candidate, Status, Trial, best_trial, fitness, replay
from tinyevo.strategies.loop import run_search
from tinyevo.strategies.reinforce import Reinforce, gene_codec

CONV3 = OPS.index("nor_conv_3x3")


def edge0_conv3(genome) -> dict[str, float]:
    """Toy reward: 1 when the first cell edge is a 3x3 conv, else 0."""
    return {"acc": float(genome.ops[0] == "nor_conv_3x3")}


def _trial(number: int, genome, status: Status = Status.OK, metrics=None, violation: float = 0.0) -> Trial:
    return Trial(number=number, genome=str(genome), status=status, metrics=dict(metrics or {}), violation=violation)


# --- controller -----------------------------------------------------------------------------------------------
def test_one_update_moves_probability_toward_the_rewarded_choice(nb201, acc_problem):
    strat = Reinforce(nb201, acc_problem, batch_size=2, entropy=0.0, seed=0)
    good = nb201.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    bad = nb201.parse("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    before = strat.probabilities()[0].copy()
    strat.tell(Candidate(good), _trial(0, good, metrics={"acc": 1.0}))
    strat.tell(Candidate(bad), _trial(1, bad, metrics={"acc": 0.0}))
    after = strat.probabilities()[0]
    assert strat.updates == 1
    assert after[CONV3] > before[CONV3]
    assert after[OPS.index("avg_pool_3x3")] < before[OPS.index("avg_pool_3x3")]
    # edges where both genomes chose the same op ("none") get no net push: equal rewards around the baseline cancel
    np.testing.assert_allclose(strat.probabilities()[1], np.full(len(OPS), 1 / len(OPS)), atol=1e-12)


def test_search_with_a_toy_reward_concentrates_the_policy(nb201, acc_problem):
    strat = Reinforce(nb201, acc_problem, seed=3)
    run_search(strat, acc_problem, edge0_conv3, budget=80)
    p = strat.probabilities()
    assert p[0][CONV3] > 0.6  # from 0.2
    assert p[0].argmax() == CONV3
    # the other edges do not matter for the reward: none of their choices is pushed as far
    assert max(float(q.max()) for q in p[1:]) < p[0][CONV3]


def test_entropy_bonus_keeps_the_policy_wider(nb201, acc_problem):
    def peak(entropy: float) -> float:
        strat = Reinforce(nb201, acc_problem, entropy=entropy, seed=1)
        run_search(strat, acc_problem, edge0_conv3, budget=60)
        return float(strat.probabilities()[0][CONV3])

    assert peak(1.0) < peak(0.0)


def test_same_seed_same_asks_other_seed_other_asks(nb201, acc_problem):
    def asks(seed: int) -> list[str]:
        strat = Reinforce(nb201, acc_problem, seed=seed)
        loop = run_search(strat, acc_problem, edge0_conv3, budget=40)
        return [t.genome for t in loop.trials]

    assert asks(7) == asks(7)
    assert asks(7) != asks(8)
    assert len(set(asks(7))) == 40  # never re-asks


def test_replay_resume_equals_an_uninterrupted_run(nb201):
    problem = Problem((Objective("acc"),))
    full = Reinforce(nb201, problem, batch_size=3, seed=11)
    history = []
    for i in range(25):
        cand = full.ask()
        trial = _trial(i, cand.genome, metrics=edge0_conv3(cand.genome))
        full.tell(cand, trial)
        history.append((cand, trial))
    resumed = Reinforce(nb201, problem, batch_size=3, seed=11)
    replay(resumed, history[:14])
    for cand, trial in history[14:]:
        asked = resumed.ask()
        assert str(asked.genome) == str(cand.genome)
        resumed.tell(asked, trial)
    np.testing.assert_array_equal(resumed.logits, full.logits)
    assert str(resumed.ask().genome) == str(full.ask().genome)


def test_failed_and_infeasible_trials_get_a_reward_below_every_evaluated_one(nb201):
    problem = Problem((Objective("acc"),))
    strat = Reinforce(nb201, problem, seed=0)
    g = [nb201.sample(np.random.default_rng(i)) for i in range(4)]
    r_ok_hi = strat._reward(_trial(0, g[0], metrics={"acc": 0.9}))
    r_ok_lo = strat._reward(_trial(1, g[1], metrics={"acc": 0.4}))
    r_failed = strat._reward(_trial(2, g[2], Status.FAILED))
    r_near = strat._reward(_trial(3, g[3], Status.INFEASIBLE, violation=0.05))
    r_far = strat._reward(_trial(3, g[3], Status.INFEASIBLE, violation=3.0))
    assert (r_ok_hi, r_ok_lo) == (0.9, 0.4)
    assert r_far < r_near < r_failed < r_ok_lo


def test_a_search_with_a_hard_limit_learns_to_stay_feasible(nb201):
    """convs count as cost; at most 1 conv edge is feasible. The policy learns to avoid infeasible genomes."""
    from tinyevo.problem import Constraint

    def cost(genome):
        return {"convs": float(sum("conv" in op for op in genome.ops))}

    problem = Problem((Objective("acc"),), (Constraint("convs", upper=1.0),))
    strat = Reinforce(nb201, problem, seed=2)
    loop = run_search(strat, problem, lambda g: {"acc": 1.0 + float(g.ops[5] == "skip_connect")}, budget=60,
                      cost=cost)
    first = [t.status is Status.INFEASIBLE for t in loop.trials[:30]]
    last = [t.status is Status.INFEASIBLE for t in loop.trials[-30:]]
    assert sum(last) < sum(first)


def test_warm_start_genomes_not_proposed_are_learnt_from(nb201, acc_problem):
    strat = Reinforce(nb201, acc_problem, seed=0)
    g = nb201.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    strat.tell(Candidate(g, origin="seed"), _trial(0, g, metrics={"acc": 1.0}))
    assert strat.updates == 1
    assert all(str(strat.ask().genome) != str(g) for _ in range(30))  # and it is never asked again


@pytest.mark.parametrize("name", ["nb201", "macro", "blocks"])
def test_gene_codec_round_trips_every_fixed_structure_space(name):
    space = create_space(name)
    codec = gene_codec(space)
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = space.sample(rng)
        index, active = codec.encode(g)
        assert len(index) == len(active) == len(codec.sizes)
        assert all(0 <= i < n for i, n in zip(index, codec.sizes, strict=True))
        assert str(codec.decode(index)) == str(g)


def test_blocks_expansion_gene_is_inactive_for_non_mbconv_stages():
    space = create_space("blocks", block_types=("mb", "res"))
    g = space.parse("r96_w0.5-res_d1_k3_c8-mb_d2_k3_e6_c24-res_d1_k3_c32-mb_d1_k5_e3_c64-res_d1_k3_c96-res_d1_k3_c160")
    _, active = gene_codec(space).encode(g)
    expand_flags = [active[2 + 5 * i + 4] for i in range(6)]
    assert expand_flags == [False, True, False, True, False, False]


def test_reinforce_refuses_a_variable_structure_space(acc_problem):
    with pytest.raises(ConfigError, match="fixed-structure"):
        STRATEGIES.create("reinforce", create_space("chain"), acc_problem, seed=0)


def test_reinforce_is_registered_and_runs_on_macro(acc_problem):
    space = create_space("macro")
    strat = STRATEGIES.create("reinforce", space, acc_problem, seed=0)
    loop = run_search(strat, acc_problem, lambda g: {"acc": float(sum(g.layers))}, budget=30)
    assert loop.evaluations == 30


def test_exhausting_a_small_space_ends_the_search(acc_problem):
    space = create_space("macro", stages=(1, 1))  # 9 genomes
    strat = Reinforce(space, acc_problem, seed=0)
    loop = run_search(strat, acc_problem, lambda g: {"acc": 1.0}, budget=50)
    assert loop.evaluations == 9
    assert sorted(t.genome for t in loop.trials) == sorted(f"{a}{b}" for a, b in itertools.product("012", "012"))


# --- MnasNet soft objective -----------------------------------------------------------------------------------
def test_mnasnet_reward_against_hand_computed_values():
    obj = Objective("acc", soft_targets=(SoftTarget("latency_ms", 20.0),))
    # 0.9 * (30 / 20) ** -0.07 = 0.9 * exp(-0.07 * ln 1.5) = 0.9 * exp(-0.0283826) = 0.9 * 0.9720164
    assert obj.score({"acc": 0.9, "latency_ms": 30.0}) == pytest.approx(0.8748148, abs=1e-7)
    # 0.9 * (10 / 20) ** -0.07 = 0.9 * 2 ** 0.07 = 0.9 * 1.0497167
    assert obj.score({"acc": 0.9, "latency_ms": 10.0}) == pytest.approx(0.9447450, abs=1e-7)
    assert obj.score({"acc": 0.9, "latency_ms": 20.0}) == pytest.approx(0.9)
    steep = Objective("acc", soft_targets=(SoftTarget("latency_ms", 20.0, alpha=0.0, beta=-1.0),))
    assert steep.score({"acc": 0.9, "latency_ms": 10.0}) == pytest.approx(0.9)  # no gain below the target
    assert steep.score({"acc": 0.9, "latency_ms": 30.0}) == pytest.approx(0.6)  # 0.9 * 20 / 30
    assert obj.score({"acc": 0.9}) == -math.inf  # the cost metric is missing
    two = Objective("acc", soft_targets=(SoftTarget("latency_ms", 20.0), SoftTarget("peak_sram", 100.0, 0.0, -1.0)))
    assert two.score({"acc": 0.9, "latency_ms": 30.0, "peak_sram": 200.0}) == pytest.approx(0.8748148 / 2, abs=1e-7)


def test_soft_target_and_objective_text_round_trip():
    obj = Objective.parse("val_acc:max@latency_ms=20@peak_sram=65536:0:-1")
    assert obj.soft_targets == (SoftTarget("latency_ms", 20.0), SoftTarget("peak_sram", 65536.0, 0.0, -1.0))
    assert Objective.parse(obj.spec()) == obj
    assert Objective.parse("val_acc").spec() == "val_acc:max"
    assert SoftTarget.parse("lat=5:-0.1") == SoftTarget("lat", 5.0, -0.1, -0.1)  # beta defaults to alpha


@pytest.mark.parametrize("text", ["latency_ms", "latency_ms=", "latency_ms=0", "latency_ms=-3", "=20",
                                  "latency_ms=20:a", "latency_ms=20:1:2:3", "latency_ms=inf"])
def test_bad_soft_targets_are_refused(text):
    with pytest.raises(ConfigError):
        SoftTarget.parse(text)


def test_soft_targets_need_a_maximised_objective():
    with pytest.raises(ConfigError, match="maximise"):
        Objective.parse("latency_ms:min@peak_sram=100")
    with pytest.raises(ConfigError, match="one soft target per metric"):
        Objective.parse("acc@lat=1@lat=2")


def test_regularized_evolution_optimises_the_soft_objective(nb201):
    """acc grows with conv edges, latency doubles with each one. With a steep soft target at 4 (2 convs), the
    best genome by the MnasNet reward has exactly 2 convs; the raw accuracy alone would want 6."""

    def evaluate(genome):
        convs = sum("conv" in op for op in genome.ops)
        return {"acc": 50.0 + convs, "latency_ms": 2.0**convs}

    problem = Problem((Objective("acc", soft_targets=(SoftTarget("latency_ms", 4.0, 0.0, -1.0),)),))
    strat = STRATEGIES.create("regularized-evolution", nb201, problem, seed=0)
    loop = run_search(strat, problem, evaluate, budget=150)
    best = best_trial(problem, list(loop.trials))
    assert best is not None and best.metrics["latency_ms"] == 4.0
    # independent oracle: the reward written out by hand for every conv count
    rewards = {c: (50.0 + c) * (1.0 if 2.0**c <= 4.0 else 4.0 / 2.0**c) for c in range(7)}
    assert max(rewards, key=rewards.get) == 2
    assert fitness(problem, best) == pytest.approx(rewards[2])
    assert max(t.metrics["acc"] for t in loop.trials if t.status is Status.OK) > best.metrics["acc"]


def test_reinforce_optimises_the_soft_objective(nb201):
    def evaluate(genome):
        convs = sum("conv" in op for op in genome.ops)
        return {"acc": 50.0 + convs, "latency_ms": 2.0**convs}

    problem = Problem((Objective("acc", soft_targets=(SoftTarget("latency_ms", 4.0, 0.0, -1.0),)),))
    loop = run_search(Reinforce(nb201, problem, seed=0), problem, evaluate, budget=150)
    assert best_trial(problem, list(loop.trials)).metrics["latency_ms"] == 4.0


# --- bench CLI ------------------------------------------------------------------------------------------------
def test_bench_cli_reinforce_with_a_latency_target(tmp_path):
    from tinyevo.cli.main import main

    out = tmp_path / "r.json"
    rc = main(["bench", "nb201", "--strategy", "reinforce", "--budget", "15", "--seeds", "2",
               "--latency-target-ms", "20", "--latency-device", "raspi4", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["strategy"] == "reinforce"
    assert data["objective"] == "valid_acc:max@latency_ms_raspi4=20.0"
    # each seed's best is the best by the MnasNet reward among its trials
    for s in data["per_seed"]:
        m = s["best_metrics"]
        assert m["valid_acc"] == s["best"]


def test_bench_cli_latency_target_needs_a_device(capsys):
    from tinyevo.cli.main import main

    assert main(["bench", "nb201", "--latency-target-ms", "20", "--budget", "2", "--seeds", "1"]) == 2
