import math
import time
from pathlib import Path

import numpy as np
import pytest

from earth_lib.errors import SearchHistoryError
from earth_lib.params import DEFAULT_SPACE, validate_space
from earth_lib.params import search_plan as plan
from earth_lib.search import SearchHistory, SearchSpace, run_search

SPACE = SearchSpace.from_dict(validate_space(DEFAULT_SPACE))
SMALL = SearchSpace.from_dict({
    "x": {"type": "continuous", "bounds": [0, 10]},
    "lr": {"type": "continuous", "bounds": [1e-4, 1e-1], "log": True},
    "k": {"type": "discrete", "values": [1, 3, 5, 7]},
})


def bowl(hp):
    return {"val_loss": (hp["x"] - 7) ** 2 / 10 + (math.log10(hp["lr"]) + 2) ** 2
            + abs(hp["k"] - 5) / 2, "val_accuracy": 0.5}


def test_space_is_parsed_in_declared_order_with_types():
    assert SPACE.names[:3] == ["rotation", "zoom", "width_shift"]
    dims = {d.name: d for d in SPACE.dims}
    assert dims["learning_rate"].log and dims["learning_rate"].internal_bounds()[0] == -4
    assert dims["kernel_size"].values == (1.0, 3.0, 5.0)


def test_encode_decode_round_trip():
    hp = {"x": 2.5, "lr": 0.003, "k": 5}
    back = SMALL.decode(SMALL.encode(hp))
    assert back["x"] == pytest.approx(2.5) and back["lr"] == pytest.approx(0.003)
    assert back["k"] == 5 and isinstance(back["k"], int)


def test_latin_hypercube_is_seeded_and_inside():
    a = SMALL.latin_hypercube(8, seed=3)
    assert a == SMALL.latin_hypercube(8, seed=3) and a != SMALL.latin_hypercube(8, seed=4)
    assert all(SMALL.contains(p) for p in a)
    xs = sorted(p["x"] for p in a)  # one point per eighth of the range
    assert all(i * 1.25 <= x < (i + 1) * 1.25 for i, x in enumerate(xs))


def test_tightening_rule():
    best = {"x": 9.5, "lr": 1e-2, "k": 7}
    t = SMALL.tighten(best, 0.5)
    d = {x.name: x for x in t.dims}
    assert d["x"].bounds == pytest.approx((5.0, 10.0))  # half width, pushed back inside
    lo, hi = d["lr"].internal_bounds()
    assert hi - lo == pytest.approx(1.5) and lo <= -2 <= hi
    assert d["k"].values == (5.0, 7.0)  # best and its neighbour
    assert SMALL.tighten({"x": 5, "lr": 1e-3, "k": 3}, 0.5).dims[2].values == (1.0, 3.0, 5.0)
    assert t.contains(best)


def test_search_records_every_trial_and_improves(tmp_path):
    hist = tmp_path / "h.csv"
    res = run_search(bowl, SMALL, hist,
                     plan(steps=3, initial_points=4, iterations_per_step=4, seed=0),
                     log=lambda m: None)
    assert len(res.trials) == 24 and len(res.spaces) == 3
    assert len(hist.read_text().strip().splitlines()) == 25
    first_step_best = min(t.val_loss for t in res.trials if t.step == 1)
    assert res.best.val_loss <= first_step_best
    assert res.best.val_loss < min(t.val_loss for t in res.trials[:4])
    widths = [s.dims[0].bounds[1] - s.dims[0].bounds[0] for s in res.spaces]
    assert widths == pytest.approx([10, 5, 2.5])


class Interrupt(KeyboardInterrupt):
    """What Ctrl-C (or a notebook's interrupt) raises inside a trial: not a failed trial."""


def test_interrupted_search_resumes_without_rerunning(tmp_path):
    calls = []

    def flaky(hp):
        calls.append(hp)
        if len(calls) == 7:
            raise Interrupt
        time.sleep(0.01)
        return bowl(hp)

    with pytest.raises(Interrupt):
        run_search(flaky, SMALL, tmp_path / "h.csv",
                   plan(steps=2, initial_points=3, iterations_per_step=3, seed=1),
                   log=lambda m: None)
    assert len(SearchHistory(tmp_path / "h.csv", SMALL.names).trials) == 6
    calls.clear()
    resumed = run_search(bowl_counter := _Counter(), SMALL, tmp_path / "h.csv",
                         plan(steps=2, initial_points=3, iterations_per_step=3, seed=1),
                         log=lambda m: None)
    assert bowl_counter.n == 6  # only the 6 missing trials ran
    first_six = SearchHistory(tmp_path / "h.csv", SMALL.names).trials[:6]
    assert resumed.resumed_seconds == pytest.approx(sum(t.seconds for t in first_six))
    assert resumed.resumed_seconds >= 0.05  # their time counts in the resumed search's cost
    fresh = run_search(bowl, SMALL, tmp_path / "fresh.csv",
                       plan(steps=2, initial_points=3, iterations_per_step=3, seed=1),
                       log=lambda m: None)
    for a, b in zip(resumed.trials, fresh.trials, strict=True):
        assert a.hp == pytest.approx(b.hp) and a.val_loss == pytest.approx(b.val_loss)


