"""Name an edit that lies inside an image, a document or another non-text block.

Such blocks render as `<TYPE sha256=DIGEST>` (`labkit.sessions.blocks`), so the same bytes give
the same tokens. When an earlier turn's image comes back with other bytes — re-encoded,
resized, or with its metadata stripped again — the digest changes and every token after it must
be recomputed, although the conversation "looks" the same. `media_change` finds the first such
block and names it by its digests: "history edited inside an image".
"""

from __future__ import annotations

from labkit.lint.diff import Change, _key, request_parts
from labkit.sessions.blocks import block_digest, is_media_block

__all__ = ["media_change", "media_blocks"]


def media_blocks(request: dict) -> list[tuple[str, str, str]]:
    """Return (where, type, digest) of every non-text block in a request's messages, in order."""
    found = []

    def walk(value, path: str, in_content: bool = False) -> None:
        if _is_block(value, in_content):
            found.append((path, str(value["type"]), block_digest(value)))
        elif isinstance(value, dict) and isinstance(value.get("content"), list):
            walk(value["content"], f"{path}.content", True)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", in_content)

    for where, message in request_parts(request)["msgs"]:
        walk(message, where)
    return found


def _is_block(value, in_content: bool) -> bool:
    return in_content and isinstance(value, dict) and "type" in value and is_media_block(value)


def _first_media_difference(a, b, path: str, in_content: bool = False):
    """Return (path, old block, new block) of the first differing media block, else None.

    Only items of a `content` list are blocks (a tool input may hold a "type" key too).
    """
    if _is_block(a, in_content) or _is_block(b, in_content):
        return (path, a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if _key(a.get(key)) != _key(b.get(key)):
                nested = key == "content"
                return _first_media_difference(a.get(key), b.get(key), f"{path}.{key}", nested)
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if _key(x) != _key(y):
                return _first_media_difference(x, y, f"{path}[{i}]", in_content)
    return None


def media_change(prev: dict, cur: dict) -> Change | None:
    """Return an "edited-image" Change when the first edited message changed inside a non-text
    block (an image, a document, an unknown type), else None."""
    a, b = request_parts(prev)["msgs"], request_parts(cur)["msgs"]
    for (where, m), (_, n) in zip(a, b, strict=False):
        if _key(m) == _key(n):
            continue
        found = _first_media_difference(m, n, where)
        if found is None:
            return None
        path, old, new = found
        if not (isinstance(old, dict) and isinstance(new, dict)):
            return None  # a block was added or removed, not edited: an edit of the history
        kind = new.get("type") if new.get("type") == old.get("type") else None
        what = f"{kind} re-encoded or replaced" if kind else "block type changed"
        detail = f"{what}: sha256:{block_digest(old)} → sha256:{block_digest(new)}"
        return Change("edited-image", path, detail)
    return None
