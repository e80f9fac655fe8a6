"""WarmStart: seeds first, then the inner strategy, which learns from the seeds' outcomes."""

from __future__ import annotations

import pytest
from strategy_fakes import conv_count

from tinyevo.strategies import STRATEGIES
from tinyevo.strategies.base import Candidate, Status, Trial, replay
from tinyevo.strategies.loop import run_search
from tinyevo.strategies.warmstart import WarmStart

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("name", ["surrogate-evolution", "regularized-evolution", "random", "nsga2"])
def test_seeds_are_evaluated_first_then_the_inner_strategy(name, nb201, conv_problem):
    seeds = [nb201.parse(RESNET), nb201.parse(BEST)]

    def run():
        inner = STRATEGIES.create(name, nb201, conv_problem, seed=3)
        return run_search(WarmStart(inner, seeds), conv_problem, conv_count, budget=12)

    res = run()
    genomes = [str(t.genome) for t in res.trials]
    assert genomes[:2] == [RESNET, BEST]
    assert len(set(genomes)) == len(genomes)
    assert genomes == [str(t.genome) for t in run().trials]  # deterministic


def test_inner_strategy_learns_from_seeds(nb201, conv_problem):
    """Seeded with the optimum (6 convs, 0 pools), an evolution that discards the worst keeps it, and later children descend from it."""
    inner = STRATEGIES.create("evolution-tournament", nb201, conv_problem, seed=0)
    ws = WarmStart(inner, [nb201.parse(BEST)])
    res = run_search(ws, conv_problem, conv_count, budget=100)
    assert str(res.trials[0].genome) == BEST
    # the 50 random initial members come next; the seed joined the population at once, and tournaments of 10
    # pick it as a parent of later children
    assert any(BEST in t.parents for t in res.trials[51:])


def test_a_proposal_equal_to_a_pending_seed_is_reasked(nb201, conv_problem):
    class Echo:
        """Proposes the seed first (as a strategy that has not been told about it yet would), then others."""

        def __init__(self):
            self.calls = 0

        def ask(self):
            self.calls += 1
            return Candidate(genome=nb201.parse(RESNET if self.calls == 1 else BEST))

        def tell(self, candidate, trial):
            pass

    ws = WarmStart(Echo(), [nb201.parse(RESNET)])
    assert str(ws.ask().genome) == RESNET
    assert str(ws.ask().genome) == BEST  # the duplicate was skipped


def test_replay_rebuilds_a_warm_started_strategy(nb201, conv_problem):
    seeds = [nb201.parse(RESNET)]
    first = WarmStart(STRATEGIES.create("surrogate-evolution", nb201, conv_problem, seed=1), seeds)
    history = []
    for i in range(8):
        c = first.ask()
        t = Trial(number=i, genome=c.genome, status=Status.OK, metrics=conv_count(c.genome))
        first.tell(c, t)
        history.append((c, t))
    again = WarmStart(STRATEGIES.create("surrogate-evolution", nb201, conv_problem, seed=1), seeds)
    replay(again, history)
    assert str(again.ask().genome) == str(first.ask().genome)
