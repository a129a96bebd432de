import numpy as np
import pytest
import torch

from dlcc.scratch import optim

# (our optimiser, the same thing in torch.optim)
PAIRS = {
    "sgd": (lambda: optim.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "momentum": (lambda: optim.Momentum(0.05, beta=0.8),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8)),
    "nesterov": (lambda: optim.Momentum(0.05, beta=0.8, nesterov=True),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True)),
    "rmsprop": (lambda: optim.RMSProp(0.01, beta=0.9, eps=1e-6),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6)),
    "adagrad": (lambda: optim.AdaGrad(0.1, eps=1e-8),
                lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-8)),
    "adam": (lambda: optim.Adam(0.01, betas=(0.8, 0.99), eps=1e-6),
             lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
}


@pytest.mark.parametrize("name", PAIRS)
def test_steps_match_torch_optim(name):
    ours, theirs = PAIRS[name]
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4)}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt, opt_t = ours(), theirs(list(tensors.values()))
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        opt_t.step()
        for k in params:
            np.testing.assert_allclose(params[k], tensors[k].detach().numpy(), rtol=1e-12)
    assert opt.state.keys() == params.keys()


@pytest.mark.parametrize("make", [
    lambda: optim.SGD(0.05), lambda: optim.Momentum(0.02),
    lambda: optim.Momentum(0.02, nesterov=True), lambda: optim.RMSProp(0.01),
    lambda: optim.AdaGrad(0.3), lambda: optim.Adam(0.05),
], ids=["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"])
def test_each_optimiser_solves_least_squares(make):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 5))
    target = a @ rng.standard_normal(5)  # an exact solution exists: the minimum loss is 0

    def loss_and_grad(w):
        r = a @ w - target
        return 0.5 * np.mean(r**2), {"w": a.T @ r / len(r)}

    params = {"w": np.zeros(5)}
    first, _ = loss_and_grad(params["w"])
    opt = make()
    for _ in range(300):
        opt.step(params, loss_and_grad(params["w"])[1])
    assert loss_and_grad(params["w"])[0] < 1e-3 * first


def test_float32_params_stay_float32():
    params = {"w": np.ones(3, dtype=np.float32)}
    for opt in (optim.SGD(0.1), optim.Momentum(0.1), optim.RMSProp(0.1), optim.AdaGrad(0.1),
                optim.Adam(0.1)):
        opt.step(params, {"w": np.ones(3, dtype=np.float32)})
        assert params["w"].dtype == np.float32


def torch_lrs(make_scheduler, steps, lr=1.0):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    scheduler = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


def test_step_lr_matches_torch():
    ours = [optim.step_lr(s, 0.5, step_size=7, gamma=0.3) for s in range(30)]
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 7, gamma=0.3), 30, lr=0.5)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_cosine_lr_matches_torch_and_warms_up():
    ours = [optim.cosine_lr(s, 0.5, total_steps=40, lr_min=0.01) for s in range(40)]
    theirs = torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40, eta_min=0.01), 40,
        lr=0.5)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    warm = [optim.cosine_lr(s, 1.0, total_steps=10, warmup=4) for s in range(12)]
    np.testing.assert_allclose(warm[:5], [0.25, 0.5, 0.75, 1.0, 1.0])
    assert warm[10] == warm[11] == 0.0 and all(np.diff(warm[4:]) <= 0)


@pytest.mark.parametrize("total, pct, div, final_div", [
    (100, 0.3, 25.0, 1e4), (37, 0.25, 10.0, 100.0), (10, 0.5, 5.0, 1e3),
])
def test_one_cycle_lr_matches_torch(total, pct, div, final_div):
    ours = [optim.one_cycle_lr(s, 0.2, total, pct, div, final_div) for s in range(total)]
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.2, total_steps=total, pct_start=pct, div_factor=div,
        final_div_factor=final_div), total)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert max(ours) == pytest.approx(0.2, rel=1e-2)
