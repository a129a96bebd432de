"""Checks for Assignment 2: PyTorch (autograd, a Dataset with augmentation, an MLP).

What the assignment asks for, and what each check gives it::

    quadratic_grad(A, b, x) -> (dA, db)                  check_quadratic_grad
        gradients of f = x^T A x / 2 + b^T x + 1
    matmul_relu_grad(A, x, B, grad_out) -> (dA, dx, dB)   check_matmul_relu_grad
        gradients of y = A @ x @ B + relu(x), given grad_out = dL/dy
    MyDataset(images, labels, transform=None)             check_dataset
    MyMLP(in_features=3072, hidden=(512, 256), num_classes=10)   check_mlp
    batchnorm_backward(dout, x, gamma, eps) -> (dx, dgamma, dbeta)   check_batchnorm_backward
        training-mode batch norm of x (N, D), by hand

Answers may be tensors or numpy arrays. Expected values are recomputed with torch.autograd.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from torch import nn

from ._report import Report, as_array, close, mismatch, shape_of, student_check, worst

__all__ = ["check_quadratic_grad", "check_matmul_relu_grad", "check_dataset", "check_mlp",
           "check_batchnorm_backward"]


def _np(value) -> np.ndarray | None:
    """A tensor or array as float64 numpy (None if it is neither)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy().copy()
    return as_array(value)


def _pair(value, n: int):
    if isinstance(value, (tuple, list)) and len(value) == n:
        return list(value)
    return None


# --- autograd: f = x^T A x / 2 + b^T x + 1 ---------------------------------------------------

def _quadratic_case(seed: int, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, n, generator=g, dtype=torch.float64),
            torch.randn(n, generator=g, dtype=torch.float64),
            torch.randn(n, generator=g, dtype=torch.float64))


def _quadratic_expected(a, b, x):
    a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
    f = x @ a @ x / 2 + b @ x + 1
    f.backward()
    return a.grad.numpy(), b.grad.numpy()


@student_check()
def check_quadratic_grad(report: Report, quadratic_grad) -> None:
    """Check ``quadratic_grad(A, b, x) -> (df/dA, df/db)`` for f = x^T A x / 2 + b^T x + 1."""
    a, b, x = _quadratic_case(0)
    exp_a, exp_b = _quadratic_expected(a, b, x)
    originals = [t.clone() for t in (a, b, x)]
    got = report.run("quadratic_grad", quadratic_grad, a, b, x)
    pair = _pair(got, 2)
    if pair is None:
        report.fail(f"quadratic_grad returned {shape_of(got)}; return a pair (df/dA, df/db)")
        return
    ga, gb = (_np(v) for v in pair)
    xn, an, bn = (t.detach().numpy() for t in (x, a, b))
    if ga is None:
        report.fail(f"df/dA is {shape_of(pair[0])}: A.grad stays None unless A requires grad "
                    f"(A.requires_grad_()) before f is computed and f.backward() runs")
    elif close(ga, exp_a):
        report.ok("df/dA matches")
    elif close(ga, 2 * exp_a):
        report.fail("df/dA is twice the expected value: f has a factor 1/2 in front of "
                    "x^T A x (or .grad accumulated over two backward() calls)")
    elif ga.shape == (len(xn),) and close(ga, (an + an.T) @ xn / 2 + bn):
        report.fail("the first answer is df/dx, not df/dA: make A require grad and read A.grad")
    elif ga.shape == (len(xn),) and close(ga, xn * xn / 2):
        report.fail(f"df/dA has shape {ga.shape}: x * x is element-wise; df/dA has the shape "
                    f"of A, {tuple(a.shape)}, one entry per A[i, j] (an outer product)")
    else:
        report.fail(f"df/dA is wrong ({mismatch(ga, exp_a)})")
    if gb is None:
        report.fail(f"df/db is {shape_of(pair[1])}: b must require grad before f is computed")
    elif close(gb, exp_b):
        report.ok("df/db matches")
    elif close(gb, bn):
        report.fail("df/db equals b itself: the derivative of b^T x with respect to b is x")
    elif close(gb, exp_b + 1):
        report.fail("df/db has 1 added: the constant 1 in f has zero derivative")
    else:
        report.fail(f"df/db is wrong ({mismatch(gb, exp_b)})")
    if any(not torch.equal(t.detach(), o) for t, o in zip((a, b, x), originals, strict=True)):
        report.fail("quadratic_grad changed the values of A, b or x")
    elif ga is not None and gb is not None:
        again = report.run("a second call with the same tensors", quadratic_grad, a, b, x,
                           hints={"raised": ": work on fresh copies (A.detach().clone()"
                                            ".requires_grad_()) instead of the caller's tensors"})
        second = _pair(again, 2)
        if second is not None and not (close(_np(second[0]), ga) and
                                       close(_np(second[1]), gb)):
            report.fail("a second call with the same tensors gave different gradients: "
                        ".grad accumulates over backward() calls; work on fresh copies "
                        "(A.detach().clone().requires_grad_()) or zero .grad first")
        else:
            report.ok("calling it twice gives the same answer")


