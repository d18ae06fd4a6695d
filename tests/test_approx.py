"""Lesson 7 on the tiny model, checked against plain transformers: shift, blend, normalise."""

import numpy as np
import pytest
import torch
from transformers import DynamicCache

from labkit.experiments import (
    blend_cache,
    blend_cost,
    blend_sweep,
    find_deletion,
    lesson_conversation,
    normalise_cch,
    normalise_messages,
    rerotate_keys,
    shift_experiment,
    stale_cache_experiment,
    strip_attribution,
    sweep_rows,
)
from labkit.models import tiny_random_model
from labkit.sessions import billing_header
from labkit.viz import blend_quality_figure, blend_widget, shift_error_figure


def _ids(seed: int, n: int) -> list[int]:
    return torch.randint(3, 259, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _plain(model, ids, position_offset: int = 0):
    """Return (logits, cache) of plain transformers on ids, positions starting at the offset."""
    ids_t = torch.tensor([ids])
    positions = torch.arange(position_offset, position_offset + len(ids))[None]
    with torch.no_grad():
        out = model(input_ids=ids_t, position_ids=positions, cache=DynamicCache(), use_cache=True)
    return out.logits, out.cache


@pytest.fixture(scope="module")
def deep():
    """A 4-layer tiny model: enough layers for a blend to skip some."""
    return tiny_random_model(num_layers=4).float()


def test_rerotate_keys_moves_keys_as_transformers_computes_them(tiny):
    model, _ = tiny
    ids = _ids(0, 20)
    _, at_7 = _plain(model, ids, position_offset=7)
    _, at_3 = _plain(model, ids, position_offset=3)
    keys_7, keys_3 = at_7.layers[0].keys, at_3.layers[0].keys  # (1, kv_heads, 20, head_dim)
    assert (keys_7 - keys_3).abs().max() > 1e-2  # positions matter
    torch.testing.assert_close(rerotate_keys(model, keys_7, -4), keys_3, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rerotate_keys(model, keys_3, 4), keys_7, atol=1e-5, rtol=1e-5)
    assert torch.equal(rerotate_keys(model, keys_3, 0), keys_3)


def test_find_deletion():
    original = [1, 2, 3, 4, 5, 6, 7]
    assert find_deletion(original, [1, 2, 5, 6, 7]) == (2, 2)
    assert find_deletion(original, [1, 2, 5, 6, 7, 8, 9]) == (2, 2)  # a turn appended
    assert find_deletion(original, [1, 2, 9, 4, 5, 6, 7]) is None  # same length
    assert find_deletion(original, [1, 2, 9, 9, 3, 4, 5, 6, 7]) is None  # an insertion


def test_shift_after_deletion_exact_in_layer0_approximate_beyond(tiny):
    model, _ = tiny
    original = _ids(1, 50)
    edited = original[:10] + original[14:] + _ids(2, 6)  # 4 tokens deleted, a turn appended
    result = shift_experiment(model, original, edited)
    assert (result.position, result.deleted_len) == (10, 4)
    assert result.reused_len == 46 and result.computed_len == 6
    # Against plain transformers: layer-0 values of the moved tokens equal a full recompute
    _, full = _plain(model, edited)
    _, cached = _plain(model, original)
    moved_values = cached.layers[0].values[:, :, 14:]
    torch.testing.assert_close(moved_values, full.layers[0].values[:, :, 10:46], atol=1e-6, rtol=0)
    assert result.values_rel[0].max() < 1e-6
    assert result.keys_rel[0].max() < 1e-5  # re-rotated keys: exact up to rounding
    assert result.keys_rel_unrotated[0].min() > 1e-2
    assert (result.per_layer("values")[1:] > 1e-6).all()  # layer 1 attended to deleted tokens
    assert result.shifted.kl_mean < result.unrotated.kl_mean


def test_shift_refuses_a_same_length_change(tiny):
    model, _ = tiny
    original = _ids(3, 30)
    edited = original.copy()
    edited[5] = 3 if edited[5] != 3 else 4
    with pytest.raises(ValueError, match="nothing to shift"):
        shift_experiment(model, original, edited + [7])


def test_blend_all_positions_is_a_full_recompute(tiny):
    model, _ = tiny
    before = _ids(4, 40)
    after = before.copy()
    after[3] = 3 if after[3] != 3 else 4
    turn = _ids(5, 5)
    _, stale = _plain(model, before)
    cache, chosen = blend_cache(model, stale, after, 1.0)
    assert chosen.tolist() == list(range(40))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([turn]), cache=cache, use_cache=True).logits
    full_logits, _ = _plain(model, after + turn)
    torch.testing.assert_close(logits, full_logits[:, 40:], atol=1e-5, rtol=1e-5)
    # fraction 0: the reused cache as it is, and the original left unchanged
    copy, chosen = blend_cache(model, stale, after, 0.0)
    assert len(chosen) == 0
    for a, b in zip(copy.layers, stale.layers, strict=True):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    assert stale.get_seq_length() == 40


