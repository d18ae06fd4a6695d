"""`labkit lint`: where captured requests stop reusing the cache, the likely cause and the fix."""

from labkit.lint.causes import CAUSES, EXPECTED, Cause
from labkit.lint.core import (
    CauseSummary,
    LintError,
    LintReport,
    RequestLint,
    lint_file,
    lint_requests,
    read_captured,
)
from labkit.lint.hosted import HostedReport, HostedRequest, lint_hosted
from labkit.lint.report import SCHEMA, format_report, report_json

__all__ = [
    "CAUSES",
    "SCHEMA",
    "Cause",
    "CauseSummary",
    "EXPECTED",
    "HostedReport",
    "HostedRequest",
    "LintError",
    "LintReport",
    "RequestLint",
    "format_report",
    "lint_file",
    "lint_hosted",
    "lint_requests",
    "read_captured",
    "report_json",
]
