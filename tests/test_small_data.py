"""Learning from small data: NT-Xent, the two-view loader, episodes, prototypes, freezing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlcc import contrastive, fewshot, transfer


def nt_xent_by_definition(z1, z2, t):
    """The mean over the 2N anchors of -log(exp(s_ip / t) / sum_{k != i} exp(s_ik / t)),
    one anchor at a time, with cosine similarities written out."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        positive = (i + n2 // 2) % n2
        sims = [torch.dot(z[i], z[k]) / (z[i].norm() * z[k].norm()) for k in range(n2)]
        denominator = sum(math.exp(s / t) for k, s in enumerate(sims) if k != i)
        total += -math.log(math.exp(sims[positive] / t) / denominator)
    return total / n2


@pytest.mark.parametrize("n, d, t", [(2, 3, 0.5), (5, 4, 0.1), (7, 8, 1.0), (4, 2, 2.5)])
def test_nt_xent_matches_its_definition(n, d, t):
    g = torch.Generator().manual_seed(n * d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    got = contrastive.nt_xent(z1.double(), z2.double(), t).item()
    assert got == pytest.approx(nt_xent_by_definition(z1, z2, t), rel=1e-10)


def test_nt_xent_temperature_changes_the_loss():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    losses = [contrastive.nt_xent(z1, z2, t).item() for t in (0.1, 0.5, 2.0)]
    assert len({round(v, 6) for v in losses}) == 3
    # A very high temperature makes every candidate equally likely: log(2N - 1).
    assert contrastive.nt_xent(z1, z2, 1e6).item() == pytest.approx(math.log(11), abs=1e-4)


def test_nt_xent_positive_pairs_are_matched_by_index():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    loss = contrastive.nt_xent(z1, z2, 0.3)
    # Swapping the views swaps the roles of the anchors: the same loss.
    assert contrastive.nt_xent(z2, z1, 0.3).item() == pytest.approx(loss.item(), rel=1e-6)
    # Permuting both views alike only renames the images.
    p = torch.randperm(5, generator=g)
    assert contrastive.nt_xent(z1[p], z2[p], 0.3).item() == pytest.approx(loss.item(),
                                                                          rel=1e-6)
    # Permuting one view breaks the pairs: the loss changes.
    assert contrastive.nt_xent(z1, z2.roll(1, 0), 0.3).item() != pytest.approx(loss.item())
    # Scaling an embedding does not matter (cosine similarity).
    assert contrastive.nt_xent(3 * z1, z2, 0.3).item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("n, t", [(2, 0.5), (4, 0.2), (8, 1.0)])
def test_nt_xent_identical_positives_orthogonal_negatives(n, t):
    z = torch.eye(n, 2 * n)  # n orthonormal rows; the second view is identical
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / t))
    assert contrastive.nt_xent(z, z.clone(), t).item() == pytest.approx(expected, rel=1e-6)


def test_collapsed_embeddings_score_log_2n_minus_1():
    z = torch.ones(4, 3)
    assert contrastive.nt_xent(z, z, 0.1).item() == pytest.approx(math.log(7), rel=1e-5)


def test_contrastive_loss_splits_the_stacked_views():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    loss_fn = contrastive.contrastive_loss(0.5)
    got = loss_fn(torch.cat([z1, z2]), torch.zeros(4))
    assert got.item() == pytest.approx(contrastive.nt_xent(z1, z2, 0.5).item())
    with pytest.raises(ValueError, match="even number"):
        loss_fn(torch.randn(5, 3), torch.zeros(2))


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "0.5", True])
def test_nt_xent_rejects_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature"):
        contrastive.nt_xent(torch.randn(3, 2), torch.randn(3, 2), bad)


def test_nt_xent_rejects_bad_embeddings():
    with pytest.raises(ValueError, match="z2 must have the shape of z1"):
        contrastive.nt_xent(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="z1 must be a floating-point tensor"):
        contrastive.nt_xent(torch.randn(3, 2, 1), torch.randn(3, 2, 1))
    with pytest.raises(ValueError, match="z2 must be"):
        contrastive.nt_xent(torch.randn(3, 2), [[0.0, 1.0]] * 3)
    with pytest.raises(ValueError, match="at least 2 rows"):
        contrastive.nt_xent(torch.randn(1, 2), torch.randn(1, 2))


