"""labkit.experiments.bench on the tiny random Llama: prompts, sweep, table, JSON, estimates."""

import argparse
import json

import pytest

from labkit.experiments.bench import (
    BenchRow,
    add_cli,
    decode_run,
    estimate_ttft_s,
    format_table,
    prefix_reuse_sweep,
    prompt_ids,
)


def test_prompt_ids_are_real_text_of_exact_lengths(tiny):
    _, tokenizer = tiny
    prefix, suffix = prompt_ids(tokenizer, 3000, 16)  # longer than the text: it repeats
    assert (len(prefix), len(suffix)) == (3000, 16)
    assert tokenizer.decode(prefix[:40]).startswith("<|im_start|>system\nYou are a careful")
    assert tokenizer.decode(suffix).startswith("<|im_start|>user\n")


def test_sweep_rows_table_and_warm_faster_than_cold(tiny):
    model, tokenizer = tiny
    rows = prefix_reuse_sweep(model, tokenizer, (32, 512), suffix_len=4, repeats=3)
    assert [(r.prefix_len, r.suffix_len) for r in rows] == [(32, 4), (512, 4)]
    assert all(r.speedup == pytest.approx(r.cold_ttft_s / r.warm_ttft_s) for r in rows)
    assert rows[-1].warm_min_s < rows[-1].cold_min_s  # 4 tokens computed instead of 516
    table = format_table(rows).splitlines()
    assert rows[0].device_name in table[0] and len(table) == 2 + len(rows)
    assert table[-1].split()[:2] == ["512", "4"]


def test_cli_prints_json_rows(tiny, capsys):
    parser = argparse.ArgumentParser(prog="labkit")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "bench",
            "--prefix-lens",
            "16,32",
            "--suffix-len",
            "2",
            "--repeats",
            "1",
            "--model",
            "tiny-random",
            "--json",
        ]
    )
    assert args.func(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["prefix_len"] for row in rows] == [16, 32]
    assert set(rows[0]) >= {
        "prefix_len",
        "suffix_len",
        "cold_ttft_s",
        "warm_ttft_s",
        "speedup",
        "device_name",
    }
    defaults = parser.parse_args(["bench"])
    assert (defaults.prefix_lens, defaults.suffix_len) == ("250,500,1000,2000", 16)


ROWS = [
    BenchRow(p, 16, cold, warm, cold / warm, 0.0, 0.0, cold, warm, 3, "test CPU")
    for p, cold, warm in [(100, 0.2, 0.05), (200, 0.4, 0.06), (400, 0.8, 0.08)]
]


def test_estimates_reproduce_measured_points_and_grow_sensibly():
    assert estimate_ttft_s(ROWS, 200, 16) == pytest.approx((0.4, 0.06))
    cold_300, warm_300 = estimate_ttft_s(ROWS, 300, 16)
    assert cold_300 == pytest.approx(0.6) and warm_300 == pytest.approx(0.07)
    cold_800, _ = estimate_ttft_s(ROWS, 784, 16)  # past the sweep: extended linearly
    assert cold_800 == pytest.approx(0.8 + 0.002 * (800 - 416))
    _, warm_long_suffix = estimate_ttft_s(ROWS, 200, 116)  # 100 more tokens at ~2 ms each
    assert warm_long_suffix == pytest.approx(0.06 + 0.2)
    _, warm_short_suffix = estimate_ttft_s(ROWS, 200, 8)
    assert 0 < warm_short_suffix <= 0.06


def test_decode_run_counts_computed_positions(tiny):
    model, _ = tiny
    cached = decode_run(model, list(range(3, 13)), 5, use_cache=True)
    uncached = decode_run(model, list(range(3, 13)), 5, use_cache=False)
    assert cached.tokens_computed == [10, 1, 1, 1, 1]
    assert uncached.tokens_computed == [10, 11, 12, 13, 14]
    assert cached.token_ids == uncached.token_ids and len(cached.step_s) == 5
    assert cached.tokens_per_sec > 0


def test_estimates_from_one_row_and_never_warmer_than_cold():
    assert estimate_ttft_s(ROWS[:1], 300, 16) == (0.2, 0.05)
    for prefix_len in (100, 150, 400, 800):
        for suffix_len in (1, 16, 500):
            cold_s, warm_s = estimate_ttft_s(ROWS, prefix_len, suffix_len)
            assert 0 < warm_s <= cold_s
