"""Every public function rejects malformed input with a message that names what went wrong."""

import re

import numpy as np
import pytest

from dlcc.scratch import conv, gradcheck, layers, optim, train
from dlcc.scratch.mlp import MLP

rng = np.random.default_rng(0)
X, W, B = rng.standard_normal((4, 3)), rng.standard_normal((5, 2)), np.zeros(2)
IMG, FILT, FB = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3)), np.zeros(4)
_, LIN_CACHE = layers.linear_forward(X, rng.standard_normal((3, 2)), B)
_, CONV_CACHE = conv.conv2d_forward(IMG, FILT, FB, 1, 1)
_, POOL_CACHE = conv.maxpool2d_forward(IMG)
_, DROP_CACHE = layers.dropout_forward(X, 0.5, True, np.random.default_rng(0))
_, BN_CACHE = layers.batchnorm_forward(X, np.ones(3), np.zeros(3), {}, train=True)
NAN = np.array([[0.0, np.nan]])
MODEL = MLP([3, 4, 10])
BINARY = MLP([3, 4, 1])


CASES = [
    # layers
    (lambda: layers.linear_forward(X, W, B), ValueError,
     r"x has shape \(4, 3\) but w expects 5 input features"),
    (lambda: layers.linear_forward(X, W[:3], np.zeros(7)), ValueError,
     r"b has shape \(7,\) but w has 2 output features"),
    (lambda: layers.linear_forward(X[0], W, B), ValueError, r"x must be 2-D \(N, D\)"),
    (lambda: layers.linear_forward(X.tolist(), W, B), TypeError, "x must be a numpy array"),
    (lambda: layers.linear_forward(X.astype(np.float32), W[:3], B), TypeError,
     "w has dtype float64 but x has dtype float32"),
    (lambda: layers.linear_backward(np.ones((4, 3)), LIN_CACHE), ValueError,
     r"dout has shape \(4, 3\) but the forward output had shape \(4, 2\)"),
    (lambda: layers.relu_forward(np.arange(3)), TypeError, "x must have a floating dtype"),
    (lambda: layers.relu_backward(np.ones(2), X), ValueError, "dout has shape"),
    (lambda: layers.sigmoid_forward([1.0]), TypeError, "x must be a numpy array"),
    (lambda: layers.sigmoid_backward(np.ones(2), X), ValueError, "dout has shape"),
    (lambda: layers.tanh_forward(np.array([1, 2])), TypeError, "floating dtype"),
    (lambda: layers.tanh_backward(np.ones((4, 4)), X), ValueError, "dout has shape"),
    (lambda: layers.softmax(np.array([1, 2])), TypeError, "logits must have a floating dtype"),
    (lambda: layers.softmax_cross_entropy(np.zeros((2, 10)), np.array([3, 12])), ValueError,
     "y contains label 12 but logits have 10 classes"),
    (lambda: layers.softmax_cross_entropy(np.zeros((2, 10)), np.array([-1, 0])), ValueError,
     "y contains label -1"),
    (lambda: layers.softmax_cross_entropy(NAN, np.array([0])), ValueError,
     "logits contain NaN"),
    (lambda: layers.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError,
     "y must be an integer numpy array"),
    (lambda: layers.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), ValueError,
     r"y has shape \(3,\) but expected \(2,\)"),
    (lambda: layers.softmax_cross_entropy(np.zeros(3), np.array([0])), ValueError,
     r"logits must be 2-D \(N, C\)"),
    (lambda: layers.binary_cross_entropy_with_logits(np.zeros(3), np.array([0, 1, 2])),
     ValueError, r"y contains 2 but binary targets must lie in \[0, 1\]"),
    (lambda: layers.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(4)), ValueError,
     r"y has shape \(4,\) but logits has shape \(3,\)"),
    (lambda: layers.binary_cross_entropy_with_logits(NAN, np.zeros((1, 2))), ValueError,
     "logits contain NaN"),
    (lambda: layers.mse_loss(np.zeros(3), np.zeros((3, 1))), ValueError,
     r"target has shape \(3, 1\) but pred has shape \(3,\)"),
    (lambda: layers.mse_loss(np.array([np.inf]), np.zeros(1)), ValueError,
     "pred contains infinite values"),
    (lambda: layers.mse_loss(np.zeros(1), np.array([np.nan])), ValueError,
     "target contains NaN"),
    (lambda: layers.dropout_forward(X, 1.0, True, np.random.default_rng(0)), ValueError,
     r"p must be in \[0, 1\), got 1.0"),
    (lambda: layers.dropout_forward(X, 0.5, True, None), TypeError,
     "rng must be a np.random.Generator"),
    (lambda: layers.dropout_backward(np.ones((2, 2)), DROP_CACHE), ValueError, "dout has shape"),
    (lambda: layers.batchnorm_forward(X, np.ones(4), np.zeros(3), {}, True), ValueError,
     r"gamma has shape \(4,\) but x has 3 features"),
    (lambda: layers.batchnorm_forward(X[:1], np.ones(3), np.zeros(3), {}, True), ValueError,
     "needs more than one value per feature"),
    (lambda: layers.batchnorm_forward(X, np.ones(3), np.zeros(3), None, True), TypeError,
     "state must be a dict"),
    (lambda: layers.batchnorm_forward(IMG[0], np.ones(3), np.zeros(3), {}, True), ValueError,
     r"x must be 2-D \(N, D\) or 4-D"),
    (lambda: layers.batchnorm_backward(np.ones((4, 2)), BN_CACHE), ValueError, "dout has shape"),
    # conv
    (lambda: conv.conv2d_forward(IMG, FILT, FB, stride=2), ValueError,
     r"stride 2 with pad 0 and kernel height 3 does not tile input height 8"),
    (lambda: conv.conv2d_forward(IMG[:, :, :7], FILT, FB, stride=2, pad=1),
     ValueError, "stride 2 with pad 1 and kernel width 3 does not tile input width 8"),
    (lambda: conv.conv2d_forward_naive(IMG, FILT[:, :2], FB), ValueError,
     "x has shape .* with 3 channels but w has shape .* and expects 2"),
    (lambda: conv.conv2d_forward(IMG, FILT, np.zeros(3)), ValueError,
     r"b has shape \(3,\) but w has 4 filters"),
    (lambda: conv.conv2d_forward(IMG[0], FILT, FB), ValueError, r"x must be 4-D \(N, C, H, W\)"),
    (lambda: conv.conv2d_forward(IMG, FILT, FB, pad=-1), ValueError,
     "pad must be an integer >= 0"),
    (lambda: conv.conv2d_forward_naive(IMG, FILT, FB, stride=0), ValueError,
     "stride must be an integer >= 1"),
    (lambda: conv.conv2d_backward(np.ones((2, 4, 6, 6)), CONV_CACHE), ValueError,
     r"dout has shape \(2, 4, 6, 6\) but the forward output had shape \(2, 4, 8, 8\)"),
    (lambda: conv.conv2d_backward_naive(np.ones((2, 4, 6, 6)), CONV_CACHE), ValueError,
     "dout has shape"),
    (lambda: conv.im2col(IMG, 3, 3, stride=2), ValueError, "does not tile input height 8"),
    (lambda: conv.col2im(np.ones((27, 10)), IMG.shape, 3, 3, 1, 1), ValueError,
     r"cols has shape \(27, 10\) but x_shape .* needs \(27, 128\)"),
    (lambda: conv.maxpool2d_forward(IMG[:, :, :7]), ValueError,
     "stride 2 with pad 0 and kernel height 2 does not tile input height 7"),
    (lambda: conv.maxpool2d_forward(IMG, size=0), ValueError, "size must be an integer >= 1"),
    (lambda: conv.maxpool2d_backward(np.ones((2, 3, 8, 8)), POOL_CACHE), ValueError,
     "dout has shape"),
    (lambda: conv.conv2d_output_size(5, 7), ValueError,
     "kernel 7 .* spans 7 pixels but the padded input has only 5"),
    (lambda: conv.conv2d_output_size(5, 3, stride=0), ValueError, "stride must be an integer"),
    # gradcheck
    (lambda: gradcheck.numerical_grad(lambda v: v, np.ones(3)), ValueError,
     r"f must return a scalar, got shape \(3,\)"),
    (lambda: gradcheck.numerical_grad(lambda v: v.sum(), np.ones(3), h=0), ValueError,
     "h must be positive"),
    (lambda: gradcheck.numerical_vjp(lambda v: v, np.ones(3), np.ones(2)), ValueError,
     r"dout has shape \(2,\) but f\(x\) has shape \(3,\)"),
    (lambda: gradcheck.rel_error(np.ones(3), np.ones(2)), ValueError,
     r"a has shape \(3,\) but b has shape \(2,\)"),
    # mlp
    (lambda: MLP([3]), ValueError, "sizes must list at least two positive integers"),
    (lambda: MLP([3, 0, 2]), ValueError, "sizes must list"),
    (lambda: MLP([3, 2], activation="gelu"), ValueError, "activation must be one of"),
    (lambda: MLP([3, 2], init="kaiming"), ValueError, "init must be 'he', 'xavier'"),
    (lambda: MLP([3, 2], l2=-1.0), ValueError, "l2 must be >= 0"),
    (lambda: MLP([3, 2], dtype=np.int64), TypeError, "dtype must be a floating type"),
    (lambda: MODEL.forward(np.ones((2, 5))), ValueError,
     r"x has shape \(2, 5\) but w expects 3 input features"),
    (lambda: MODEL.loss(np.ones((2, 3)), np.array([1, 12])), ValueError,
     "y contains label 12 but logits have 10 classes"),
    (lambda: MODEL.loss(np.ones((2, 3), dtype=np.float32), np.array([1, 2])), TypeError,
     "has dtype float64 but x has dtype float32"),
    (lambda: BINARY.loss(np.ones((2, 3)), np.array([0, 2])), ValueError,
     "y contains label 2 but a binary MLP"),
    (lambda: MODEL.predict(np.ones(3)), ValueError, r"x must be 2-D"),
    (lambda: MODEL.accuracy(np.ones((2, 3)), np.array([1])), ValueError,
     r"y has shape \(1,\) but expected \(2,\)"),
    # optim
    (lambda: optim.SGD(0.0), ValueError, "lr must be positive"),
    (lambda: optim.Momentum(0.1, beta=1.0), ValueError, r"beta must be in \[0, 1\)"),
    (lambda: optim.RMSProp(0.1, eps=0), ValueError, "eps must be positive"),
    (lambda: optim.AdaGrad(-1.0), ValueError, "lr must be positive"),
    (lambda: optim.Adam(0.1, betas=(0.9, 1.5)), ValueError, r"betas\[1\] must be in"),
    (lambda: optim.SGD(0.1).step({"W1": np.ones(2)}, {}), ValueError,
     "grads is missing 'W1'"),
    (lambda: optim.Adam(0.1).step({"W1": np.ones(2)}, {"W1": np.ones(3)}), ValueError,
     r"grads\['W1'\] has shape \(3,\) but params\['W1'\] has shape \(2,\)"),
    (lambda: optim.Momentum(0.1).step({"W1": np.ones(2)}, {"W1": np.ones(2), "b9": np.ones(1)}),
     ValueError, "grads has 'b9', which is not in params"),
    (lambda: optim.step_lr(3, 0.1, step_size=0), ValueError,
     "step_size must be a positive integer"),
    (lambda: optim.step_lr(-1, 0.1, step_size=2), ValueError, "step must be an integer >= 0"),
    (lambda: optim.cosine_lr(0, 0.1, total_steps=10, warmup=10), ValueError,
     r"warmup must be an integer in \[0, total_steps=10\)"),
    (lambda: optim.cosine_lr(0, 0.1, total_steps=0), ValueError, "total_steps must be"),
    (lambda: optim.one_cycle_lr(10, 0.1, total_steps=10), ValueError,
     "step 10 is past the schedule's last step 9"),
    (lambda: optim.one_cycle_lr(0, 0.1, total_steps=10, pct_start=1.0), ValueError,
     r"pct_start must be in \(0, 1\)"),
    (lambda: optim.one_cycle_lr(0, 0.1, total_steps=2, pct_start=0.3), ValueError,
     "pct_start \\* total_steps must exceed 1"),
    # train
    (lambda: train.fit(MODEL, optim.SGD(0.1), np.ones((5, 3)), np.zeros(4, dtype=int),
                       epochs=1, batch_size=2), ValueError, "x has 5 examples but y has 4"),
    (lambda: train.fit(MODEL, optim.SGD(0.1), np.ones((4, 3)), np.zeros(4, dtype=int),
                       epochs=0, batch_size=2), ValueError, "epochs must be an integer >= 1"),
    (lambda: train.fit(MODEL, optim.SGD(0.1), np.ones((4, 3)), np.zeros(4, dtype=int),
                       epochs=1, batch_size=2.5), ValueError, "batch_size must be an integer"),
    (lambda: train.fit(MODEL, optim.SGD(0.1), np.ones((4, 3)), np.zeros(4, dtype=int),
                       epochs=1, batch_size=2, x_val=np.ones((2, 3))), ValueError,
     "pass both x_val and y_val"),
    (lambda: train.fit(MODEL, optim.SGD(0.1), [[1.0]], [0], epochs=1, batch_size=1), TypeError,
     "x and y must be numpy arrays"),
    (lambda: train.overfit_one_batch(MODEL, optim.SGD(0.1), np.ones((4, 3)),
                                     np.zeros(4, dtype=int), steps=0), ValueError,
     "steps must be an integer >= 1"),
]


@pytest.mark.parametrize("call, error, match", CASES,
                         ids=[f"{i}-{c[2][:30]}" for i, c in enumerate(CASES)])
def test_bad_input_is_rejected_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_one_integer_check_for_both_halves():
    from dlcc.scratch._checks import integer

    assert integer("n", np.int32(3)) == 3 and type(integer("n", np.int32(3))) is int
    assert integer("step", 0, low=0) == 0
    for bad in (True, 2.0, "3", None, 0, np.float64(4.0)):
        message = re.escape(f"n must be a positive integer, got {bad!r}")
        with pytest.raises(ValueError, match=message):
            integer("n", bad)
    with pytest.raises(ValueError, match="classes must be an integer >= 2, got 1"):
        integer("classes", 1, low=2)