# --- autograd: y = A @ x @ B + relu(x), with a downstream gradient -----------------------------

def _matmul_case(seed: int, n: int = 3, p: int = 4):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    x = torch.randn(n, p, generator=g, dtype=torch.float64)
    x = torch.where(x.abs() < 0.1, x + 0.3, x)  # away from ReLU's kink
    b = torch.randn(p, p, generator=g, dtype=torch.float64)
    grad_out = torch.randn(n, p, generator=g, dtype=torch.float64)
    return a, x, b, grad_out


def _matmul_expected(a, x, b, grad_out):
    a, x, b = (t.clone().requires_grad_() for t in (a, x, b))
    y = a @ x @ b + torch.relu(x)
    y.backward(grad_out)
    return a.grad.numpy(), x.grad.numpy(), b.grad.numpy()


@student_check()
def check_matmul_relu_grad(report: Report, matmul_relu_grad) -> None:
    """Check ``matmul_relu_grad(A, x, B, grad_out) -> (dA, dx, dB)`` for y = A x B + relu(x).

    ``grad_out`` is dL/dy, the gradient arriving from the rest of a network; A is (3, 3), x
    (3, 4), B (4, 4), so a product in the wrong order has the wrong shape.
    """
    a, x, b, g = _matmul_case(1)
    expected = _matmul_expected(a, x, b, g)
    with_ones = _matmul_expected(a, x, b, torch.ones_like(g))
    got = report.run("matmul_relu_grad", matmul_relu_grad, a.clone(), x.clone(), b.clone(),
                     g.clone())
    triple = _pair(got, 3)
    if triple is None:
        report.fail(f"matmul_relu_grad returned {shape_of(got)}; return (dA, dx, dB)")
        return
    an, xn, bn, gn = (t.numpy() for t in (a, x, b, g))
    mask = (xn > 0).astype(float)
    product_path = an.T @ gn @ bn.T
    for name, value, exp, ones in zip(("dA", "dx", "dB"), triple, expected, with_ones,
                                      strict=True):
        arr = _np(value)
        if arr is None:
            report.fail(f"{name} is {shape_of(value)}: the tensor must require grad before y "
                        f"is computed, and y.backward(grad_out) fills its .grad")
        elif close(arr, exp):
            report.ok(f"{name} matches")
        elif close(arr, ones):
            report.fail(f"{name} ignores grad_out: it is the gradient of y.sum(), as if "
                        f"dL/dy were all ones; pass the downstream gradient, "
                        f"y.backward(grad_out)")
        elif arr.shape == exp.shape[::-1] and close(arr.T, exp):
            report.fail(f"{name} is transposed: it must have the shape of "
                        f"{name[1:]}, {exp.shape}")
        elif name == "dx" and close(arr, product_path):
            report.fail("dx lacks the ReLU path: x also reaches y through relu(x), so its "
                        "gradient adds grad_out where x > 0")
        elif name == "dx" and close(arr, product_path + gn):
            report.fail("dx passes grad_out through the ReLU everywhere: the ReLU's gradient "
                        "is grad_out where x > 0 and 0 elsewhere")
        elif name == "dx" and close(arr, product_path + gn * np.maximum(xn, 0)):
            report.fail("dx multiplies grad_out by relu(x); the ReLU's local derivative is "
                        "the mask (x > 0), not relu(x)")
        elif name == "dx" and close(arr, an @ gn @ bn + gn * mask):
            report.fail("dx uses A and B untransposed: going backward through A @ x @ B, "
                        "each matrix appears transposed")
        elif arr.shape != exp.shape:
            report.fail(f"{name} has shape {arr.shape}, expected {exp.shape} (the shape of "
                        f"{name[1:]})")
        else:
            report.fail(f"{name} is wrong ({worst(arr, exp)})")


