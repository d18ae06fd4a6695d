"""Content blocks that are not text (images, documents, unknown types): a digest and a placeholder.

A request may carry images (Anthropic `{"type": "image", "source": {...}}`, OpenAI
`{"type": "image_url", ...}`), documents (PDFs) or block types labkit does not know. labkit
never renders their pixels or pages; it renders each as a placeholder that names its type and a
digest of its content, `<image sha256=1a2b3c4d5e6f>`, so that the same bytes give the same
tokens and changed bytes (a re-encoded image) change the tokens where the block sits. That is
what a serving engine does too: vLLM folds a hash of each image into the hash of the KV blocks
that hold its placeholder tokens (vLLM `docs/design/prefix_caching.md`, "extra hashes"), and the
Anthropic API caches "100% identical prompt segments, including all text and images".
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["TEXT_BLOCKS", "block_digest", "block_placeholder", "is_media_block"]

# Block types whose text labkit renders itself; every other typed block is a placeholder.
TEXT_BLOCKS = ("text", "tool_use", "tool_result", "thinking", "redacted_thinking")
DIGEST_CHARS = 12  # hex characters of SHA-256 shown in a placeholder


def _without_cache_control(value):
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def block_digest(block: dict) -> str:
    """Return the first 12 hex characters of the SHA-256 of a block's content (keys sorted).

    `cache_control` marks are left out: moving a breakpoint does not change what the block holds.
    """
    canonical = json.dumps(
        _without_cache_control(block), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def is_media_block(block) -> bool:
    """Return True for a typed block whose content labkit does not render as text."""
    return (
        isinstance(block, dict)
        and isinstance(block.get("type"), str)
        and block["type"] not in TEXT_BLOCKS
    )


def block_placeholder(block: dict) -> str:
    """Return the text a non-text block renders as: `<TYPE sha256=DIGEST>`."""
    kind = str(block.get("type") or "block")
    kind = "".join(c if c.isalnum() or c in "_-" else "_" for c in kind)[:40]
    return f"<{kind} sha256={block_digest(block)}>"
