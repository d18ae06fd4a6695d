"""Token-id sequences: normalise them, compare their prefixes, hash them; tokenize long texts."""

from __future__ import annotations

import bisect
import json
import operator
from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate, chain, islice
from typing import Any

__all__ = [
    "MemoTokenizer",
    "Tokens",
    "as_tokens",
    "common_prefix_len",
    "encode_whole",
    "newline_cut",
    "text_pieces",
    "token_bytes",
]

Tokens = tuple[int, ...]


def as_tokens(tokens: Any) -> Tokens:
    """Return the prompt as a tuple of int token ids, or raise saying what to pass."""
    if isinstance(tokens, (str, bytes)):
        raise TypeError("Pass token ids (a list of ints), not text: tokenize the prompt first.")
    if hasattr(tokens, "tolist"):  # a NumPy array or a torch tensor
        tokens = tokens.tolist()
    try:  # operator.index accepts Python, NumPy and torch integers, and rejects the rest
        tokens = tuple(map(operator.index, tokens))
    except TypeError:
        raise TypeError("Token ids must be ints: pass tokenizer(...).input_ids.") from None
    if not tokens:
        raise ValueError("The prompt has no tokens: pass at least one token id.")
    return tokens


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Return the length of the longest common prefix of two token sequences (or two strings)."""
    a, b = (x if isinstance(x, (str, bytes, tuple)) else tuple(x) for x in (a, b))
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while hi - lo > 1:  # a[:lo] == b[:lo] and a[:hi] != b[:hi]: bisect with C-speed compares
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def token_bytes(tokens: Sequence[int]) -> bytes:
    """Return token ids as bytes (int64 each), for hashing."""
    return array("q", tokens).tobytes()


# -- long texts, tokenized in pieces ---------------------------------------------------------
#
# A byte-level BPE tokenizer (GPT-2's, SmolLM2's) first cuts the text at its added (special)
# tokens, then splits each segment with the GPT-2 regex
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# (tokenizers: `pre_tokenizers/byte_level.rs`, `ByteLevel::pre_tokenize`), and BPE merges
# only inside one of those pre-tokens. A newline followed by a non-space character that does not
# start an added token is always a pre-token of its own: no alternative starts with a newline
# but the two whitespace ones, which cannot take the next, non-space, character; and whitespace
# before it ends there (`\s+(?!\S)` backtracks off the newline, as it stops at the end of a
# text). So cutting the text just before such a newline leaves every pre-token, and every
# token, as it was: the pieces' tokens, concatenated, are the text's tokens. (Before an added
# token the newline ends its segment, where `\s+(?!\S)` would take the whitespace before it
# too: no cut there.) Identical pieces (repeated lines, the prefix two requests share) are
# tokenized once. Any other tokenizer is called on the whole text.
_SAFE_POST_PROCESSORS = (None, "TemplateProcessing", "ByteLevel")  # none adds a token here


def newline_cut(tokenizer) -> tuple[str, ...] | None:
    """Return the added tokens if `tokenizer` provably tokenizes across the newlines above.

    Those newlines are the ones whose next character is not whitespace and does not start an
    added token; None for a tokenizer other than a byte-level BPE as described above.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "BPE":
        return None
    pre = json.loads(backend.pre_tokenizer.__getstate__()) if backend.pre_tokenizer else {}
    post = json.loads(backend.post_processor.__getstate__()) if backend.post_processor else {}
    added = list(backend.get_added_tokens_decoder().values())
    if (
        pre.get("type") != "ByteLevel"
        or pre.get("add_prefix_space")
        or backend.model.dropout
        or backend.normalizer is not None
        or post.get("type") not in _SAFE_POST_PROCESSORS
        or backend.truncation is not None
        or backend.padding is not None
        or any("\n" in t.content or t.lstrip or t.rstrip or t.single_word for t in added)
    ):
        return None
    # without the regex a whole segment is one pre-token: safe only when nothing merges
    if not pre.get("use_regex", True) and json.loads(backend.model.__getstate__())["merges"]:
        return None
    return tuple(t.content for t in added if t.content)


def text_pieces(text: str, added: tuple[str, ...]) -> list[str]:
    """Return `text` cut before each newline whose next character is not whitespace and does
    not start one of the `added` tokens (see `newline_cut`)."""
    lines = text.split("\n")
    pieces, current = [], [lines[0]]
    for line in islice(lines, 1, None):
        if line and not line[0].isspace() and not line.startswith(added):
            pieces.append("\n".join(current))
            current = ["", line]  # "\n" + line
        else:
            current.append(line)
    pieces.append("\n".join(current))
    return [piece for piece in pieces if piece]


class MemoTokenizer:
    """A tokenizer that tokenizes long texts piece by piece, each distinct piece once.

    `memo(text, add_special_tokens=False)["input_ids"]` and `memo.encode(text)` give the token
    ids the wrapped tokenizer gives; every other call, and every attribute, is the wrapped
    tokenizer's. Keep one for a run (a lint of a session): it holds each piece it has seen.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.added = newline_cut(tokenizer)  # None: tokenize whole texts
        self._memo: dict[str, tuple[list[int], list[int]]] = {}  # piece -> ids, token ends

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __call__(self, text, *args, **kwargs):
        piecewise = self.added is not None and isinstance(text, str)
        if not piecewise or args or kwargs != {"add_special_tokens": False}:
            return self.tokenizer(text, *args, **kwargs)
        return {"input_ids": self.encode(text)[0]}

    def encode(self, text: str) -> tuple[list[int], Callable[[int], int]]:
        """Return the token ids of `text` (special tokens parsed) and a char → token mapper.

        The mapper counts the tokens that end at or before a character offset (what
        `bisect_right` over the tokenizer's offset-mapping ends gives).
        """
        if self.added is None:
            return encode_whole(self.tokenizer, text)
        pieces = text_pieces(text, self.added)
        missing = list(dict.fromkeys(p for p in pieces if p not in self._memo))
        backend = self.tokenizer.backend_tokenizer
        encodings = backend.encode_batch(missing, add_special_tokens=False) if missing else []
        for piece, enc in zip(missing, encodings, strict=True):
            self._memo[piece] = (enc.ids, [end for _, end in enc.offsets])
        encoded = [self._memo[p] for p in pieces]
        ids = list(chain.from_iterable(piece_ids for piece_ids, _ in encoded))
        piece_starts = list(accumulate(map(len, pieces), initial=0))
        tokens_before = list(accumulate((len(piece_ids) for piece_ids, _ in encoded), initial=0))

        def to_token(char: int) -> int:
            k = bisect.bisect_right(piece_starts, char, hi=len(pieces)) - 1
            if k < 0:
                return 0
            return tokens_before[k] + bisect.bisect_right(encoded[k][1], char - piece_starts[k])

        return ids, to_token


def encode_whole(tokenizer, text: str) -> tuple[list[int], Callable[[int], int]]:
    """Return `text`'s token ids and char → token mapper, tokenizing it in one call."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ends = [end for _, end in enc["offset_mapping"]]
        return list(enc["input_ids"]), lambda char: bisect.bisect_right(ends, char)
    count = lambda char: len(tokenizer(text[:char], add_special_tokens=False)["input_ids"])
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]), count
