"""A widget to pick the case and the share f of positions recomputed, from precomputed sweeps."""

from __future__ import annotations

import ipywidgets as widgets

from labkit.experiments.blend_quality import SweepRow
from labkit.viz.figures_approx import blend_quality_figure
from labkit.viz.widgets_breakage import figure_output


def blend_text(row: SweepRow, seq_len: int, num_layers: int) -> str:
    """Return one line: what f recomputes and saves, and the quality of both selections."""
    return (
        f"f = <b>{row.fraction:.0%}</b>: {row.recomputed} of {seq_len} reused positions carried "
        f"through all {num_layers} layers; <b>{row.compute_saved:.0%}</b> of a full recompute's "
        f"token-layers saved. Mean KL: <b>{row.kl_deviation:.1e}</b> nats (largest deviation) vs "
        f"<b>{row.kl_random:.1e}</b> (random); top-1 agreement {row.top1_deviation:.0%} vs "
        f"{row.top1_random:.0%}"
    )


def blend_widget(
    rows_by_case: dict[str, list[SweepRow]], *, seq_len: dict[str, int], num_layers: int
) -> widgets.VBox:
    """Return a widget: pick a case and f; the quality curves mark f, a line says what it saves.

    Everything shown comes from `rows_by_case` (`labkit.experiments.blend_quality.sweep_rows`
    per case): nothing runs the model when a control moves.
    """
    cases = list(rows_by_case)
    case = widgets.Dropdown(options=cases, value=cases[0], description="case")
    fractions = [row.fraction for row in rows_by_case[cases[0]]]
    fraction = widgets.SelectionSlider(
        options=[(f"{f:.0%}", f) for f in fractions],
        value=fractions[len(fractions) // 2],
        description="f",
        continuous_update=False,
        layout=widgets.Layout(width="50%"),
    )
    text = widgets.HTML()
    figure = widgets.Output()

    def update(_change=None) -> None:
        rows = rows_by_case[case.value]
        row = min(rows, key=lambda r: abs(r.fraction - fraction.value))
        text.value = blend_text(row, seq_len[case.value], num_layers)
        fig = blend_quality_figure(
            [r.fraction for r in rows],
            {"deviation": [r.kl_deviation for r in rows], "random": [r.kl_random for r in rows]},
            {
                "deviation": [r.top1_deviation for r in rows],
                "random": [r.top1_random for r in rows],
            },
            [r.compute_saved for r in rows],
            current=row.fraction,
            title=f"Selective recompute, {case.value}",
        )
        figure.outputs = (figure_output(fig),)  # set from the kernel: no captured display()

    case.observe(update, names="value")
    fraction.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([case, fraction]), text, figure])
