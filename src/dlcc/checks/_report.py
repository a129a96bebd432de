"""What every check shares: calling the student's code safely, comparing arrays, the report.

A check never raises because a student's answer is wrong: it records a finding and carries on,
so that one report lists everything it could test. It raises only on misuse (a check called
with something that is not a function or a class), with a message that says how to call it.

A check is written as ``body(report, student)`` under :func:`student_check`, which checks the
argument, runs the body and prints the report; inside, ``report.run(what, fn, ...)`` calls the
student's code and, if it raises, records that and ends the check.
"""

from __future__ import annotations

import functools
import inspect
import sysconfig
import textwrap
import traceback
import warnings
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WIDTH = 78  # characters per report line
_HERE = str(Path(__file__).resolve().parent)
_DLCC = str(Path(__file__).resolve().parents[1])
_STDLIB = sysconfig.get_paths()["stdlib"]


@dataclass
class CheckResult:
    """The outcome of one check function: ``passed`` and the findings, in plain words.

    ``messages`` holds one line per failed check, each naming what is wrong and how; it is
    empty when everything passed. ``checks`` counts the checks that ran; ``notes`` holds
    remarks that are not failures. ``print(result)`` shows the whole report again.
    """

    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)
    checks: int = 0
    notes: list[str] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list, repr=False)
    printed: bool = field(default=False, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """In a notebook, a check on a cell's last line shows its report once, not twice."""
        if not self.printed:
            print(self)
            self.printed = True

    def __str__(self) -> str:
        out = [f"{self.name}:"]
        for status, text in self.lines:  # wrapped to fit a notebook's output area
            out += textwrap.wrap(text, WIDTH, initial_indent=f"  {status:<5} ",
                                 subsequent_indent=" " * 8, break_on_hyphens=False)
        checks = "check" if self.checks == 1 else "checks"
        if self.passed:
            out.append(f"All {self.checks} {checks} passed.")
        else:
            out += textwrap.wrap(f"{len(self.messages)} of {self.checks} {checks} failed. "
                                 f"Fix the first failure first: later ones often follow "
                                 f"from it.", WIDTH)
        return "\n".join(out)

    def __repr__(self) -> str:
        state = "passed" if self.passed else f"{len(self.messages)} failed"
        return f"<CheckResult {self.name}: {state} ({self.checks} checks)>"


class Stop(Exception):
    """Ends a check (or, under ``suppress(Stop)``, one case of it): the reason is recorded."""


class Report:
    """Collects the findings of one check function, in order; prints and returns the result."""

    def __init__(self, name: str):
        self.name = name
        self._lines: list[tuple[str, str]] = []
        self.warned: list[str] = []  # numpy's warnings during the last :meth:`run`

    def run(self, what: str, fn: Callable, *args, hints: dict[str, str] | None = None,
            **kwargs):
        """``fn(*args, **kwargs)``, the student's code, with numpy's warnings (overflow in exp,
        0/0) kept in ``self.warned`` instead of printed. If it raises, record "<what> <the
        error in words>" (plus the hint of the first phrase of ``hints`` found in those words)
        as a failure and raise :class:`Stop`."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                # Underflow to 0 is harmless (exp(-1000) == 0.0); overflow and 0/0 are not.
                with np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
                    value = fn(*args, **kwargs)
            except Exception as error:  # the student's bug, reported in words
                words = _describe(error)
                hint = next((h for phrase, h in (hints or {}).items() if phrase in words), "")
                self.fail(f"{what} {words}{hint}")
                raise Stop from None
        self.warned = [str(w.message) for w in caught]
        return value

    def ok(self, what: str) -> None:
        self._lines.append(("ok", what))

    def fail(self, message: str) -> None:
        self._lines.append(("FAIL", message))

    def note(self, message: str) -> None:
        if ("note", message) not in self._lines:
            self._lines.append(("note", message))

    def check(self, condition: bool, what: str, message: str) -> bool:
        """Record ``what`` as passed if ``condition``, else ``message`` as failed."""
        if condition:
            self.ok(what)
        else:
            self.fail(message)
        return bool(condition)

    def finish(self, quiet: bool = False) -> CheckResult:
        fails = [text for status, text in self._lines if status == "FAIL"]
        count = sum(status in ("ok", "FAIL") for status, _ in self._lines)
        result = CheckResult(self.name, not fails, fails, count,
                             [text for status, text in self._lines if status == "note"],
                             list(self._lines))
        if not quiet:
            print(result)
            result.printed = True
        return result


# --- calling the student's code --------------------------------------------------------------


def student_check(cls: str | None = None):
    """Make ``body(report, student)`` the check ``name(student, *, quiet=False)``.

    The check raises on misuse (``student`` not callable; not a class if ``cls`` names what it
    expects, e.g. ``"your CNN class"``), runs the body (a :class:`Stop` ends it early), prints
    the report unless ``quiet`` and returns the :class:`CheckResult`.
    """
    def decorate(body: Callable) -> Callable:
        name = body.__name__

        @functools.wraps(body)
        def check(student, *, quiet: bool = False) -> CheckResult:
            got = type(student).__name__
            if cls is None and not callable(student):
                raise TypeError(f"{name} expects your function itself, e.g. "
                                f"{name}(my_function); got {got}")
            if cls is not None and not inspect.isclass(student):
                raise TypeError(f"{name} expects {cls} (it builds the instances it needs): "
                                f"pass the class {got}, not an instance {got}(...)")
            report = Report(name)
            with suppress(Stop):
                body(report, student)
            return report.finish(quiet)

        del check.__wrapped__  # show the check's own signature, without ``report``
        params = list(inspect.signature(body).parameters.values())[1:]
        check.__signature__ = inspect.Signature(
            [*params, inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False)],
            return_annotation=CheckResult)
        return check

    return decorate


def _library(filename: str) -> bool:
    """Code that is not the student's: dlcc, installed packages, the standard library."""
    return (filename.startswith((_DLCC, _STDLIB)) or "site-packages" in filename
            or "dist-packages" in filename)


def _where(error: BaseException) -> str:
    """The student's line that raised: the last frame in their own code."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(_HERE)]
    own = [f for f in frames if not _library(f.filename)]
    if not (own or frames):
        return ""
    frame = (own or frames)[-1]
    line = (frame.line or "").strip()
    return f" (in {frame.name}: {line})" if line else f" (in {frame.name})"


def _describe(error: Exception) -> str:
    """An exception from the student's code in words, with their line that raised it."""
    if isinstance(error, NotImplementedError):
        return (f"is not implemented yet: NotImplementedError was raised{_where(error)}; "
                f"replace `raise NotImplementedError` with your code")
    # the first line, without torch's own " Hint: ..." (it points at torch, not at them)
    message = str(error).splitlines()[0].split(" Hint:")[0] if str(error) else ""
    return f"raised {type(error).__name__}: {message}{_where(error)}"


# --- comparing arrays ------------------------------------------------------------------------

RTOL, ATOL = 1e-5, 1e-8


def close(got, expected, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Same shape and values (NaN never matches)."""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    expected = np.asarray(expected, dtype=np.float64)
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=rtol,
                                                            atol=atol))


def as_array(value) -> np.ndarray | None:
    """``value`` as a float64 array, or None if it is not numeric (e.g. None, a string)."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array


def shape_of(value) -> str:
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    if shape is not None:
        return str(tuple(shape))
    return type(value).__name__


def worst(got: np.ndarray, expected: np.ndarray) -> str:
    """The largest error, where it is, and both values: the small diagnostic a report shows."""
    diff = np.abs(got - expected)
    diff = np.where(np.isnan(diff), np.inf, diff)
    index = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    where = f" at index {tuple(int(i) for i in index)}" if index else ""
    return (f"largest error {float(diff[index]):.3g}{where}: expected "
            f"{float(expected[index]):.6g}, got {float(got[index]):.6g}")


def mismatch(got: np.ndarray, expected: np.ndarray) -> str:
    """How two arrays differ: shapes if they disagree, else the largest error."""
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected {expected.shape}"
    return worst(got, expected)


def snapshot(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


def changed(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> list[str]:
    """Keys whose array differs (or vanished) between two snapshots."""
    return [k for k in before
            if k not in after or np.shape(after[k]) != before[k].shape
            or not np.array_equal(after[k], before[k], equal_nan=True)]
