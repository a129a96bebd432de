"""dlcc.search: a dict space over Optuna, shared SQLite storage, pruning and the plot."""

import math

import optuna
import pytest
from matplotlib.figure import Figure

from dlcc.search import plot_search, report, search, storage_url

SPACE = {"x": ("float", -5.0, 5.0), "n": ("int", -5, 5), "lr": ("log", 1e-4, 1.0),
         "kind": ("choice", ["good", "bad"])}


def quadratic(params, trial):
    """Best at x = 1, n = -2, lr = 1e-2, kind = "good" (value 0)."""
    return -((params["x"] - 1) ** 2 + (params["n"] + 2) ** 2
             + (math.log10(params["lr"]) + 2) ** 2 + (params["kind"] == "bad"))


def test_tpe_finds_the_optimum_region(tmp_path):
    study = search(quadratic, SPACE, n_trials=60, storage=tmp_path)
    best = study.best_params
    assert abs(best["x"] - 1) < 0.75 and abs(best["n"] + 2) <= 1
    assert 1e-3 < best["lr"] < 1e-1 and best["kind"] == "good"
    assert study.best_value > -1.0
    assert (tmp_path / "search.db").is_file()


def test_searches_sharing_storage_accumulate_trials(tmp_path):
    first = search(quadratic, SPACE, n_trials=4, storage=tmp_path, sampler="random")
    assert len(first.trials) == 4
    second = search(quadratic, SPACE, n_trials=3, storage=tmp_path, sampler="random")
    assert len(second.trials) == 7
    loaded = optuna.load_study(study_name="dlcc", storage=storage_url(tmp_path))
    assert len(loaded.trials) == 7
    # The continued search drew new points instead of replaying the first call's.
    xs = [t.params["x"] for t in loaded.trials]
    assert len(set(xs)) == 7


def test_random_sampler_is_reproducible(tmp_path):
    a = search(quadratic, SPACE, n_trials=5, storage=tmp_path / "a", sampler="random", seed=3)
    b = search(quadratic, SPACE, n_trials=5, storage=tmp_path / "b", sampler="random", seed=3)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_median_pruner_stops_hopeless_trials(tmp_path):
    def learning_curve(params, trial):
        for step in range(10):
            value = params["quality"] * (step + 1)
            report(trial, value, step)
        return value

    study = search(learning_curve, {"quality": ("float", 0.0, 1.0)}, n_trials=25,
                   storage=tmp_path, sampler="random")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) >= 3
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 5
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert max(t.params["quality"] for t in pruned) < study.best_params["quality"]


def test_no_pruner_lets_every_trial_finish(tmp_path):
    def curve(params, trial):
        for step in range(3):
            report(trial, params["q"] * step, step)
        return params["q"]

    study = search(curve, {"q": ("float", 0.0, 1.0)}, n_trials=10, storage=tmp_path,
                   pruner="none", direction="minimize")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("space,message", [
    ({}, "non-empty dict"),
    ({"lr": ("normal", 0, 1)}, "must start with one of"),
    ({"lr": ("log", 1e-3)}, r"must be \('log', low, high\)"),
    ({"lr": ("log", 0.0, 1.0)}, "low must be > 0"),
    ({"w": ("int", 10, 2)}, "low < high"),
    ({"b": ("choice", [])}, "no options"),
])
def test_bad_spaces_are_named(tmp_path, space, message):
    with pytest.raises(ValueError, match=message):
        search(quadratic, space, n_trials=1, storage=tmp_path)


def test_storage_urls(tmp_path):
    assert storage_url("postgresql://u:p@db/optuna") == "postgresql://u:p@db/optuna"
    assert storage_url(tmp_path / "s") == f"sqlite:///{tmp_path / 's' / 'search.db'}"
    assert storage_url(tmp_path / "my.db") == f"sqlite:///{tmp_path / 'my.db'}"


def test_plot_search(tmp_path):
    study = search(quadratic, SPACE, n_trials=12, storage=tmp_path, sampler="random")
    fig = plot_search(study)
    assert isinstance(fig, Figure)
    left, right = fig.axes
    assert left.get_title() == "Objective per trial" and left.get_xlabel() == "trial"
    assert right.get_title().startswith("Objective against ")
    assert right.get_xlabel() in SPACE and right.get_ylabel() == "objective"


def test_memory_storage_is_quick_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = search(lambda params, trial: -(params["x"] - 1) ** 2, {"x": ("float", -3, 3)},
                   n_trials=8, storage=":memory:")
    assert len(study.trials) == 8
    assert not list(tmp_path.iterdir())


def test_plot_search_uses_a_log_axis_when_one_trial_diverged():
    values = iter([1e-2, 2e-2, 5e10, 3e-2])
    study = search(lambda params, trial: next(values), {"x": ("float", 0, 1)}, n_trials=4,
                   storage=":memory:", direction="minimize")
    left, right = plot_search(study).axes
    assert left.get_yscale() == "log" and right.get_yscale() == "log"