def test_blend_deviation_picks_the_changed_token(deep):
    before = _ids(6, 60)
    after = before.copy()
    after[20] = 3 if after[20] != 3 else 4
    _, stale = _plain(deep, before)
    _, chosen = blend_cache(deep, stale, after, 0.1, check_layer=1)
    assert 20 in chosen.tolist() and (chosen >= 20).all()  # nothing before the change deviates
    _, random_chosen = blend_cache(deep, stale, after, 0.1, selection="random", seed=1)
    assert len(random_chosen) == len(chosen) == 6
    with pytest.raises(ValueError, match="positions"):
        blend_cache(deep, stale, after[:-1], 0.1)
    with pytest.raises(ValueError, match="selection"):
        blend_cache(deep, stale, after, 0.1, selection="best")


def test_blend_sweep_matches_lesson3_and_counts_compute(deep):
    before = _ids(7, 60)
    after = before.copy()
    after[2] = 3 if after[2] != 3 else 4
    after += _ids(8, 5)
    points = blend_sweep(deep, before, after, (0.0, 0.2, 1.0), seeds=(0, 1), max_new_tokens=3)
    stale = stale_cache_experiment(deep, before, after, max_new_tokens=3)
    rows = sweep_rows(points)
    assert [r.fraction for r in rows] == [0.0, 0.2, 1.0]
    assert rows[0].kl_deviation == pytest.approx(stale.stale.kl_mean, rel=1e-4, abs=1e-12)
    assert rows[-1].kl_deviation < 1e-9 and rows[-1].top1_deviation == 1.0
    assert rows[1].kl_deviation < rows[0].kl_deviation
    assert len([p for p in points if p.fraction == 0.2 and p.selection == "random"]) == 2
    cost = blend_cost(60, 4, 0.2, check_layer=1)
    assert cost.recomputed == 12 and cost.token_layers == 60 * 2 + 12 * 2
    assert cost.compute_saved == pytest.approx(1 - 144 / 240)
    assert blend_cost(60, 4, 0.0).compute_saved == 1.0


def test_normalise_the_attribution_line():
    system = f"{billing_header('1c8b4')}\nYou are an agent."
    assert normalise_cch(system) == f"{billing_header('fffff')}\nYou are an agent."
    assert normalise_cch(billing_header("56445")) == normalise_cch(billing_header("1c8b4"))
    assert normalise_cch("cch=12345; elsewhere") == "cch=12345; elsewhere"  # only in the line
    assert strip_attribution(system) == "You are an agent."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "cch=1;"}]
    out = normalise_messages(messages)
    assert out[0]["content"].startswith(billing_header("fffff")) and out[1] == messages[1]
    assert messages[0]["content"] == system  # the input is left as it was


def test_lesson_conversation_is_bundled():
    conversation = lesson_conversation()
    assert {m["role"] for m in conversation["history"]} == {"user", "assistant"}
    assert conversation["new_turn"][-1] == {"role": "user", "content": "Fix it."}
    assert "date" in conversation["date_question"]


def test_figures_and_widget():
    fig = shift_error_figure({"keys": [0.0, 1e-3], "values": [0.0, 2e-3]})
    assert len(fig.data) == 2 and fig.data[0].y[0] > 0  # zeros drawn at the floor of a log axis
    rows = sweep_rows([])
    assert rows == []
    fig = blend_quality_figure(
        [0.0, 0.5, 1.0],
        {"deviation": [1e-2, 1e-5, 0.0], "random": [1e-2, 1e-3, 0.0]},
        {"deviation": [0.9, 1.0, 1.0], "random": [0.9, 0.9, 1.0]},
        [1.0, 0.4, 0.0],
        current=0.5,
    )
    assert len(fig.data) == 4 and len(fig.layout.shapes) == 2
    assert list(fig.data[0].x)[1] == "50%<br>40% saved"


def test_widget_switches_case_without_running_a_model(deep):
    before = _ids(9, 30)
    after = before.copy()
    after[1] = 3 if after[1] != 3 else 4
    after += _ids(10, 4)
    rows = sweep_rows(blend_sweep(deep, before, after, (0.0, 0.5, 1.0), seeds=(0,)))
    widget = blend_widget({"a": rows, "b": rows[::1]}, seq_len={"a": 30, "b": 30}, num_layers=4)
    case, fraction = widget.children[0].children
    text = widget.children[1]
    assert "f = <b>50%</b>" in text.value
    fraction.value = 1.0
    assert "f = <b>100%</b>" in text.value and np.isclose(rows[-1].compute_saved, 0.0)
    case.value = "b"
    assert len(widget.children[2].outputs) == 1
