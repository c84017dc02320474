import math

import numpy as np
import pytest

from earth_lib.params import DEFAULT_SPACE, validate_space
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
    res = run_search(bowl, SMALL, hist, steps=3, initial_points=4, iterations_per_step=4,
                     seed=0, log=lambda m: None)
    assert len(res.trials) == 24 and len(res.spaces) == 3
    assert len(hist.read_text().strip().splitlines()) == 25
    first_step_best = min(t.val_loss for t in res.trials if t.step == 1)
    assert res.best.val_loss <= first_step_best
    assert res.best.val_loss < min(t.val_loss for t in res.trials[:4])
    widths = [s.dims[0].bounds[1] - s.dims[0].bounds[0] for s in res.spaces]
    assert widths == pytest.approx([10, 5, 2.5])


class Interrupt(Exception):
    pass


def test_interrupted_search_resumes_without_rerunning(tmp_path):
    calls = []

    def flaky(hp):
        calls.append(hp)
        if len(calls) == 7:
            raise Interrupt
        return bowl(hp)

    with pytest.raises(Interrupt):
        run_search(flaky, SMALL, tmp_path / "h.csv", steps=2, initial_points=3,
                   iterations_per_step=3, seed=1, log=lambda m: None)
    assert len(SearchHistory(tmp_path / "h.csv", SMALL.names).trials) == 6
    calls.clear()
    resumed = run_search(bowl_counter := _Counter(), SMALL, tmp_path / "h.csv", steps=2,
                         initial_points=3, iterations_per_step=3, seed=1, log=lambda m: None)
    assert bowl_counter.n == 6  # only the 6 missing trials ran
    fresh = run_search(bowl, SMALL, tmp_path / "fresh.csv", steps=2, initial_points=3,
                       iterations_per_step=3, seed=1, log=lambda m: None)
    for a, b in zip(resumed.trials, fresh.trials, strict=True):
        assert a.hp == pytest.approx(b.hp) and a.val_loss == pytest.approx(b.val_loss)


class _Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, hp):
        self.n += 1
        return bowl(hp)


def test_history_from_another_space_is_refused(tmp_path):
    run_search(bowl, SMALL, tmp_path / "h.csv", steps=1, initial_points=2,
               iterations_per_step=0, log=lambda m: None)
    with pytest.raises(ValueError, match="another search space"):
        run_search(bowl, SPACE, tmp_path / "h.csv", steps=1, initial_points=2,
                   iterations_per_step=0, log=lambda m: None)


def test_failed_trials_do_not_stop_the_search(tmp_path):
    def sometimes_nan(hp):
        return {"val_loss": float("nan") if hp["x"] < 3 else bowl(hp)["val_loss"]}

    res = run_search(sometimes_nan, SMALL, tmp_path / "h.csv", steps=2, initial_points=4,
                     iterations_per_step=2, seed=0, log=lambda m: None)
    assert np.isfinite(res.best.val_loss)


def test_search_module_is_generic():
    import earth_lib.search as s

    source = open(s.__file__).read()
    assert "keras" not in source and "tensorflow" not in source and "earth_lib.model" not in source


def test_search_or_baseline_searches_when_enabled(tmp_path):
    from earth_lib.search import search_or_baseline

    base = {"x": 1.0, "lr": 1e-3, "k": 1}
    sel = search_or_baseline(bowl, SMALL, tmp_path / "h.csv", base, steps=1, initial_points=4,
                             iterations_per_step=1, seed=0, log=lambda m: None)
    assert sel.chosen_by == "search" and sel.hyperparameters == sel.search.best.hp
    assert sel.baseline_loss == pytest.approx(bowl(base)["val_loss"])
    assert len(sel.history) == 5 and sel.history[0]["source"] == "initial"
    assert set(sel.summary()) == {"search best", "literature baseline"}
    rec = sel.record()
    assert rec["search"]["trials"] == 5 and rec["search"]["chosen_by"] == "search"
    assert rec["literature_baseline"]["hyperparameters"] == base


def test_search_or_baseline_takes_the_baseline_when_disabled(tmp_path):
    from earth_lib.search import search_or_baseline

    calls = []

    def objective(hp):
        calls.append(hp)
        return bowl(hp)

    base = {"x": 1.0, "lr": 1e-3, "k": 1}
    sel = search_or_baseline(objective, SMALL, tmp_path / "h.csv", base, enabled=False,
                             evaluate_baseline=False, log=lambda m: None)
    assert sel.chosen_by == "baseline" and sel.hyperparameters == base
    assert calls == [] and sel.history == [] and sel.summary() == {}
    assert sel.record()["search"] == {"best_hyperparameters": base, "chosen_by": "baseline",
                                      "trials": 0, "best_val_loss": None, "stop_reasons": []}
    assert not (tmp_path / "h.csv").exists()
