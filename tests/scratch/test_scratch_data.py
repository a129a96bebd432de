import numpy as np
import pytest

from dlcc.scratch import data


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist_small()


def test_mnist_split_sizes_are_stratified_and_disjoint(mnist):
    assert mnist.x_train.shape == (3500, 784) and mnist.x_val.shape == (500, 784)
    assert mnist.x_test.shape == (1000, 784) and mnist.image_shape == (28, 28)
    for y in (mnist.y_train, mnist.y_val, mnist.y_test):
        assert y.dtype == np.int64
        counts = np.bincount(y, minlength=10)
        assert counts.max() == counts.min()  # 500 per class split in fixed proportions
    rows = {r.tobytes() for r in mnist.x_test}
    assert not any(r.tobytes() in rows for r in mnist.x_train)


def test_standardisation_uses_training_statistics_only(mnist):
    assert np.all(np.isfinite(mnist.x_train)) and np.all(np.isfinite(mnist.x_test))
    raw = data.load_mnist_small(standardize=False)
    raw_std, floor = raw.x_train.std(axis=0), data.STD_FLOOR * raw.x_train.std()
    lit = raw_std > floor  # pixels that vary a lot keep their own std
    assert 100 < lit.sum() < 700
    np.testing.assert_allclose(mnist.std[lit], raw_std[lit], rtol=1e-12)
    np.testing.assert_allclose(mnist.std[~lit], floor, rtol=1e-12)
    np.testing.assert_allclose(mnist.x_train.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(mnist.x_train[:, lit].std(axis=0), 1, rtol=1e-10)
    np.testing.assert_allclose(mnist.x_test * mnist.std + mnist.mean, raw.x_test, atol=1e-9)
    assert raw.x_train.min() == 0 and raw.x_train.max() == 255
    assert np.all(raw.mean == 0) and np.all(raw.std == 1)


def test_constant_pixels_give_zeros_not_nan():
    digits = data.load_digits()
    constant = digits.x_train.std(axis=0) == 0
    assert constant.any()  # the corner pixels of sklearn's digits are always 0
    assert np.all(digits.x_train[:, constant] == 0)
    assert np.all(np.isfinite(digits.x_test)) and np.all(digits.std > 0)


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = data.load_digits(seed=3), data.load_digits(seed=3), data.load_digits(seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)


def test_image_layout_and_dtype():
    split = data.load_digits(flatten=False, dtype=np.float32, val_fraction=0.2,
                             test_fraction=0.3)
    assert split.x_train.shape[1:] == (1, 8, 8) and split.x_train.dtype == np.float32
    assert split.mean.shape == (1, 8, 8) and split.std.dtype == np.float32
    n = len(split.y_train) + len(split.y_val) + len(split.y_test)
    assert n == 1797
    assert abs(len(split.y_test) / n - 0.3) < 0.01 and abs(len(split.y_val) / n - 0.2) < 0.01


@pytest.mark.parametrize("make, kwargs, classes", [
    (data.spirals, {"n": 301, "classes": 4}, 4),
    (data.moons, {"n": 300}, 2),
    (data.xor, {"n": 200}, 2),
])
def test_toy_sets_shapes_labels_and_determinism(make, kwargs, classes):
    x, y = make(**kwargs, seed=1)
    x2, y2 = make(**kwargs, seed=1)
    assert x.shape == (kwargs["n"], 2) and x.dtype == np.float64 and y.dtype == np.int64
    counts = np.bincount(y)
    assert len(counts) == classes and counts.min() >= kwargs["n"] // classes // 2
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_xor_labels_follow_quadrants_without_noise():
    x, y = data.xor(n=500, noise=0.0)
    np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] < 0).astype(int))


@pytest.mark.parametrize("call, error, match", [
    (lambda: data.load_digits(val_fraction=0), ValueError, r"val_fraction must be in \(0, 1\)"),
    (lambda: data.load_digits(test_fraction=1.5), ValueError, "test_fraction must be in"),
    (lambda: data.load_digits(val_fraction=0.5, test_fraction=0.5), ValueError,
     r"val_fraction \+ test_fraction must be < 1"),
    (lambda: data.load_mnist_small(val_fraction=-0.1), ValueError, "val_fraction"),
    (lambda: data.load_digits(dtype=np.int32), TypeError, "dtype must be a floating type"),
    (lambda: data.spirals(classes=1), ValueError, "classes must be an integer >= 2"),
    (lambda: data.spirals(n=2, classes=3), ValueError, "n must be an integer >= 3"),
    (lambda: data.moons(noise=-1), ValueError, "noise must be >= 0"),
    (lambda: data.xor(n=0), ValueError, "n must be a positive integer"),
])
def test_bad_arguments_are_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()
