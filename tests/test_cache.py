"""labkit.cache and labkit.prefix_cache on tiny random Llamas, checked against transformers."""

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from labkit.cache import (
    CacheMismatchError,
    _forward_names,
    cache_bytes,
    cache_len,
    common_prefix_len,
    copy_cache,
    crop_cache,
    extend,
    extend_checked,
    generate_greedy,
    kv_cache_bytes,
    kv_dims,
    prefill,
)
from labkit.prefix_cache import PrefixCache

ATOL = 1e-5  # float32: only the order of additions differs between the two ways of computing


def full_logits(model, ids):
    """Return logits of one plain transformers forward pass, no cache: (1, seq_len, vocab)."""
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(ids).reshape(1, -1), use_cache=False).logits


def ids_of(*parts):
    return torch.tensor([t for part in parts for t in part], dtype=torch.long)


@pytest.fixture(scope="module")
def model(tiny):
    return tiny[0]


@pytest.fixture(scope="module")
def varied():
    """Return a tiny GQA Llama with large random weights, so greedy decoding does not repeat."""
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.3,
        max_position_embeddings=512,
    )
    torch.manual_seed(1)
    return LlamaForCausalLM(config).eval()


PROMPT = list(range(10, 50))  # 40 tokens
OTHER = [7] + PROMPT[1:]  # differs at token 0 only, like a changed billing header


def test_installed_transformers_takes_the_cache_keyword(model):
    assert _forward_names(type(model))[0] in {"cache", "past_key_values"}


def test_prefill_then_extend_equals_one_full_forward(model):
    logits_a, cache = prefill(model, PROMPT[:25])
    logits_b, cache = extend(model, cache, PROMPT[25:39])
    logits_c, cache = extend(model, cache, PROMPT[39:])  # one token at a time, as in decoding
    stepwise = torch.cat([logits_a, logits_b, logits_c], dim=1)
    assert cache_len(cache) == len(PROMPT)
    torch.testing.assert_close(stepwise, full_logits(model, PROMPT), atol=ATOL, rtol=0)


def test_prefill_matches_transformers_own_cache(model):
    _, cache = prefill(model, PROMPT)
    reference = DynamicCache(config=model.config)
    with torch.no_grad():
        model(
            input_ids=torch.tensor([PROMPT]),
            **{_forward_names(type(model))[0]: reference},
            use_cache=True,
        )
    for ours, theirs in zip(cache.layers, reference.layers, strict=True):
        # (batch, num_kv_heads, seq_len, head_dim)
        assert ours.keys.shape == (1, model.config.num_key_value_heads, len(PROMPT), 16)
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)


def test_last_only_returns_the_last_position(model):
    last, _ = prefill(model, PROMPT, last_only=True)
    assert last.shape == (1, 1, model.config.vocab_size)
    torch.testing.assert_close(last[0, -1], full_logits(model, PROMPT)[0, -1], atol=ATOL, rtol=0)


def test_copies_are_independent_but_a_reused_cache_object_is_not(model):
    _, cache = prefill(model, PROMPT[:30])
    copied = copy_cache(cache)
    extend(model, copied, [5, 6, 7])
    logits, cache = extend(model, cache, [8, 9])  # the original still holds only PROMPT[:30]
    assert cache_len(copied) == 33 and cache_len(cache) == 32
    expected = full_logits(model, PROMPT[:30] + [8, 9])[:, -2:]
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
    # The pitfall copy_cache avoids: extending the same object twice stacks both requests.
    stale_logits, _ = extend(model, cache, [8, 9])
    assert not torch.allclose(stale_logits, expected, atol=1e-3)


def test_copy_of_a_prefix_equals_cropping_a_copy(model):
    _, cache = prefill(model, PROMPT)
    short = copy_cache(cache, 12)
    assert cache_len(short) == 12 and cache_len(cache) == len(PROMPT)
    for small, big in zip(short.layers, cache.layers, strict=True):
        assert torch.equal(small.keys, big.keys[..., :12, :])
    assert cache_bytes(short) == kv_cache_bytes(model.config, 12, torch.float32)


