"""Search trials on Ray (search.workers) and final training on several devices."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from earth_lib.distributed import trial_executor
from earth_lib.errors import ParameterError
from earth_lib.params import search_plan as plan
from earth_lib.search import SearchSpace, run_search

SPACE = {"a": {"type": "continuous", "bounds": [0.0, 1.0]},
         "b": {"type": "discrete", "values": [1, 2, 3]}}

# The driver of a Ray search, run as its own process so that it can be killed. Its objective
# is defined here (shipped to the workers by value); the first trial with a > 0.5 kills its
# worker process (os._exit), once: the search must record it as failed and go on.
DRIVER = textwrap.dedent("""
    import os, sys, time
    from earth_lib.distributed import trial_executor
    from earth_lib.params import search_plan
    from earth_lib.search import SearchSpace, run_search

    history, marker, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def objective(hp):
        time.sleep(pause)
        if hp["a"] > 0.5 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker dies in the middle of a trial
        return {"val_loss": (hp["a"] - 0.3) ** 2 + 0.1 * hp["b"], "val_accuracy": 0.5}

    space = SearchSpace.from_dict({SPACE!r})
    executor = trial_executor(workers=2)
    print(executor.describe(), flush=True)
    result = run_search(objective, space, history,
                        search_plan(steps=2, initial_points=3, iterations_per_step=4, seed=5,
                                    workers=2),
                        executor=executor, log=lambda m: print(m, flush=True))
    print("DONE", len(result.trials), flush=True)
""").replace("{SPACE!r}", repr(SPACE))


def _rows(path):
    with open(path, newline="") as f:
        return [r for r in csv.reader(f) if r and not r[0].startswith("#")]


def test_one_worker_and_no_address_needs_no_ray(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert trial_executor(workers=1, address=None) is None


def test_ray_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ParameterError, match=r"pip install -e '.\[distributed\]'"):
        trial_executor(workers=2)


def test_constant_liar_rounds_in_process_are_recorded_in_order(tmp_path):
    """workers=3 without an executor: rounds of 3 distinct suggestions, history in order."""
    space = SearchSpace.from_dict(SPACE)
    r = run_search(lambda hp: {"val_loss": (hp["a"] - 0.3) ** 2}, space, tmp_path / "h.csv",
                   plan(steps=1, initial_points=3, iterations_per_step=6, workers=3, seed=1),
                   log=lambda m: None)
    bo = [t for t in r.trials if t.source == "bo"]
    assert [t.trial for t in bo] == list(range(6))
    assert len({(round(t.hp["a"], 9), t.hp["b"]) for t in bo[:3]}) == 3  # no repeated point


@pytest.mark.slow
def test_search_on_local_ray_survives_a_dead_worker_and_a_killed_driver(root, tmp_path):
    """search.workers: 2 on a local Ray: trials at once; a worker that dies is one failed trial;
    the driver killed (SIGKILL) mid-search, then rerun: nothing lost, repeated or half-written."""
    pytest.importorskip("ray")
    history, marker = tmp_path / "history.csv", tmp_path / "crashed"
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-c", DRIVER, str(history), str(marker)]
    first = subprocess.Popen(cmd + ["1.5"], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if history.is_file() and len(_rows(history)) >= 1 + 4:  # header + 4 trials
            break
        time.sleep(0.2)
    assert first.poll() is None, first.stdout.read()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    first.wait()
    before = _rows(history)[1:]
    res = subprocess.run(cmd + ["0.2"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300, start_new_session=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "DONE 14" in res.stdout and "2 at once" in res.stdout
    header, *rows = _rows(history)
    assert rows[:len(before)] == before  # finished trials kept as they were, not rerun
    keys = [(r[header.index("step")], r[header.index("source")], r[header.index("trial")])
            for r in rows]
    assert len(keys) == len(set(keys)) == 14 and all(len(r) == len(header) for r in rows)
    failed = [r for r in rows if r[header.index("status")] == "failed"]
    assert len(failed) == 1 and marker.is_file()
    assert "Worker" in failed[0][header.index("error")]  # Ray's WorkerCrashedError, named
    losses = [float(r[header.index("val_loss")]) for r in rows if r not in failed]
    assert np.isfinite(losses).all()


@pytest.mark.slow
def test_mirrored_strategy_over_two_devices_scales_the_batch(root):
    """train.distribute: auto with two devices (two logical CPUs stand in for GPUs): the
    model is trained under MirroredStrategy, batch_size per device; one device: unchanged."""
    job = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        from earth_lib.data import Split
        from earth_lib.nn.training import distribution_strategy, train_model
        from earth_lib.params import TrainSettings
        assert distribution_strategy("auto") is None  # no GPU here: one device, no strategy
        assert distribution_strategy("off", "CPU") is None
        strategy = distribution_strategy("auto", "CPU")
        rng = np.random.default_rng(0)
        y = np.arange(32) % 2
        x = (rng.integers(0, 80, (32, 8, 8, 3)) + 150 * y[:, None, None, None]).astype(np.uint8)
        hp = {"learning_rate": 3e-3, "batch_size": 4, "kernel_size": 3}
        model, hist = train_model(hp, Split(x, y), Split(x, y), 2, (8, 8, 3),
                                  TrainSettings.of(preset="small", epochs=2), seed=42,
                                  verbose=False, strategy=strategy)
        ok = np.isfinite(hist["loss"]).all()
        print(strategy.num_replicas_in_sync, hist["global_batch_size"][0], ok)
    """)
    res = subprocess.run([sys.executable, "-c", job], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split()[-3:] == ["2", "8.0", "True"]
