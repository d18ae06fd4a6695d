"""Every exercise's self-check: it recognises a right answer and rejects a wrong one."""

import copy
import json
import re

import pytest

from labkit.exercises import EXERCISES, NOT_CHECKABLE, RIGHT, WRONG, check, show
from labkit.models import default_model_ready
from labkit.resources import data_path
from labkit.sessions import load_requests

needs_tokenizer = pytest.mark.skipif(
    not default_model_ready(), reason="the default tokenizer needs `labkit fetch`"
)
LESSONS = ("00", "01", "02", "03", "04", "05", "06", "07")


def _session(name):
    return load_requests(data_path("sessions") / f"{name}.jsonl")


def git_status_session():
    """fix_failing_test with a git status line that turns dirty after the first edit_file."""
    requests, dirty = copy.deepcopy(_session("fix_failing_test")), False
    for request in requests:
        dirty = dirty or "edit_file" in json.dumps(request["messages"])
        status = " M src/parser.py" if dirty else "(working tree clean)"
        request["system"][1]["text"] += f"\n\ngit status:\n{status}"
    return requests


def clock_moved_session(keep_history=True):
    """clock_and_tools with each request's time line moved into its latest user message."""
    requests, times = copy.deepcopy(_session("cache_busters/clock_and_tools")), []
    pattern = re.compile(r"Current time: [^\n]*\n")
    for request in requests:
        system = request["system"][1]
        times.append(pattern.search(system["text"]).group(0).strip())
        system["text"] = pattern.sub("", system["text"])
        users = [m for m in request["messages"] if m["role"] == "user"]
        # the time each user message was sent: earlier turns keep theirs (append-only)
        stamps = times[-len(users) :] if keep_history else [times[-1]] * len(users)
        for message, stamp in zip(users[-len(stamps) :], stamps, strict=True):
            message["content"] = [*message["content"], {"type": "text", "text": stamp}]
    return requests


def sorted_tools_losses():
    from labkit.lint import lint_requests
    from labkit.models import load_tokenizer

    requests = _session("cache_busters/clock_and_tools")
    for r in requests:
        r["tools"] = sorted(r["tools"], key=lambda t: t["name"])
    return [r.index for r in lint_requests(requests, load_tokenizer()).requests if r.lost_tokens]


# exercise: (a right answer, a wrong answer); callables are built only when the test runs
ANSWERS = {
    "00.1": (lambda: __import__("labkit").pick_device().type, "tpu"),
    "00.2": ("a", "b"),
    "00.3": ({"model": "tiny-random", "num_layers": 2}, {"model": "tiny-random", "num_layers": 30}),
    "01.1": (2 * 80 * 8 * 128 * 131072 / 2**30, 40),
    "01.2": (16 * 400 + sum(range(400)), 16 + 400 - 1),
    "01.3": ("a", "b"),
    "01.4": (2 * 32 * 5 * 64 * 4, 2 * 30 * 3 * 64 * 4),
    "01.5": (False, True),
    "02.3": ("a", "b"),
    "02.4": ("a", "c"),
    "02.5": ("b", "a"),
    "03.1": ("b", "a"),
    "03.2": ("b", "a"),
    "03.3": ("a", "c"),
    "03.5": ("b", "a"),
    "04.1": ("a", "c"),
    "04.2": (1, 14),
    "04.5": ("a", "c"),
    "05.1": ("a", "b"),
    "05.5": ("a", "c"),
    "06.2": ("a", "b"),
    "06.4": ("a", "b"),
    "07.2": ("a", "b"),
    "07.3": ("a", "c"),
}
TOKENIZER_ANSWERS = {  # right answers computed here the way a learner would
    "02.1": (lambda: _reuse_question_first(), 0),
    "02.2": (lambda: _tuesday_recomputed(), 0),
    "03.4": (1, 4),
    "04.3": ({"cache_ram", "two slots, LRU"}, {"cache_ram", "two slots"}),
    "04.4": (lambda: _haiku_reads(), [0]),
    "04.6": (git_status_session, lambda: _session("fix_failing_test")),
    "05.2": (clock_moved_session, lambda: _session("cache_busters/clock_and_tools")),
    "05.3": (sorted_tools_losses, [6]),
    "05.4": (git_status_session, lambda: _session("fix_failing_test")),
    "05.6": ({"timestamp", "reordered-tools"}, {"timestamp"}),
    "06.1": (
        lambda: _probe_off("add_cli_flag")[2].n_tokens,
        lambda: _probe_off("add_cli_flag")[3].n_tokens,
    ),
    "06.3": (lambda: _own_slot_index(), 2),
    "07.1": (lambda: _date_tokens_changed(), 0),
    "07.4": (lambda: _inserted(), lambda: [p + 1 for p in _inserted()]),
    "07.5": (True, False),
}


def _tok():
    from labkit.models import load_tokenizer

    return load_tokenizer()


def _ids(messages, generation_prompt=True):
    tok = _tok()
    text = tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return tok(text, add_special_tokens=False)["input_ids"]


