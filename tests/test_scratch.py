"""The from-scratch forward pass and cache (labkit.scratch) against plain transformers."""

import pytest
import torch
from transformers import DynamicCache

from labkit.scratch import rope, scratch_forward


def test_scratch_logits_match_transformers_with_and_without_a_cache(tiny):
    model, _ = tiny
    ids = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 11]])
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits  # (1, 8, vocab_size)
        hf_cache = DynamicCache(config=model.config)
        model(input_ids=ids[:, :5], cache=hf_cache, use_cache=True)
    logits, cache = scratch_forward(model, ids[0].tolist())
    assert torch.allclose(logits, full, atol=1e-4, rtol=1e-4)
    prefix_logits, prefix_cache = scratch_forward(model, ids[0, :5].tolist())
    for (k, v), layer in zip(prefix_cache, hf_cache.layers, strict=True):  # the same cache
        assert torch.allclose(k, layer.keys, atol=1e-5) and torch.allclose(
            v, layer.values, atol=1e-5
        )
    step_logits, grown = scratch_forward(model, ids[0, 5:].tolist(), prefix_cache)
    assert torch.allclose(torch.cat([prefix_logits, step_logits], 1), full, atol=1e-4, rtol=1e-4)
    assert grown[0][0].shape[2] == 8 and prefix_cache[0][0].shape[2] == 5  # not grown in place


def test_a_wrong_cache_gives_different_logits(tiny):
    model, _ = tiny
    _, cache = scratch_forward(model, [5, 17, 42])
    right, _ = scratch_forward(model, [99], cache)
    _, other = scratch_forward(model, [6, 17, 42])
    wrong, _ = scratch_forward(model, [99], other)
    assert not torch.allclose(right, wrong, atol=1e-4)


def test_rope_rotates_pairs_and_keeps_their_length():
    x = torch.randn(1, 2, 4, 8)
    y = rope(x, torch.arange(4), 10_000.0)
    assert torch.equal(y[:, :, 0], x[:, :, 0])  # position 0: angle 0
    pairs = lambda t: t[..., :4] ** 2 + t[..., 4:] ** 2  # noqa: E731
    assert torch.allclose(pairs(y), pairs(x), atol=1e-5)
    with pytest.raises(AssertionError):
        assert torch.allclose(y, x)