class _Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, hp):
        self.n += 1
        return bowl(hp)


def test_history_from_another_space_is_refused(tmp_path):
    run_search(bowl, SMALL, tmp_path / "h.csv",
               plan(steps=1, initial_points=2, iterations_per_step=0), log=lambda m: None)
    with pytest.raises(ValueError, match="space changed"):
        run_search(bowl, SPACE, tmp_path / "h.csv",
                   plan(steps=1, initial_points=2, iterations_per_step=0), log=lambda m: None)


def test_failed_trials_do_not_stop_the_search(tmp_path):
    def sometimes_nan(hp):
        return {"val_loss": float("nan") if hp["x"] < 3 else bowl(hp)["val_loss"]}

    res = run_search(sometimes_nan, SMALL, tmp_path / "h.csv",
                     plan(steps=2, initial_points=4, iterations_per_step=2, seed=0),
                     log=lambda m: None)
    assert np.isfinite(res.best.val_loss)
    assert {t.status for t in res.trials if not np.isfinite(t.val_loss)} == {"failed"}


def test_a_trial_that_raises_is_recorded_as_failed_and_the_search_goes_on(tmp_path):
    def out_of_memory_when_large_k(hp):
        if hp["k"] >= 5:
            raise MemoryError("OOM when allocating tensor\nwith shape [64,64]")
        return bowl(hp)

    res = run_search(out_of_memory_when_large_k, SMALL, tmp_path / "h.csv",
                     plan(steps=2, initial_points=4, iterations_per_step=2, seed=0),
                     log=lambda m: None)
    failed = [t for t in res.trials if t.status == "failed"]
    assert failed and len(res.trials) == 12
    assert all(t.error.startswith("MemoryError: OOM") and "\n" not in t.error for t in failed)
    assert res.best.hp["k"] < 5
    rows = SearchHistory(tmp_path / "h.csv", SMALL.names).trials  # the errors are on disk
    assert [t.error for t in rows] == [t.error for t in res.trials]


def test_a_changed_fingerprint_is_refused_naming_the_part(tmp_path):
    from earth_lib.search import fingerprint

    fp = fingerprint({"trial": {"epochs": 8}, "data": np.zeros(4)})
    run_search(bowl, SMALL, tmp_path / "h.csv",
               plan(steps=1, initial_points=2, iterations_per_step=0), fingerprint=fp,
               log=lambda m: None)
    again = run_search(_Counter(), SMALL, tmp_path / "h.csv",
                       plan(steps=1, initial_points=2, iterations_per_step=0), fingerprint=fp,
                       log=lambda m: None)
    assert len(again.trials) == 2  # same fingerprint: resumed, nothing re-run
    other = fingerprint({"trial": {"epochs": 16}, "data": np.zeros(4)})
    with pytest.raises(SearchHistoryError, match=r"trial changed.*delete .*h.csv"):
        run_search(bowl, SMALL, tmp_path / "h.csv",
                   plan(steps=1, initial_points=2, iterations_per_step=0), fingerprint=other,
                   log=lambda m: None)
    data = fingerprint({"trial": {"epochs": 8}, "data": np.ones(4)})
    with pytest.raises(SearchHistoryError, match="data changed"):
        run_search(bowl, SMALL, tmp_path / "h.csv",
                   plan(steps=1, initial_points=2, iterations_per_step=0), fingerprint=data,
                   log=lambda m: None)


def test_a_history_without_fingerprint_is_refused_when_one_is_asked(tmp_path):
    from earth_lib.errors import SearchHistoryError

    run_search(bowl, SMALL, tmp_path / "h.csv",
               plan(steps=1, initial_points=2, iterations_per_step=0), log=lambda m: None)
    (tmp_path / "h.fingerprint.json").unlink()
    with pytest.raises(SearchHistoryError, match="no fingerprint"):
        run_search(bowl, SMALL, tmp_path / "h.csv",
                   plan(steps=1, initial_points=2, iterations_per_step=0),
                   fingerprint={"trial": "x"}, log=lambda m: None)


