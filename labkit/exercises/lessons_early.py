"""Exercises of lessons 00–02: set-up, the cache's anatomy, prefix reuse."""

from __future__ import annotations

import json
from functools import cache

from labkit.cache import common_prefix_len
from labkit.exercises.core import Exercise, boolean, multiple_choice, number

# Lesson 02's three questions (notebooks/02_prefix_reuse.ipynb, Parameters).
QUESTIONS_02 = (
    "Why does my test pass locally but fail in CI?",
    "How do I profile the slowest function in this module?",
)


@cache
def _tokenizer():
    from labkit.models import load_tokenizer

    return load_tokenizer()


def _chat_ids(messages: list[dict], generation_prompt: bool = True) -> list[int]:
    """Return token ids the way lesson 02's `chat_ids` renders a chat."""
    tok = _tokenizer()
    text = tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return tok(text, add_special_tokens=False)["input_ids"]


def _model_config(name: str) -> dict:
    from labkit.resources import data_path

    models = json.loads(data_path("model_configs.json").read_text(encoding="utf-8"))["models"]
    return next(m for m in models if m["name"] == name)


def _kv_bytes_per_token(name: str, bytes_per_number: int) -> int:
    c = _model_config(name)
    return 2 * c["num_layers"] * c["num_kv_heads"] * c["head_dim"] * bytes_per_number


def _device_ok(answer) -> tuple[bool, str]:
    from labkit.device import pick_device

    want = pick_device().type
    if str(answer).strip().lower() == want:
        return True, f"`labkit info` and the notebook agree: {want}."
    return False, "Look at the `device` line of `labkit info` (cpu, cuda or mps)."


def _num_layers_ok(answer) -> tuple[bool, str]:
    """Answer: {"model": name, "num_layers": n} for the model you loaded."""
    from labkit.resources import data_path

    model, layers = answer["model"], int(answer["num_layers"])
    known = {"tiny-random": 2}  # labkit.models.tiny_random_model's default
    for m in json.loads(data_path("model_configs.json").read_text(encoding="utf-8"))["models"]:
        known[m["hub_id"]] = m["num_layers"]
    if model not in known:
        raise ValueError(f"{model!r} is not in data/model_configs.json: cannot check it")
    if layers == known[model]:
        return True, f"{model} has {layers} layers, as its config says."
    return False, "Print `model.config.num_hidden_layers` after loading the model."


def _reuse_question_first(answer) -> tuple[bool, str]:
    """Answer: tokens reused by the second request when the question comes first."""
    system = "System rules."
    as_user = [
        _chat_ids([{"role": "user", "content": q}, {"role": "system", "content": system}])
        for q in QUESTIONS_02
    ]
    in_system = [_chat_ids([{"role": "system", "content": f"{q}\n{system}"}]) for q in QUESTIONS_02]
    right = {common_prefix_len(*as_user), common_prefix_len(*in_system)}
    if int(answer) in right:
        return True, "Only the template's opening is shared: the question comes before the prompt."
    return False, "The two requests now differ from the question's first token on: count before it."


def _tuesday_recomputed(answer) -> tuple[bool, str]:
    """Answer: tokens Tuesday's request recomputes with the billing line last in the prompt."""
    from labkit.sessions import billing_header

    days = [
        _chat_ids(
            [
                {"role": "system", "content": f"System rules.\n{billing_header(cch)}"},
                {"role": "user", "content": QUESTIONS_02[0]},
            ]
        )
        for cch in ("56445", "9f3a2")
    ]
    want = len(days[1]) - common_prefix_len(*days)
    if int(answer) == want:
        return True, f"{want} tokens: from the changed cch digit to the end. The prompt is reused."
    return False, "Count from the first changed cch token to the end of the request."


