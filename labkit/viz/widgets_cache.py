"""Widgets for lesson 2: explore reused vs recomputed tokens from a precomputed sweep."""

from __future__ import annotations

import html

import ipywidgets as widgets

from labkit.experiments.bench import estimate_ttft_s
from labkit.viz.palette import CACHED, COMPUTED, NEUTRALS

# Computed tokens are hatched as well as coloured: a cue that does not need colour vision.
_HATCH = f"repeating-linear-gradient(45deg,{COMPUTED} 0 6px,{NEUTRALS['white']} 6px 9px)"


def _bar(label: str, reused: int, computed: int) -> str:
    total = max(reused + computed, 1)
    reused_pct = 100 * reused / total
    return (
        f"<div style='margin:4px 0'><b>{html.escape(label)}</b>: {reused} reused, "
        f"{computed} computed"
        f"<div style='display:flex;height:18px;width:100%;border:1px solid {NEUTRALS['grey']}'>"
        f"<div style='width:{reused_pct:.2f}%;background:{CACHED}'></div>"
        f"<div style='width:{100 - reused_pct:.2f}%;background:{_HATCH}'></div></div></div>"
    )


def reuse_summary_html(
    prefix_len: int, suffix_len: int, cold_s: float, warm_s: float, device_name: str
) -> str:
    """Return HTML bars of reused (solid blue) vs computed (hatched) tokens, and estimated TTFTs."""
    return (
        _bar("cold request", 0, prefix_len + suffix_len)
        + _bar("warm request", prefix_len, suffix_len)
        + "<p>Solid: reused from the cache; hatched: computed.</p>"
        + f"<p>Estimated TTFT: cold <b>{cold_s * 1e3:.0f} ms</b>, warm "
        f"<b>{warm_s * 1e3:.0f} ms</b> ({cold_s / warm_s:.1f}x faster), "
        f"estimated from the sweep measured on {html.escape(device_name)} (interpolated; "
        "extended linearly past the longest prompt measured).</p>"
    )


def prefix_reuse_explorer(rows, max_suffix_len: int = 512) -> widgets.VBox:
    """Return sliders for prefix_len and suffix_len that redraw the reuse bars from the sweep."""
    min_prefix, max_prefix = min(r.prefix_len for r in rows), max(r.prefix_len for r in rows)
    style = {"description_width": "90px"}
    layout = widgets.Layout(width="520px")
    prefix = widgets.IntSlider(
        value=max_prefix,
        min=min_prefix,
        max=max_prefix,
        step=10,
        description="prefix_len",
        continuous_update=False,
        style=style,
        layout=layout,
    )
    suffix = widgets.IntSlider(
        value=rows[0].suffix_len,
        min=1,
        max=max_suffix_len,
        description="suffix_len",
        continuous_update=False,
        style=style,
        layout=layout,
    )
    out = widgets.HTML()

    def redraw(_change=None) -> None:
        cold_s, warm_s = estimate_ttft_s(rows, prefix.value, suffix.value)
        out.value = reuse_summary_html(
            prefix.value, suffix.value, cold_s, warm_s, rows[0].device_name
        )

    prefix.observe(redraw, names="value")
    suffix.observe(redraw, names="value")
    redraw()
    return widgets.VBox([prefix, suffix, out])