# --- a Dataset with augmentation ---------------------------------------------------------------

class _Recording:
    """A transform that adds a fresh random offset per call and records what it was given."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.inputs: list = []

    def __call__(self, image):
        self.inputs.append(image)
        if not isinstance(image, torch.Tensor):
            return image
        return image + torch.rand((), generator=self.generator).item() + 10.0


def _images(n: int = 10):
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3


@student_check("your Dataset class")
def check_dataset(report: Report, dataset_cls) -> None:
    """Check a ``Dataset`` class built as ``dataset_cls(images, labels, transform=None)``.

    ``images`` is (N, C, H, W), ``labels`` (N,) int64. An item is ``(image, label)`` with the
    transform applied to the image only, afresh at every access (so each epoch sees new
    random augmentations).
    """
    images, labels = _images()
    kept = images.clone()
    plain = report.run("building the dataset", dataset_cls, images, labels)
    length = report.run("len() of the dataset", len, plain)
    if not report.check(length == len(images), f"len() is the number of images, "
                        f"{len(images)}", f"len() is {length}, expected {len(images)}, the "
                        f"number of images (len(self.images), not a dimension of one image)"):
        return
    item = report.run("dataset[3]", plain.__getitem__, 3)
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        report.fail(f"dataset[3] returned {shape_of(item)}; return a pair (image, label)")
        return
    image, label = item
    if not isinstance(image, torch.Tensor):
        report.fail(f"the image is a {type(image).__name__}; return a torch.Tensor")
    elif image.shape == (1, *images.shape[1:]):
        report.fail(f"the image has shape {tuple(image.shape)}, a batch of one: index with "
                    f"images[i] to get {tuple(images.shape[1:])}")
    elif image.shape != images.shape[1:]:
        report.fail(f"the image has shape {tuple(image.shape)}, expected "
                    f"{tuple(images.shape[1:])} (C, H, W)")
    elif torch.equal(image, images[3]):
        report.ok("without a transform, dataset[i] is (images[i], labels[i])")
    elif torch.equal(image, images[4]) or torch.equal(image, images[2]):
        report.fail("dataset[3] returned a neighbouring image: index with i itself")
    else:
        report.fail("without a transform, the image differs from images[i]")
    label_value = label.item() if isinstance(label, torch.Tensor) and label.numel() == 1 else label
    if isinstance(label, torch.Tensor) and label.is_floating_point():
        report.fail("the label is a float tensor: cross-entropy needs integer (int64) labels")
    elif label_value != labels[3].item():
        report.fail(f"the label of item 3 is {label_value!r}, expected {labels[3].item()}")
    else:
        report.ok("labels are integers and belong to their images")

    transform = _Recording()
    augmented = report.run("with transform=...:", dataset_cls, images, labels,
                           transform=transform)
    calls_at_init = len(transform.inputs)
    first = report.run("with transform=...:", augmented.__getitem__, 0)
    again = report.run("with transform=...:", augmented.__getitem__, 0)
    if calls_at_init:
        report.fail(f"the transform ran {calls_at_init} times while the dataset was built: "
                    f"apply it in __getitem__, so that every epoch draws new random "
                    f"augmentations instead of reusing one")
    elif not transform.inputs:
        report.fail("the transform was never called: apply self.transform to the image in "
                    "__getitem__ when it is not None")
    else:
        bad_inputs = [v for v in transform.inputs if not isinstance(v, torch.Tensor)
                      or v.shape != images.shape[1:]]
        if bad_inputs:
            report.fail(f"the transform was called with {shape_of(bad_inputs[0])}: apply it "
                        f"to the image (C, H, W) only, not to the label or the whole set")
        elif torch.equal(first[0], again[0]):
            report.fail("dataset[0] gave the same image twice with a random transform: draw "
                        "the augmentation in __getitem__, at every access")
        elif first[0].sub(images[0]).min() < 10.0:
            report.fail("the transform's output is not what dataset[i] returns: return the "
                        "transformed image")
        else:
            report.ok("the transform is applied to the image, afresh at every access")
    if not torch.equal(images, kept):
        report.fail("the dataset changed the caller's images tensor in place: return "
                    "transformed copies and keep the originals")

    from torch.utils.data import DataLoader

    xb, yb = report.run("a DataLoader cannot batch the items:",
                        lambda: next(iter(DataLoader(plain, batch_size=4))))
    report.check(tuple(xb.shape) == (4, *images.shape[1:]) and tuple(yb.shape) == (4,),
                 "a DataLoader stacks items into batches (4, 1, 8, 8) and (4,)",
                 f"a DataLoader with batch_size=4 gives shapes {tuple(xb.shape)} and "
                 f"{tuple(yb.shape)}, expected (4, 1, 8, 8) and (4,)")


# --- the MLP -----------------------------------------------------------------------------------

def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _mlp_params(sizes: list[int], bias: bool = True) -> int:
    return sum(a * b + (b if bias else 0) for a, b in pairwise(sizes))


@student_check("your nn.Module class")
def check_mlp(report: Report, mlp_cls) -> None:
    """Check an MLP class built as ``mlp_cls(in_features, hidden, num_classes)``.

    It must flatten images (N, C, H, W), stack Linear layers of the given sizes with a
    nonlinearity between them, and return logits (N, num_classes).
    """
    sizes = [3 * 8 * 8, 32, 16, 5]
    torch.manual_seed(0)
    model = report.run(f"{mlp_cls.__name__}(in_features=192, hidden=(32, 16), num_classes=5)",
                       mlp_cls, in_features=sizes[0], hidden=tuple(sizes[1:-1]),
                       num_classes=sizes[-1])
    if not isinstance(model, nn.Module):
        report.fail(f"{mlp_cls.__name__} is not an nn.Module: subclass torch.nn.Module")
        return
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    wanted = list(pairwise(sizes))
    report.check(shapes == wanted, f"Linear layers {wanted}",
                 f"the Linear layers are {shapes}, expected {wanted} for in_features=192, "
                 f"hidden=(32, 16), num_classes=5")
    count, expected = _count(model), _mlp_params(sizes)
    if count == expected:
        report.ok(f"{expected:,} parameters")
    elif count == _mlp_params(sizes, bias=False):
        report.fail("the Linear layers have no biases: keep bias=True (the default)")
    elif shapes == wanted:
        report.fail(f"{count:,} parameters, expected {expected:,}: the model holds "
                    f"parameters besides its Linear layers")
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        out = report.run("the forward pass on images (6, 3, 8, 8)", model, x, hints={
            "shapes cannot be multiplied": ": flatten each image to a vector first "
                                           "(nn.Flatten() or x.flatten(1))"})
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (6, sizes[-1]):
        report.fail(f"images (6, 3, 8, 8) give output {shape_of(out)}, expected (6, 5)")
        return
    report.ok("images (N, 3, 8, 8) give logits (N, 5)")
    if torch.allclose(out.sum(dim=1), torch.ones(6), atol=1e-5) and (out >= 0).all():
        report.fail("the output rows are probabilities: return logits, since "
                    "F.cross_entropy applies the (log-)softmax itself")
    elif (out >= 0).all():
        report.fail("every output is >= 0: the last Linear layer must not be followed by an "
                    "activation; logits can be negative")
    with torch.no_grad():
        x2 = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
        zero = model(torch.zeros(1, 3, 8, 8))
        linear = torch.allclose(model(x + x2) - zero, (model(x) - zero) + (model(x2) - zero),
                                atol=1e-4)
    report.check(not linear, "a nonlinearity sits between the layers",
                 "the network is linear: without an activation between the Linear layers it "
                 "collapses into a single linear map")
    default = report.run(f"{mlp_cls.__name__}() with its defaults", mlp_cls)
    full = _mlp_params([3072, 512, 256, 10])
    report.check(_count(default) == full,
                 f"the defaults (3072 -> 512 -> 256 -> 10) give {full:,} parameters",
                 f"{mlp_cls.__name__}() has {_count(default):,} parameters; the default "
                 f"sizes 3072 -> 512 -> 256 -> 10 give {full:,}")


# --- batch-norm backward -----------------------------------------------------------------------

def _batchnorm_case(seed: int = 0, n: int = 6, d: int = 4):
    """x (n, d) with one low-variance feature, so that where eps goes matters."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.array([1.0, 2.0, 0.5, 0.003]) + rng.normal(size=d)
    gamma = rng.uniform(0.5, 2.0, size=d)
    return x, gamma, rng.normal(size=(n, d))


