"""Build the requests that break a prefix cache, edit single tokens, and precompute the damage.

Consecutive requests of a coding agent share their system prompt and history and only append a
turn, so an exact-prefix cache should reuse all of the previous request. A `cch=` value that
changes per request in the attribution line at the very start of the system prompt ends the
common prefix after a few dozen tokens instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labkit.cache import as_token_ids
from labkit.experiments.kv_diff import LayerKV, kv_per_layer, kv_relative_difference
from labkit.sessions.header import attribution_enabled, billing_header


def header_messages(
    system_prompt: str, history: list[dict], *, cch: str | None = None, attribution=True
) -> list[dict]:
    """Return chat messages: the system prompt (attribution line first, if on), then history.

    attribution is read like $CLAUDE_CODE_ATTRIBUTION_HEADER ("0"/"off"/False turn it off).
    """
    system = system_prompt
    if attribution_enabled(attribution):
        system = f"{billing_header(cch)}\n{system_prompt}"
    return [{"role": "system", "content": system}, *history]


def chat_ids(tokenizer, messages: list[dict], *, add_generation_prompt: bool = True) -> list[int]:
    """Return the token ids the model's chat template makes of the messages."""
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class RequestPair:
    """Two consecutive requests of one conversation, as token ids."""

    before_ids: list[int]  # request k: system prompt + history
    after_ids: list[int]  # request k+1: the same + the new turn
    new_turn_len: int  # tokens request k+1 appends to request k


def consecutive_requests(
    tokenizer,
    system_prompt: str,
    history: list[dict],
    new_turn: list[dict],
    *,
    cch_before: str | None = None,
    cch_after: str | None = None,
    attribution=True,
) -> RequestPair:
    """Return request k (history) and k+1 (history + new_turn), each with its own `cch`.

    With attribution off, both requests carry no attribution line and request k+1 starts with
    every token of request k.
    """
    before = chat_ids(
        tokenizer, header_messages(system_prompt, history, cch=cch_before, attribution=attribution)
    )
    after_messages = header_messages(
        system_prompt, [*history, *new_turn], cch=cch_after, attribution=attribution
    )
    after = chat_ids(tokenizer, after_messages)
    return RequestPair(before, after, len(after) - len(before))


def token_span(tokenizer, token_ids, substring: str) -> tuple[int, int]:
    """Return the token range (start, stop) whose text covers the first `substring` in the ids.

    Found by decoding: start is the first token whose decoded prefix reaches into the substring,
    stop the first token whose decoded prefix contains all of it.
    """
    ids = as_token_ids(token_ids).tolist()
    text = tokenizer.decode(ids)
    begin = text.find(substring)
    if begin < 0:
        raise ValueError(f"{substring[:40]!r} does not occur in the decoded tokens.")
    end = begin + len(substring)
    start = stop = None
    for index in range(1, len(ids) + 1):
        prefix_len = len(tokenizer.decode(ids[:index]))
        if start is None and prefix_len > begin:
            start = index - 1
        if prefix_len >= end:
            stop = index
            break
    return start, stop


def replace_token(token_ids, position: int, new_id: int) -> list[int]:
    """Return a copy of the token ids with the one at `position` replaced (same token count)."""
    ids = as_token_ids(token_ids).tolist()
    if not 0 <= position < len(ids):
        raise IndexError(f"position {position} is outside the {len(ids)} tokens.")
    if ids[position] == new_id:
        raise ValueError(f"Token {position} already is {new_id}: pick another id to change it.")
    ids[position] = int(new_id)
    return ids


def edit_positions(seq_len: int, fractions=(0.0, 0.25, 0.5, 0.75, 1.0)) -> list[int]:
    """Return token positions at these fractions of the prompt (1.0 = the last token)."""
    return sorted({min(int(round(f * seq_len)), seq_len - 1) for f in fractions})


def token_labels(tokenizer, token_ids) -> list[str]:
    """Return each token's text, with newlines and spaces made visible (↵ and ·)."""
    ids = as_token_ids(token_ids).tolist()
    return [tokenizer.decode([i]).replace("\n", "↵").replace(" ", "·") for i in ids]


@dataclass(frozen=True)
class EditEffect:
    """What changing the token at one position does to the cache of a prompt."""

    position: int
    seq_len: int
    tokens_recomputed: int  # seq_len - position: everything from the change on
    rel_diff: np.ndarray  # (num_layers, seq_len) max relative K/V difference vs the original


def edit_effects(
    model, token_ids, positions: list[int], new_id: int, *, original: LayerKV | None = None
) -> list[EditEffect]:
    """Change the token at each position in turn and return the recompute cost and K/V damage.

    Runs one prefill per position (plus one for the original unless given): precompute this
    before building a widget, never inside its callback.
    """
    ids = as_token_ids(token_ids)
    original = original if original is not None else kv_per_layer(model, ids)
    effects = []
    for position in positions:
        new = new_id if int(ids[position]) != new_id else new_id + 1
        edited = kv_per_layer(model, torch.tensor(replace_token(ids, position, new)))
        rel = kv_relative_difference(original, edited)
        effects.append(EditEffect(position, len(ids), len(ids) - position, rel))
    return effects
