"""dlcc.search: Optuna objectives, shared SQLite storage, seeds per trial, catch, the plot."""

import math
import os
import subprocess
import sys
import textwrap

import optuna
import pytest
import torch
from matplotlib.figure import Figure

from dlcc.search import default_catch, plot_search, search, storage_url

NOP = optuna.pruners.NopPruner()


def quadratic(trial):
    """Best at x = 1, n = -2, lr = 1e-2, kind = "good" (value 0)."""
    x = trial.suggest_float("x", -5.0, 5.0)
    n = trial.suggest_int("n", -5, 5)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    kind = trial.suggest_categorical("kind", ["good", "bad"])
    return -((x - 1) ** 2 + (n + 2) ** 2 + (math.log10(lr) + 2) ** 2 + (kind == "bad"))


def test_tpe_finds_the_optimum_region(tmp_path):
    study = search(quadratic, n_trials=60, storage=tmp_path)
    best = study.best_params
    assert abs(best["x"] - 1) < 0.75 and abs(best["n"] + 2) <= 1
    assert 1e-3 < best["lr"] < 1e-1 and best["kind"] == "good"
    assert study.best_value > -1.0
    assert (tmp_path / "search.db").is_file()
    # TPE with constant_liar: parallel workers treat each other's running trials as bad.
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    assert study.sampler._constant_liar


def test_searches_sharing_storage_accumulate_trials(tmp_path):
    first = search(quadratic, n_trials=4, storage=tmp_path, sampler="random")
    assert len(first.trials) == 4
    second = search(quadratic, n_trials=3, storage=tmp_path, sampler="random")
    assert len(second.trials) == 7
    loaded = optuna.load_study(study_name="dlcc", storage=storage_url(tmp_path))
    assert len(loaded.trials) == 7
    # The continued search drew new points instead of replaying the first call's.
    xs = [t.params["x"] for t in loaded.trials]
    assert len(set(xs)) == 7


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_one_worker_is_reproducible(tmp_path, sampler):
    a = search(quadratic, n_trials=12, storage=tmp_path / "a", sampler=sampler, seed=3)
    b = search(quadratic, n_trials=12, storage=tmp_path / "b", sampler=sampler, seed=3)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    c = search(quadratic, n_trials=12, storage=tmp_path / "c", sampler=sampler, seed=4)
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_trial_n_draws_from_seed_plus_n_whichever_worker_runs_it(tmp_path):
    """Workers loading the study at the same moment with one seed would draw the same
    points if the seed were fixed per worker; seeded by the trial number, which the database
    hands out once, they cannot."""
    alone = search(quadratic, n_trials=6, storage=tmp_path / "a", sampler="random")
    search(quadratic, n_trials=2, storage=tmp_path / "b", sampler="random")
    search(quadratic, n_trials=1, storage=tmp_path / "b", sampler="random")
    shared = search(quadratic, n_trials=3, storage=tmp_path / "b", sampler="random")
    assert [t.params for t in shared.trials] == [t.params for t in alone.trials]
    assert len({t.params["x"] for t in shared.trials}) == 6


WORKER = textwrap.dedent("""
    import os, sys
    import torch
    from dlcc.search import search

    def objective(trial):
        x = trial.suggest_float("x", -3.0, 3.0)
        if trial.number == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return -(x - 1) ** 2

    search(objective, n_trials=4, storage=sys.argv[1], sampler="tpe", seed=0)
    print("visible", os.environ["CUDA_VISIBLE_DEVICES"])
""")


