"""dlcc.checks.a2 accepts a correct Assignment 2 and names each realistic mistake."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from dlcc.checks import a2

# --- reference solutions ---------------------------------------------------------------------


def quadratic_grad(A, b, x):
    A = A.detach().clone().requires_grad_()
    b = b.detach().clone().requires_grad_()
    f = x @ A @ x / 2 + b @ x + 1
    f.backward()
    return A.grad, b.grad


def matmul_relu_grad(A, x, B, grad_out):
    A, x, B = (t.detach().clone().requires_grad_() for t in (A, x, B))
    y = A @ x @ B + torch.relu(x)
    y.backward(grad_out)
    return A.grad, x.grad, B.grad


class AugmentedImages(Dataset):
    def __init__(self, images, labels, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


class MLP(nn.Module):
    def __init__(self, in_features=3 * 32 * 32, hidden=(512, 256), num_classes=10):
        super().__init__()
        sizes = [in_features, *hidden]
        layers = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("check, fn", [
    (a2.check_quadratic_grad, quadratic_grad), (a2.check_matmul_relu_grad, matmul_relu_grad),
    (a2.check_dataset, AugmentedImages), (a2.check_mlp, MLP),
])
def test_reference_passes(check, fn, capsys):
    result = check(fn)
    assert result.passed, "\n".join(result.messages)
    assert f"All {result.checks} checks passed." in capsys.readouterr().out


# --- realistic mistakes ------------------------------------------------------------------------

def quadratic_in_place(A, b, x):
    A.requires_grad_()
    b.requires_grad_()
    f = x @ A @ x / 2 + b @ x + 1
    f.backward()
    return A.grad, b.grad


def quadratic_no_half(A, b, x):
    dA, db = quadratic_grad(A, b, x)
    return 2 * dA, db


def quadratic_wrt_x(A, b, x):
    db = quadratic_grad(A, b, x)[1]
    x = x.detach().clone().requires_grad_()
    f = x @ A @ x / 2 + b @ x + 1
    f.backward()
    return x.grad, db


def quadratic_forgot_requires_grad(A, b, x):
    f = x @ A @ x / 2 + b @ x + 1  # A never required grad: A.grad stays None
    return A.grad, b.grad if f.requires_grad else b.grad


def matmul_sum(A, x, B, grad_out):
    return matmul_relu_grad(A, x, B, torch.ones_like(grad_out))


def matmul_by_hand(no_mask=False, no_relu=False, untransposed=False, transposed_dA=False):
    def grads(A, x, B, g):
        path = A @ g @ B if untransposed else A.T @ g @ B.T
        relu = 0 if no_relu else (g if no_mask else g * (x > 0))
        dA = (x @ B) @ g.T if transposed_dA else g @ (x @ B).T
        return dA, path + relu, (A @ x).T @ g
    return grads


def dataset_with(**changes):
    class Broken(AugmentedImages):
        if changes.get("len_wrong"):
            def __len__(self):
                return self.images.shape[1]
        if changes.get("batch_of_one"):
            def __getitem__(self, i):
                return self.images[i:i + 1], self.labels[i]
        if changes.get("float_label"):
            def __getitem__(self, i):
                return self.images[i], self.labels[i].float()
        if changes.get("transform_at_init"):
            def __init__(self, images, labels, transform=None):
                super().__init__(images, labels, None)
                if transform is not None:
                    self.images = torch.stack([transform(im) for im in images])
        if changes.get("ignores_transform"):
            def __getitem__(self, i):
                return self.images[i], self.labels[i]
        if changes.get("transform_pair"):
            def __getitem__(self, i):
                pair = (self.images[i], self.labels[i])
                return self.transform(pair) if self.transform else pair
        if changes.get("in_place"):
            def __getitem__(self, i):
                if self.transform is not None:
                    self.images[i] = self.transform(self.images[i])
                return self.images[i], self.labels[i]
    return Broken


def mlp_with(activation=nn.ReLU, head=None, bias=True, flatten=True):
    class Broken(nn.Module):
        def __init__(self, in_features=3 * 32 * 32, hidden=(512, 256), num_classes=10):
            super().__init__()
            sizes = [in_features, *hidden]
            layers = [nn.Flatten()] if flatten else []
            for a, b in zip(sizes[:-1], sizes[1:], strict=True):
                layers += [nn.Linear(a, b, bias=bias)] + ([activation()] if activation else [])
            layers.append(nn.Linear(sizes[-1], num_classes, bias=bias))
            if head is not None:
                layers.append(head)
            self.net = nn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)
    return Broken


MISTAKES = [
    (a2.check_quadratic_grad, quadratic_no_half, "twice the expected value"),
    (a2.check_quadratic_grad, quadratic_wrt_x, "is df/dx, not df/dA"),
    (a2.check_quadratic_grad, quadratic_forgot_requires_grad, "A.grad stays None"),
    (a2.check_quadratic_grad, quadratic_in_place, ".grad accumulates"),
    (a2.check_quadratic_grad, lambda A, b, x: (quadratic_grad(A, b, x)[0], b),
     "df/db equals b itself"),
    (a2.check_matmul_relu_grad, matmul_sum, "ignores grad_out"),
    (a2.check_matmul_relu_grad, matmul_by_hand(no_relu=True), "lacks the ReLU path"),
    (a2.check_matmul_relu_grad, matmul_by_hand(no_mask=True), "where x > 0 and 0 elsewhere"),
    (a2.check_matmul_relu_grad, matmul_by_hand(untransposed=True), "untransposed"),
    (a2.check_matmul_relu_grad, matmul_by_hand(transposed_dA=True), "dA is transposed"),
    (a2.check_dataset, dataset_with(len_wrong=True), "len() is 1, expected 10"),
    (a2.check_dataset, dataset_with(batch_of_one=True), "a batch of one"),
    (a2.check_dataset, dataset_with(float_label=True), "integer (int64) labels"),
    (a2.check_dataset, dataset_with(transform_at_init=True), "while the dataset was built"),
    (a2.check_dataset, dataset_with(ignores_transform=True), "transform was never called"),
    (a2.check_dataset, dataset_with(transform_pair=True), "not to the label"),
    (a2.check_dataset, dataset_with(in_place=True), "changed the caller's images"),
    (a2.check_mlp, mlp_with(activation=None), "the network is linear"),
    (a2.check_mlp, mlp_with(head=nn.Softmax(dim=1)), "return logits"),
    (a2.check_mlp, mlp_with(head=nn.ReLU()), "must not be followed by an activation"),
    (a2.check_mlp, mlp_with(bias=False), "have no biases"),
    (a2.check_mlp, mlp_with(flatten=False), "flatten each image"),
]


@pytest.mark.parametrize("check, fn, phrase", MISTAKES,
                         ids=[f"{c.__name__}-{p[:30]}" for c, _, p in MISTAKES])
def test_mistake_is_named(check, fn, phrase):
    result = check(fn, quiet=True)
    assert not result.passed
    assert phrase in "\n".join(result.messages), "\n".join(result.messages)


def test_class_checks_reject_an_instance():
    with pytest.raises(TypeError, match="pass the class MLP, not an instance"):
        a2.check_mlp(MLP())
