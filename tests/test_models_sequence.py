"""The sequence models and transformers of Lectures 9 and 10."""

import math

import pytest
import torch

from dlcc.models import (
    GPT,
    MODELS,
    Conv1dNet,
    RecurrentNet,
    TransformerClassifier,
    ViT,
    build_model,
    sinusoidal_positions,
)
from dlcc.models.transformer import SelfAttention


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_net_shapes_and_last_step(cell):
    torch.manual_seed(0)
    net = RecurrentNet(3, 2, hidden=8, cell=cell, num_layers=2)
    x = torch.randn(4, 7, 3)
    out, every = net(x), net(x, all_steps=True)
    assert out.shape == (4, 2) and every.shape == (4, 7, 2)
    torch.testing.assert_close(out, every[:, -1])
    # A prediction after step t depends only on steps <= t.
    x2 = x.clone()
    x2[:, 5:] += 1.0
    torch.testing.assert_close(net(x2, all_steps=True)[:, :5], every[:, :5])


def test_conv1d_net_is_causal_with_the_stated_receptive_field():
    torch.manual_seed(0)
    net = Conv1dNet(2, 1, channels=4, kernel_size=3, dilations=(1, 2))
    assert net.receptive_field == 7
    x = torch.randn(2, 20, 2)
    base = net(x, all_steps=True)
    x2 = x.clone()
    x2[:, 10] += 1.0
    changed = (net(x2, all_steps=True) - base).abs().sum(dim=(0, 2)) > 0
    assert not changed[:10].any() and changed[10:17].all() and not changed[17:].any()
    # Max pooling over time: a pattern counts wherever it is, so a shift changes nothing.
    pooled = Conv1dNet(2, 1, channels=4, kernel_size=3, dilations=(1,), pool="max")
    bump = torch.zeros(1, 20, 2)
    bump[0, 5] = 1.0
    torch.testing.assert_close(pooled(bump), pooled(bump.roll(7, dims=1)))


def test_sequence_models_reject_bad_input():
    net = RecurrentNet(3, 2)
    with pytest.raises(ValueError, match="x has 4 features per step but the model expects 3"):
        net(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"shape \(N, T, D\)"):
        net(torch.randn(2, 5))
    with pytest.raises(TypeError, match="floating-point"):
        Conv1dNet(3, 2)(torch.ones(2, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="pool must be 'last' or 'max'"):
        Conv1dNet(3, 2, pool="mean")
    with pytest.raises(ValueError, match="cell must be one of"):
        RecurrentNet(3, 2, cell="transformer")


def test_gpt_is_causal():
    torch.manual_seed(0)
    gpt = GPT(11, 16, dim=32, depth=2, heads=4).eval()
    idx = torch.randint(0, 11, (2, 12))
    logits = gpt(idx)
    assert logits.shape == (2, 12, 11)
    for t in (0, 5, 10):
        changed = idx.clone()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 11
        new = gpt(changed)
        torch.testing.assert_close(new[:, :t + 1], logits[:, :t + 1])
        assert not torch.allclose(new[:, t + 1], logits[:, t + 1])


def test_gpt_weight_tying_and_generate():
    torch.manual_seed(0)
    gpt = GPT(7, 8, dim=16, depth=1, heads=2)
    assert gpt.head.weight is gpt.tok.weight
    # The tied matrix is counted once: embeddings, blocks and final norm, no separate head.
    blocks = sum(p.numel() for p in gpt.blocks.parameters())
    assert sum(p.numel() for p in gpt.parameters()) == 7 * 16 + 8 * 16 + blocks + 2 * 16
    start = torch.zeros(3, 1, dtype=torch.long)
    a = gpt.generate(start, 20, generator=torch.Generator().manual_seed(1))
    b = gpt.generate(start, 20, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 21) and torch.equal(a, b) and a.max() < 7
    assert gpt.training  # generate restores the mode
    # top_k=1 is greedy: it equals the argmax continuation whatever the temperature.
    greedy = gpt.generate(start, 5, temperature=3.0, top_k=1)
    x = start
    for _ in range(5):
        x = torch.cat([x, gpt.eval()(x[:, -8:])[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, x)
    with pytest.raises(ValueError, match="temperature must be positive"):
        gpt.generate(start, 2, temperature=0)
    with pytest.raises(ValueError, match="top_k must lie in"):
        gpt.generate(start, 2, top_k=8)
    with pytest.raises(ValueError, match="only 8 position embeddings"):
        gpt(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 7\)"):
        gpt(torch.full((1, 3), 7))


def test_classifier_ignores_padding_and_returns_attention():
    torch.manual_seed(0)
    for pooling in ("cls", "mean"):
        model = TransformerClassifier(5, 3, max_len=10, dim=16, depth=2, heads=2,
                                      pooling=pooling).eval()
        tokens = torch.randint(1, 5, (2, 10))
        mask = torch.ones(2, 10, dtype=torch.bool)
        mask[:, 6:] = False
        logits, weights = model(tokens, mask, return_attention=True)
        assert logits.shape == (2, 3) and len(weights) == 2
        assert weights[0].shape == (2, 2, 11, 11)
        torch.testing.assert_close(weights[1].sum(-1), torch.ones(2, 2, 11))
        assert torch.all(weights[0][..., 7:] == 0)  # padded keys get no attention
        other = tokens.clone()
        other[:, 6:] = 4 - other[:, 6:] + 1
        torch.testing.assert_close(model(other, mask), logits)  # padding cannot matter
        torch.testing.assert_close(model(tokens, mask), logits)  # SDPA path agrees
        model.pad_index = 0
        padded = tokens.masked_fill(~mask, 0)
        torch.testing.assert_close(model(padded), logits)  # the mask from the pad index
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        model(tokens, mask.long())


def test_self_attention_weights_match_sdpa_path():
    torch.manual_seed(0)
    attn = SelfAttention(8, 2).eval()
    x = torch.randn(3, 5, 8)
    out, w = attn(x, causal=True, need_weights=True)
    torch.testing.assert_close(attn(x, causal=True), out)
    assert torch.all(w.triu(1) == 0)
    with pytest.raises(ValueError, match="heads=3 must divide dim=8"):
        SelfAttention(8, 3)


def test_sinusoidal_positions():
    enc = sinusoidal_positions(50, 16)
    assert enc.shape == (50, 16)
    torch.testing.assert_close(enc[0, 0::2], torch.zeros(8))
    torch.testing.assert_close(enc[0, 1::2], torch.ones(8))
    assert enc[7, 0].item() == pytest.approx(math.sin(7))
    assert sinusoidal_positions(4, 5).shape == (4, 5)


def test_vit_and_registry():
    torch.manual_seed(0)
    vit = ViT(1, 10, 28, patch_size=7, dim=32, depth=2, heads=4)
    assert vit(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert vit.pos.shape == (1, 17, 32)
    assert "vit" in MODELS
    built = build_model("vit", in_channels=3, num_classes=4, image_size=32)
    assert built(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(ValueError, match="patch_size=5 must divide image_size=28"):
        ViT(1, 10, 28, patch_size=5)
    with pytest.raises(ValueError, match="built for 28x28"):
        vit(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="square images"):
        build_model("vit", in_channels=1, num_classes=2, image_size=(28, 32))