def _batchnorm_variants(dout, x, gamma, eps):
    """The right gradients and the ones realistic mistakes give, name -> (dx, dgamma, dbeta)."""
    mean, var = x.mean(axis=0), x.var(axis=0)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    g = dout * gamma
    centred, along = g.mean(axis=0), (g * x_hat).mean(axis=0)
    right = inv_std * (g - centred - x_hat * along)
    n = len(x)
    inv_unbiased = 1 / np.sqrt(var * n / (n - 1) + eps)
    x_unbiased = (x - mean) * inv_unbiased
    inv_eps_out = 1 / (np.sqrt(var) + eps)
    x_eps_out = (x - mean) * inv_eps_out
    return {
        "right": (right, dgamma, dbeta),
        "constants": (inv_std * g, dgamma, dbeta),
        "no variance path": (inv_std * (g - centred), dgamma, dbeta),
        "no mean path": (inv_std * (g - x_hat * along), dgamma, dbeta),
        "no gamma": (inv_std * (dout - dout.mean(axis=0)
                                - x_hat * (dout * x_hat).mean(axis=0)), dgamma, dbeta),
        "unbiased": (inv_unbiased * (g - centred - x_unbiased * (g * x_unbiased).mean(axis=0)),
                     (dout * x_unbiased).sum(axis=0), dbeta),
        "eps outside": (inv_eps_out * (g - centred - x_eps_out * (g * x_eps_out).mean(axis=0)),
                        (dout * x_eps_out).sum(axis=0), dbeta),
        "sum not mean": (inv_std * (g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)),
                         dgamma, dbeta),
    }


