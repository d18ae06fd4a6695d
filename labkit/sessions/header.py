"""Build the coding agent's per-request attribution line that breaks prefix caches."""

from __future__ import annotations

import os
import random

ATTRIBUTION_ENV = "CLAUDE_CODE_ATTRIBUTION_HEADER"
HEADER_NAME = "x-anthropic-billing-header"
EXAMPLE_HEADER = f"{HEADER_NAME}: cc_version=2.1.39.c39; cc_entrypoint=cli; cch=56445;"
_OFF_VALUES = {"0", "false", "no", "off"}


def random_cch(rng: random.Random | None = None) -> str:
    """Return a fresh 5-hex-digit `cch` value, as the client sends a new one per request."""
    rng = rng or random.Random()
    return f"{rng.randrange(16**5):05x}"


def billing_header(
    cch: str | None = None,
    *,
    version: str = "2.1.39.c39",
    entrypoint: str = "cli",
    rng: random.Random | None = None,
) -> str:
    """Return the attribution line, with the given `cch` or a random one."""
    cch = random_cch(rng) if cch is None else str(cch)
    return f"{HEADER_NAME}: cc_version={version}; cc_entrypoint={entrypoint}; cch={cch};"


def attribution_enabled(setting: str | bool | None = None) -> bool:
    """Return whether the client adds the line: `setting`, else $CLAUDE_CODE_ATTRIBUTION_HEADER.

    Accepts what the client accepts: "0", "false", "no" or "off" turn it off (also "on"/"off"
    as labkit's `--attribution` flag spells them); anything else, or unset, leaves it on.
    """
    if isinstance(setting, bool):
        return setting
    value = os.environ.get(ATTRIBUTION_ENV, "") if setting is None else str(setting)
    return value.strip().lower() not in _OFF_VALUES
