"""labkit.viz.figures_cache and labkit.viz.widgets_cache: plain data in, figures and widgets out."""

import time

import plotly.graph_objects as go
import torch

from labkit.experiments.bench import BenchRow, DecodeRun
from labkit.viz.figures_cache import (
    decode_figure,
    kv_heatmap_figure,
    kv_memory_figure,
    kv_models_figure,
    kv_size_rows,
    load_model_configs,
    prefix_sweep_figure,
)
from labkit.viz.widgets_cache import prefix_reuse_explorer

ROWS = [
    BenchRow(p, 16, cold, warm, cold / warm, 0.01, 0.001, cold, warm, 3, "Test CPU, 2 threads")
    for p, cold, warm in [(100, 0.2, 0.05), (200, 0.4, 0.06), (400, 0.8, 0.08)]
]


def test_model_configs_have_sources_and_consistent_heads():
    configs = load_model_configs()
    assert {"Llama-3.1-8B", "Llama-3.1-70B", "Qwen2.5-7B", "Mistral-7B-v0.3"} <= {
        c["name"] for c in configs
    }
    for config in configs:
        assert config["source"] and config["num_attention_heads"] % config["num_kv_heads"] == 0
        assert config["head_dim"] * config["num_attention_heads"] == config["hidden_size"]
    rows = {r["model"]: r for r in kv_size_rows(configs)}
    assert rows["Llama-3.1-70B"]["kib_per_token"] == 320  # 2 x 80 x 8 x 128 x 2 bytes
    assert rows["SmolLM2-135M"]["gib_at_32k"] == 30 * 3 * 64 * 2 * 2 * 32768 / 2**30


def test_timing_figures_name_the_hardware():
    sweep = prefix_sweep_figure(ROWS)
    assert isinstance(sweep, go.Figure) and "Test CPU" in sweep.layout.title.text
    assert list(sweep.data[0].x) == [100, 200, 400]
    run = DecodeRun([1, 2, 3], [0.1, 0.01, 0.01], [5, 1, 1], True, "Test CPU")
    slow = DecodeRun([1, 2, 3], [0.1, 0.05, 0.06], [5, 6, 7], False, "Test CPU")
    decode = decode_figure(run, slow)
    assert "Test CPU" in decode.layout.title.text
    assert list(decode.data[0].y) == [5, 11, 18] and list(decode.data[2].y) == [5, 6, 7]


def test_size_figures_take_plain_data():
    assert isinstance(kv_heatmap_figure(torch.zeros(7, 4), layer=1, kv_head=0), go.Figure)
    memory = kv_memory_figure([10, 20], [1000, 2000], 100, "model")
    assert list(memory.data[1].y) == [1000 / 2**20, 2000 / 2**20]
    models = kv_models_figure(kv_size_rows(load_model_configs()))
    assert len(models.data[0].y) == len(load_model_configs())


def test_explorer_redraws_from_the_sweep_without_a_model():
    explorer = prefix_reuse_explorer(ROWS)
    prefix_slider, suffix_slider, summary = explorer.children
    assert not prefix_slider.continuous_update and prefix_slider.max == 400
    start_s = time.perf_counter()
    prefix_slider.value, suffix_slider.value = 200, 16
    assert time.perf_counter() - start_s < 1.0  # fast enough to drag (moved from notebook 02)
    assert "200 reused, 16 computed" in summary.value and "216 computed" in summary.value
    assert "400 ms" in summary.value and "60 ms" in summary.value
    assert "Test CPU" in summary.value