def test_microscopy_views_are_random_reproducible_and_keep_the_shape():
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    views = contrastive.microscopy_views()
    a = views(x, torch.Generator().manual_seed(3))
    b = views(x, torch.Generator().manual_seed(3))
    c = views(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert views(x[0], torch.Generator().manual_seed(3)).shape == x[0].shape
    # Geometry only (no shift, no intensity change): the same pixels, rearranged.
    turn = contrastive.microscopy_views(crop=0, contrast=0, brightness=0, noise=0, blur=0)
    y = turn(x, torch.Generator().manual_seed(5))
    assert torch.allclose(y.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_intensity_jitter_rejects_bad_options():
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="noise must be a number >= 0"):
        contrastive.intensity_jitter(x, torch.Generator(), noise=-0.1)
    with pytest.raises(ValueError, match="contrast must be < 1"):
        contrastive.intensity_jitter(x, torch.Generator(), contrast=1.0)
    with pytest.raises(TypeError, match="generator"):
        contrastive.intensity_jitter(x, 0)


def test_two_view_loader_stacks_two_different_views_of_the_same_images():
    x = torch.arange(10 * 64, dtype=torch.float32).view(10, 1, 8, 8)
    loader = contrastive.two_view_loader(x, 4, seed=0)
    batches = list(loader)
    assert len(batches) == 2  # the incomplete batch is dropped
    views, targets = batches[0]
    assert views.shape == (8, 1, 8, 8) and targets.shape == (4,)
    assert not torch.equal(views[:4], views[4:])
    # Same seed, same batches.
    again = next(iter(contrastive.two_view_loader(x, 4, seed=0)))[0]
    assert torch.equal(again, views)


def test_two_view_loader_rejects_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        contrastive.two_view_loader(torch.zeros(4, 1, 8, 8), 1)
    with pytest.raises(ValueError, match="must not exceed the number of images"):
        contrastive.two_view_loader(torch.zeros(4, 1, 8, 8), 8)
    with pytest.raises(ValueError, match=r"images must be a tensor \(N, C, H, W\)"):
        contrastive.two_view_loader(torch.zeros(4, 8, 8), 2)


def test_episode_is_balanced_disjoint_and_reproducible():
    labels = torch.arange(7).repeat_interleave(12)[torch.randperm(84)]
    ep = fewshot.episode(labels, 5, 3, 4, torch.Generator().manual_seed(0))
    assert ep.classes.shape == (5,) and len(set(ep.classes.tolist())) == 5
    assert ep.support.shape == (5, 3) and ep.query.shape == (5, 4)
    for row, c in enumerate(ep.classes):
        assert (labels[ep.support[row]] == c).all() and (labels[ep.query[row]] == c).all()
    drawn = torch.cat([ep.support.flatten(), ep.query.flatten()])
    assert len(set(drawn.tolist())) == len(drawn)  # no example twice: no leakage
    again = fewshot.episode(labels, 5, 3, 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(ep, again, strict=True))


def test_episodes_draw_every_class_and_example():
    labels = torch.arange(4).repeat_interleave(6)
    g = torch.Generator().manual_seed(1)
    seen_classes, seen = set(), set()
    for _ in range(50):
        ep = fewshot.episode(labels, 2, 1, 2, g)
        seen_classes |= set(ep.classes.tolist())
        seen |= set(ep.support.flatten().tolist())
    assert seen_classes == {0, 1, 2, 3} and len(seen) == 24


def test_episode_rejects_bad_input():
    labels = torch.arange(3).repeat_interleave(4)
    g = torch.Generator()
    with pytest.raises(ValueError, match="n_way=4 needs 4 classes"):
        fewshot.episode(labels, 4, 1, 1, g)
    with pytest.raises(ValueError, match="at least k_shot \\+ q_query = 5"):
        fewshot.episode(labels, 2, 3, 2, g)
    with pytest.raises(ValueError, match="k_shot must be a positive integer"):
        fewshot.episode(labels, 2, 0, 1, g)
    with pytest.raises(ValueError, match="labels must be a 1-D integer tensor"):
        fewshot.episode(labels.float(), 2, 1, 1, g)
    with pytest.raises(TypeError, match="generator"):
        fewshot.episode(labels, 2, 1, 1, 0)


def test_prototypical_logits_and_loss_by_hand():
    support = torch.tensor([[[0.0, 0.0], [2.0, 0.0]], [[0.0, 4.0], [0.0, 2.0]]])
    query = torch.tensor([[[1.0, 1.0]], [[0.0, 4.0]]])
    # Prototypes (1, 0) and (0, 3).
    assert torch.allclose(fewshot.prototypes(support), torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    logits = fewshot.prototypical_logits(support, query)
    assert torch.allclose(logits, -torch.tensor([[1.0, 5.0], [17.0, 1.0]]))
    expected = (torch.logsumexp(logits[0], 0) - logits[0, 0]
                + torch.logsumexp(logits[1], 0) - logits[1, 1]) / 2
    assert fewshot.prototypical_loss(support, query).item() == pytest.approx(expected.item())


def test_prototypical_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="query must have shape"):
        fewshot.prototypical_loss(torch.randn(3, 2, 4), torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="support must be a floating-point tensor"):
        fewshot.prototypes(torch.randn(3, 4))


def stages():
    torch.manual_seed(0)
    return [nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Conv2d(2, 3, 3),
            nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())], nn.Linear(4, 2)


