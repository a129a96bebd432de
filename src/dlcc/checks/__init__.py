"""Automatic feedback on the assignments' code: ``from dlcc.checks import a1``.

Each assignment has a module of check functions (:mod:`.a1` numpy, :mod:`.a2` and :mod:`.a3`
PyTorch, imported on demand so that Assignment 1 never loads torch). A check runs your
function or class on small seeded cases, prints a report that says which output is wrong and
how, and returns a :class:`CheckResult`::

    from dlcc.checks import a1
    a1.check_softmax(softmax)      # prints "All 4 checks passed." or what to fix

Checks never raise because an answer is wrong, and never show reference code.
"""

from ._report import CheckResult

__all__ = ["CheckResult"]
