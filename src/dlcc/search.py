"""Hyperparameter search over Optuna with a plain-dict search space.

::

    space = {"lr": ("log", 1e-4, 1e-1), "batch_size": ("choice", [32, 64]),
             "width": ("int", 16, 128), "dropout": ("float", 0.0, 0.5)}

    def objective(params, trial):
        ...train with params, calling report(trial, val_accuracy, epoch) each epoch...
        return val_accuracy

    study = search(objective, space, n_trials=30, storage="runs/search")
    study.best_params

Trials are stored in a database, so a search can stop and carry on, and several processes
(or machines) can work on one study at once (chapter "Hyperparameter search").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

KINDS = {"log": 2, "float": 2, "int": 2, "choice": 1}  # kind -> number of arguments


def _check_space(space: dict[str, tuple]) -> None:
    if not isinstance(space, dict) or not space:
        raise ValueError(f"space must be a non-empty dict of name -> (kind, ...), got {space!r}")
    for name, spec in space.items():
        if not isinstance(spec, (tuple, list)) or not spec or spec[0] not in KINDS:
            raise ValueError(f"space[{name!r}] must start with one of {list(KINDS)}, "
                             f"got {spec!r}")
        kind, args = spec[0], spec[1:]
        if len(args) != KINDS[kind]:
            form = "('choice', [options])" if kind == "choice" else f"({kind!r}, low, high)"
            raise ValueError(f"space[{name!r}] must be {form}, got {spec!r}")
        if kind == "choice" and not args[0]:
            raise ValueError(f"space[{name!r}] has no options to choose from")
        if kind != "choice" and not args[0] < args[1]:
            raise ValueError(f"space[{name!r}] needs low < high, got {spec!r}")
        if kind == "log" and args[0] <= 0:
            raise ValueError(f"space[{name!r}] is log-scaled, so low must be > 0, got {spec!r}")


def suggest(trial: optuna.Trial, space: dict[str, tuple]) -> dict[str, Any]:
    """Draw one value per entry of ``space`` from ``trial``: the ``params`` of an objective."""
    params = {}
    for name, (kind, *args) in space.items():
        if kind == "log":
            params[name] = trial.suggest_float(name, args[0], args[1], log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, args[0], args[1])
        elif kind == "int":
            params[name] = trial.suggest_int(name, args[0], args[1])
        else:
            params[name] = trial.suggest_categorical(name, list(args[0]))
    return params


def report(trial: optuna.Trial, value: float, step: int) -> None:
    """Record an intermediate ``value`` (e.g. validation accuracy after epoch ``step``).

    Raises ``optuna.TrialPruned`` when the pruner judges the trial hopeless, which ends the
    objective early; :func:`search` records the trial as pruned and moves on.
    """
    trial.report(value, step)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at step {step} with value {value:.4g}")


def storage_url(storage: str | os.PathLike | None) -> str | None:
    """A database URL: URLs pass through; a directory (or ``None``: here) gets search.db;
    ``":memory:"`` keeps the study in this process only (``None`` for Optuna)."""
    if storage == ":memory:":
        return None
    if storage is not None and "://" in str(storage):
        return str(storage)
    path = Path(storage if storage is not None else ".")
    if path.suffix != ".db":
        path.mkdir(parents=True, exist_ok=True)
        path = path / "search.db"
    return f"sqlite:///{path.resolve()}"


def _sampler(sampler, seed: int) -> optuna.samplers.BaseSampler:
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler must be 'tpe', 'random' or an optuna sampler, got {sampler!r}")


def _pruner(pruner) -> optuna.pruners.BasePruner:
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        # Prune a trial whose value at some step is worse than the median of earlier trials
        # at that step, once 5 trials have finished.
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    if pruner in (None, "none"):
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be 'median', 'none' or an optuna pruner, got {pruner!r}")


def search(objective: Callable[[dict[str, Any], optuna.Trial], float],
           space: dict[str, tuple], *, n_trials: int, storage: str | os.PathLike | None = None,
           study_name: str = "dlcc", direction: str = "maximize", pruner="median",
           sampler="tpe", seed: int = 0, timeout: float | None = None) -> optuna.Study:
    """Run ``n_trials`` trials of ``objective(params, trial) -> float`` and return the study.

    - ``space``: name -> ``("log", low, high)``, ``("float", low, high)``,
      ``("int", low, high)`` or ``("choice", [options])``.
    - ``storage``: a directory (``search.db`` is created in it), a ``.db`` file, or any
      database URL Optuna accepts. The default is ``search.db`` in the current directory.
      An existing study of the same ``study_name`` is continued, not replaced, so a second
      call adds trials to the first call's. ``":memory:"`` keeps a quick demo's study in
      memory (nothing is written; no continuing). To spread one search over several servers, give
      every worker the same PostgreSQL or MySQL URL (e.g.
      ``"postgresql://user:password@dbhost/optuna"``) and a different ``seed``.
    - ``sampler``: ``"tpe"`` (Bayesian-style, the default) or ``"random"`` (random search),
      or an Optuna sampler. Its seed is ``seed`` plus the number of trials already stored,
      so a continued search draws new points rather than repeating the old ones.
    - ``pruner``: ``"median"``, ``"none"`` or an Optuna pruner; the objective feeds it with
      :func:`report`.
    - ``timeout``: stop starting new trials after this many seconds.
    """
    _check_space(space)
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no log line per trial
    try:
        study = optuna.create_study(storage=storage_url(storage), study_name=study_name,
                                    direction=direction, pruner=_pruner(pruner),
                                    load_if_exists=True)
        study.sampler = _sampler(sampler, seed + len(study.trials))
        study.optimize(lambda trial: objective(suggest(trial, space), trial),
                       n_trials=n_trials, timeout=timeout)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


def plot_search(study: optuna.Study):
    """A Figure: objective per trial with the best so far, and against the most important
    parameter (by Optuna's fANOVA importance; the first parameter if that cannot be computed).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"study {study.study_name!r} has no completed trials to plot")
    best_of = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    numbers, values = [t.number for t in done], [t.value for t in done]
    left.scatter(numbers, values, s=14, label="trial")
    left.step(numbers, [best_of(values[: i + 1]) for i in range(len(values))], where="post",
              color="C1", label="best so far")
    left.set(title="Objective per trial", xlabel="trial", ylabel="objective")
    left.legend()

    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        name = next(iter(optuna.importance.get_param_importances(study, evaluator=evaluator)))
    except (RuntimeError, ValueError, StopIteration):  # too few trials, or one value each
        name = next(iter(done[0].params))
    shown = [t for t in done if name in t.params]
    xs = [t.params[name] for t in shown]
    distribution = shown[0].distributions[name]
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        xs = [str(x) for x in xs]  # one category axis even for mixed options like [32, "all"]
    right.scatter(xs, [t.value for t in shown], s=14)
    if getattr(distribution, "log", False):
        right.set_xscale("log")
        right.xaxis.set_minor_formatter(NullFormatter())  # decades only: no crowded labels
    right.set(title=f"Objective against {name}", xlabel=name, ylabel="objective")
    if min(values) > 0 and max(values) / min(values) > 1e3:
        # one diverged trial would flatten every other point against the axis
        left.set_yscale("log")
        right.set_yscale("log")
    return fig
