"""Find where each captured request stops reusing the previous one's KV cache, and why.

`labkit lint REQUESTS` (or `lint_file` here) renders and tokenizes a session's requests, finds
the first token and character where each request diverges from the one before it, names the
likely cause and its fix (`labkit.lint.diff` compares two requests' structure,
`labkit.lint.causes` holds the causes), and counts the tokens a prefix cache could not reuse.
`labkit.lint.report` writes the report; everything it outputs passes through
`labkit.redact.redact`.

Reading the request file (JSONL or JSON, captures with headers; unreadable lines reported with
their line number) lives in `labkit.lint.read`, the result dataclasses in `labkit.lint.results`;
their names are re-exported here.
"""

from __future__ import annotations

import random
from pathlib import Path

from labkit.lint.causes import CAUSES
from labkit.lint.diff import message_at
from labkit.lint.hosted import api_for_model, lint_hosted
from labkit.lint.hunks import changed_ends
from labkit.lint.params import (
    PARAMETER_CAUSES,
    conversation_key,
    parameter_change,
    previous_in_conversation,
    text_change,
)
from labkit.lint.read import LintError, read_captured
from labkit.lint.report import SCHEMA, format_report, report_json
from labkit.lint.results import CauseSummary, LintReport, RequestLint
from labkit.redact import redact, redacted_window
from labkit.sessions.format import request_shape
from labkit.sessions.header import attribution_enabled
from labkit.sessions.render import render_request, with_attribution
from labkit.tokens import MemoTokenizer, common_prefix_len

__all__ = [
    "SCHEMA",
    "CauseSummary",
    "LintError",
    "LintReport",
    "RequestLint",
    "format_report",
    "lint_file",
    "lint_requests",
    "over_context_warnings",
    "read_captured",
    "redact",
    "report_json",
]

WINDOW_CHARS = 40  # characters shown on each side of a divergence


def _row(index, line, prev, cur, reused: int, cause: str) -> RequestLint:
    """Return a request's row when it reuses `reused` tokens of the previous one's."""
    return RequestLint(
        index=index,
        line=line,
        shape=cur.shape,
        n_tokens=cur.n_tokens,
        reused_tokens=reused,
        recomputed_tokens=cur.n_tokens - reused,
        not_reused_tokens=prev.n_tokens - reused,
        lost_tokens=cur.n_tokens - reused - max(0, cur.n_tokens - prev.n_tokens),
        cause=cause,
    )


def _lint_pair(index, line, prev, cur, prev_request, request) -> RequestLint:
    reused = common_prefix_len(prev.tokens, cur.tokens)
    param = parameter_change(prev_request, request)  # model, thinking, tool_choice
    if param is not None:
        keep = 0 if PARAMETER_CAUSES[param.cause] else (cur.system_span or (0, 0))[1]
        if keep < reused:  # the parameter loses more than the text does: it is the cause
            row = _row(index, line, prev, cur, keep, param.cause)
            row.where, row.detail, row.token = redact(param.where), redact(param.detail), keep
            return row
    row = _row(index, line, prev, cur, reused, "append-only")
    if reused == prev.n_tokens:
        return row
    change = text_change(prev_request, request)
    if change is not None and change.cause == "final-message-only":
        row.lost_tokens = 0  # an evaluation, a regeneration: nothing could do better
    char = common_prefix_len(prev.text, cur.text)
    if change is not None:
        row.cause, row.where, row.detail = change.cause, change.where, change.detail
    elif cur.text.startswith(prev.text):
        row.cause, row.where = "token-boundary", "end of the previous request"
        row.detail = "the text is append-only; the tokenizer merged tokens across the old end"
    else:
        row.cause = "template-rewrote-history"
        row.where = message_at(prev_request, prev.text, char)
        row.detail = "same messages, rendered differently by the chat template"
    row.where, row.detail = redact(row.where), redact(row.detail)
    old_end, new_end = changed_ends(prev.text, cur.text, char)
    row.token, row.char_span, row.previous_char_span = reused, (char, new_end), (char, old_end)
    row.previous_text = redacted_window(prev.text, char - WINDOW_CHARS, char + WINDOW_CHARS)
    row.new_text = redacted_window(cur.text, char - WINDOW_CHARS, char + WINDOW_CHARS)
    return row


