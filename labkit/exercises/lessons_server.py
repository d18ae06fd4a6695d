"""Exercises of lessons 06–07: a real llama-server, and approximate reuse of a mismatched cache.

Every expected answer is computed here (an engine model, the tokenizer, the tiny model), never
typed in: a server's counts follow `labkit.engines.LlamaCppServer`, which notebook 06 checks
against the real server request by request.
"""

from __future__ import annotations

from labkit.exercises.core import Exercise, multiple_choice, number
from labkit.exercises.lessons_early import _tokenizer

INTERLEAVED_06_3 = ("fix_failing_test", "add_cli_flag")  # alternating, this one first
CCH_LONG, CCH_SHORT_07_4 = "56445", "5"  # exercise 07.4: request k has cch=5, k+1 cch=56445


def _probe_rendered(name: str) -> list:
    from labkit.server.cli import render_probe_session

    return render_probe_session(name, "off", seed=0)[1]  # what `labkit probe` sends


def _fresh_server_request_3() -> int:
    """Tokens a fresh one-slot llama-server reuses for request 3 of add_cli_flag, line off."""
    from labkit.engines import make_engine

    engine = make_engine("llamacpp")
    return [engine.serve(r.tokens).cached for r in _probe_rendered("add_cli_flag")[:4]][3]


def own_slot_from(cached: list[int], n_tokens: list[int]) -> int:
    """Return the first index from which every request reuses all of its own session's last one.

    cached, n_tokens: per interleaved request (two sessions alternating, so the same session's
    previous request is two before).
    """
    own = [k >= 2 and cached[k] == n_tokens[k - 2] for k in range(len(cached))]
    return next(k for k in range(len(own) + 1) if all(own[k:]))


def _own_slot_index() -> int:
    """Exercise 06.3 on the llama.cpp model with two slots: see `own_slot_from`."""
    from labkit.engines import make_engine

    a, b = (_probe_rendered(name) for name in INTERLEAVED_06_3)
    mixed = [r for pair in zip(a, b, strict=False) for r in pair]
    engine = make_engine("llamacpp", n_slots=2)
    cached = [engine.serve(r.tokens).cached for r in mixed]
    return own_slot_from(cached, [r.n_tokens for r in mixed])


def _lesson7_system_prompt(lines: int = 8) -> str:
    from labkit.experiments.bench import system_prompt_text

    return "\n".join(system_prompt_text().splitlines()[:lines])


def _date_changed_positions() -> int:
    """Positions of lesson 7's date case whose token differs (layer 0 sees only these)."""
    from labkit.experiments import chat_ids, header_messages, lesson_conversation

    conversation = lesson_conversation()
    history = conversation["history"][:1]
    turn = [conversation["new_turn"][0], {"role": "user", "content": conversation["date_question"]}]
    system = _lesson7_system_prompt()
    k, k1 = (
        chat_ids(
            _tokenizer(),
            header_messages(f"{system}\nToday's date is {d} November 2025.", h, attribution=False),
        )
        for d, h in (("28", history), ("29", history + turn))
    )
    return sum(a != b for a, b in zip(k, k1[: len(k)], strict=True))


def _inserted_positions(answer) -> tuple[bool, str]:
    """Answer: the positions of request k+1 an engine computes after an insertion (07.4)."""
    from labkit.experiments import consecutive_requests, find_deletion, lesson_conversation

    conversation = lesson_conversation()
    pair = consecutive_requests(
        _tokenizer(),
        _lesson7_system_prompt(),
        conversation["history"][:1],
        conversation["new_turn"],
        cch_before=CCH_SHORT_07_4,
        cch_after=CCH_LONG,
    )
    without_turn = pair.after_ids[: len(pair.after_ids) - pair.new_turn_len]
    position, inserted = find_deletion(without_turn, pair.before_ids)  # read backwards
    want = list(range(position, position + inserted))
    if sorted(int(p) for p in answer) == want:
        return True, f"Right: {want}, the inserted digits; every later cell moves {inserted} on."
    return False, "Read the edit backwards: request k is request k+1 with tokens deleted where?"


def _tiny_shift_layer0_exact() -> bool:
    """Whether a shift on tiny-random is exact in layer 0 and approximate from layer 1 on."""
    import torch

    from labkit.experiments import chat_ids, header_messages, shift_experiment
    from labkit.models import load_model

    model, tokenizer = load_model("tiny-random", device="cpu")
    system = _lesson7_system_prompt(2)
    k = chat_ids(tokenizer, header_messages(system, [], cch=CCH_LONG))
    k1 = chat_ids(tokenizer, header_messages(system, [], cch=CCH_SHORT_07_4))
    shift = shift_experiment(model, k, k1)
    rounding = 8 * len(k) * torch.finfo(torch.float32).eps  # as notebook 07
    exact0 = shift.values_rel[0].max() < 1e-6 and shift.keys_rel[0].max() < rounding
    return bool(exact0 and (shift.per_layer("keys")[1:] > 1e-5).all())


