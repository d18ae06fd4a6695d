"""A widget to move the changed token along the prompt and watch the cache damage, precomputed."""

from __future__ import annotations

import ipywidgets as widgets

from labkit.experiments.breakage import EditEffect
from labkit.viz.figures_breakage import (
    kv_difference_heatmap,
    layer_profile_figure,
    token_strip_figure,
)


def strip_window(position: int, seq_len: int, *, per_row: int = 12, rows: int = 6) -> tuple:
    """Return (start, stop) of a window of whole rows that shows the position near its top."""
    start = max(0, (position // per_row - 1) * per_row)
    stop = min(seq_len, start + per_row * rows)
    return max(0, min(start, stop - per_row * rows)), stop


def cost_text(effect: EditEffect, time_s: float | None = None) -> str:
    """Return one line: where the change is, and what it costs to recompute."""
    share = effect.tokens_recomputed / effect.seq_len
    line = (
        f"changed token at position <b>{effect.position}</b> of {effect.seq_len}: "
        f"<b>{effect.tokens_recomputed}</b> tokens recomputed ({share:.0%} of the prompt)"
    )
    if time_s is not None:
        line += f", measured {time_s * 1e3:.0f} ms"
    return line


def figure_output(fig) -> dict:
    """Return a plotly figure as one notebook output, in the default renderer's mime types."""
    return {"output_type": "display_data", "data": fig._repr_mimebundle_(), "metadata": {}}


def breakage_widget(
    tokens: list[str],
    effects: list[EditEffect],
    *,
    times_s: dict[int, float] | None = None,
    layer: int = 1,
    per_row: int = 12,
) -> widgets.VBox:
    """Return a widget: pick the changed position and a layer; strip, heatmap and cost follow.

    Everything shown comes from `effects` (see labkit.experiments.breakage.edit_effects) and the
    optional measured times per position: nothing runs the model when a slider moves.
    """
    by_position = {effect.position: effect for effect in effects}
    num_layers = effects[0].rel_diff.shape[0]
    position_slider = widgets.SelectionSlider(
        options=sorted(by_position),
        value=sorted(by_position)[0],
        description="position",
        continuous_update=False,
        layout=widgets.Layout(width="60%"),
    )
    layer_slider = widgets.IntSlider(
        value=min(layer, num_layers - 1),
        min=0,
        max=num_layers - 1,
        description="layer",
        continuous_update=False,
    )
    cost = widgets.HTML()
    figures = widgets.Output()

    def update(_change=None) -> None:
        position, layer = position_slider.value, layer_slider.value
        effect = by_position[position]
        cost.value = cost_text(effect, (times_s or {}).get(position))
        start, stop = strip_window(position, effect.seq_len, per_row=per_row)
        # Set the outputs from the kernel instead of capturing display() calls: the same view,
        # and headless runners (nbclient, nbconvert) do not deadlock on large captured outputs.
        figures.outputs = tuple(
            figure_output(fig)
            for fig in (
                token_strip_figure(tokens, position, start=start, stop=stop, per_row=per_row),
                kv_difference_heatmap(effect.rel_diff, edit_position=position, layer=layer),
                layer_profile_figure(effect.rel_diff, layer, edit_position=position),
            )
        )

    position_slider.observe(update, names="value")
    layer_slider.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([position_slider, layer_slider]), cost, figures])