def test_a_history_of_other_columns_is_refused(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("step,trial,source,x,lr,k,val_loss,val_accuracy,seconds\n"
                    "1,0,initial,2.5,0.001,3,0.7,0.5,1.0\n")
    with pytest.raises(SearchHistoryError, match="delete it to start again"):
        SearchHistory(path, SMALL.names)


def test_finalists_decide_on_longer_repeated_trials(tmp_path):
    """The short-trial winner is not chosen when its longer trials lose (multi-fidelity)."""
    def short_sighted(hp, budget=1.0, repeat=0):
        loss = bowl(hp)["val_loss"]
        if budget > 1:  # at the long budget, high x stops paying
            loss = (hp["x"] - 4) ** 2 / 10 + 0.01 * repeat
        return {"val_loss": loss, "val_accuracy": 0.5}

    longer = plan(steps=1, initial_points=6, iterations_per_step=0, finalists=3, finalist_budget=3,
                  finalist_repeats=2, seed=0)
    res = run_search(short_sighted, SMALL, tmp_path / "h.csv", longer, log=lambda m: None)
    short = [t for t in res.trials if t.budget == 1]
    final = [t for t in res.trials if t.budget == 3]
    assert len(final) == 6 and {t.source for t in final} == {"finalist"}
    assert res.trial_budget == 6 + 6 * 3
    top3 = sorted(short, key=lambda t: t.val_loss)[:3]
    chosen = min(top3, key=lambda t: (t.hp["x"] - 4) ** 2)
    assert res.best.hp == chosen.hp
    assert res.best.val_loss == pytest.approx((chosen.hp["x"] - 4) ** 2 / 10 + 0.005)


def test_start_points_and_random_design(tmp_path):
    lit = {"x": 1.0, "lr": 1e-3, "k": 3}
    res = run_search(
        bowl,
        SMALL,
        tmp_path / "h.csv",
        plan(
            steps=2,
            initial_points=3,
            iterations_per_step=0,
            design="random",
            start_points=[lit],
            seed=0,
        ),
        log=lambda m: None,
    )
    step1 = [t.hp for t in res.trials if t.step == 1]
    assert step1[-1] == lit and len(step1) == 4
    best1 = min((t for t in res.trials if t.step == 1), key=lambda t: t.val_loss)
    assert [t.hp for t in res.trials if t.step == 2][-1] == best1.hp  # best re-tried
    pts = SMALL.random_points(50, seed=1)
    assert all(SMALL.contains(p) for p in pts) and pts == SMALL.random_points(50, seed=1)


def test_a_point_scored_before_is_not_trained_again(tmp_path):
    # the best point so far joins each later step's design, and the literature values are
    # scored again after the search: with a seeded objective both would repeat a trial
    # digit for digit, so its result is copied (status "reused", 0 s), not re-run
    from earth_lib.search import search_or_baseline

    calls = []

    def objective(hp):
        calls.append(dict(hp))
        return bowl(hp)

    lit = {"x": 7.0, "lr": 1e-2, "k": 5}  # the bowl's bottom: the best point of every step
    sel = search_or_baseline(
        objective,
        SMALL,
        tmp_path / "h.csv",
        lit,
        plan(steps=3, initial_points=2, iterations_per_step=1, start_points=[lit], seed=0),
        log=lambda m: None,
        enabled=True,
        evaluate_baseline=True,
    )
    trials = sel.search.trials
    reused = [t for t in trials if t.status == "reused"]
    assert [(t.step, t.hp, t.seconds) for t in reused] == [(2, lit, 0.0), (3, lit, 0.0)]
    assert all(t.val_loss == trials[2].val_loss == 0.0 for t in reused)
    assert len(trials) == 3 * 4 and len(calls) == len(trials) - 2  # baseline not re-run too
    assert sum(c == lit for c in calls) == 1 and sel.baseline_loss == 0.0
    assert sel.search.trial_budget == len(trials) - 2
    again = run_search(
        objective,
        SMALL,
        tmp_path / "h.csv",
        plan(steps=3, initial_points=2, iterations_per_step=1, start_points=[lit], seed=0),
        log=lambda m: None,
    )
    assert [t.status for t in again.trials] == [t.status for t in trials]  # read back as such


def test_binary_dimension_is_fixed_once_clear():
    space = SearchSpace.from_dict({"x": {"type": "continuous", "bounds": [0, 1]},
                                   "flip": {"type": "discrete", "values": [0, 1]}})
    t = space.tighten({"x": 0.5, "flip": 1}, 0.5, settled={"flip"})
    assert {d.name: d.values for d in t.dims}["flip"] == (1.0,)


def test_search_module_is_generic():
    import earth_lib.search as s

    files = sorted(Path(s.__file__).parent.glob("*.py"))
    assert len(files) >= 5
    for f in files:
        source = f.read_text()
        assert "keras" not in source and "tensorflow" not in source, f
        assert "earth_lib.nn.model" not in source and "earth_lib.nn.training" not in source, f


def test_search_or_baseline_searches_when_enabled(tmp_path):
    from earth_lib.search import search_or_baseline

    base = {"x": 1.0, "lr": 1e-3, "k": 1}
    sel = search_or_baseline(bowl, SMALL, tmp_path / "h.csv", base,
                             plan(steps=1, initial_points=4, iterations_per_step=1, seed=0),
                             log=lambda m: None, enabled=True, evaluate_baseline=True)
    assert sel.chosen_by == "search" and sel.hyperparameters == sel.search.best.hp
    assert sel.baseline_loss == pytest.approx(bowl(base)["val_loss"])
    assert len(sel.history) == 5 and sel.history[0]["source"] == "initial"
    summary = sel.summary()
    assert set(summary) == {"search best", "baseline (literature values)"}
    assert summary["search best"]["x"] == sel.search.best.hp["x"]  # scores, then values
    rec = sel.record()
    assert rec["search"]["trials"] == 5 and rec["search"]["chosen_by"] == "search"
    assert sel.trained_with == "search values"
    assert rec["literature_baseline"]["hyperparameters"] == base


def test_search_or_baseline_takes_the_baseline_when_disabled(tmp_path):
    from earth_lib.search import search_or_baseline

    calls = []

    def objective(hp):
        calls.append(hp)
        return bowl(hp)

    base = {"x": 1.0, "lr": 1e-3, "k": 1}
    sel = search_or_baseline(objective, SMALL, tmp_path / "h.csv", base, plan(), enabled=False,
                             evaluate_baseline=False, log=lambda m: None)
    assert sel.chosen_by == "baseline" and sel.hyperparameters == base
    assert sel.trained_with == "literature values"
    policy = search_or_baseline(objective, SMALL, tmp_path / "h.csv",
                                {**base, "policy": "dihedral"}, plan(), enabled=False,
                                evaluate_baseline=True, log=lambda m: None)
    assert policy.trained_with == "dihedral augmentation"  # named by what it trains
    assert policy.baseline is None  # no search, no yardstick: nothing scored (calls below)
    assert calls == [] and sel.history == [] and sel.bounds_table() == [
        {"step": "none (search off)"}]  # notebook 2 indexes the rows by step, on or off
    assert sel.summary() == {"final training (search off)": base}  # what it trains, unscored
    from earth_lib.report.plotting import plot_convergence

    fig = plot_convergence(sel.history)  # says so, and claims nothing of the values
    assert [t.get_text() for t in fig.axes[0].texts] == ["no search ran: no trials to draw"]
    assert not fig.axes[0].axison
    assert sel.record()["search"] == {"best_hyperparameters": base, "chosen_by": "baseline",
                                      "trials": 0, "failed_trials": 0, "trial_budget": 0.0,
                                      "best_val_loss": None, "stop_reasons": [],
                                      "step_bounds": []}
    assert not (tmp_path / "h.csv").exists()


KILLABLE = """
import sys, time
from earth_lib.params import search_plan
from earth_lib.search import SearchSpace, run_search
space = SearchSpace.from_dict({"x": {"type": "continuous", "bounds": [0, 10]},
                               "k": {"type": "discrete", "values": [1, 3, 5]}})
def slow(hp):
    time.sleep(0.4)
    return {"val_loss": (hp["x"] - 7) ** 2 + hp["k"], "val_accuracy": 0.5}
run_search(slow, space, sys.argv[1],
           search_plan(steps=2, initial_points=4, iterations_per_step=0, seed=3),
           fingerprint={"trial": "slow"}, log=lambda m: None)
"""


def test_sigkill_during_a_trial_loses_and_repeats_nothing(tmp_path, root):
    import os
    import signal
    import subprocess
    import sys
    import time

    script, hist = tmp_path / "search.py", tmp_path / "h.csv"
    script.write_text(KILLABLE)
    proc = subprocess.Popen([sys.executable, str(script), str(hist)], cwd=root)
    deadline = time.time() + 120
    while time.time() < deadline and (not hist.exists()
                                      or len(hist.read_text().splitlines()) < 4):
        time.sleep(0.05)
    time.sleep(0.2)  # now inside the fourth trial
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = hist.read_text().splitlines()
    assert len(before) >= 4 and all(len(r.split(",")) == len(before[0].split(","))
                                    for r in before)
    subprocess.run([sys.executable, str(script), str(hist)], cwd=root, check=True, timeout=120)
    after = hist.read_text().splitlines()
    assert after[:len(before)] == before  # finished trials kept as they were
    keys = [tuple(r.split(",")[:3]) for r in after[1:]]
    assert len(keys) == 8 and len(set(keys)) == 8  # every trial once, none twice
