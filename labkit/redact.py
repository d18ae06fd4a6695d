"""Redact what looks like a credential from text that `labkit lint` prints or writes.

Captured requests carry secrets: API keys in HTTP headers, tokens pasted into a prompt, `token=`
query parameters in URLs that a tool fetched, passwords in a config file the agent read. The
linter passes every string it outputs through `redact`, and cuts text windows with
`redacted_window`, which finds secrets in the whole text before cutting a window out of it
(half a key, or a value without its `x-api-key:` name, would escape the patterns).
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact", "redacted_window", "secret_spans"]

REDACTED = "[REDACTED]"

# Each pattern's group "keep" (if any) is kept; the rest of the match is replaced.
_PATTERNS = [
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        re.DOTALL,
    ),
    re.compile(r"(?P<keep>sk-ant-)[A-Za-z0-9_\-]{6,}"),  # Anthropic
    re.compile(r"(?P<keep>sk-)(?:proj-|svcacct-)?[A-Za-z0-9_\-]{12,}"),  # OpenAI and alike
    re.compile(r"(?P<keep>(?:AKIA|ASIA))[0-9A-Z]{12,}"),  # AWS access key ids
    re.compile(r"(?P<keep>(?:gh[pousr]_|github_pat_))[A-Za-z0-9_]{10,}"),  # GitHub tokens
    re.compile(r"(?P<keep>xox[abprs]-)[A-Za-z0-9\-]{8,}"),  # Slack tokens
    re.compile(r"(?P<keep>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=\-]{6,}", re.IGNORECASE),
    # name: value, name=value, "name": "value", ?name=value&... (headers, JSON, URLs, configs)
    re.compile(
        r"(?P<keep>(?<![A-Za-z0-9_\-])(?:authorization|proxy-authorization|x-api-key|api[-_]?key"
        r"|apikey|(?:aws_)?(?:secret_)?access_key(?:_id)?|access[-_]?token|refresh[-_]?token"
        r"|auth[-_]?token|id[-_]?token|client[-_]?secret|secret[-_]?key|secret|passwd|password"
        r"|pwd|token|key|sig|signature|session[-_]?id|cookie|set-cookie)"
        r"[\"']?\s*[:=]\s*[\"']?(?:(?:Bearer|Basic|Token)\s+)?)"  # the name, kept
        r"(?!\[REDACTED\]|(?:Bearer|Basic|Token)\s)[^\s\"'&,;<>)}\]]{4,}",  # the value
        re.IGNORECASE,
    ),
]


def secret_spans(text: str) -> list[tuple[int, int]]:
    """Return the sorted, merged character spans of `text` that hold a secret value."""
    spans = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start = match.end("keep") if "keep" in pattern.groupindex else match.start()
            spans.append((start, match.end()))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact(text: str) -> str:
    """Return `text` with every secret value replaced by [REDACTED]."""
    for _ in range(3):  # a replacement can expose a pattern ("key=" + "sk-..."): go again
        spans = secret_spans(text)
        if not spans:
            return text
        parts, cursor = [], 0
        for start, end in spans:
            parts += [text[cursor:start], REDACTED]
            cursor = end
        text = "".join(parts) + text[cursor:]
    return text


def redacted_window(text: str, start: int, end: int) -> str:
    """Return `text[start:end]` with secrets redacted, found in the whole text (not the slice)."""
    start, end = max(0, start), min(len(text), end)
    parts, cursor = [], start
    for s, e in secret_spans(text):  # found with their names, even when the slice cuts them
        if e <= start or s >= end:
            continue
        parts += [text[cursor : max(s, start)], REDACTED]
        cursor = min(e, end)
    return redact("".join(parts) + text[cursor:end])
