"""Export a trained model to a file that runs without its Python code: TorchScript or ONNX.

:func:`export` traces ``model`` on an ``example`` batch, writes the file, loads it back in the
runtime that will serve it (``torch.jit.load`` for TorchScript, ONNX Runtime for ONNX), runs it
on the example and compares with the eager model: the *parity check*. The file only appears at
``path`` once the check has passed, so a mismatching export never replaces a good one.

Both routes trace: they run the model once on the example and record the operations. The
batch dimension stays free (ONNX marks it dynamic; a traced convolutional network takes any
batch), the image size does not: export with the size you will serve. ONNX goes through
torch's TorchScript-based exporter (``dynamo=False``): on the course's models it takes well
under a second where the newer ``torch.export``-based one takes several (and needs the
``onnxscript`` package). PyTorch 2.13 marks both ``torch.jit`` and that exporter deprecated;
the parity check is what tells whether a later version still exports correctly. ONNX needs
the ``onnx`` and ``onnxruntime`` packages (pinned in requirements.txt); TorchScript needs
only torch.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

FORMATS = {".pt": "torchscript", ".pts": "torchscript", ".onnx": "onnx"}


class ParityError(RuntimeError):
    """The exported model's output differs from the eager model's beyond the tolerance."""


def _format(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in ("torchscript", "onnx"):
            raise ValueError(f"format must be 'torchscript' or 'onnx', got {format!r}")
        return format
    if path.suffix not in FORMATS:
        raise ValueError(f"path must end in {', '.join(FORMATS)} (or pass format=), "
                         f"got {str(path)!r}")
    return FORMATS[path.suffix]


def _write_torchscript(model: nn.Module, example: torch.Tensor, file: Path) -> np.ndarray:
    with warnings.catch_warnings():
        # Python-level shape checks become constants of the trace; the parity check below
        # is what tells whether the traced graph still computes the model.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example)
    torch.jit.save(traced, str(file))
    with torch.no_grad():
        return torch.jit.load(str(file)).eval()(example).numpy()


def _write_onnx(model: nn.Module, example: torch.Tensor, file: Path) -> np.ndarray:
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes the file with it)
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"ONNX export needs the {error.name!r} package: "
                          "pip install onnx onnxruntime") from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # as for TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)  # see the module's docstring
        torch.onnx.export(model, (example,), str(file), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"},
                                                            "y": {0: "batch"}})
    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": example.numpy()})[0]


def _check(model, example, path, format, rtol, atol) -> tuple[torch.Tensor, Path, str]:
    """The arguments of :func:`export`, checked: (detached example, path, format)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example, torch.Tensor) or not example.is_floating_point():
        got = f"a {example.dtype} tensor" if isinstance(example, torch.Tensor) else (
            type(example).__name__)
        raise TypeError(f"example must be a floating-point torch.Tensor, got {got}")
    if example.device.type != "cpu" or example.ndim < 1 or example.shape[0] < 1:
        raise ValueError(f"example must be a non-empty CPU batch, got shape "
                         f"{tuple(example.shape)} on {example.device}")
    elsewhere = {p.device.type for p in model.parameters()} - {"cpu"}
    if elsewhere:
        raise ValueError(f"model must be on the CPU for export (call model.cpu()); it has "
                         f"parameters on {', '.join(sorted(elsewhere))}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    path = Path(path)
    kind = _format(path, format)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path's folder {str(path.parent)!r} does not exist")
    return example.detach(), path, kind


def export(model: nn.Module, example: torch.Tensor, path: str | os.PathLike,
           format: str | None = None, rtol: float = 1e-5, atol: float = 1e-5) -> float:
    """Write ``model`` to ``path`` as TorchScript or ONNX and check it against the eager model.

    ``format`` is ``"torchscript"`` or ``"onnx"``; by default the suffix decides (``.pt`` or
    ``.pts``: TorchScript, ``.onnx``: ONNX). ``example`` is a batch of inputs (on the CPU)
    of the shape the model will serve. The model is exported in eval mode (dropout off,
    batch-norm with its running statistics) and left in the mode it was in.

    Returns the largest absolute difference between the exported and the eager outputs on
    ``example``. Raises :class:`ParityError`, and writes nothing, if any element differs by
    more than ``atol + rtol * |eager|``. The file is written to a temporary name in the same
    folder and renamed, so ``path`` holds either the old file or the complete new one.
    """
    example, path, kind = _check(model, example, path, format, rtol, atol)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            eager = model(example).numpy()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp)
        try:
            write = _write_onnx if kind == "onnx" else _write_torchscript
            exported = write(model, example, tmp)
            if exported.shape != eager.shape:
                raise ParityError(f"the exported {kind} model returns shape {exported.shape}, "
                                  f"the eager model {eager.shape}")
            difference = float(np.abs(exported - eager).max())
            if not np.allclose(exported, eager, rtol=rtol, atol=atol):
                raise ParityError(f"the exported {kind} model differs from the eager model "
                                  f"by up to {difference:.3g} (tolerance {atol:g} + "
                                  f"{rtol:g} * |eager|); {path} was not written")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
            for extra in path.parent.glob(f"{tmp.name}*"):  # ONNX external-data files
                extra.unlink(missing_ok=True)
    finally:
        model.train(was_training)
    return difference
