"""Lesson 3's helpers (K/V diffs, stale-cache divergence, header requests, figures, widget).

Checked on tiny random Llamas against plain transformers and a by-hand layer-0 computation.
"""

import math
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from labkit.experiments.breakage import (
    chat_ids,
    consecutive_requests,
    edit_effects,
    edit_positions,
    header_messages,
    replace_token,
    token_labels,
    token_span,
)
from labkit.experiments.kv_diff import (
    changed_fraction,
    first_changed_position,
    kv_per_layer,
    kv_relative_difference,
    kv_relative_difference_aligned,
)
from labkit.experiments.stale_cache import next_token_divergence, stale_cache_experiment
from labkit.models import tiny_random_model
from labkit.sessions.header import billing_header
from labkit.timing import measure_alternating
from labkit.viz.figures_breakage import (
    fit_line,
    header_on_off_figure,
    kv_difference_heatmap,
    layer_profile_figure,
    recompute_time_figure,
    token_strip_figure,
)
from labkit.viz.widgets_breakage import breakage_widget, strip_window

ATOL = 1e-5  # float32: the by-hand computation orders its additions differently
CHANGED = 1e-4  # a "changed" position moves by more than this, relative (float32 eps ~1e-7)
PROMPT = [int(t) for t in torch.randint(3, 250, (48,), generator=torch.Generator().manual_seed(0))]
P = 12  # the position the edits change


@pytest.fixture(scope="module")
def model():
    """Return a 4-layer tiny random Llama (GQA, rotary), so layers >= 1 can be checked."""
    return tiny_random_model(num_layers=4)


