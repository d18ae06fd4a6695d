"""labkit.device and labkit.timing on the CPU, and on CUDA where a GPU is present."""

import time

import pytest
import torch

import labkit
from labkit.timing import measure, spread

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_pick_device_honours_the_argument_and_the_environment(monkeypatch):
    assert labkit.pick_device("cpu").type == "cpu"
    monkeypatch.setenv("LABKIT_DEVICE", "cpu")
    assert labkit.pick_device().type == "cpu"


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="one of cuda, mps, cpu"):
        labkit.pick_device("xla")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setenv("LABKIT_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="Unset LABKIT_DEVICE"):
        labkit.pick_device()


def test_default_dtype_is_float32_on_cpu():
    assert labkit.default_dtype("cpu") == torch.float32


def test_device_name_names_cpu_and_threads():
    name = labkit.device_name("cpu")
    assert f"{torch.get_num_threads()} threads" in name


def test_measure_runs_warmup_plus_repeats_and_orders_stats():
    calls = []
    timing = measure(lambda: calls.append(1), warmup=2, repeats=5, device="cpu")
    assert len(calls) == 7
    assert timing.repeats == len(timing.times_s) == 5
    assert timing.min_s <= timing.median_s <= timing.max_s
    assert timing.spread_s >= 0
    assert timing.device == "cpu" and timing.peak_memory_bytes is None


def test_measure_does_not_count_setup():
    slow_setup = lambda: time.sleep(0.05) or 3  # noqa: E731
    seen = []
    timing = measure(seen.append, setup=slow_setup, warmup=0, repeats=3, device="cpu")
    assert seen == [3, 3, 3]
    assert timing.max_s < 0.05 / 5  # the 50 ms setup is not in the figure


def test_measure_sees_a_real_difference_in_work():
    small = torch.randn(32, 32)
    large = torch.randn(768, 768)
    t_small = measure(lambda: small @ small, repeats=7, device="cpu")
    t_large = measure(lambda: large @ large, repeats=7, device="cpu")
    # 13,824x more multiply-adds; the fastest runs are the least disturbed by other work.
    assert t_large.min_s > 3 * t_small.min_s


def test_spread_is_interquartile_range():
    assert spread([1.0, 2.0]) == 1.0
    assert spread([1.0, 2.0, 3.0, 4.0, 100.0]) < 99.0  # robust to one outlier


def test_measure_rejects_bad_counts():
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0, device="cpu")


@needs_cuda
def test_cuda_timing_uses_events_and_reports_peak_memory():
    x = torch.randn(2048, 2048, device="cuda")
    timing = measure(lambda: x @ x, repeats=5, device="cuda")
    assert timing.device == "cuda"
    assert torch.cuda.get_device_name() in timing.device_name
    assert timing.peak_memory_bytes >= x.numel() * x.element_size()
    assert 0 < timing.min_s <= timing.median_s <= timing.max_s


@needs_cuda
def test_cuda_timing_scales_with_work():
    small = torch.randn(256, 256, device="cuda")
    large = torch.randn(4096, 4096, device="cuda")
    t_small = measure(lambda: small @ small, repeats=10, device="cuda")
    t_large = measure(lambda: large @ large, repeats=10, device="cuda")
    assert t_large.median_s > 5 * t_small.median_s


@needs_cuda
def test_tiny_model_runs_on_cuda():
    model, tokenizer = labkit.load_model("tiny-random", device="cuda")
    ids = torch.tensor([[5, 6, 7, 8]], device="cuda")
    assert model(ids).logits.device.type == "cuda"