def _tiny_check(answer) -> tuple[bool, str]:
    if not isinstance(answer, bool):
        raise ValueError(f"answer True or False, got {answer!r}")
    want = _tiny_shift_layer0_exact()
    if answer is want:
        return True, "Right: RoPE's angles add for any weights; attention's mixing is approximate."
    return False, "Run shift_experiment with tiny-random and compare layer 0 with layer 1."


EXERCISES = [
    Exercise(
        "06.1",
        "easy",
        False,
        "cache_n of request 3 of add_cli_flag, line off, on a fresh one-slot server",
        number(
            _fresh_server_request_3,
            "{expected:.0f}: all of request 2, which request 3 starts with.",
            "With the line off, each request starts with all of the one before: how long is it?",
            rel_tol=0,
        ),
    ),
    multiple_choice(
        "06.2",
        "medium",
        "request 1's cache_n after request 0 was sent with n_predict = 8",
        {
            "a": "request 0's length, plus as many of the generated tokens (all but the last "
            "sampled) as match the start of request 1's reply",
            "b": "request 0's length minus one, as with one new token",
            "c": "always request 0's length plus 8",
        },
        "a",
        "Right: sampled tokens enter the slot when fed back; the last one never is.",
        "What does the slot hold after 8 tokens (handle_last_sampled_token)? And request 1?",
    ),
    Exercise(
        "06.3",
        "medium",
        False,
        "with two slots and the two sessions interleaved (line off), the first request index "
        "from which each request reuses all of its own session's previous one",
        number(
            _own_slot_index,
            "{expected:.0f}: before that, both sessions pick the slot whose prompt shares the "
            "system prompt (similarity > 0.1) and overwrite each other.",
            "Serve the interleaved requests with make_engine('llamacpp', n_slots=2) and compare "
            "each request's cached with its own session's previous length.",
            rel_tol=0,
        ),
    ),
    multiple_choice(
        "06.4",
        "hard",
        "the labkit.engines model whose counts vLLM's cached_tokens follow",
        {
            "a": "the vLLM model: whole 16-token blocks, each hash chained on its parent's",
            "b": "the llama.cpp model: the common prefix, token by token",
            "c": "the SGLang model: a radix tree, token by token",
        },
        "a",
        "Right: only full blocks are cached, so every count is a multiple of the block size.",
        "Are vLLM's counts multiples of 16? Which model counts in blocks?",
        network=True,
        offline="`labkit simulate add_cli_flag --engine vllm --attribution off`: which counts "
        "are multiples of 16, and which engine model gives them",
    ),
    Exercise(
        "07.1",
        "easy",
        False,
        "how many positions of the date case deviate in layer 0",
        number(
            _date_changed_positions,
            "{expected:.0f}: only the changed token; layer 0 never mixes positions, so the rule "
            "picks it and then ties at zero.",
            "Layer 0's keys and values depend on the token and its position only.",
            rel_tol=0,
        ),
    ),
    multiple_choice(
        "07.2",
        "easy",
        "the shifted cache's error in layers >= 1 with two tokens deleted instead of four",
        {
            "a": "smaller: the reused positions once attended to fewer deleted tokens",
            "b": "zero: re-rotating the keys fixes every layer",
            "c": "larger",
        },
        "a",
        "Right: what is wrong is attention to the deleted tokens; fewer of them, less error.",
        "Compare shift.per_layer('keys')[1:] for CCH_SHORT = '5' and '564'.",
    ),
    multiple_choice(
        "07.3",
        "medium",
        "what EPIC-style and the deviation rule must both recompute to fix the date",
        {
            "a": "the changed token itself: without it, the positions after it fix nothing",
            "b": "the last positions before the new turn",
            "c": "nothing in particular: any fN positions do as well",
        },
        "a",
        "Right: both include the first changed token, and that is what repairs the answer.",
        "Recompute the fN positions from p + 1 on instead of p: does the date come back?",
    ),
    Exercise(
        "07.4",
        "medium",
        False,
        "the positions of request k+1 an engine computes before shifting the rest (a list)",
        _inserted_positions,
    ),
    Exercise(
        "07.5",
        "easy",
        True,
        "with tiny-random (offline): is the shift exact in layer 0 and approximate beyond?",
        _tiny_check,
        offline="MODEL_NAME = 'tiny-random' (random weights, two layers): rerun section 2",
    ),
]
