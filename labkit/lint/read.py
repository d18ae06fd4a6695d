"""Read a captured request file for `labkit lint`: the requests it can, and a located error for
each line it cannot.

A request file is JSONL (one request a line) or JSON (one request or a list). A line may also be
a capture `{"headers": {...}, "body": {...}}` (the body may be a JSON string); headers are
dropped. Lines that cannot be read are reported with their line number; the rest are linted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from labkit.redact import redact
from labkit.sessions.format import decode_lines, read_json_items
from labkit.sessions.render import SessionFormatError, validate_request

__all__ = ["LintError", "read_captured"]


@dataclass
class LintError:
    """A line (or request) of the file that could not be read."""

    line: int | None
    message: str  # already redacted


def _unwrap(item) -> dict:
    """Return the request body of a captured line: the line itself, or its "body" (with the
    capture's time, `t_s`, `captured_at` or `timestamp`, for the hosted-API TTL rule)."""
    if isinstance(item, dict) and "body" in item and not {"messages", "prompt"} & set(item):
        times = {k: item[k] for k in ("t_s", "captured_at", "timestamp") if k in item}
        item = item["body"]
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except json.JSONDecodeError as err:
                raise SessionFormatError(f"body: not valid JSON: {err.msg}") from None
            except (ValueError, RecursionError):
                raise SessionFormatError("body: not valid JSON (too deep or too large)") from None
        if isinstance(item, dict):
            item = times | item
    if isinstance(item, dict):
        item = {k: v for k, v in item.items() if k != "headers"}
    validate_request(item)
    return item


def read_captured(path: str | Path) -> tuple[list[tuple[dict, int | None]], list[LintError]]:
    """Return the readable requests of a file with their line numbers, and the unread lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No request file at {path}: check the path (see data/sessions/).")
    text, bad_bytes = decode_lines(path.read_bytes())
    items, bad_lines = read_json_items(text, path.suffix)
    requests = []
    errors = [LintError(line_no, message) for line_no, message in bad_bytes + bad_lines]
    for index, (item, line_no) in enumerate(items):
        try:
            requests.append((_unwrap(item), line_no))
        except SessionFormatError as err:
            where = f"line {line_no}" if line_no else f"request {index}"
            errors.append(LintError(line_no, redact(f"{where}: {err}")))
    if not requests and not errors:
        errors.append(LintError(None, f"{path}: no requests found; write one JSON request a line."))
    errors.sort(key=lambda e: e.line or 0)
    return requests, errors
