"""`labkit lint`: where captured requests stop reusing the cache, the likely cause and the fix."""

from labkit.lint.causes import CAUSES, Cause
from labkit.lint.core import (
    CauseSummary,
    LintError,
    LintReport,
    RequestLint,
    lint_file,
    lint_requests,
    read_captured,
)
from labkit.lint.report import SCHEMA, format_report, report_json

__all__ = [
    "CAUSES",
    "SCHEMA",
    "Cause",
    "CauseSummary",
    "LintError",
    "LintReport",
    "RequestLint",
    "format_report",
    "lint_file",
    "lint_requests",
    "read_captured",
    "report_json",
]