def test_one_process_per_gpu_as_documented(tmp_path):
    """Two processes started at once, one per GPU, same storage and same seed: distinct
    trials, all stored, and the out-of-memory trial fails alone."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "db")],
                                env={**env, "CUDA_VISIBLE_DEVICES": str(k)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k in range(2)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for k, (worker, (out, err)) in enumerate(zip(workers, outputs, strict=True)):
        assert worker.returncode == 0, err
        assert f"visible {k}" in out
    study = optuna.load_study(study_name="dlcc", storage=storage_url(tmp_path / "db"))
    states = [t.state for t in study.trials]
    assert len(states) == 8
    assert states.count(optuna.trial.TrialState.FAIL) == 1  # trial 2, in whichever worker
    xs = [t.params["x"] for t in study.trials]
    assert len(set(xs)) == 8


@pytest.mark.parametrize("error", [FloatingPointError("loss is nan at step 3"),
                                   torch.cuda.OutOfMemoryError("CUDA out of memory"),
                                   MemoryError()])
def test_a_diverged_or_out_of_memory_trial_fails_alone(error):
    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 1:
            raise error
        return x

    study = search(objective, n_trials=4, storage=":memory:", sampler="random")
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                      optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.COMPLETE]


def test_a_bug_in_the_objective_stops_the_search():
    def objective(trial):
        return trial.suggest_float("x", 0.0, 1.0) + undefined_name  # noqa: F821

    with pytest.raises(NameError, match="undefined_name"):
        search(objective, n_trials=4, storage=":memory:")


def test_catch_can_be_chosen():
    def objective(trial):
        trial.suggest_float("x", 0.0, 1.0)
        raise FloatingPointError("diverged")

    with pytest.raises(FloatingPointError):
        search(objective, n_trials=2, storage=":memory:", catch=())
    study = search(lambda t: 1 / (t.suggest_float("x", -1, 1) * 0), n_trials=2,
                   storage=":memory:", catch=(ZeroDivisionError,))
    assert all(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    assert torch.cuda.OutOfMemoryError in default_catch()


def test_median_pruner_stops_hopeless_trials(tmp_path):
    def learning_curve(trial):
        quality = trial.suggest_float("quality", 0.0, 1.0)
        for step in range(10):
            value = quality * (step + 1)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = search(learning_curve, n_trials=25, storage=tmp_path, sampler="random",
                   pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) >= 3
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 5
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert max(t.params["quality"] for t in pruned) < study.best_params["quality"]


def test_no_pruner_lets_every_trial_finish(tmp_path):
    def curve(trial):
        q = trial.suggest_float("q", 0.0, 1.0)
        for step in range(3):
            trial.report(q * step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return q

    study = search(curve, n_trials=10, storage=tmp_path, pruner=NOP, direction="minimize")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="sampler must be 'tpe', 'random' or an optuna"):
        search(quadratic, n_trials=1, storage=tmp_path, sampler="grid")
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize'"):
        search(quadratic, n_trials=1, storage=tmp_path, direction="max")
    assert not (tmp_path / "search.db").exists()


def test_a_given_sampler_is_used_as_is(tmp_path):
    sampler = optuna.samplers.RandomSampler(seed=5)
    study = search(quadratic, n_trials=3, storage=":memory:", sampler=sampler)
    assert study.sampler is sampler


def test_storage_urls(tmp_path):
    assert storage_url("postgresql://u:p@db/optuna") == "postgresql://u:p@db/optuna"
    assert storage_url(tmp_path / "s") == f"sqlite:///{tmp_path / 's' / 'search.db'}"
    assert storage_url(tmp_path / "my.db") == f"sqlite:///{tmp_path / 'my.db'}"


def test_plot_search(tmp_path):
    study = search(quadratic, n_trials=12, storage=tmp_path, sampler="random")
    fig = plot_search(study)
    assert isinstance(fig, Figure)
    left, right = fig.axes
    assert left.get_title() == "Objective per trial" and left.get_xlabel() == "trial"
    assert right.get_title().startswith("Objective against ")
    assert right.get_xlabel() in ("x", "n", "lr", "kind") and right.get_ylabel() == "objective"


def test_memory_storage_is_quick_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = search(lambda trial: -(trial.suggest_float("x", -3, 3) - 1) ** 2, n_trials=8,
                   storage=":memory:")
    assert len(study.trials) == 8
    assert not list(tmp_path.iterdir())


def test_plot_search_uses_a_log_axis_when_one_trial_diverged():
    values = iter([1e-2, 2e-2, 5e10, 3e-2])

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        return next(values)

    study = search(objective, n_trials=4, storage=":memory:", direction="minimize")
    left, right = plot_search(study).axes
    assert left.get_yscale() == "log" and right.get_yscale() == "log"
