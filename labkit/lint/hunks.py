"""Where two texts differ, line by line, in linear time: the first changed hunk, where the
changed characters end, and the changed lines redacted for display (`labkit.lint.diff` and
`labkit.lint.core` use them)."""

from __future__ import annotations

from difflib import SequenceMatcher

from labkit.redact import redacted_window
from labkit.tokens import common_prefix_len

__all__ = ["changed_ends", "first_changed_lines", "redacted_lines"]

_HUNK_LINES = 400  # lines diffed from the first changed one, to find where the change ends


def first_changed_lines(old: str, new: str, first: int | None = None) -> tuple[int, int, int, int]:
    """Return the first hunk of changed lines (i1, i2, j1, j2) of two texts, in linear time.

    The hunk is anchored on the line of the first differing character (`first`, found if not
    given) and its end is found by a line diff of at most `_HUNK_LINES` lines from there: long,
    repetitive prompts (300,000 similar lines) cost what a few hundred lines cost.
    """
    first = common_prefix_len(old, new) if first is None else first
    line = old.count("\n", 0, first)
    start_old = old.rfind("\n", 0, first) + 1  # where that line starts (the same in both texts)
    old_lines = old[start_old:].split("\n", _HUNK_LINES)[:_HUNK_LINES]
    new_lines = new[start_old:].split("\n", _HUNK_LINES)[:_HUNK_LINES]
    matcher = SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    hunk = next((op for op in matcher.get_opcodes() if op[0] != "equal"), None)
    if hunk is None:  # the texts differ beyond the window's lines: report the first line
        return line, line + 1, line, line + 1
    _, i1, i2, j1, j2 = hunk
    return line + i1, line + i2, line + j1, line + j2


def redacted_lines(text: str, i1: int, i2: int, first: int) -> tuple[list[str], list[str]]:
    """Return lines [i1, i2) of `text` and the 30 lines above them, redacted (i1 is the line
    of character `first` or a later one)."""
    line, start = text.count("\n", 0, first), text.rfind("\n", 0, first) + 1
    for _ in range(i1 - line):  # forward to line i1
        start = text.find("\n", start) + 1
    above = start
    for _ in range(min(30, i1)):
        above = text.rfind("\n", 0, above - 1) + 1
    end = start
    for _ in range(i2 - i1):
        found = text.find("\n", end)
        end = len(text) + 1 if found < 0 else found + 1
    lines = redacted_window(text, above, max(above, end - 1), keep_lines=True).split("\n")
    n_above = text.count("\n", above, start)
    return lines[n_above : n_above + i2 - i1], lines[:n_above]


def changed_ends(old: str, new: str, start: int) -> tuple[int, int]:
    """Return where the characters that differ from `start` on end in `old` and in `new`.

    That is where the texts match again for 16 characters or more (looked for in 1,000).
    """
    a, b = old[start : start + 1000], new[start : start + 1000]
    for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        if block.size >= 16:
            return start + block.a, start + block.b
    return start + len(a), start + len(b)
