"""The cache-busters `labkit lint` names, with the fix for each; how a system-prompt edit is named.

Found in real agents (see the lab's references): the attribution line's changing `cch=`, the
date or time in the system prompt, `git status` output in the system prompt, tool definitions in
a non-deterministic order, JSON keys re-ordered between requests, reasoning blocks dropped from
earlier turns (by the client or by the chat template), and other edits of the history.
`labkit.lint.diff` finds which part changed; `classify_lines` names a change of system text
from the lines that changed (the attribution line, a date or time that differs, `git status`
lines or a section under a git heading, a hex id or hash that differs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labkit.redact import redact
from labkit.sessions.render import HEADER_LINE

__all__ = ["CAUSES", "EXPECTED", "Cause", "classify_lines"]


@dataclass(frozen=True)
class Cause:
    """A kind of cache-buster: its key, a short label and the fix to suggest."""

    key: str
    label: str
    fix: str


_CAUSE_LIST = [
    Cause(
        "first", "first request (cold cache)", "Nothing to fix: the first request fills the cache."
    ),
    Cause("append-only", "append-only (no loss)", "Nothing to fix: every earlier token is reused."),
    Cause(
        "attribution-header",
        "changing id in the attribution line (cch=)",
        'Set "CLAUDE_CODE_ATTRIBUTION_HEADER": "0" in the "env" block of ~/.claude/settings.json '
        "(or have the proxy in front of your local server strip the x-anthropic-billing-header "
        "line). Anthropic's own API handles the line apart from the prompt; it breaks caches "
        "that see it as text: a gateway or proxy, SGLang, a local server's OpenAI-compatible "
        "endpoints, llama.cpp's /completion (recent llama.cpp rewrites cch on its Anthropic "
        "endpoint /v1/messages, PR #21793; vLLM merged a like fix). Claude Code 2.1.x sends a "
        "fresh cch per request; v2.1.181+ is reported to keep it stable per conversation behind "
        "a custom base URL.",
    ),
    Cause(
        "timestamp",
        "date or time in the prompt",
        "Move the date/time to the end (into the latest user message), or freeze it per session "
        "and drop the seconds (a minute-resolution clock still busts the cache every minute).",
    ),
    Cause(
        "git-status",
        "git status output in the system prompt",
        "Freeze git status per session (a snapshot taken once) or send it in the latest user "
        "message (Claude Code: CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS=1 leaves it out).",
    ),
    Cause(
        "changing-id",
        "changing id or hash in the system prompt",
        "Keep per-request ids and hashes out of the prompt (send them as HTTP headers or "
        "metadata), or put them after the last cached block.",
    ),
    Cause(
        "changing-secret",
        "a credential in the prompt changed (value not shown)",
        "Keep credentials out of the prompt (send them as HTTP headers, which are not prompt "
        "text); a key or token that rotates inside the prompt busts the cache at every change.",
    ),
    Cause(
        "system-edited",
        "system prompt edited",
        "Keep the system prompt fixed for the session; put what changes in the latest message.",
    ),
    Cause(
        "reordered-tools",
        "same tools, different order",
        "Sort tool definitions deterministically (by name) before each request, also after an "
        "MCP server reconnects.",
    ),
    Cause(
        "tools-changed",
        "tool list changed",
        "Keep the tool list fixed for the session: disable a tool by instruction or by masking "
        "it at decoding, rather than adding or removing its definition.",
    ),
    Cause(
        "reordered-json-keys",
        "same JSON object, keys in another order",
        "Serialize JSON deterministically (json.dumps(..., sort_keys=True) or a fixed field "
        "order; not the iteration order of a Go map or a Swift dictionary).",
    ),
    Cause(
        "dropped-reasoning",
        "reasoning/thinking dropped from an earlier turn",
        "Send earlier thinking/reasoning blocks back unchanged (keep reasoning_content), and use "
        "a chat template that keeps historical reasoning.",
    ),
    Cause(
        "edited-history",
        "earlier message changed or dropped",
        "Keep the history append-only: do not rewrite, truncate or re-summarise earlier turns "
        "on every request (compact rarely, at a known point).",
    ),
    Cause(
        "template-rewrote-history",
        "chat template renders an earlier turn differently",
        "Use a chat template that renders earlier turns the same way every time (for example "
        "one that keeps historical <think> blocks).",
    ),
    Cause(
        "token-boundary",
        "same text, tokens merged across the old end",
        "Usually negligible: end each request on a special token (the generation prompt does).",
    ),
    Cause("other", "request changed", "Diff the two requests and keep the earlier one's prefix."),
    # request parameters and content blocks (labkit.lint.params, labkit.lint.blocks)
    Cause(
        "model-switch",
        "another model (nothing of the previous cache is usable)",
        "Keep one model per conversation; start a new conversation (or a subagent with its own "
        "short context) to use another model, rather than switching mid-session.",
    ),
    Cause(
        "thinking-changed",
        "thinking/reasoning setting changed",
        "Choose the thinking setting (on/off, budget, reasoning_effort) once per session; a "
        "change invalidates the cached messages on hosted APIs, and on a local server wherever "
        "the chat template renders it.",
    ),
    Cause(
        "tool-choice-changed",
        "tool_choice changed (forced tool)",
        "Keep tool_choice fixed (usually auto) and steer with an instruction in the latest "
        "message; a forced or changed tool_choice invalidates the cached messages.",
    ),
    Cause(
        "tool-schema-changed",
        "a tool's input schema changed",
        "Keep tool schemas fixed for the session (generate them once, deterministically); the "
        "tool definitions come first in a hosted API's prefix, so the whole prompt is lost.",
    ),
    Cause(
        "edited-image",
        "history edited inside an image (or another non-text block)",
        "Send each earlier image or document back with the same bytes: keep the encoded data "
        "from the first turn instead of re-encoding, resizing or re-compressing it every turn.",
    ),
    Cause(
        "final-message-only",
        "only the final user message differs (evaluation, regeneration): expected",
        "Nothing to fix: everything before the final message is reused.",
    ),
    # hosted-API rules (labkit.lint.hosted)
    Cause(
        "ttl-expired",
        "hosted cache expired (time between requests beyond its TTL)",
        "Send the next request within the cache's lifetime, use a longer TTL (Anthropic "
        '"ttl": "1h"; OpenAI prompt_cache_retention "24h"), or accept one rewrite after a pause.',
    ),
    Cause(
        "below-minimum",
        "prompt shorter than the model's minimum cacheable length",
        "Nothing is cached below the minimum: put the shared prefix (tools, system prompt) "
        "above it, or do not pay for cache writes on short prompts.",
    ),
]
EXPECTED = frozenset({"first", "append-only", "final-message-only"})  # not cache-busters
CAUSES = {cause.key: cause for cause in _CAUSE_LIST}

_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp][Mm])?\b"
    r"|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2},? \d{4}\b"
    r"|\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}\b"
    r"|\b1[5-9]\d{8}(?:\d{3})?\b"  # Unix time in seconds or milliseconds
)
_GIT_LINE = re.compile(
    r"^(?:## [\w./-]+\.\.\.[\w./-]+.*|## HEAD \(no branch\)|On branch \S+|Your branch is .*"
    r"|[ MADRCU?!]{2} \S.*|nothing to commit.*|\(?working tree clean\)?"
    r"|Changes (?:not staged|to be committed).*|Untracked files:.*"
    r"|\s+(?:modified|new file|deleted|renamed):.*)$"
)
_GIT_HEADING = re.compile(r"git ?status|^Status:|^Recent commits:", re.IGNORECASE)
_ID = re.compile(  # a UUID, or a hex string of 6+ characters with both letters and digits
    r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"
    r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{6,}\b"
)
_CCH = re.compile(r"cch=([^;\s]*)")


def _lines_changed(was: list[str], now: list[str], limit: int = 60) -> str:
    short = lambda lines: redact(" | ".join(lines).strip())  # before cutting: no half secrets
    old, new = short(was) or "(nothing)", short(now) or "(nothing)"
    return " → ".join(t if len(t) <= limit else t[: limit - 1] + "…" for t in (old, new))


def _changed_value(pattern: re.Pattern, old_text: str, new_text: str) -> str | None:
    """Return "old → new" for the first match of `pattern` that differs, None if none does."""
    old, new = pattern.findall(old_text), pattern.findall(new_text)
    if old == new:
        return None
    pair = next(((x, y) for x, y in zip(old, new, strict=False) if x != y), None)
    return " → ".join(pair or (", ".join(old) or "(none)", ", ".join(new) or "(none)"))


def classify_lines(was: list[str], now: list[str], before: list[str]) -> tuple[str, str]:
    """Return (cause, detail) for a hunk of changed lines; `before` holds the lines above it."""
    old_text, new_text = "\n".join(was), "\n".join(now)
    if any(HEADER_LINE.match(line) for line in was + now):
        old, new = _CCH.findall(old_text), _CCH.findall(new_text)
        if old and new:
            return "attribution-header", f"cch={old[0]} → cch={new[0]}"
        return "attribution-header", "attribution line " + ("added" if new else "removed")
    changed = _changed_value(_DATE, old_text, new_text)
    if changed:
        return "timestamp", changed
    if _under_git_heading(before) or any(_GIT_LINE.match(line.rstrip()) for line in was + now):
        return "git-status", _lines_changed(was, now)
    changed = _changed_value(_ID, old_text, new_text)
    if changed:
        return "changing-id", changed
    return "system-edited", _lines_changed(was, now)


def _under_git_heading(before: list[str]) -> bool:
    """Return True when the lines above a hunk, up to a blank line or a heading, name git status."""
    for line in reversed(before):
        if _GIT_HEADING.search(line):
            return True
        if not line.strip() or (line.startswith("#") and not _GIT_LINE.match(line)):
            return False
    return False