_BATCHNORM_MISTAKES = {
    "constants": "dx treats the batch mean and variance as constants (that is the gradient in "
                 "eval mode); in training both depend on every x_i, which adds two terms: "
                 "dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)) with g = dout * gamma",
    "no variance path": "dx misses the path through the batch variance: subtract "
                        "x_hat * mean(g * x_hat) as well as mean(g), with g = dout * gamma",
    "no mean path": "dx misses the path through the batch mean: subtract mean(g) as well, "
                    "with g = dout * gamma",
    "no gamma": "dx is missing the factor gamma: the upstream gradient of x_hat is "
                "dout * gamma, not dout",
    "unbiased": "the variance divides by N - 1: batch norm normalises with the biased batch "
                "variance, mean((x - mu)**2), as x.var(axis=0) computes by default",
    "eps outside": "eps sits outside the square root: batch norm divides by "
                   "sqrt(var + eps), not sqrt(var) + eps",
    "sum not mean": "dx subtracts sums over the batch where it needs means: divide "
                    "sum(g) and sum(g * x_hat) by N",
}


@student_check()
def check_batchnorm_backward(report: Report, batchnorm_backward) -> None:
    """Check ``batchnorm_backward(dout, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)``.

    Training-mode batch norm of x (N, D) with the batch mean and the biased batch variance,
    ``y = gamma * (x - mu) / sqrt(var + eps) + beta``; ``dout`` is dL/dy (N, D). Arguments
    are float64 numpy arrays; answers may be arrays or tensors.
    """
    x, gamma, dout = _batchnorm_case()
    eps = 1e-5
    originals = [a.copy() for a in (dout, x, gamma)]
    got = report.run("batchnorm_backward", batchnorm_backward, dout, x, gamma, eps)
    triple = _pair(got, 3)
    if triple is None:
        report.fail(f"batchnorm_backward returned {shape_of(got)}; return three arrays "
                    f"(dx, dgamma, dbeta)")
        return
    dx, dgamma, dbeta = (_np(v) for v in triple)
    variants = _batchnorm_variants(dout, x, gamma, eps)
    right_dx, right_dgamma, right_dbeta = variants["right"]
    n, d = x.shape
    if dbeta is None or dbeta.shape != (d,):
        across = dbeta is not None and dbeta.shape == (n,)
        report.fail(f"dbeta has shape {shape_of(triple[2])}, expected ({d},), one entry per "
                    f"feature" + (": sum over the batch (axis 0), not over the features"
                                  if across else ""))
    elif close(dbeta, right_dbeta):
        report.ok("dbeta matches")
    elif close(dbeta, right_dbeta / n):
        report.fail("dbeta is averaged over the batch: the loss sums each sample's "
                    "contribution, so sum dout over axis 0")
    else:
        report.fail(f"dbeta is wrong ({mismatch(dbeta, right_dbeta)}): it is dout summed "
                    f"over the batch")
    if dgamma is None or dgamma.shape != (d,):
        report.fail(f"dgamma has shape {shape_of(triple[1])}, expected ({d},)")
    elif close(dgamma, right_dgamma):
        report.ok("dgamma matches")
    elif close(dgamma, (dout * x).sum(axis=0)):
        report.fail("dgamma uses x: gamma multiplies the normalised x_hat, so dgamma = "
                    "sum(dout * x_hat) over the batch")
    elif close(dgamma, right_dgamma / n):
        report.fail("dgamma is averaged over the batch: sum dout * x_hat over axis 0")
    elif close(dgamma, variants["unbiased"][1]):
        report.fail(_BATCHNORM_MISTAKES["unbiased"])
    elif close(dgamma, variants["eps outside"][1]):
        report.fail(_BATCHNORM_MISTAKES["eps outside"])
    else:
        report.fail(f"dgamma is wrong ({mismatch(dgamma, right_dgamma)}): it is "
                    f"sum(dout * x_hat) over the batch")
    if dx is None or dx.shape != x.shape:
        report.fail(f"dx has shape {shape_of(triple[0])}, expected {x.shape}, like x")
    elif close(dx, right_dx):
        report.ok("dx matches, including the paths through the batch mean and variance")
    else:
        for name, message in _BATCHNORM_MISTAKES.items():
            if close(dx, variants[name][0]):
                report.fail(message)
                break
        else:
            if close(dx, -right_dx):
                report.fail("dx has the wrong sign")
            elif close(dx.sum(axis=0), 0, atol=1e-6):
                report.fail(f"dx is wrong ({mismatch(dx, right_dx)}); its columns sum to 0 "
                            f"as they should, so the mean path is right: check the "
                            f"variance term, x_hat * mean(dout * gamma * x_hat)")
            else:
                report.fail(f"dx is wrong ({mismatch(dx, right_dx)}); the columns of the "
                            f"right dx sum to 0, since shifting every x_i by the same amount "
                            f"changes nothing after normalisation")
    if any(not np.array_equal(a, o) for a, o in zip((dout, x, gamma), originals, strict=True)):
        report.fail("batchnorm_backward changed dout, x or gamma in place: compute into new "
                    "arrays")
