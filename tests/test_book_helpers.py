"""dlcc.book.glue: chapters glue numpy and torch scalars as plain numbers; and the book
build's kernels run without a warning in the build log."""

from __future__ import annotations

import sys

import numpy as np
import torch
from myst_nb.ext import glue as glue_module

from dlcc.book import glue


def test_glue_turns_array_scalars_into_python_numbers(monkeypatch):
    seen = {}
    monkeypatch.setattr(glue_module, "glue",
                        lambda name, value, display: seen.update({name: value}))
    glue("a", np.float64(0.25))
    glue("b", torch.tensor(3))
    glue("c", "text")
    assert seen == {"a": 0.25, "b": 3, "c": "text"}
    assert type(seen["a"]) is float and type(seen["b"]) is int


def test_without_myst_nb_glue_shows_the_value_only_when_asked(monkeypatch):
    """In Colab (no myst-nb) a glued number is shown if ``display`` is true, else dropped."""
    import IPython.display

    shown = []
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb raises ImportError
    monkeypatch.setattr(IPython.display, "display", lambda value: shown.append(value))
    glue("quiet", 1.5)
    glue("loud", np.float32(2.5), display=True)
    assert shown == [2.5]


def test_the_builds_kernels_run_encrypted_and_quietly(capfd, monkeypatch):
    """book/_ext/dlcc_book.py's encrypt_kernels: a kernel started as myst-nb starts it gets
    CurveZMQ keys, so ipykernel prints no "running over TCP without encryption" warning."""
    import nbclient
    import nbformat
    from jupyter_client.manager import KernelManager

    from dlcc_book import encrypt_kernels

    trait = KernelManager.transport_encryption
    monkeypatch.setattr(trait, "default_value", trait.default_value)  # restored afterwards
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    for encrypted in (False, True):
        if encrypted:
            encrypt_kernels()
        nbclient.NotebookClient(notebook, kernel_name="python3").execute()
        assert notebook.cells[0].outputs[0]["text"] == "42\n"
        warned = "without encryption" in capfd.readouterr().err
        assert warned is not encrypted
