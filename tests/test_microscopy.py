"""The fluorescence simulator: Poisson-Gaussian statistics, PSF, masks, seeds, bad input."""

from __future__ import annotations

import pytest
import torch

from dlcc.data.microscopy import fluorescent_nuclei, poisson_gaussian


def test_poisson_gaussian_has_the_right_mean_and_variance():
    clean = torch.full((200_000,), 0.4, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    noisy = poisson_gaussian(clean, photons=50.0, read_noise=3.0, generator=g)
    assert noisy.mean().item() == pytest.approx(0.4, abs=2e-3)
    # Shot noise c / photons plus read noise (read_noise / photons) ** 2.
    assert noisy.var().item() == pytest.approx(0.4 / 50 + (3 / 50) ** 2, rel=0.02)


def test_counts_are_whole_photons_without_read_noise():
    clean = torch.rand(64, 64)
    noisy = poisson_gaussian(clean, photons=10.0, read_noise=0.0,
                             generator=torch.Generator().manual_seed(1))
    counts = noisy * 10
    assert torch.allclose(counts, counts.round(), atol=1e-4)
    assert (counts >= 0).all()


def test_fewer_photons_give_noisier_images():
    errors = []
    for photons in (5.0, 50.0, 500.0):
        noisy, clean, _ = fluorescent_nuclei(8, size=32, seed=3, photons=photons).tensors
        errors.append((noisy - clean).pow(2).mean().item())
    assert errors[0] > errors[1] > errors[2]


def test_nuclei_shapes_masks_and_seed():
    data = fluorescent_nuclei(6, size=40, seed=4)
    noisy, clean, masks = data.tensors
    assert noisy.shape == clean.shape == masks.shape == (6, 1, 40, 40)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert (clean >= 0).all() and clean.max() <= 1.0
    # Nuclei are brighter than their surroundings in the expected image.
    assert clean[masks == 1].mean() > 3 * clean[masks == 0].mean()
    again = fluorescent_nuclei(6, size=40, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(data.tensors, again.tensors, strict=True))
    other = fluorescent_nuclei(6, size=40, seed=5)
    assert not torch.equal(masks, other.tensors[2])


def test_the_psf_blurs_edges():
    sharp = fluorescent_nuclei(4, size=48, seed=6, psf_sigma=0.0).tensors[1]
    blurred = fluorescent_nuclei(4, size=48, seed=6, psf_sigma=2.0).tensors[1]
    def steepest(x):  # a blurred step has the same total rise, spread over more pixels
        return (x[..., 1:] - x[..., :-1]).abs().amax().item()
    assert steepest(blurred) < 0.5 * steepest(sharp)


@pytest.mark.parametrize("kwargs, message", [
    ({"photons": 0.0}, "photons must be a finite number > 0"),
    ({"read_noise": -1.0}, "read_noise must be a finite number >= 0"),
])
def test_poisson_gaussian_rejects_bad_settings(kwargs, message):
    settings = {"photons": 10.0, "read_noise": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        poisson_gaussian(torch.ones(2, 2), **settings)


def test_poisson_gaussian_rejects_negative_or_integer_images():
    with pytest.raises(ValueError, match="clean must be >= 0"):
        poisson_gaussian(-torch.ones(2, 2), photons=10.0, read_noise=1.0)
    with pytest.raises(ValueError, match="clean must be a floating-point tensor"):
        poisson_gaussian(torch.ones(2, 2, dtype=torch.long), photons=10.0, read_noise=1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be a positive integer"), ({"size": 4}, "size must be an integer >= 8"),
    ({"psf_sigma": -0.5}, "psf_sigma must be a finite number >= 0"),
    ({"photons": float("inf")}, "photons must be a finite number > 0"),
])
def test_fluorescent_nuclei_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fluorescent_nuclei(**{"n": 2, **kwargs})