def test_crop_then_extend_equals_full_forward_of_the_new_prompt(model):
    _, cache = prefill(model, PROMPT)
    crop_cache(cache, 20)
    assert cache_len(cache) == 20
    logits, _ = extend(model, cache, [3, 4, 5])
    expected = full_logits(model, PROMPT[:20] + [3, 4, 5])[:, -3:]
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
    assert cache_len(crop_cache(cache, 23)) == 23  # cropping to its own length changes nothing
    with pytest.raises(ValueError, match="only be cut back"):
        crop_cache(cache, 24)


def tensor_bytes(cache):
    return sum(
        t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values)
    )


def test_byte_count_equals_the_tensors_for_tiny_random(model):
    _, cache = prefill(model, PROMPT)
    expected = 2 * 2 * 2 * 16 * len(PROMPT) * 4  # K and V x layers x KV heads x head_dim x fp32
    assert tensor_bytes(cache) == cache_bytes(cache) == expected
    assert kv_cache_bytes(model.config, len(PROMPT), torch.float32) == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_byte_count_with_gqa_and_an_explicit_head_dim(dtype):
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=24,
    )
    model = LlamaForCausalLM(config).to(dtype).eval()
    _, cache = prefill(model, list(range(11)))
    assert cache.layers[0].keys.shape == (1, 2, 11, 24)  # not hidden_size // heads = 8
    assert (
        tensor_bytes(cache)
        == kv_cache_bytes(config, 11, dtype)
        == 2 * 3 * 2 * 24 * 11 * (torch.empty((), dtype=dtype).element_size())
    )
    assert kv_cache_bytes(config, 11, dtype, batch_size=4) == 4 * tensor_bytes(cache)


def test_byte_count_from_published_numbers():
    llama_8b = {
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_size": 4096,
    }
    assert kv_dims(llama_8b).head_dim == 128
    assert kv_cache_bytes(llama_8b, 1, "bfloat16") == 128 * 1024  # 128 KiB per token
    assert kv_cache_bytes(llama_8b, 131072, torch.bfloat16) == 16 * 2**30  # 16 GiB at 128k
    with pytest.raises(ValueError, match="num_layers"):
        kv_dims({"num_attention_heads": 4})


