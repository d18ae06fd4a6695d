"""Presentation: plotly figures (plain data in, a Figure out) and the ipywidgets built on them."""

from labkit.viz.diagrams import (
    block_chain_figure,
    dependency_cone,
    dependency_cone_figure,
    radix_tree_figure,
    slots_figure,
)
from labkit.viz.figures_approx import blend_quality_figure, shift_error_figure
from labkit.viz.figures_breakage import (
    fit_line,
    header_on_off_figure,
    kv_difference_heatmap,
    layer_profile_figure,
    recompute_time_figure,
    token_strip_figure,
)
from labkit.viz.figures_cache import (
    decode_figure,
    kv_heatmap_figure,
    kv_memory_figure,
    kv_models_figure,
    kv_size_rows,
    load_model_configs,
    prefix_sweep_figure,
)
from labkit.viz.figures_server import ms_per_token_figure, server_turns_figure
from labkit.viz.figures_session import (
    bar_figure,
    cumulative_figure,
    fit_figure,
    projection_figure,
    replay_figure,
    turns_figure,
)
from labkit.viz.widgets_approx import blend_widget
from labkit.viz.widgets_breakage import breakage_widget
from labkit.viz.widgets_cache import prefix_reuse_explorer
from labkit.viz.widgets_session import session_explorer

__all__ = [
    "blend_quality_figure",
    "blend_widget",
    "shift_error_figure",
    "bar_figure",
    "block_chain_figure",
    "breakage_widget",
    "cumulative_figure",
    "decode_figure",
    "dependency_cone",
    "dependency_cone_figure",
    "fit_figure",
    "fit_line",
    "header_on_off_figure",
    "kv_difference_heatmap",
    "kv_heatmap_figure",
    "kv_memory_figure",
    "kv_models_figure",
    "kv_size_rows",
    "load_model_configs",
    "ms_per_token_figure",
    "layer_profile_figure",
    "prefix_reuse_explorer",
    "prefix_sweep_figure",
    "projection_figure",
    "radix_tree_figure",
    "recompute_time_figure",
    "replay_figure",
    "server_turns_figure",
    "session_explorer",
    "slots_figure",
    "token_strip_figure",
    "turns_figure",
]