def lint_requests(
    requests: list[dict],
    tokenizer,
    *,
    attribution: bool | str | None = None,
    seed: int = 0,
    lines: list[int | None] | None = None,
    source: str = "requests given",
    model: str = "the tokenizer given",
    context_tokens: int | None = None,
    api: str | None = "auto",
) -> LintReport:
    """Lint a session's requests in order; `attribution` on/off rewrites the attribution line.

    attribution None keeps the requests as captured; on adds the line with a fresh `cch` per
    request (from `random.Random(seed)`), off removes it — as `CLAUDE_CODE_ATTRIBUTION_HEADER`.
    `api` "anthropic" or "openai" adds what the session reuses and costs on that hosted API
    (`report.hosted`); "auto" picks it from the requests' model name; None or "none" skips it.
    """
    rng, label = random.Random(seed), "as captured"
    if attribution is not None:
        on = attribution_enabled(attribution)
        requests = [with_attribution(r, on, rng=rng) for r in requests]
        label = "on" if on else "off"
    lines = lines or [None] * len(requests)
    tokenizer = MemoTokenizer(tokenizer)  # a long text's repeated lines are tokenized once
    rendered = [render_request(r, tokenizer, api_order=False) for r in requests]
    rows = []
    keys = [conversation_key(r) for r in requests]
    for k, cur in enumerate(rendered):
        if k == 0:
            rows.append(_row(0, lines[0], cur, cur, 0, "first"))
            rows[-1].not_reused_tokens = rows[-1].lost_tokens = 0
            continue
        j = previous_in_conversation(keys, k)  # side requests of other conversations skipped
        rows.append(_lint_pair(k, lines[k], rendered[j], cur, requests[j], requests[k]))
        rows[-1].previous = j
    report = LintReport(source=redact(source), model=model, attribution=label, requests=rows)
    report.context_tokens = context_tokens
    report.warnings = over_context_warnings([r.n_tokens for r in rows], context_tokens, lines)
    report.n_tokens = sum(r.n_tokens for r in rows)
    report.recomputed_tokens = sum(r.recomputed_tokens for r in rows)
    report.lost_tokens = sum(r.lost_tokens for r in rows)
    report.ideal_recomputed_tokens = report.recomputed_tokens - report.lost_tokens
    report.loss_fraction = report.lost_tokens / report.n_tokens if report.n_tokens else 0.0
    for key in dict.fromkeys(r.cause for r in rows if r.cause != "first"):
        hit = [r for r in rows if r.cause == key]
        lost = sum(r.lost_tokens for r in hit)
        summary = CauseSummary(
            key, CAUSES[key].label, [r.index for r in hit], lost, CAUSES[key].fix
        )
        report.causes.append(summary)
    report.causes.sort(key=lambda c: (c.cause == "append-only", -c.lost_tokens))
    if api == "auto":
        api = api_for_model(next((r.get("model") for r in requests if r.get("model")), None))
        api = api if requests and all(request_shape(r) != "prompt" for r in requests) else None
    if api not in (None, "none") and requests:
        report.hosted = lint_hosted(requests, tokenizer, api=api)
        for row in report.hosted.requests:
            if row.cause:
                hit = next((c for c in report.causes if c.cause == row.cause), None)
                if hit is None:
                    c = CAUSES[row.cause]
                    hit = CauseSummary(row.cause, c.label, [], 0, c.fix)
                    report.causes.append(hit)
                hit.requests.append(row.index)
                hit.lost_tokens += row.lost_tokens
    return report


def over_context_warnings(
    n_tokens: list[int], context_tokens: int | None, lines: list[int | None] | None = None
) -> list[str]:
    """Return a warning for each request longer than the model's context (none if unknown)."""
    if not context_tokens:
        return []
    lines = lines or [None] * len(n_tokens)
    return [
        f"request {k}{f' (line {line})' if line else ''} has {n:,} tokens, more than the model's "
        f"context of {context_tokens:,}: a server would refuse it or cut it"
        for k, (n, line) in enumerate(zip(n_tokens, lines, strict=True))
        if n > context_tokens
    ]


def lint_file(
    path: str | Path,
    tokenizer=None,
    *,
    model: str | None = None,
    attribution: bool | str | None = None,
    seed: int = 0,
    api: str | None = "auto",
) -> LintReport:
    """Lint a request file (JSONL or JSON) with `tokenizer`, else the tokenizer of `model`."""
    from labkit.models import context_tokens, load_tokenizer, resolve_model_name

    pairs, errors = read_captured(path)
    label, context = model or "the tokenizer given", None
    if tokenizer is None:
        tokenizer, label = load_tokenizer(model), resolve_model_name(model)
        context = context_tokens(model)
    requests, lines = [r for r, _ in pairs], [n for _, n in pairs]
    report = lint_requests(
        requests,
        tokenizer,
        attribution=attribution,
        seed=seed,
        lines=lines,
        source=str(path),
        model=redact(label),
        context_tokens=context,
        api=api,
    )
    report.errors = errors
    return report