EXERCISES = [
    Exercise(
        "00.1",
        "easy",
        False,
        "the device `labkit info` reports: 'cpu', 'cuda' or 'mps'",
        _device_ok,
    ),
    multiple_choice(
        "00.2",
        "medium",
        "how the speed-up changes at 100 new tokens",
        {
            "a": "it grows: uncached work grows with the square of the length, cached linearly",
            "b": "it stays the same: both loops compute the same tokens",
            "c": "it shrinks: the cache gets slower as it grows",
        },
        "a",
        "Right: uncached, every step recomputes the whole sequence (quadratic); cached, one token.",
        "Count the positions each loop computes for 12 and for 100 new tokens.",
    ),
    Exercise(
        "00.3",
        "easy",
        True,
        '{"model": name, "num_layers": n} for the model you loaded',
        _num_layers_ok,
        offline="set LABKIT_MODEL=tiny-random instead (no network)",
    ),
    Exercise(
        "01.1",
        "easy",
        False,
        "GiB of the Llama-3.1-70B cache at 128k tokens, 1 byte per number",
        number(
            lambda: _kv_bytes_per_token("Llama-3.1-70B", 1) * 131072 / 2**30,
            "{expected:.0f} GiB: half the bfloat16 cache.",
            "Bytes per number: 1 for float8. Use 2 × layers × KV heads × head_dim × tokens.",
        ),
    ),
    Exercise(
        "01.2",
        "medium",
        False,
        "positions computed without the cache for a 16-token prompt and 400 new tokens "
        "(the timing part is for your eyes only)",
        number(
            lambda: 400 * 16 + 400 * 399 // 2,
            "{expected:,.0f} positions: n·p + n(n−1)/2.",
            "Sum p + (p+1) + … + (p+n−1) for p = 16, n = 400.",
            rel_tol=0,
        ),
    ),
    multiple_choice(
        "01.3",
        "medium",
        "which layer-0 positions change when token p changes",
        {
            "a": "only position p: layer 0 sees each token and its position alone",
            "b": "p and every later position",
            "c": "every position, before p too",
        },
        "a",
        "Right: a layer-0 key or value depends only on its own token and position.",
        "What does layer 0 read at position i? Token i's embedding, rotated for position i.",
    ),
    Exercise(
        "01.4",
        "easy",
        True,
        "bytes per token of the SmolLM2-360M cache in float32",
        number(
            lambda: _kv_bytes_per_token("SmolLM2-360M", 4),
            "{expected:,.0f} bytes per token: 2 × 32 layers × 5 KV heads × 64 × 4 bytes.",
            "Read its row of data/model_configs.json: 2 × layers × KV heads × head_dim × 4.",
            rel_tol=0,
        ),
        offline="predict it from data/model_configs.json, without loading the model",
    ),
    Exercise(
        "01.5",
        "medium",
        False,
        "True or False: torch.equal(stepwise_logits, full_logits) in float32",
        boolean(
            False,
            "Right: equal to rounding, not bit for bit (sums in another order).",
            "Run torch.equal yourself; then print the largest difference.",
        ),
    ),
    Exercise(
        "02.1",
        "medium",
        False,
        "tokens the second request reuses with the question before the system prompt",
        _reuse_question_first,
    ),
    Exercise(
        "02.2",
        "medium",
        False,
        "tokens Tuesday's request recomputes with the billing line at the end of the prompt",
        _tuesday_recomputed,
    ),
    multiple_choice(
        "02.3",
        "medium",
        "why warm TTFT grows with the prefix",
        {
            "a": "each new token attends over every cached position, and the copy grows",
            "b": "the prefix is recomputed on every warm request",
            "c": "it does not grow at all",
        },
        "a",
        "Right: attention over the prefix and the cache copy grow; nothing is recomputed.",
        "A warm request computes only the new tokens. What do those tokens look at?",
    ),
    multiple_choice(
        "02.4",
        "medium",
        "how a server avoids copying the cache",
        {
            "a": "it shares fixed-size KV blocks by reference and writes new tokens to new blocks",
            "b": "it recomputes the prefix instead",
            "c": "it cannot: every request needs its own full copy",
        },
        "a",
        "Right: vLLM and SGLang share KV blocks between requests by reference (paged attention).",
        "Think of memory pages shared copy-on-write: which engine stores the cache in blocks?",
    ),
    multiple_choice(
        "02.5",
        "easy",
        "what PrefixCache does with a request larger than capacity",
        {
            "a": "it raises an error",
            "b": "it serves the request but stores nothing, so the next one reuses nothing",
            "c": "it stores the first capacity_tokens positions",
        },
        "b",
        "Right: insert() refuses an entry larger than the capacity; the request is served.",
        "Try it: serve two requests and print tokens_reused and len(store).",
    ),
]
