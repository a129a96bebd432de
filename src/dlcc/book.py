"""Helpers for the course's executable chapters.

Chapters put computed numbers into their prose with ``glue`` (MyST-NB). Calling it through
this module keeps the downloaded notebooks runnable where MyST-NB is not installed, such as Colab.
"""

from __future__ import annotations

from typing import Any


def glue(name: str, value: Any, display: bool = False) -> None:
    """Store ``value`` under ``name`` for ``{glue:text}`name``` in the page's text.

    Without MyST-NB (a notebook opened in Colab or Jupyter) the value is shown when
    ``display`` is true and otherwise ignored: the page's prose is not rendered there anyway.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy/torch scalars: glue formats Python numbers (``:.3f``)
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)
