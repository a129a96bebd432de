"""Hyperparameter search with Optuna: a stored, resumable study that several workers can share.

The objective is Optuna's own: a function of a ``trial`` that draws its hyperparameters with
``trial.suggest_*``, reports intermediate values so that a pruner can stop it, and returns the
score::

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        width = trial.suggest_int("width", 16, 128)
        for epoch in range(epochs):
            ...train one epoch...
            trial.report(val_accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return val_accuracy

    study = search(objective, n_trials=30, storage="runs/search")
    study.best_params

:func:`search` adds what Optuna leaves to its caller: a database on disk (so a search stops
and carries on), seeds that differ between workers, TPE that knows about the trials other
workers are running, and a diverged or out-of-memory trial recorded as failed instead of
ending the worker.

Several workers, one study: start the same script once per worker with the same ``storage``.
On one machine with several GPUs, give each process its own GPU, which it then sees as
``cuda:0``::

    CUDA_VISIBLE_DEVICES=0 python search.py &
    CUDA_VISIBLE_DEVICES=1 python search.py &

On several servers, use a database server that all of them reach (``storage=
"postgresql://user:password@dbhost/optuna"`` or a ``mysql://`` URL; Optuna needs the
matching driver, e.g. ``psycopg2``). SQLite, the default, is one file on one machine.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import optuna


def default_catch() -> tuple[type[Exception], ...]:
    """What fails one trial and lets the search go on: a diverged run (dlcc.train raises
    NonFiniteLossError, a FloatingPointError) or running out of memory, on the host or on a
    GPU (checked only once torch is loaded: a numpy search never imports it). Any other error
    is a bug, and stops the search."""
    torch = sys.modules.get("torch")
    gpu = (torch.cuda.OutOfMemoryError,) if torch is not None else ()
    return (FloatingPointError, MemoryError, *gpu)


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


def _create_study(**kwargs) -> optuna.Study:
    """``optuna.create_study(**kwargs, load_if_exists=True)``. Workers that start together on
    a new database race to create its tables; those that lose find them on a second try."""
    import sqlalchemy.exc  # Optuna's own dependency for database storage

    for attempt in range(3):
        try:
            return optuna.create_study(**kwargs, load_if_exists=True)
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))


def make_sampler(sampler: str, seed: int) -> optuna.samplers.BaseSampler:
    """``"tpe"`` (with ``constant_liar``: running trials count as bad, so parallel workers
    spread out instead of all trying the current favourite) or ``"random"``."""
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler must be 'tpe', 'random' or an optuna sampler, got {sampler!r}")


def search(objective: Callable[[optuna.Trial], float], *, n_trials: int,
           storage: str | os.PathLike | None = None, study_name: str = "dlcc",
           direction: str = "maximize", sampler: str | optuna.samplers.BaseSampler = "tpe",
           pruner: optuna.pruners.BasePruner | None = None, seed: int = 0,
           timeout: float | None = None,
           catch: Iterable[type[Exception]] | None = None) -> optuna.Study:
    """Run ``n_trials`` trials of ``objective(trial) -> float`` and return the Optuna study.

    - ``storage``: a directory (``search.db`` is created in it), a ``.db`` file, or any
      database URL Optuna accepts; the default is ``search.db`` in the current directory.
      An existing study of the same ``study_name`` is continued, so a second call (or a second
      worker) adds trials to the first one's. ``":memory:"`` keeps a quick demo in memory.
    - ``sampler``: ``"tpe"`` (Bayesian-style, the default), ``"random"``, or an Optuna
      sampler, used as given. For the first two, trial number ``n`` draws from seed
      ``seed + n``: the database numbers trials, so workers never repeat each other's draws,
      a continued search draws new points, and one worker alone is reproducible.
    - ``pruner``: an Optuna pruner, used when the objective calls ``trial.report``; ``None``
      is Optuna's default, ``MedianPruner``; ``optuna.pruners.NopPruner()`` never prunes.
    - ``catch``: exceptions that fail one trial and let the search go on (default:
      :func:`default_catch`, a diverged run or out of memory).
    - ``timeout``: stop starting new trials after this many seconds.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    fixed = isinstance(sampler, optuna.samplers.BaseSampler)
    if not fixed:
        make_sampler(sampler, seed)  # a wrong name fails before the database is touched
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no log line per trial
    try:
        study = _create_study(storage=storage_url(storage), study_name=study_name,
                              direction=direction, pruner=pruner,
                              sampler=sampler if fixed else None)

        def seeded(trial: optuna.Trial) -> float:
            # The sampler draws when the objective calls trial.suggest_*, so this one is used.
            study.sampler = make_sampler(sampler, seed + trial.number)
            return objective(trial)

        study.optimize(objective if fixed else seeded, n_trials=n_trials, timeout=timeout,
                       catch=default_catch() if catch is None else tuple(catch))
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


def plot_search(study: optuna.Study):
    """A Figure: objective per trial with the best so far, and against the most important
    parameter (by Optuna's fANOVA importance; the first parameter if that cannot be computed).
    A log objective axis when the values span more than three decades (a diverged trial).
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