def plain_kv(model, ids):
    """Return per-layer (keys, values) from one plain transformers forward pass with a cache."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    return [(layer.keys[0], layer.values[0]) for layer in cache.layers]


def layer0_by_hand(model, ids, positions=None):
    """Return layer-0 (keys, values) from the embeddings, norm, projections and RoPE by hand."""
    config = model.config
    positions = torch.arange(len(ids)) if positions is None else torch.as_tensor(positions)
    with torch.no_grad():
        hidden = model.model.layers[0].input_layernorm(model.model.embed_tokens(torch.tensor(ids)))
        attn = model.model.layers[0].self_attn
        head_dim, num_kv_heads = config.head_dim, config.num_key_value_heads
        k = attn.k_proj(hidden).view(len(ids), num_kv_heads, head_dim).transpose(0, 1)
        v = attn.v_proj(hidden).view(len(ids), num_kv_heads, head_dim).transpose(0, 1)
    theta = config.rope_parameters["rope_theta"]
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = positions[:, None].double() * inv_freq  # (seq_len, head_dim / 2)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    k64 = k.double()
    rotated = torch.cat([-k64[..., head_dim // 2 :], k64[..., : head_dim // 2]], -1)
    return (k64 * cos + rotated * sin).float(), v  # (num_kv_heads, seq_len, head_dim)


def test_kv_per_layer_equals_plain_transformers(model):
    kv = kv_per_layer(model, PROMPT)
    assert kv.keys.shape == (4, 2, len(PROMPT), 16)  # (num_layers, num_kv_heads, seq_len, head_dim)
    for i, (keys, values) in enumerate(plain_kv(model, PROMPT)):
        assert torch.allclose(kv.keys[i], keys, atol=ATOL)
        assert torch.allclose(kv.values[i], values, atol=ATOL)


def test_layer0_by_hand_equals_kv_per_layer(model):
    kv = kv_per_layer(model, PROMPT)
    keys, values = layer0_by_hand(model, PROMPT)
    assert torch.allclose(kv.keys[0], keys, atol=ATOL)
    assert torch.allclose(kv.values[0], values, atol=ATOL)


def test_same_length_edit_changes_layers_after_0_only_after_the_edit(model):
    edited = replace_token(PROMPT, P, (PROMPT[P] + 1) % 250)
    assert first_changed_position(PROMPT, edited) == P
    a, b = kv_per_layer(model, PROMPT), kv_per_layer(model, edited)
    rel = kv_relative_difference(a, b)
    assert rel.shape == (4, len(PROMPT))
    assert (rel[:, :P] == 0).all()  # before the edit: the same computation, bitwise
    assert (rel[0, P + 1 :] == 0).all()  # layer 0 after the edit: own token and position only
    assert (rel[1:, P:] > CHANGED).all()  # layer >= 1: attention mixed the changed token in
    assert rel[0, P] > CHANGED
    # Independent check: by hand, layer-0 K/V after the edit do not depend on the edited token.
    ka, va = layer0_by_hand(model, PROMPT)
    kb, vb = layer0_by_hand(model, edited)
    assert torch.equal(ka[:, P + 1 :], kb[:, P + 1 :])
    assert torch.equal(va[:, P + 1 :], vb[:, P + 1 :])
    plain_a, plain_b = plain_kv(model, PROMPT), plain_kv(model, edited)
    for layer in range(1, 4):
        diff = (plain_a[layer][0] - plain_b[layer][0])[:, P:].abs().amax(dim=(0, 2))
        assert (diff > 0).all()
    expected = (len(PROMPT) - P) / len(PROMPT)  # every position from the edit on
    np.testing.assert_allclose(changed_fraction(rel, threshold=CHANGED)[1:], expected)


def test_inserted_token_shifts_every_later_position_so_layer0_keys_change(model):
    shifted = PROMPT[:P] + [7] + PROMPT[P:]  # one token more from position P on
    a, b = kv_per_layer(model, PROMPT), kv_per_layer(model, shifted)
    with pytest.raises(ValueError, match="aligned"):
        kv_relative_difference(a, b)
    by_position = kv_relative_difference_aligned(a, b, align="position")
    assert by_position.shape == (4, len(PROMPT))
    assert (by_position[:, :P] == 0).all()
    differs = [PROMPT[i] != shifted[i] for i in range(P, len(PROMPT))]
    assert (by_position[0, P:][differs] > CHANGED).all()  # a different token at each position
    # Aligned by token: the same tokens one position later. Values of layer 0 do not see the
    # position; keys do (rotary), so layer-0 keys differ even though the token is the same.
    end_keys = kv_relative_difference_aligned(a, b, align="end", part="keys")
    end_values = kv_relative_difference_aligned(a, b, align="end", part="values")
    assert (end_keys[0, P:] > CHANGED).all()
    assert end_values[0, P:].max() < ATOL
    # By hand: the shifted prompt's layer-0 keys are the original tokens rotated one step further.
    keys_by_hand, _ = layer0_by_hand(model, PROMPT[P:], positions=range(P + 1, len(shifted)))
    assert torch.allclose(b.keys[0, :, P + 1 :], keys_by_hand, atol=ATOL)


def test_divergence_of_identical_logits_is_zero():
    logits = torch.randn(5, 11)
    div = next_token_divergence(logits, logits.clone())
    np.testing.assert_allclose(div.kl_per_position, 0.0, atol=1e-12)
    assert div.top1_agreement == 1.0


def test_divergence_of_a_known_pair():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    q = torch.tensor([0.9, 0.1], dtype=torch.float64)
    div = next_token_divergence(p.log()[None, None], q.log()[None, None])  # (1, 1, vocab)
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert div.kl_mean == pytest.approx(expected, rel=1e-9)
    ref = torch.tensor([[3.0, 0, 0], [0, 3, 0], [0, 0, 3]])
    test = torch.tensor([[3.0, 0, 0], [0, 3, 0], [3, 0, 0]])
    assert next_token_divergence(ref, test).top1_agreement == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="cannot be compared"):
        next_token_divergence(ref, test[:2])


def test_stale_cache_diverges_while_the_correct_cache_does_not(model):
    edited = [(PROMPT[0] + 1) % 250] + PROMPT[1:] + [5, 6, 7, 8]  # token 0 changed, a new turn
    result = stale_cache_experiment(model, PROMPT, edited, max_new_tokens=4)
    assert result.reuse_len == len(PROMPT) and result.suffix_len == 4
    assert len(result.stale.kl_per_position) == 4 + 4 - 1  # suffix, then generated tokens
    assert result.stale.kl_mean > 1e-6
    assert result.fresh.kl_max < 1e-8
    assert result.fresh.top1_agreement == 1.0
    assert len(result.reference_ids) == len(result.stale_ids) == 4
    same = stale_cache_experiment(model, PROMPT, PROMPT + [5, 6], max_new_tokens=2)
    assert same.stale.kl_max < 1e-8 and same.generated_agreement == 1.0
    with pytest.raises(ValueError, match="reuse_len"):
        stale_cache_experiment(model, PROMPT, edited, reuse_len=len(edited))


def test_header_requests_put_the_header_first_and_change_only_the_cch(tiny):
    _, tokenizer = tiny
    history = [{"role": "user", "content": "Why does the test fail?"}]
    new_turn = [{"role": "assistant", "content": "Reading it."}, {"role": "user", "content": "Ok"}]
    messages = header_messages("Be brief.", history, cch="56445")
    assert messages[0]["content"].splitlines()[0] == billing_header("56445")
    assert messages[1:] == history
    pair = consecutive_requests(
        tokenizer, "Be brief.", history, new_turn, cch_before="56445", cch_after="1c8b4"
    )
    start, stop = token_span(tokenizer, pair.after_ids, billing_header("1c8b4"))
    first = first_changed_position(pair.before_ids, pair.after_ids)
    assert start < first < stop  # the common prefix ends inside the header
    cch_at = tokenizer.decode(pair.after_ids).index("cch=") + len("cch=")
    before, after = tokenizer.decode(pair.before_ids), tokenizer.decode(pair.after_ids)
    assert before[:cch_at] == after[:cch_at]  # the same up to the cch value ...
    assert after[cch_at + 5 :].startswith(before[cch_at + 5 :])  # ... and after it
    assert pair.new_turn_len == len(pair.after_ids) - len(pair.before_ids) > 0
    off = consecutive_requests(tokenizer, "Be brief.", history, new_turn, attribution="0")
    assert "billing" not in tokenizer.decode(off.after_ids)
    assert off.after_ids[: len(off.before_ids)] == off.before_ids
    length_change = chat_ids(tokenizer, header_messages("Be brief.", history, cch="5"))
    assert len(pair.before_ids) - len(length_change) == 4  # byte-level: 4 fewer characters


def test_token_edits_and_positions():
    assert replace_token([1, 2, 3], 1, 9) == [1, 9, 3]
    with pytest.raises(ValueError):
        replace_token([1, 2, 3], 1, 2)
    with pytest.raises(IndexError):
        replace_token([1, 2, 3], 3, 9)
    assert edit_positions(100) == [0, 25, 50, 75, 99]


def test_edit_effects_count_the_recompute(model):
    effects = edit_effects(model, PROMPT, [0, P, len(PROMPT) - 1], new_id=5)
    assert [e.tokens_recomputed for e in effects] == [len(PROMPT), len(PROMPT) - P, 1]
    assert effects[1].rel_diff.shape == (4, len(PROMPT))
    assert (effects[1].rel_diff[:, :P] == 0).all() and (effects[1].rel_diff[1:, P:] > 0).all()


def test_token_strip_figure_colours_reused_and_recomputed(tiny):
    _, tokenizer = tiny
    tokens = token_labels(tokenizer, tokenizer("hello world\nbye")["input_ids"])
    assert tokens[5] == "·" and tokens[11] == "↵"
    fig = token_strip_figure(tokens, reused_len=6, per_row=4)
    assert isinstance(fig, go.Figure)
    heatmap = fig.data[0]
    assert isinstance(heatmap, go.Heatmap) and len(fig.data) == 4  # + three legend entries
    z = np.asarray(heatmap.z, float)
    assert z.shape == (4, 4)
    assert (z.ravel()[:6] == 0).all() and z.ravel()[6] == 1 and (z.ravel()[7:15] == 2).all()
    window = token_strip_figure(tokens, reused_len=6, start=4, stop=12, per_row=4)
    assert np.asarray(window.data[0].z).shape == (2, 4)


def test_heatmap_profile_and_time_figures():
    rel = np.zeros((3, 10))
    rel[1:, 4:] = 0.1
    fig = kv_difference_heatmap(rel, edit_position=4, layer=1)
    assert np.asarray(fig.data[0].z).shape == (3, 10)
    assert len(fig.layout.shapes) == 2  # the edit position and the chosen layer
    assert len(layer_profile_figure(rel, 1, edit_position=4).data) == 1
    positions, times_s = [0, 25, 50, 75], [1.0, 0.75, 0.5, 0.25]
    assert fit_line(positions, times_s) == pytest.approx((-0.01, 1.0))
    time_fig = recompute_time_figure(positions, times_s, device_name="test CPU")
    assert len(time_fig.data) == 2 and "test CPU" in time_fig.layout.title.text
    bars = header_on_off_figure(["on", "off"], [400, 30], [1.0, 0.1], device_name="test CPU")
    assert [type(t) for t in bars.data] == [go.Bar, go.Bar]


def test_widget_updates_from_precomputed_effects(model, tiny):
    effects = edit_effects(model, PROMPT, [0, P], new_id=5)
    tokens = [str(t) for t in PROMPT]
    widget = breakage_widget(tokens, effects, times_s={0: 0.5, P: 0.25})
    assert isinstance(widget, widgets.VBox)
    position_slider, layer_slider = widget.children[0].children
    assert not position_slider.continuous_update and not layer_slider.continuous_update
    cost = widget.children[1]
    assert f"<b>{len(PROMPT)}</b> tokens recomputed" in cost.value
    figures = widget.children[2].outputs
    assert len(figures) == 3 and all(out["output_type"] == "display_data" for out in figures)
    assert all(out["data"] for out in figures)
    position_slider.value = P
    assert f"<b>{len(PROMPT) - P}</b> tokens recomputed" in cost.value
    assert widget.children[2].outputs != figures  # redrawn for the new position
    assert strip_window(40, 200, per_row=16) == (16, 112)


def test_measure_alternating_interleaves_the_callables():
    calls = []
    fns = {
        "slow": lambda: (calls.append("slow"), time.sleep(0.003)),
        "fast": lambda: calls.append("fast"),
    }
    timings = measure_alternating(fns, rounds=3, warmup=1, device="cpu")
    assert calls == ["slow", "fast"] * 4  # one warm-up round, then three timed rounds
    assert timings["slow"].repeats == 3 and len(timings["fast"].times_s) == 3
    assert timings["slow"].min_s >= 0.003 > timings["fast"].min_s
    assert timings["slow"].min_s <= timings["slow"].median_s <= timings["slow"].max_s
    with pytest.raises(ValueError):
        measure_alternating(fns, rounds=0)
