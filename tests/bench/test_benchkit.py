"""bench/benchkit.py: the interleaving, summaries, tables and machine description the benchmarks share;
bench/train.py's loss check."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchkit = _load("benchkit")


def test_interleave_takes_turns_and_drops_the_warmup_rounds():
    calls = []

    def run(name):
        def go():
            calls.append(name)
            return float(len(calls))
        return go

    out = benchkit.interleave({"A": run("A"), "B": run("B")}, repeats=3, warmup=1)
    assert calls == ["A", "B"] * 4
    assert out == {"A": [3.0, 5.0, 7.0], "B": [4.0, 6.0, 8.0]}


@pytest.mark.parametrize("repeats, warmup", [(0, 0), (2, -1)])
def test_interleave_refuses_no_rounds(repeats, warmup):
    with pytest.raises(ValueError):
        benchkit.interleave({"A": lambda: 1.0}, repeats=repeats, warmup=warmup)


def test_stopwatch_returns_seconds():
    assert 0 <= benchkit.stopwatch(lambda: None)() < 1


def test_summary():
    s = benchkit.summary([5.0, 1.0, 4.0, 2.0, 3.0])
    assert s == {"n": 5, "median": 3.0, "min": 1.0, "max": 5.0, "q1": 2.0, "q3": 4.0}
    assert benchkit.summary([2.0]) == {"n": 1, "median": 2.0, "min": 2.0, "max": 2.0, "q1": 2.0, "q3": 2.0}
    assert benchkit.summary([1.0, 2.0])["median"] == 1.5
    with pytest.raises(ValueError):
        benchkit.summary([])


def test_rates_and_paired_ratios():
    assert benchkit.rates([2.0, 4.0], 8) == [4.0, 2.0]
    assert benchkit.paired_ratios([4.0, 3.0], [2.0, 3.0]) == [2.0, 1.0]
    with pytest.raises(ValueError):
        benchkit.paired_ratios([1.0], [1.0, 2.0])


def test_spread_and_table():
    assert benchkit.spread(benchkit.summary([30.94, 31.4, 32.0])) == "31.4 (30.9-32.0)"
    assert benchkit.spread(benchkit.summary([1.5]), digits=2, unit="x") == "1.50x (1.50-1.50)"
    assert benchkit.markdown_table(["a", "b"], [(1, "x"), (2, "y")]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |"
    with pytest.raises(ValueError):
        benchkit.markdown_table(["a", "b"], [(1,)])


def test_write_json_leaves_no_temporary_file(tmp_path):
    path = benchkit.write_json(tmp_path / "sub" / "out.json", {"x": [1.5]})
    assert json.loads(path.read_text()) == {"x": [1.5]}
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_machine_names_what_timings_depend_on():
    m = benchkit.machine()
    for key in ("cpu", "logical_cpus", "usable_cpus", "torch", "torch_threads", "cpu_capability", "native_bf16",
                "load_average"):
        assert m[key] is not None, key
    json.dumps(m)
    assert m["torch"] in benchkit.describe(m)
    assert benchkit.peak_rss_bytes() > 1e6


def test_refuse_exits_with_2(capsys):
    with pytest.raises(SystemExit) as err:
        benchkit.refuse("losses differ")
    assert err.value.code == 2
    assert "refusing to time: losses differ" in capsys.readouterr().err


def test_load_warning():
    quiet = {"load_average": [0.4, 0.5, 0.5], "usable_cpus": 2}
    assert benchkit.load_warning(quiet) is None
    assert "load average 4.6 on 2 CPUs" in benchkit.load_warning({**quiet, "load_average": [4.6, 3, 3]})


@pytest.fixture
def train(monkeypatch):
    monkeypatch.setitem(sys.modules, "benchkit", benchkit)  # as `import benchkit` finds it from bench/
    return _load("train")


def test_train_check_passes_the_same_losses(train, capsys):
    conf = {"precision": "bf16", "checkpointing": False, "dropout": 0.0}
    out = train.check({"transformers": {"loss": 10.751, "fp32_loss": 10.74912},
                       "gpt2kit": {"loss": 10.749, "fp32_loss": 10.74913}}, conf)
    assert out["tolerance"] == {"fp32": 1e-4, "bf16": 1e-2}
    assert "|difference| 2.0e-03 < 0.01" in capsys.readouterr().out


@pytest.mark.parametrize("precision, transformers, gpt2kit, why", [
    ("fp32", (10.7, 10.7), (10.7002, 10.7002), "fp32 losses on the same batch with dropout off differ by 0.0002"),
    ("bf16", (10.7, 10.7), (10.72, 10.7), "bf16 losses on the same batch with dropout off differ by 0.02"),
    ("bf16", (10.701, 10.7), (10.7, 10.7), "gpt2kit's loss under bf16 autocast equals its fp32 loss"),
])
def test_train_check_refuses_to_time(train, capsys, precision, transformers, gpt2kit, why):
    conf = {"precision": precision, "checkpointing": True, "dropout": 0.1}
    with pytest.raises(SystemExit) as err:
        train.check({"transformers": dict(zip(("loss", "fp32_loss"), transformers, strict=True)),
                     "gpt2kit": dict(zip(("loss", "fp32_loss"), gpt2kit, strict=True))}, conf)
    assert err.value.code == 2
    assert why in capsys.readouterr().err
