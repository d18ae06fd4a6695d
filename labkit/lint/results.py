"""What `labkit lint` finds: a row per request, a summary per cause, the report of a session."""

from __future__ import annotations

from dataclasses import dataclass, field

from labkit.lint.hosted import HostedReport
from labkit.lint.read import LintError

__all__ = ["CauseSummary", "LintReport", "RequestLint"]


@dataclass
class RequestLint:
    """How one request reuses the previous one's tokens, and why it stops where it does."""

    index: int  # among the requests read (0-based)
    line: int | None  # line in the file, None for a JSON file
    shape: str
    n_tokens: int
    reused_tokens: int  # common prefix with the previous request's tokens
    recomputed_tokens: int  # n_tokens - reused_tokens
    not_reused_tokens: int  # previous request's n_tokens - reused_tokens
    lost_tokens: int  # recomputed beyond what an append-only request would need
    cause: str  # a key of labkit.lint.causes.CAUSES
    where: str = ""  # the part that changed: "system[0]", "tools", "messages[3].content[1]"
    detail: str = ""  # what changed there, in a few words
    token: int | None = None  # first token that differs (== reused_tokens), None if none does
    char_span: tuple[int, int] | None = None  # the changed characters of this request's text
    previous_char_span: tuple[int, int] | None = None  # and of the previous request's text
    previous_text: str = ""  # the previous request's text around the divergence
    new_text: str = ""  # this request's text around the divergence
    previous: int | None = None  # the request it is compared with (its conversation's last)


@dataclass
class CauseSummary:
    """One cause over the session: the requests it hit, the tokens it cost, and the fix."""

    cause: str
    label: str
    requests: list[int]
    lost_tokens: int
    fix: str


@dataclass
class LintReport:
    """The lint of one session: a row per request, a summary per cause, and unread lines."""

    source: str
    model: str
    attribution: str  # "on", "off" or "as captured"
    requests: list[RequestLint]
    errors: list[LintError] = field(default_factory=list)
    n_tokens: int = 0  # prompt tokens over all requests
    recomputed_tokens: int = 0
    ideal_recomputed_tokens: int = 0  # if every request extended the previous one
    lost_tokens: int = 0  # recomputed_tokens - ideal_recomputed_tokens
    loss_fraction: float = 0.0  # lost_tokens / n_tokens
    causes: list[CauseSummary] = field(default_factory=list)
    context_tokens: int | None = None  # the model's context length, when known
    warnings: list[str] = field(default_factory=list)  # e.g. requests longer than the context
    hosted: HostedReport | None = None  # the same session on a hosted API (labkit.lint.hosted)