def _common(a, b):
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _reuse_question_first():
    qs = ("Why does my test pass locally but fail in CI?", "How do I profile the slowest function?")
    a, b = (_ids([{"role": "user", "content": q}, {"role": "system", "content": "S"}]) for q in qs)
    return _common(a, b)


def _tuesday_recomputed():
    from labkit.sessions import billing_header

    q = "Why does my test pass locally but fail in CI?"
    a, b = (
        _ids(
            [
                {"role": "system", "content": f"Rules.\n{billing_header(c)}"},
                {"role": "user", "content": q},
            ]
        )
        for c in ("56445", "9f3a2")
    )
    return len(b) - _common(a, b)


def _haiku_reads():
    from labkit.engines import AnthropicAPI, render_variant, simulate

    rendered = render_variant(_session("fix_failing_test"), _tok(), "header off")
    api = AnthropicAPI(min_cacheable_tokens=4096)
    results = simulate(api, [{"tokens": r.tokens, "breakpoints": r.breakpoints} for r in rendered])
    return [k for k, res in enumerate(results) if res.detail["cache_read_input_tokens"]]


def _probe_off(name):
    from labkit.server.cli import render_probe_session

    return render_probe_session(name, "off", seed=0)[1]


def _own_slot_index():
    """Exercise 06.3 by hand: two slots, the sessions interleaved; where each keeps its own."""
    from labkit.engines import LlamaCppServer

    a, b = _probe_off("fix_failing_test"), _probe_off("add_cli_flag")
    mixed = [r for pair in zip(a, b, strict=False) for r in pair]
    engine = LlamaCppServer(n_slots=2)
    cached = [engine.serve(r.tokens).cached for r in mixed]
    own = [k >= 2 and cached[k] == mixed[k - 2].n_tokens for k in range(len(mixed))]
    return max(k for k in range(len(own)) if not own[k]) + 1


def _lesson7_parts():
    from labkit.experiments import lesson_conversation

    lines = data_path("long_system_prompt.txt").read_text(encoding="utf-8").strip().splitlines()
    return "\n".join(lines[:8]), lesson_conversation()


def _date_tokens_changed():
    system, conversation = _lesson7_parts()
    history = conversation["history"][:1]
    turn = [conversation["new_turn"][0], {"role": "user", "content": conversation["date_question"]}]
    k = _ids(
        [{"role": "system", "content": f"{system}\nToday's date is 28 November 2025."}, *history]
    )
    k1 = _ids(
        [
            {"role": "system", "content": f"{system}\nToday's date is 29 November 2025."},
            *history,
            *turn,
        ]
    )
    return sum(x != y for x, y in zip(k, k1, strict=False))


def _inserted():
    from labkit.sessions import billing_header

    system, conversation = _lesson7_parts()
    k, k1 = (
        _ids([{"role": "system", "content": f"{billing_header(c)}\n{system}"}])
        for c in ("5", "56445")
    )
    p = _common(k, k1)
    return list(range(p, p + len(k1) - len(k)))


def _value(x):
    return x() if callable(x) else x


def test_every_lesson_exercise_has_a_check_and_a_tested_answer():
    ids = {e for e in EXERCISES if e.split(".")[0] in LESSONS}
    assert ids == set(ANSWERS) | set(TOKENIZER_ANSWERS)
    for exercise in EXERCISES.values():
        assert exercise.difficulty in ("easy", "medium", "hard")
        assert exercise.checker is not None
        assert not exercise.network or exercise.offline, f"{exercise.id}: give an offline variant"


@pytest.mark.parametrize("exercise_id", sorted(ANSWERS))
def test_check_tells_right_from_wrong(exercise_id, capsys):
    right, wrong = ANSWERS[exercise_id]
    assert check(exercise_id, _value(right)).status == RIGHT
    assert check(exercise_id, _value(wrong)).status == WRONG
    assert f"{exercise_id}: right" in capsys.readouterr().out


@needs_tokenizer
@pytest.mark.parametrize("exercise_id", sorted(TOKENIZER_ANSWERS))
def test_check_tells_right_from_wrong_with_the_tokenizer(exercise_id):
    right, wrong = TOKENIZER_ANSWERS[exercise_id]
    assert check(exercise_id, _value(right), quiet=True).status == RIGHT
    assert check(exercise_id, _value(wrong), quiet=True).status == WRONG


def test_an_answer_of_the_wrong_form_is_not_checkable_and_says_what_to_give():
    result = check("01.3", "z", quiet=True)
    assert result.status == NOT_CHECKABLE and "a letter" in result.message
    assert check("01.1", "twenty", quiet=True).status == NOT_CHECKABLE
    assert check("01.5", "no", quiet=True).status == NOT_CHECKABLE


def test_an_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="known: 00.1"):
        check("09.9", 1)


def test_show_names_difficulty_network_and_choices():
    card = show("01.4")
    assert "easy" in card and "needs a network" in card and "offline variant" in card
    assert "b) p and every later position" in show("01.3")
