"""The colours every figure and widget uses: Okabe–Ito, safe for colour-blind readers.

Okabe & Ito, "Color Universal Design" (2008), https://jfly.uni-koeln.de/color/ : eight colours
that people with any common colour-vision deficiency can tell apart. Colour is never the only cue:
cached and computed (and any two series a reader must tell apart) also differ by a bar pattern,
a line dash or a marker symbol, so a greyscale print or a colour-blind reader still sees two series.
"""

from __future__ import annotations

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
NEUTRALS = {"white": "#FFFFFF", "light_grey": "#DDDDDD", "grey": "#999999", "dark_grey": "#555555"}

CACHED = OKABE_ITO["blue"]  # tokens served from the cache (reused)
COMPUTED = OKABE_ITO["vermillion"]  # tokens prefilled (computed, recomputed)
CHANGED = OKABE_ITO["black"]  # the first token that differs
MARK = OKABE_ITO["black"]  # reference marks drawn over data (an edit position, "header ends")
ERROR = OKABE_ITO["vermillion"]  # error text in widgets (always with the word "error" too)
CACHED_LIGHT = OKABE_ITO["sky_blue"]  # cells behind text: reused
COMPUTED_LIGHT = OKABE_ITO["orange"]  # cells behind text: recomputed

# The second cue: a bar fill pattern, a line dash, a marker symbol (plotly names).
CACHED_STYLE = {"color": CACHED, "pattern": "", "dash": "solid", "symbol": "circle"}
COMPUTED_STYLE = {"color": COMPUTED, "pattern": "/", "dash": "dash", "symbol": "x"}

# Series with no cached/computed meaning, in order: each differs from the others by more than
# colour (its dash, symbol and pattern), so a legend can be read in greyscale too.
SERIES = tuple(
    {"color": c, "pattern": p, "dash": d, "symbol": s}
    for c, p, d, s in (
        (OKABE_ITO["vermillion"], "/", "dash", "x"),
        (OKABE_ITO["blue"], "", "solid", "circle"),
        (OKABE_ITO["orange"], ".", "dot", "diamond"),
        (OKABE_ITO["bluish_green"], "\\", "dashdot", "square"),
        (OKABE_ITO["reddish_purple"], "x", "longdash", "triangle-up"),
        (OKABE_ITO["sky_blue"], "+", "longdashdot", "star"),
        (OKABE_ITO["black"], "-", "solid", "cross"),
    )
)

# Continuous scales: viridis and cividis are perceptually uniform and colour-blind safe; RdBu is
# a diverging scale whose ends (red, blue) stay apart for red-green colour blindness.
SEQUENTIAL_SCALE = "Viridis"
DIVERGING_SCALE = "RdBu"
COLORSCALES = ("Viridis", "Cividis", "RdBu")

ALLOWED_COLORS = frozenset(c.lower() for c in (*OKABE_ITO.values(), *NEUTRALS.values()))


def series_style(index: int) -> dict:
    """Return the colour, bar pattern, line dash and marker symbol of series number `index`."""
    return SERIES[index % len(SERIES)]


def bar_marker(style: dict) -> dict:
    """Return a plotly bar `marker` for a style: its colour and its fill pattern."""
    return {"color": style["color"], "pattern": {"shape": style["pattern"]}}


def line_style(style: dict, *, width: float = 2) -> dict:
    """Return a plotly scatter `line` for a style: its colour and its dash."""
    return {"color": style["color"], "dash": style["dash"], "width": width}
