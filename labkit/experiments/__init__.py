"""Measurements on the model: prefix reuse, K/V differences, stale and approximate reuse, replay."""

from labkit.experiments.approx import (
    ShiftResult,
    find_deletion,
    lesson_conversation,
    normalise_cch,
    normalise_messages,
    rerotate_keys,
    same_length_reuse_error,
    shift_experiment,
    shifted_cache,
    strip_attribution,
)
from labkit.experiments.bench import (
    decode_run,
    estimate_ttft_s,
    prefix_reuse_sweep,
    prompt_ids,
    system_prompt_text,
)
from labkit.experiments.blend import blend_cache, blend_cost, kv_deviation
from labkit.experiments.blend_quality import BlendPoint, SweepRow, blend_sweep, sweep_rows
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
    first_changed_position,
    kv_per_layer,
    kv_relative_difference,
    kv_relative_difference_aligned,
)
from labkit.experiments.replay import (
    fit_prefill_time,
    prefill_flops,
    project_turn_s,
    replay_sessions,
    shorten_session,
)
from labkit.experiments.stale_cache import next_token_divergence, stale_cache_experiment

__all__ = [
    "ShiftResult",
    "find_deletion",
    "lesson_conversation",
    "normalise_cch",
    "normalise_messages",
    "rerotate_keys",
    "same_length_reuse_error",
    "shift_experiment",
    "shifted_cache",
    "strip_attribution",
    "BlendPoint",
    "SweepRow",
    "blend_cache",
    "blend_cost",
    "blend_sweep",
    "kv_deviation",
    "sweep_rows",
    "chat_ids",
    "consecutive_requests",
    "decode_run",
    "edit_effects",
    "edit_positions",
    "estimate_ttft_s",
    "first_changed_position",
    "fit_prefill_time",
    "header_messages",
    "kv_per_layer",
    "kv_relative_difference",
    "kv_relative_difference_aligned",
    "next_token_divergence",
    "prefill_flops",
    "prefix_reuse_sweep",
    "project_turn_s",
    "prompt_ids",
    "replace_token",
    "replay_sessions",
    "shorten_session",
    "stale_cache_experiment",
    "system_prompt_text",
    "token_labels",
    "token_span",
]
