"""Write a lint report as a table with a summary per cause, or as JSON.

The JSON (schema "labkit.lint/1") is one object:

    {"schema": "labkit.lint/1", "source": str, "model": str,
     "attribution": "on" | "off" | "as captured",
     "totals": {"requests": int, "n_tokens": int, "recomputed_tokens": int,
                "ideal_recomputed_tokens": int, "lost_tokens": int, "loss_fraction": float},
     "requests": [{"index": int, "line": int | null, "shape": str, "n_tokens": int,
                   "reused_tokens": int, "recomputed_tokens": int, "not_reused_tokens": int,
                   "lost_tokens": int, "previous": int | null, "cause": str, "label": str,
                   "where": str, "detail": str,
                   "divergence": null | {"token": int, "char_span": [int, int],
                                         "previous_char_span": [int, int],
                                         "previous_text": str, "new_text": str}}],
     "causes": [{"cause": str, "label": str, "requests": [int], "lost_tokens": int,
                 "fix": str}],
     "errors": [{"line": int | null, "message": str}],
     "context_tokens": int | null, "warnings": [str],
     "hosted": {...}}  # only with a hosted API (--api, or a claude-*/gpt-* model)

`hosted` (`labkit.lint.hosted.HostedReport`): "api", "model", "as_of", "source",
"min_cacheable_tokens", "ttl_s", "price_usd_per_mtok", "cost_usd", "cost_without_cache_usd",
"notes", and "requests": [{"index", "n_tokens", "cached_tokens", "written_tokens",
"uncached_tokens", "cause", "detail", "gap_s", "cost_usd", "lost_tokens"}]. A divergence caused
by a request parameter (model, thinking, tool_choice) has "token" but null character spans.

`cause` is a key of `labkit.lint.causes.CAUSES`; `previous` is the request compared with: the
last one of the same conversation (model and first message), else the one just before. `token`
is the first token that differs from the previous request (== reused_tokens); `char_span` is the
changed characters of this request's rendered text and `previous_char_span` those of the previous
one (both start where the texts first differ; an empty span is a deletion); the texts are windows
of 40 characters each side of that point. `lost_tokens` sum to totals.lost_tokens;
loss_fraction = lost_tokens / n_tokens.
`context_tokens` is the model's context length (null when unknown); `warnings` name each request
longer than it. Every string is redacted.
"""

from __future__ import annotations

import textwrap

from labkit.lint.causes import CAUSES
from labkit.redact import redact

__all__ = ["SCHEMA", "format_hosted", "format_report", "hosted_json", "report_json"]

SCHEMA = "labkit.lint/1"


def report_json(report) -> dict:
    """Return a LintReport as a JSON-ready dict (schema "labkit.lint/1"), redacted."""
    requests = []
    for r in report.requests:
        divergence = None
        if r.token is not None:
            divergence = {
                "token": r.token,
                "char_span": list(r.char_span) if r.char_span else None,
                "previous_char_span": list(r.previous_char_span) if r.previous_char_span else None,
                "previous_text": r.previous_text,
                "new_text": r.new_text,
            }
        fields = ("index", "line", "shape", "n_tokens", "reused_tokens", "recomputed_tokens")
        row = {name: getattr(r, name) for name in fields}
        row |= {"not_reused_tokens": r.not_reused_tokens, "lost_tokens": r.lost_tokens}
        row |= {"previous": r.previous}
        row |= {"cause": r.cause, "label": CAUSES[r.cause].label, "where": r.where}
        requests.append(row | {"detail": r.detail, "divergence": divergence})
    out = {
        "schema": SCHEMA,
        "source": report.source,
        "model": report.model,
        "attribution": report.attribution,
        "totals": {
            "requests": len(report.requests),
            "n_tokens": report.n_tokens,
            "recomputed_tokens": report.recomputed_tokens,
            "ideal_recomputed_tokens": report.ideal_recomputed_tokens,
            "lost_tokens": report.lost_tokens,
            "loss_fraction": round(report.loss_fraction, 6),
        },
        "requests": requests,
        "causes": [vars(c) | {"requests": list(c.requests)} for c in report.causes],
        "errors": [{"line": e.line, "message": e.message} for e in report.errors],
        "context_tokens": report.context_tokens,
        "warnings": list(report.warnings),
    }
    if getattr(report, "hosted", None) is not None:
        out["hosted"] = hosted_json(report.hosted)
    return _redacted(out)


def _redacted(value):
    """Return a JSON-ready value with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _ranges(indices: list[int]) -> str:
    """Return "1–3, 7" for [1, 2, 3, 7]."""
    parts, start = [], None
    for i, k in enumerate(indices):
        start = k if start is None else start
        if i + 1 == len(indices) or indices[i + 1] != k + 1:
            parts.append(f"{start}" if start == k else f"{start}–{k}")
            start = None
    return ", ".join(parts)


def _one_line(text: str, limit: int) -> str:
    text = text.replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, width: int, **indents) -> list[str]:
    """Return text wrapped at spaces only: a word (a key, a path) is never split across lines,
    so redaction still finds it whole."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False, **indents)


