"""Redact what looks like a credential from every text labkit prints, writes or raises.

Captured requests carry secrets: API keys in HTTP headers, tokens pasted into a prompt, `token=`
query parameters and `user:password@` in URLs that a tool fetched, passwords in a config file the
agent read. Every output path of `labkit lint`, `labkit simulate` and the `labkit` command's error
messages passes through `redact`; text windows are cut with `redacted_window`, which finds secrets
in the whole text before cutting a window out of it (half a key, or a value without its
`x-api-key:` name, would escape the patterns); `redact_keep_lines` keeps the line count, so a
line diff can compare redacted lines (a value whose name sits on the line above stays hidden).

Three kinds of rule, each a regular expression (`_PATTERNS`):
- vendor formats (Anthropic, OpenAI, AWS, GitHub, GitLab, Google, Stripe, Slack, npm, Hugging
  Face), bare JWTs, private-key blocks (PEM and PGP), URL user-info (`scheme://user:pass@host`);
- `name: value` / `name=value` / `"name": "value"` pairs whose name says secret (the value may
  follow on the next line); a generic name (`key`, `token`, `secret`, ...) needs a value that
  looks random (a digit in 8+ characters), so "Primary key: user_id" stays readable;
- a high-entropy rule: a long random-looking token within a few words after a secret-like word.
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["REDACTED", "redact", "redact_keep_lines", "redacted_window", "secret_spans"]

REDACTED = "[REDACTED]"

_STRONG_NAMES = (
    r"authorization|proxy-authorization|x-api-key|x-auth-token|api[-_]?key|apikey"
    r"|(?:aws[-_]?)?secret[-_]?access[-_]?key|(?:aws[-_]?)?access[-_]?key(?:[-_]?id)?"
    r"|access[-_]?token|refresh[-_]?token|auth[-_]?token|id[-_]?token|bearer[-_]?token"
    r"|session[-_]?token|security[-_]?token|client[-_]?secret|secret[-_]?key|private[-_]?key"
    r"|passwd|password|passphrase|cookie|set-cookie|credentials?"
)
_WEAK_NAMES = r"secret|pwd|pass|token|key|sig|signature|session[-_]?id"
_NAME_START = r"(?:(?<![A-Za-z0-9])|(?<=\\[nrt]))(?<![A-Za-z0-9][-_])"  # after \n in JSON too
_NAME_PREFIX = r"(?:[A-Za-z0-9]+[-_])*"  # DB_PASSWORD, OPENAI_API_KEY, my-secret-token
# "name": , name= , name:\n (also a JSON-escaped \n, when the text is a JSON dump)
_NAME_END = r"[\"']?\s*[:=](?:\s|\\[nrt])*(?:(?:Bearer|Basic|Token)\s+)?"
_QUOTED_OR_BARE = r"(?:(?<=\")[^\"\n]+(?=\")|(?<=')[^'\n]+(?=')|(?<![\"'])[^\s\"'&,;<>)}\]\\]{4,})"
# 8+ characters, a digit in the first 256 (bounded, so a long run without one is linear to scan)
_RANDOMISH = r"(?=[^\s\"'&,;<>)}\]\\]{0,255}\d)[^\s\"'&,;<>)}\]\\]{8,}"
# a vendor prefix stays readable, as the vendor patterns keep it: ANTHROPIC_API_KEY=sk-[REDACTED]
_VENDOR_PREFIX = (
    r"(?:sk-(?:ant-|proj-|svcacct-)?|(?:sk|rk|pk)_(?:live|test)_|AKIA|ASIA|gh[pousr]_|glpat-"
    r"|AIza|npm_|hf_|xox[abprs]-)"
)
# not twice (bounded look-ahead: linear on long runs), not a scheme
_NOT_DONE = r"(?![^\s\"'\[]{0,256}\[REDACTED\]|(?:Bearer|Basic|Token)\s)"

# Each pattern's group "keep" (if any) is kept; the rest of the match is replaced.
_PATTERNS = [
    re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        re.DOTALL,
    ),
    re.compile(r"(?P<keep>sk-ant-)[A-Za-z0-9_\-]{6,}"),  # Anthropic
    re.compile(r"(?P<keep>sk-)(?:proj-|svcacct-)?[A-Za-z0-9_\-]{12,}"),  # OpenAI and alike
    re.compile(r"(?P<keep>\b(?:sk|rk|pk)_(?:live|test)_)[A-Za-z0-9]{8,}"),  # Stripe
    re.compile(r"(?P<keep>(?:AKIA|ASIA))[0-9A-Z]{12,}"),  # AWS access key ids
    re.compile(r"(?P<keep>(?:gh[pousr]_|github_pat_))[A-Za-z0-9_]{10,}"),  # GitHub tokens
    re.compile(r"(?P<keep>\bgl(?:pat|ptt|dt|rt|oas|cbt)-)[A-Za-z0-9_\-]{10,}"),  # GitLab
    re.compile(r"(?P<keep>\bAIza)[0-9A-Za-z_\-]{20,}"),  # Google API keys
    re.compile(r"(?P<keep>\bya29\.)[0-9A-Za-z_\-]{10,}"),  # Google OAuth access tokens
    re.compile(r"(?P<keep>xox[abprs]-)[A-Za-z0-9\-]{8,}"),  # Slack tokens
    re.compile(r"(?P<keep>\bnpm_)[A-Za-z0-9]{20,}"),  # npm tokens
    re.compile(r"(?P<keep>\bhf_)[A-Za-z0-9]{20,}"),  # Hugging Face tokens
    re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]*)?"),  # JWTs
    re.compile(r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^\s/?#@\"'<>]+(?=@)"),  # user:pass@
    re.compile(r"(?P<keep>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=\-]{6,}", re.IGNORECASE),
    # name: value, name=value, "name": "value", ?name=value&... (headers, JSON, URLs, configs)
    re.compile(
        rf"(?P<keep>{_NAME_START}{_NAME_PREFIX}(?:{_STRONG_NAMES})"
        rf"{_NAME_END}[\"']?{_VENDOR_PREFIX}?){_NOT_DONE}{_QUOTED_OR_BARE}",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?P<keep>{_NAME_START}{_NAME_PREFIX}(?:{_WEAK_NAMES})"
        rf"{_NAME_END}[\"']?{_VENDOR_PREFIX}?){_NOT_DONE}{_RANDOMISH}",
        re.IGNORECASE,
    ),
]

# A long token (20+ characters) within a few words after a word that names a secret.
_NEAR_NAME = re.compile(
    r"(?:key|token|secret|passw|credential|auth|bearer|signature)[A-Za-z]*\b[^\n]{0,40}?"
    rf"(?<![A-Za-z0-9+/_\-]){_VENDOR_PREFIX}?(?P<value>[A-Za-z0-9+/_\-]{{20,}}={{0,2}})",
    re.IGNORECASE,
)
_ENTROPY_BITS_PER_CHAR = 3.5
_MARGIN_CHARS = 4096  # how far from a window a secret's name may sit


def _entropy_bits_per_char(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_random(value: str) -> bool:
    """Return True for a token with digits and letters whose characters look random."""
    has_digit, has_alpha = any(c.isdigit() for c in value), any(c.isalpha() for c in value)
    return has_digit and has_alpha and _entropy_bits_per_char(value) >= _ENTROPY_BITS_PER_CHAR


def secret_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Return the sorted, merged character spans of `text` that hold a secret value.

    With `start`/`end`, only secrets near that part are looked for (in a margin of
    `_MARGIN_CHARS` each side, reaching back to a private-key block's BEGIN line): the cost
    follows the part, not the whole text (a 7 MB prompt costs what its window costs).
    """
    end = len(text) if end is None else end
    if start > 0 or end < len(text):
        lo = text.rfind("\n", 0, max(0, start - _MARGIN_CHARS)) + 1
        begin = text.rfind("-----BEGIN", 0, lo)
        if begin >= 0 and text.find("-----END", begin, lo) < 0:  # a key block open at lo
            lo = text.rfind("\n", 0, begin) + 1
        hi = text.find("\n", min(len(text), end + _MARGIN_CHARS))
        hi = len(text) if hi < 0 else hi
        return [(s + lo, e + lo) for s, e in secret_spans(text[lo:hi])]
    spans = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start = match.end("keep") if "keep" in pattern.groupindex else match.start()
            if match.end() > start:
                spans.append((start, match.end()))
    for match in _NEAR_NAME.finditer(text):
        if _looks_random(match["value"]):
            spans.append(match.span("value"))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _replace(text: str, spans: list[tuple[int, int]], keep_lines: bool) -> str:
    parts, cursor = [], 0
    for start, end in spans:
        newlines = "\n" * text.count("\n", start, end) if keep_lines else ""
        parts += [text[cursor:start], REDACTED + newlines]
        cursor = end
    return "".join(parts) + text[cursor:]


def redact(text: str, *, keep_lines: bool = False) -> str:
    """Return `text` with every secret value replaced by [REDACTED]."""
    for _ in range(3):  # a replacement can expose a pattern ("key=" + "sk-..."): go again
        spans = secret_spans(text)
        if not spans:
            return text
        text = _replace(text, spans, keep_lines)
    return text


def redact_keep_lines(text: str) -> str:
    """Return `text` redacted, with as many lines as before (a secret keeps its newlines)."""
    return redact(text, keep_lines=True)


def redacted_window(text: str, start: int, end: int, *, keep_lines: bool = False) -> str:
    """Return `text[start:end]` with secrets redacted, found in the text around it (not only the
    slice: a window that cuts a key, or starts after its `x-api-key:` name, shows none of it)."""
    start, end = max(0, start), min(len(text), end)
    parts, cursor = [], start
    for s, e in secret_spans(text, start, end):
        if e <= start or s >= end:
            continue
        newlines = "\n" * text.count("\n", max(s, start), min(e, end)) if keep_lines else ""
        parts += [text[cursor : max(s, start)], REDACTED + newlines]
        cursor = min(e, end)
    return redact("".join(parts) + text[cursor:end], keep_lines=keep_lines)
