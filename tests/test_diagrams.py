"""Concept diagrams: drawn from labkit's engine models, with a second cue beside colour."""

import numpy as np
import pytest

from labkit.engines import SGLangRadixCache, block_hashes
from labkit.viz import (
    block_chain_figure,
    dependency_cone,
    dependency_cone_figure,
    radix_tree_figure,
    slots_figure,
)
from labkit.viz.diagrams import RECOMPUTED, REUSED

SYSTEM = list(range(100, 140))  # a 40-token "system prompt"
REQUESTS = [SYSTEM + [1, 2, 3], SYSTEM + [1, 2, 3, 4, 5], SYSTEM + [7, 8]]


def test_the_cone_is_one_token_in_layer_0_and_everything_after_from_layer_1():
    cone = dependency_cone(4, 10, 3)
    assert cone[0].tolist() == [i == 3 for i in range(10)]
    assert (cone[1:, 3:]).all() and not cone[:, :3].any()
    with pytest.raises(ValueError, match="outside"):
        dependency_cone(4, 10, 10)


def test_cone_figure_marks_changed_cells_by_colour_and_marker():
    fig = dependency_cone_figure(num_layers=3, seq_len=6, position=2)
    kept, changed = fig.data
    assert (kept.marker.color, kept.marker.symbol) == (REUSED, "circle")
    assert (changed.marker.color, changed.marker.symbol) == (RECOMPUTED, "x")
    assert len(changed.x) == int(dependency_cone(3, 6, 2).sum())


def test_block_chain_reuses_only_blocks_before_the_change():
    changed = list(REQUESTS[0])
    changed[20] = 999  # in block 1 of 16-token blocks
    fig = block_chain_figure([REQUESTS[0], changed], block_size=16)
    reused = [t for t in fig.data if t.name.startswith("hash known")]
    second_row = [list(t.base) for t in reused if list(t.y) and t.y[0] == "request 1"]
    assert second_row == [[0]]  # block 0 only; block 1 and every later hash differ
    assert block_hashes(changed, 16)[0] == block_hashes(REQUESTS[0], 16)[0]
    recompute = [t for t in fig.data if t.name.startswith("new hash")]
    assert all(t.marker.pattern.shape == "/" for t in recompute)  # the second cue


def test_radix_tree_has_the_shared_prefix_as_an_inner_node():
    fig = radix_tree_figure(REQUESTS)
    shared = next(t for t in fig.data if t.name and t.name.startswith("shared"))
    cache = SGLangRadixCache()
    for r in REQUESTS:
        cache.serve(r)
    assert len(SYSTEM) in {len(run) for run in cache.node_runs()}  # the system prompt: one node
    assert f"{len(SYSTEM)} tokens" in list(shared.text)
    assert shared.marker.symbol == "circle"


def test_slots_figure_reports_what_the_engine_model_reports():
    fig = slots_figure(REQUESTS, n_slots=1, cache_ram=False)
    cached, computed = fig.data
    assert list(cached.x) == [0, 43, 40] and list(computed.x) == [43, 2, 2]
    assert computed.marker.pattern.shape == "/"
    assert np.sum(cached.x) + np.sum(computed.x) == sum(len(r) for r in REQUESTS)