def format_report(report, width: int = 96) -> str:
    """Return a LintReport as text: a row per request, a summary per cause, errors; redacted.

    Every line fits in `width` characters (96: a notebook's output area and a terminal show it
    without wrapping a line mid-word); longer text is wrapped at spaces or cut with an ellipsis.
    """
    n = len(report.requests)
    cause_w = max([12] + [len(r.cause) for r in report.requests])
    head = f"{'#':>3} {'line':>5} {'tokens':>7} {'reused':>7} {'recomputed':>10} {'lost':>7}  "
    out = [
        *_wrap(
            f"labkit lint {report.source}: {n} request(s), tokenizer {report.model}, "
            f"attribution {report.attribution}",
            width,
            subsequent_indent="  ",
        ),
        "",
        head + f"{'cause':<{cause_w}}  where",
    ]
    for r in report.requests:
        where = "—" if r.token is None else f"{r.where}: {r.detail}"  # diverges at token `reused`
        if r.previous is not None and r.previous != r.index - 1:  # another conversation between
            where = f"(vs #{r.previous}) {where}"
        row = (
            f"{r.index:>3} {r.line or '':>5} {r.n_tokens:>7,} {r.reused_tokens:>7,} "
            f"{r.recomputed_tokens:>10,} {r.lost_tokens:>7,}  {r.cause:<{cause_w}}  "
        )
        out.append(row + _one_line(where, max(24, width - len(row))))
    out += [
        "",
        *_wrap(
            f"Session: {report.n_tokens:,} prompt tokens, {report.recomputed_tokens:,} recomputed "
            f"where append-only requests need {report.ideal_recomputed_tokens:,}:",
            width,
            subsequent_indent="  ",
        ),
        f"  {report.lost_tokens:,} lost ({report.loss_fraction:.1%} of the session).",
    ]
    if report.causes:
        out += ["", "By cause:"]
    for c in report.causes:
        out += _wrap(
            f"  {c.cause} — {c.label}: request(s) {_ranges(c.requests)}, "
            f"{c.lost_tokens:,} tokens lost",
            width,
            subsequent_indent=" " * 6,
        )
        example = next(
            (r for r in report.requests if r.cause == c.cause and r.token and r.char_span), None
        )
        if example is not None:
            out.append(f"      was: …{_one_line(example.previous_text, width - 12)}…")
            out.append(f"      now: …{_one_line(example.new_text, width - 12)}…")
        out += _wrap(f"fix: {c.fix}", width, initial_indent=" " * 6, subsequent_indent=" " * 11)
    if getattr(report, "hosted", None) is not None:
        out += ["", format_hosted(report.hosted)]
    if report.errors:
        out += ["", f"Could not read {len(report.errors)} line(s); the others are linted above:"]
        for e in report.errors:
            out += _wrap(e.message, width, initial_indent="  ", subsequent_indent="    ")
    return redact("\n".join(out))


def hosted_json(report) -> dict:
    """Return a HostedReport as a JSON-ready dict."""
    out = {k: v for k, v in vars(report).items() if k != "requests"}
    return out | {"requests": [vars(r) for r in report.requests]}


def format_hosted(report) -> str:
    """Return a HostedReport as text: a row per request, totals, and the figures' date."""
    out = [
        f"Hosted API {report.api} (figures as of {report.as_of}, {report.source}): model "
        f"{report.model}, prefix order tools → system → messages, minimum "
        f"{report.min_cacheable_tokens:,} tokens, TTL {report.ttl_s:,.0f} s",
        f"{'#':>3} {'tokens':>7} {'cached':>7} {'written':>7} {'uncached':>8} {'cost $':>9}  note",
    ]
    for r in report.requests:
        cost = "" if r.cost_usd is None else f"{r.cost_usd:.5f}"
        note = f"{r.cause}: {r.detail}" if r.cause else ""
        out.append(
            f"{r.index:>3} {r.n_tokens:>7,} {r.cached_tokens:>7,} {r.written_tokens:>7,} "
            f"{r.uncached_tokens:>8,} {cost:>9}  {note}"
        )
    total = sum(r.n_tokens for r in report.requests)
    cached = sum(r.cached_tokens for r in report.requests)
    line = f"Session: {cached:,} of {total:,} input tokens read from cache"
    if report.cost_usd is not None:
        line += (
            f"; input cost ${report.cost_usd:.4f} (${report.cost_without_cache_usd:.4f} without "
            f"caching, base ${report.price_usd_per_mtok}/MTok)"
        )
    out += [line + "."] + [f"  note: {n}" for n in report.notes]
    return "\n".join(out)