def test_common_prefix_len_edge_cases():
    assert common_prefix_len([], []) == 0
    assert common_prefix_len([], [1, 2]) == 0
    assert common_prefix_len([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix_len([1, 2], [1, 2, 3]) == 2
    assert common_prefix_len([9, 2, 3], [1, 2, 3]) == 0
    assert common_prefix_len([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_len(torch.tensor([[1, 2, 5]]), [1, 2, 5, 6]) == 3  # (1, n) and a list
    with pytest.raises(ValueError, match="one sequence"):
        common_prefix_len(torch.zeros(2, 3, dtype=torch.long), [1])
    with pytest.raises(TypeError, match="tokenize"):
        common_prefix_len("abc", [1])


def test_prefix_cache_reuses_the_longest_stored_prefix(model):
    store = PrefixCache(model)
    first = store.serve(PROMPT + [60, 61, 62])
    assert (first.tokens_reused, first.tokens_computed) == (0, 43)
    second = store.serve(PROMPT + [60, 70, 71, 72])
    assert (second.tokens_reused, second.tokens_computed) == (41, 3)  # PROMPT and token 60
    expected = full_logits(model, PROMPT + [60, 70, 71, 72])[:, -1:]
    torch.testing.assert_close(second.logits, expected, atol=ATOL, rtol=0)
    assert cache_len(second.cache) == 44
    again = store.serve(PROMPT + [60, 61, 62])  # a repeat still computes its last token
    assert (again.tokens_reused, again.tokens_computed) == (42, 1)
    other = store.serve(OTHER)  # differs at token 0: nothing is reusable
    assert other.tokens_reused == 0
    torch.testing.assert_close(other.logits, full_logits(model, OTHER)[:, -1:], atol=ATOL, rtol=0)


def test_prefix_cache_drops_entries_a_newer_one_covers(model):
    store = PrefixCache(model)
    store.serve(PROMPT)
    store.serve(PROMPT + [1, 2])
    assert [len(ids) for ids in store.entries()] == [42]
    assert store.serve(PROMPT[:10], store=False).tokens_reused == 9


def test_prefix_cache_evicts_the_least_recently_used(model):
    a, b, c = [[start] + PROMPT[1:20] for start in (1, 2, 3)]
    store = PrefixCache(model, capacity_tokens=50)
    store.serve(a)
    store.serve(b)
    store.serve(a + [4])  # touches a (and replaces it with a longer entry)
    store.serve(c)  # 21 + 20 + 20 > 50: the least recently used, b, goes
    assert [int(ids[0]) for ids in store.entries()] == [1, 3]
    assert store.evictions == 1 and store.stored_tokens <= 50
    by_bytes = PrefixCache(model, capacity_bytes=int(1.5 * kv_cache_bytes(model.config, 20)))
    by_bytes.serve(a)
    by_bytes.serve(b)
    assert len(by_bytes) == 1 and by_bytes.stored_bytes == kv_cache_bytes(model.config, 20)
    assert not PrefixCache(model, capacity_tokens=5).insert(a, prefill(model, a)[1])


def test_a_stale_cache_is_accepted_silently_by_transformers_but_refused_by_labkit(model):
    _, stale = prefill(model, OTHER[:30])  # computed for a prompt whose token 0 differs
    wrong, _ = extend(model, copy_cache(stale), PROMPT[30:])  # no error, wrong logits
    right = full_logits(model, PROMPT)[:, 30:]
    assert not torch.allclose(wrong, right, atol=1e-3)
    with pytest.raises(CacheMismatchError, match="position 0.*crop_cache"):
        extend_checked(model, stale, OTHER[:30], PROMPT)
    with pytest.raises(CacheMismatchError, match="holds 30 positions"):
        extend_checked(model, stale, OTHER[:29], PROMPT)
    with pytest.raises(CacheMismatchError, match="exact token ids"):
        PrefixCache(model).insert(OTHER[:29], stale)
    logits, _ = extend_checked(model, stale, OTHER[:30], OTHER)
    torch.testing.assert_close(logits, full_logits(model, OTHER)[:, 30:], atol=ATOL, rtol=0)


def test_cached_and_uncached_greedy_generation_agree_with_transformers(varied):
    prompt = list(range(5, 25))
    cached = generate_greedy(varied, prompt, 16)
    uncached = generate_greedy(varied, prompt, 16, use_cache=False)
    with torch.no_grad():
        reference = varied.generate(
            torch.tensor([prompt]),
            max_new_tokens=16,
            do_sample=False,
            attention_mask=torch.ones(1, 20, dtype=torch.long),
        )
    assert len(set(cached)) > 5  # the test model does not just repeat one token
    assert cached == uncached == reference[0, 20:].tolist()


class PastKeyValuesModel(torch.nn.Module):
    """A model whose forward takes `past_key_values`, as transformers 4.x models do."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.config = model.config
        self.device = model.device

    def forward(self, input_ids=None, past_key_values=None, use_cache=None, position_ids=None):
        return self.inner(
            input_ids=input_ids,
            **{_forward_names(type(self.inner))[0]: past_key_values},
            use_cache=use_cache,
            position_ids=position_ids,
        )


def test_the_old_past_key_values_keyword_works_too(model):
    old_style = PastKeyValuesModel(model)
    assert _forward_names(PastKeyValuesModel)[0] == "past_key_values"
    logits_a, cache = prefill(old_style, PROMPT[:30])
    logits_b, cache = extend(old_style, cache, PROMPT[30:])
    assert cache_len(cache) == len(PROMPT)
    torch.testing.assert_close(
        torch.cat([logits_a, logits_b], 1), full_logits(model, PROMPT), atol=ATOL, rtol=0
    )


def test_a_prompt_longer_than_the_context_is_refused(varied):
    _, cache = prefill(varied, [i % 90 for i in range(500)])  # the context is 512 positions
    with pytest.raises(ValueError, match="exceed the model's context of 512"):
        extend(varied, cache, list(range(13)))  # 513 > 512