@pytest.mark.parametrize("trainable, expected", [
    (None, [True, True, True]), (0, [False, False, False]), (1, [False, False, True]),
    (2, [False, True, True])])
def test_fine_tune_groups_freeze_what_they_say(trainable, expected):
    blocks, head = stages()
    groups = transfer.fine_tune_groups(blocks, head, 0.1, trainable=trainable, decay=0.5)
    for block, train in zip(blocks, expected, strict=True):
        assert all(p.requires_grad is train for p in block.parameters())
    assert all(p.requires_grad for p in head.parameters())
    # One group per trainable stage plus the head, lrs decaying downwards.
    assert [g["lr"] for g in groups] == [0.1 * 0.5 ** d for d in range(sum(expected) + 1)]
    in_groups = {id(p) for g in groups for p in g["params"]}
    wanted = {id(p) for b, t in zip(blocks, expected, strict=True) if t for p in b.parameters()}
    assert in_groups == wanted | {id(p) for p in head.parameters()}
    assert groups[1:] == [] or groups[1]["params"] == list(blocks[-1].parameters())


def test_fine_tune_groups_unfreeze_again_and_train_only_the_trainable():
    blocks, head = stages()
    transfer.fine_tune_groups(blocks, head, 0.1, trainable=0)
    groups = transfer.fine_tune_groups(blocks, head, 0.1, trainable=1)
    before = [p.detach().clone() for b in blocks for p in b.parameters()]
    opt = torch.optim.SGD(groups)
    model = nn.Sequential(*blocks, head)
    model(torch.randn(2, 1, 7, 7)).sum().backward()
    opt.step()
    after = [p.detach() for b in blocks for p in b.parameters()]
    changed = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    assert changed == [False] * 4 + [True] * 2  # conv 1 and 2 (weight, bias) stay frozen


def test_fine_tune_groups_reject_bad_input():
    blocks, head = stages()
    with pytest.raises(ValueError, match="trainable must be at most the number of stages"):
        transfer.fine_tune_groups(blocks, head, 0.1, trainable=4)
    with pytest.raises(ValueError, match="decay must be a number in"):
        transfer.fine_tune_groups(blocks, head, 0.1, decay=1.5)
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        transfer.fine_tune_groups(blocks, head, 0.0)
    with pytest.raises(TypeError, match="stages must be a non-empty list"):
        transfer.fine_tune_groups(nn.Sequential(*blocks), head, 0.1)
    with pytest.raises(TypeError, match="trainable must be True or False"):
        transfer.set_trainable(head, 1)


def test_features_use_running_statistics_and_restore_the_mode():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(10, 3)
    encoder.train()
    f = transfer.features(encoder, x, batch_size=3)
    assert encoder.training and not f.requires_grad
    assert torch.allclose(f, encoder.eval()(x).detach())


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(20)
    centres = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
    f = centres[y] + 0.5 * torch.randn(60, 2, generator=g)
    head = transfer.linear_probe(f, y, 3, steps=100)
    assert (head(f).argmax(1) == y).float().mean().item() == 1.0
    with pytest.raises(ValueError, match=r"labels must be a tensor \(60,\)"):
        transfer.linear_probe(f, y[:10], 3)


def test_sampled_batches_draw_a_fixed_number_of_batches():
    x, y = torch.arange(5.0).view(5, 1), torch.arange(5)
    loader = transfer.SampledBatches(x, y, 4, 3, seed=0)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    assert all(xb.shape == (4, 1) and torch.equal(xb[:, 0].long(), yb) for xb, yb in batches)
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(batches, list(loader), strict=True))
    with pytest.raises(ValueError, match="one row per example"):
        transfer.SampledBatches(x, y[:3], 4, 3)
