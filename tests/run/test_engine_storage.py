"""The engine drives a run through the :class:`Storage` protocol only, so any storage (here the in-memory one)
gives the same run as the SQLite run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from run_fakes import fake_config, fake_parts, trial_signature

from tinyevo.executors import create_executor
from tinyevo.run.engine import Engine, resolve_run_identity, start_run
from tinyevo.storage import InMemoryStorage, Storage, new_meta

_PROTOCOL = frozenset(n for n, v in vars(Storage).items() if callable(v) and not n.startswith("_"))


class ProtocolOnly:
    """A storage that offers exactly the methods of the :class:`Storage` protocol (and nothing else)."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name not in _PROTOCOL:
            raise AttributeError(f"{name!r} is not part of the Storage protocol")
        return getattr(self._inner, name)


def test_the_protocol_lists_the_core_methods() -> None:
    assert {"create", "meta", "add", "records", "finals", "add_final", "get_state", "set_state"} <= _PROTOCOL


def test_engine_on_an_in_memory_storage_through_the_protocol_only(tmp_path: Path) -> None:
    cfg = fake_config(budget=8, batch=2, final=True)
    start_run(cfg, run_dir=tmp_path / "sqlite", parts=fake_parts(cfg), executor=create_executor("inprocess"))

    resolved = resolve_run_identity(cfg)
    memory = InMemoryStorage()
    memory.create(new_meta(resolved.seed, resolved.to_json()))
    (tmp_path / "memory").mkdir()
    engine = Engine(tmp_path / "memory", resolved, ProtocolOnly(memory), fake_parts(resolved),
                    executor=create_executor("inprocess"))
    result = engine.run()

    got = [(r.number, r.trial.genome, r.trial.status.value, dict(r.trial.metrics), r.trial.parents, r.trial.origin,
            r.batch, r.eval_seed) for r in memory.records()]
    assert got == trial_signature(tmp_path / "sqlite")
    assert len(got) == 8 and memory.get_state("phase") == "done"
    assert [f.trial for f in memory.finals()] == [f.trial for f in result.finals] and result.finals
