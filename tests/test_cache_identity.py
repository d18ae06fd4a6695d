"""Caches that know their tokens and their model: each silent wrong result of issue 15 now gets a
clear error, checked against plain transformers (which accepts every one of them)."""

import pytest
import torch

from labkit.cache import (
    CacheMismatchError,
    _forward_names,
    cache_token_ids,
    copy_cache,
    crop_cache,
    extend,
    extend_checked,
    model_identity,
    prefill,
)
from labkit.models import tiny_random_model
from labkit.prefix_cache import PrefixCache


@pytest.fixture(scope="module")
def model():
    return tiny_random_model(seed=0)


@pytest.fixture(scope="module")
def other():
    """Another model with the same shapes (another seed): its caches fit, their values do not."""
    return tiny_random_model(seed=1)


def ids(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


PROMPT = ids(5, 17, 42, 99, 3, 8, 120, 64)


def full_logits(model, token_ids) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=token_ids.unsqueeze(0), use_cache=False).logits


def test_a_cache_records_the_tokens_it_holds_through_extend_crop_and_copy(model):
    _, cache = prefill(model, PROMPT[:5])
    assert cache_token_ids(cache).tolist() == PROMPT[:5].tolist()
    extend(model, cache, PROMPT[5:])
    assert cache_token_ids(cache).tolist() == PROMPT.tolist()
    assert cache_token_ids(copy_cache(cache, 3)).tolist() == PROMPT[:3].tolist()
    crop_cache(cache, 4)
    assert cache_token_ids(cache).tolist() == PROMPT[:4].tolist()


def test_cached_ids_of_the_right_length_but_wrong_tokens_are_refused(model):
    _, cache = prefill(model, PROMPT[:5])
    wrong = PROMPT[:5].clone()
    wrong[2] = 7  # same length, another token
    request = torch.cat([wrong, PROMPT[5:]])
    with pytest.raises(CacheMismatchError, match="differ at position 2"):
        extend_checked(model, cache, wrong, request)


def test_a_cropped_and_re_extended_cache_is_checked_by_its_tokens_not_its_length(model):
    _, cache = prefill(model, PROMPT[:6])
    crop_cache(cache, 3)
    extend(model, cache, ids(1, 2, 3))  # 6 positions again, but not PROMPT[:6]
    with pytest.raises(CacheMismatchError, match="differ at position 3"):
        extend_checked(model, cache, PROMPT[:6], PROMPT)  # the old ids: refused
    held = cache_token_ids(cache)
    request = torch.cat([held, ids(9)])
    logits, _ = extend_checked(model, cache, held, request)  # the ids it holds: accepted
    expected = full_logits(model, request)[:, -1:]
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_a_cache_from_another_model_is_refused_though_transformers_takes_it(model, other):
    assert model_identity(model) != model_identity(other)
    assert model_identity(model) == model_identity(tiny_random_model(seed=0))  # same weights
    _, foreign = prefill(other, PROMPT[:6])
    # plain transformers: the shapes fit, so it silently computes wrong logits
    cache_kw = _forward_names(type(model))[0]  # `cache=` (transformers 5.24+) or `past_key_values=`
    with torch.no_grad():
        wrong = model(
            input_ids=PROMPT[6:].unsqueeze(0),
            position_ids=torch.arange(6, 8).unsqueeze(0),
            **{cache_kw: copy_cache(foreign)},
        ).logits
    assert not torch.allclose(wrong, full_logits(model, PROMPT)[:, 6:], atol=1e-3)
    with pytest.raises(CacheMismatchError, match="another model"):
        extend(model, copy_cache(foreign), PROMPT[6:])
    with pytest.raises(CacheMismatchError, match="another model"):
        extend_checked(model, copy_cache(foreign), PROMPT[:6], PROMPT)
    with pytest.raises(CacheMismatchError, match="another model"):
        PrefixCache(model).insert(PROMPT[:6], foreign)


def test_prefix_cache_insert_compares_tokens_not_length(model):
    _, cache = prefill(model, PROMPT[:5])
    store = PrefixCache(model)
    with pytest.raises(CacheMismatchError):
        store.insert(ids(1, 2, 3, 4, 5), cache)
    assert store.insert(PROMPT[:5], cache) and len(store) == 1


def test_prefix_cache_keeps_its_own_copy_of_the_token_ids(model):
    store = PrefixCache(model)
    token_ids = PROMPT.clone()
    result = store.serve(token_ids)
    token_ids[1] = 250  # the caller reuses its tensor for another prompt
    result.token_ids[2] = 251
    assert store.entries()[0].tolist() == PROMPT.tolist()
    again = store.serve(PROMPT)
    assert again.tokens_reused == len(PROMPT) - 1  # the stored cache still serves PROMPT
    torch.testing.assert_close(
        again.logits, full_logits(model, PROMPT)[:, -1:], rtol=1e-4, atol=1e-4
    )


def test_an_unchecked_extend_of_a_stale_cache_still_works_for_lesson_3(model):
    """extend() checks the model, not the tokens: lesson 3 shows what a stale cache computes."""
    _, cache = prefill(model, PROMPT[:6])
    crop_cache(cache, 4)
    logits, cache = extend(model, cache, ids(1, 2))  # positions 4, 5 after the kept 4 tokens
    assert logits.shape[1] == 2 and cache_token_ids(cache).tolist() == [5, 17, 42, 99, 1, 2]


def test_identity_of_a_model_whose_embedding_is_too_large_for_float32_indexing():
    """The default model's embedding has 28,311,552 entries: a float32 index rounds past the end."""
    model = torch.nn.Embedding(49152, 576)  # SmolLM2-135M's embedding shape
    wrapper = torch.nn.Module()
    wrapper.get_input_embeddings = lambda: model
    wrapper.config = None
    assert len(model_identity(wrapper)) == 16
