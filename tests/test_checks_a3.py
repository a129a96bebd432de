"""dlcc.checks.a3 accepts a correct Assignment 3 and names each realistic mistake."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dlcc import metrics
from dlcc.checks import a3

# --- reference solutions ---------------------------------------------------------------------


def train_step(model, x, y, optimizer, loss_fn):
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(dim=1) == y).sum().item()
        total += len(y)
    return correct / total


def conv_bn_relu(c_in, c_out, bias=False, bn=True, groups=1, kernel=3):
    layers = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias, groups=groups)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(c_out)] if bn else []), nn.ReLU())


def init(model, conv=True, linear=True):
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and conv:
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.Linear) and linear:
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def make_cnn(bias=False, bn=True, depthwise=False, gap=True, convs_per_block=2, he=True,
             xavier=True, pointwise=True):
    class CNN(nn.Module):
        def __init__(self, in_channels=3, num_classes=10):
            super().__init__()
            layers, c = [], in_channels
            for i, w in enumerate((32, 64, 128)):
                for j in range(convs_per_block):
                    if depthwise and (i, j) != (0, 0):
                        layers.append(conv_bn_relu(c, c, bias, bn, groups=c))
                        if pointwise:
                            layers.append(conv_bn_relu(c, w, bias, bn, kernel=1))
                        else:
                            layers.append(conv_bn_relu(c, w, bias, bn))
                    else:
                        layers.append(conv_bn_relu(c, w, bias, bn))
                    c = w
                layers.append(nn.MaxPool2d(2))
            self.features = nn.Sequential(*layers)
            pool = nn.AdaptiveAvgPool2d(1) if gap else nn.AdaptiveAvgPool2d(4)
            self.head = nn.Sequential(pool, nn.Flatten(), nn.Linear(128 if gap else 2048,
                                                                    num_classes))
            init(self, conv=he, linear=xavier)

        def forward(self, x):
            return self.head(self.features(x))
    return CNN


class PreAct(nn.Module):
    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride, bias=False)
                         if stride != 1 or c_in != c_out else None)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        return self.conv2(F.relu(self.bn2(self.conv1(out)))) + skip


class PostAct(PreAct):
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x))) if self.bn1.num_features == self.conv1.out_channels \
            else F.relu(self.conv1(x))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.conv2(out) + skip)


class NoShortcut(PreAct):
    def forward(self, x):
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))


class IdentityAlways(PreAct):
    def forward(self, x):
        out = F.relu(self.bn1(x))
        return self.conv2(F.relu(self.bn2(self.conv1(out)))) + x


def make_unet(cat=True, sigmoid=False):
    class UNet(nn.Module):
        def __init__(self, in_channels=1, out_channels=1):
            super().__init__()
            self.enc = conv_bn_relu(in_channels, 8)
            self.mid = conv_bn_relu(8, 16)
            self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
            self.dec = conv_bn_relu(16 if cat else 8, 8)
            self.out = nn.Conv2d(8, out_channels, 1)

        def forward(self, x):
            skip = self.enc(x)
            up = self.up(self.mid(F.max_pool2d(skip, 2)))
            out = self.out(self.dec(torch.cat([skip, up], 1) if cat else skip + up))
            return torch.sigmoid(out) if sigmoid else out
    return UNet


def dice(logits, masks, eps=1e-6):
    n = len(logits)
    p, t = (logits > 0).float().reshape(n, -1), masks.float().reshape(n, -1)
    return ((2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean().item()


@pytest.mark.parametrize("check, fn", [
    (a3.check_train_step, train_step), (a3.check_evaluate, evaluate),
    (a3.check_small_cnn, make_cnn()), (a3.check_depthwise_cnn, make_cnn(depthwise=True)),
    (a3.check_preact_block, PreAct), (a3.check_unet, make_unet()), (a3.check_dice, dice),
])
def test_reference_passes(check, fn, capsys):
    result = check(fn)
    assert result.passed, "\n".join(result.messages)
    assert f"All {result.checks} checks passed." in capsys.readouterr().out


# --- realistic mistakes ------------------------------------------------------------------------

def step_no_zero_grad(model, x, y, optimizer, loss_fn):
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_no_step(model, x, y, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.item()


def step_zero_after_backward(model, x, y, optimizer, loss_fn):
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_softmax(model, x, y, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(F.softmax(model(x), dim=1), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_eval(model, x, y, optimizer, loss_fn):
    model.eval()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_returns_tensor(model, x, y, optimizer, loss_fn):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def step_first(model, x, y, optimizer, loss_fn):
    loss = loss_fn(model(x), y)
    optimizer.step()
    loss.backward()
    return loss.item()


def eval_train_mode(model, loader):
    with torch.no_grad():
        hits = [(model(x).argmax(1) == y).float().sum().item() for x, y in loader]
    return sum(hits) / len(loader.dataset)


def eval_with_grad(model, loader):
    model.eval()
    hits = [(model(x).argmax(1) == y).float().sum().item() for x, y in loader]
    return sum(hits) / len(loader.dataset)


@torch.no_grad()
def eval_batch_mean(model, loader):
    model.eval()
    accs = [(model(x).argmax(1) == y).float().mean().item() for x, y in loader]
    return sum(accs) / len(accs)


@torch.no_grad()
def eval_percent(model, loader):
    return 100 * evaluate(model, loader)


def dice_soft(logits, masks):
    n = len(logits)
    p, t = torch.sigmoid(logits).reshape(n, -1), masks.reshape(n, -1)
    return (2 * (p * t).sum(1) / (p.sum(1) + t.sum(1))).mean().item()


def dice_logits_at_half(logits, masks):
    return dice(logits - 0.5, masks)


def dice_batch(logits, masks):
    p = (logits > 0).float()
    return (2 * (p * masks).sum() / (p.sum() + masks.sum())).item()


def dice_no_eps(logits, masks):
    n = len(logits)
    p, t = (logits > 0).float().reshape(n, -1), masks.reshape(n, -1)
    return (2 * (p * t).sum(1) / (p.sum(1) + t.sum(1))).mean().item()


def dice_iou(logits, masks):
    n = len(logits)
    p, t = (logits > 0).float().reshape(n, -1), masks.reshape(n, -1)
    inter = (p * t).sum(1)
    return (inter / (p.sum(1) + t.sum(1) - inter)).mean().item()


def dice_in_place(logits, masks):
    logits[logits > 0] = 1
    logits[logits <= 0] = 0
    return dice(logits, masks)


MISTAKES = [
    (a3.check_train_step, step_no_zero_grad, "call optimizer.zero_grad() before backward()"),
    (a3.check_train_step, step_no_step, "call optimizer.step()"),
    (a3.check_train_step, step_zero_after_backward, "not between backward() and step()"),
    (a3.check_train_step, step_softmax, "computed on softmax probabilities"),
    (a3.check_train_step, step_eval, "eval mode"),
    (a3.check_train_step, step_returns_tensor, "return loss.item()"),
    (a3.check_train_step, step_first, "optimizer.step() probably ran before loss.backward()"),
    (a3.check_evaluate, eval_train_mode, "call model.eval() first"),
    (a3.check_evaluate, eval_with_grad, "torch.no_grad()"),
    (a3.check_evaluate, eval_batch_mean, "averaged the accuracies of the batches"),
    (a3.check_evaluate, eval_percent, "returned a percentage"),
    (a3.check_small_cnn, make_cnn(bias=True), "a conv followed by batch norm needs none"),
    (a3.check_small_cnn, make_cnn(bn=False), "there is no BatchNorm2d"),
    (a3.check_small_cnn, make_cnn(gap=False), "the linear head takes 2048 inputs"),
    (a3.check_small_cnn, make_cnn(he=False), "PyTorch's default initialisation"),
    (a3.check_small_cnn, make_cnn(xavier=False), "does not have Xavier init"),
    (a3.check_small_cnn, make_cnn(convs_per_block=1), "two per block"),
    (a3.check_small_cnn, make_cnn()(), "not an instance"),
    (a3.check_depthwise_cnn, make_cnn(), "no depthwise convolution"),
    (a3.check_depthwise_cnn, make_cnn(depthwise=True, pointwise=False), "1x1 (pointwise)"),
    (a3.check_preact_block, PostAct, "post-activation"),
    (a3.check_preact_block, NoShortcut, "add the input x"),
    (a3.check_preact_block, IdentityAlways, "1x1 conv with the block's stride"),
    (a3.check_unet, make_unet(cat=False), "no torch.cat"),
    (a3.check_unet, make_unet(sigmoid=True), "ends with a sigmoid"),
    (a3.check_dice, dice_soft, "no threshold"),
    (a3.check_dice, dice_batch, "over the whole batch"),
    (a3.check_dice, dice_iou, "that is the IoU"),
    (a3.check_dice, dice_no_eps, "gives NaN (0 / 0)"),
    (a3.check_dice, dice_in_place, "changed logits in place"),
    (a3.check_dice, dice_logits_at_half, "thresholded at 0.5"),
    (a3.check_dice, lambda p, t: 1 - dice(p, t), "the Dice loss"),
]


@pytest.mark.parametrize("check, fn, phrase", MISTAKES,
                         ids=[f"{c.__name__}-{p[:30]}" for c, _, p in MISTAKES])
def test_mistake_is_named(check, fn, phrase):
    if isinstance(fn, nn.Module):
        with pytest.raises(TypeError, match=phrase):
            check(fn)
        return
    result = check(fn, quiet=True)
    assert not result.passed
    assert phrase in "\n".join(result.messages + result.notes), "\n".join(result.messages)


def test_dice_reference_is_the_library_function():
    """One contract: the library's dice itself passes the check."""
    assert a3.check_dice(metrics.dice, quiet=True).passed
