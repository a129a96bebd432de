"""Small argument checkers shared by the numpy modules.

Each one raises a ``TypeError``/``ValueError`` that names the argument, what was expected and
what came, so that a student's mistake points at the line that made it.
"""

from __future__ import annotations

import numpy as np


def float_array(name: str, a: object) -> np.ndarray:
    """Return ``a`` if it is a floating-point ndarray, else raise ``TypeError``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must have a floating dtype, got {a.dtype}")
    return a


def ndim(name: str, a: np.ndarray, n: int, layout: str) -> None:
    """Raise ``ValueError`` unless ``a`` has ``n`` dimensions (``layout`` names them)."""
    if a.ndim != n:
        raise ValueError(f"{name} must be {n}-D {layout} but has shape {a.shape}")


def same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} has shape {b.shape} but {name_a} has shape {a.shape}")


def finite(name: str, a: np.ndarray) -> None:
    """Raise ``ValueError`` if ``a`` holds NaN or infinity (a diverged run, usually)."""
    if not np.all(np.isfinite(a)):
        what = "NaN" if np.isnan(a).any() else "infinite values"
        verb = "contain" if name.endswith("s") else "contains"  # "logits contain", "pred contains"
        raise ValueError(f"{name} {verb} {what}")


def labels(y: object, n: int, num_classes: int) -> np.ndarray:
    """Check integer class labels ``y`` of shape (n,) with values in [0, num_classes)."""
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        got = y.dtype if isinstance(y, np.ndarray) else type(y).__name__
        raise TypeError(f"y must be an integer numpy array of class labels, got {got}")
    if y.shape != (n,):
        raise ValueError(f"y has shape {y.shape} but expected ({n},), one label per example")
    if n and (y.min() < 0 or y.max() >= num_classes):
        bad = y.min() if y.min() < 0 else y.max()
        raise ValueError(f"y contains label {bad} but logits have {num_classes} classes")
    return y


def integer(name: str, value: object, low: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer >= ``low`` (Python's or numpy's, not a
    bool), else ``ValueError``. Both halves of dlcc use this one check."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        expected = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


def fraction(name: str, value: float, *, closed_low: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` lies in (0, 1) (or [0, 1) with ``closed_low``)."""
    ok = (0 <= value < 1) if closed_low else (0 < value < 1)
    if not ok:
        interval = "[0, 1)" if closed_low else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}")


def same_dtype(name: str, a: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    """Raise ``TypeError`` if ``a`` and ``ref`` differ in dtype (numpy would silently upcast)."""
    if a.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but {ref_name} has dtype {ref.dtype}; "
                        f"cast one with .astype()")


def dout(d: object, shape: tuple[int, ...]) -> np.ndarray:
    """Check an upstream gradient against the shape of the forward output it belongs to."""
    float_array("dout", d)
    if d.shape != tuple(shape):
        raise ValueError(f"dout has shape {d.shape} but the forward output had shape "
                         f"{tuple(shape)}")
    return d
