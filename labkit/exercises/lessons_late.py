"""Exercises of lessons 03–05: one token breaks the cache, a whole session, linting requests."""

from __future__ import annotations

from labkit.exercises.core import Exercise, multiple_choice, number
from labkit.exercises.lessons_early import _tokenizer

MIDNIGHT_S = 1_767_657_600  # 2026-01-06 00:00 UTC
SETTINGS_04_3 = {  # llama-server settings for two interleaved sessions (exercise 04.3)
    "one slot": {"n_slots": 1, "cache_ram": False},
    "cache_ram": {"n_slots": 1, "cache_ram": True},
    "two slots": {"n_slots": 2, "cache_ram": False},
    "two slots, LRU": {"n_slots": 2, "cache_ram": False, "slot_prompt_similarity": 0.0},
}


def _session(name: str) -> list[dict]:
    """Return a bundled session's requests: "fix_failing_test", "cache_busters/clock_and_tools"."""
    from labkit.resources import data_path
    from labkit.sessions import load_requests

    return load_requests(data_path("sessions") / f"{name}.jsonl")


def _lint_causes(requests: list[dict]) -> list[str]:
    from labkit.lint import lint_requests

    return [r.cause for r in lint_requests(requests, _tokenizer()).requests]


def _digits_shift() -> int:
    from labkit.sessions import billing_header

    tok = _tokenizer()
    lengths = [
        len(tok(billing_header(c), add_special_tokens=False)["input_ids"])
        for c in ("56445", "5644")
    ]
    return lengths[0] - lengths[1]


def _midnight_misses() -> int:
    """Cache misses of a session, header off, timestamped to the day, spanning one midnight."""
    from labkit.engines import simulate_session
    from labkit.sessions import add_timestamp, render_request

    requests = _session("fix_failing_test")
    start_s = MIDNIGHT_S - 60 * (len(requests) // 2)  # half before midnight, half after
    stamped = [add_timestamp(r, start_s + 60 * k, fmt="%Y-%m-%d") for k, r in enumerate(requests)]
    rendered = [render_request(r, _tokenizer()) for r in stamped]
    results = simulate_session(rendered, "llamacpp")
    return sum(
        res.cached < prev.n_tokens - 1 for prev, res in zip(rendered, results[1:], strict=False)
    )


def _interleaved_rescue(answer) -> tuple[bool, str]:
    """Answer: the SETTINGS_04_3 names that reuse more than "one slot" does."""
    from labkit.engines import LlamaCppServer, simulate
    from labkit.engines.session_sim import render_variant

    a, b = (
        render_variant(_session(n), _tokenizer(), "header off")
        for n in ("fix_failing_test", "add_cli_flag")
    )
    mixed = [{"tokens": r.tokens} for pair in zip(a, b, strict=False) for r in pair]
    cached = {
        name: sum(res.cached for res in simulate(LlamaCppServer(**options), mixed))
        for name, options in SETTINGS_04_3.items()
    }
    rescued = {name for name in SETTINGS_04_3 if cached[name] > cached["one slot"]}
    if {str(x).strip() for x in answer} == rescued:
        return True, f"Right: {sorted(rescued)}. Tokens cached per setting: {cached}."
    return False, "Simulate each setting on the interleaved requests and sum `cached`."


def _haiku_cached(answer) -> tuple[bool, str]:
    """Answer: indices of the requests that read from the cache with a 4,096-token minimum."""
    from labkit.engines import AnthropicAPI, simulate
    from labkit.engines.session_sim import render_variant

    rendered = render_variant(_session("fix_failing_test"), _tokenizer(), "header off")
    results = simulate(
        AnthropicAPI(min_cacheable_tokens=4096),
        [{"tokens": r.tokens, "breakpoints": r.breakpoints, "t_s": r.t_s} for r in rendered],
    )
    want = [k for k, res in enumerate(results) if res.detail["cache_read_input_tokens"] > 0]
    if sorted(int(k) for k in answer) == want:
        return True, f"Right: requests {want}; shorter prefixes are never written to the cache."
    return False, "Simulate AnthropicAPI(min_cacheable_tokens=4096) and list the cache reads."


def _git_status_edit(answer) -> tuple[bool, str]:
    """Answer: the session's requests with a `git status` line that turns dirty once."""
    causes = _lint_causes(answer)
    if causes.count("git-status") == 1 and set(causes[1:]) <= {"git-status", "append-only"}:
        return True, f"Right: one miss, at request {causes.index('git-status')}; the rest extend."
    return False, f"The linter found {causes}: the status should change once and then stay."


def _clock_moved(answer) -> tuple[bool, str]:
    """Answer: clock_and_tools.jsonl with the time moved into the latest user message."""
    causes = _lint_causes(answer)
    if "timestamp" not in causes and "edited-history" not in causes:
        return True, "Right: no timestamp miss; only the tool reorder remains."
    return False, f"The linter found {sorted(set(causes))}: keep earlier turns' times unchanged."


def _sorted_tools_losses(answer) -> tuple[bool, str]:
    """Answer: indices of the requests that still lose tokens once tools are sorted by name."""
    from labkit.lint import lint_requests

    requests = _session("cache_busters/clock_and_tools")
    fixed = [{**r, "tools": sorted(r.get("tools", []), key=lambda t: t["name"])} for r in requests]
    want = [r.index for r in lint_requests(fixed, _tokenizer()).requests if r.lost_tokens > 0]
    if sorted(int(k) for k in answer) == want:
        return True, f"Right: {want}, all to the clock; the tool order no longer changes."
    return False, "Lint the sorted session and list the requests with lost_tokens > 0."


def _own_busters(answer) -> tuple[bool, str]:
    """Answer: the causes the linter names in clock_and_tools.jsonl (offline variant of 05.6)."""
    causes = set(_lint_causes(_session("cache_busters/clock_and_tools"))) - {"first", "append-only"}
    if {str(c) for c in answer} == causes:
        return True, f"Right: {sorted(causes)}."
    return False, "Run lint_file on the session and collect each row's cause."


EXERCISES = [
    multiple_choice(
        "03.1",
        "medium",
        "where the common prefix ends with the header last in the system prompt",
        {
            "a": "inside the header, at the very start: everything is recomputed",
            "b": "inside the header, last in the system prompt: the prompt before it is reused",
            "c": "at the new turn: nothing is lost",
        },
        "b",
        "Right: the prompt before the line is reused; the line, history and new turn are not.",
        "The cch still changes every request: where does its first changed token sit now?",
    ),
    multiple_choice(
        "03.2",
        "medium",
        "how the layer-1 change decays with the distance from p",
        {
            "a": "it falls to exactly zero a few tokens after p",
            "b": "it shrinks with distance but stays above zero everywhere after p, last layer too",
            "c": "it grows with distance",
        },
        "b",
        "Right: attention mixes the changed token into every later position, a little.",
        "Print rel[1, p:].min() and rel[-1, p:].min(): is either ever 0?",
    ),
    multiple_choice(
        "03.3",
        "hard",
        "how the stale-cache divergence depends on k, the positions recomputed",
        {
            "a": "it falls as k grows, and is ~0 once every position from p on is recomputed",
            "b": "it does not depend on k",
            "c": "it grows with k",
        },
        "a",
        "Right: each recomputed position removes stale input; all of them: exact.",
        "At k = 0 the cache is all stale; at the largest k it is request k+1's own cache.",
    ),
    Exercise(
        "03.4",
        "easy",
        False,
        "tokens each later token shifts by with cch=5644 instead of 56445",
        number(
            _digits_shift,
            "{expected:.0f} token: one per digit; section 3 looks the same.",
            "Tokenize both header lines and compare their lengths.",
            rel_tol=0,
        ),
    ),
    multiple_choice(
        "03.5",
        "medium",
        "which one-token change does the stale cache suffer from more",
        {"a": "the attribution line's cch", "b": "the date line, when asked for the date"},
        "b",
        "Right: a model may use the header a little, but the date matters far more.",
        "Compare header_result.stale.kl_mean with date_result.stale.kl_mean.",
        network=True,
        offline="compare the header and the date with the default model (no network)",
    ),
    multiple_choice(
        "04.1",
        "medium",
        "why vLLM reuses nothing with --block-size 64 and the line on",
        {
            "a": "the changing cch is in the first 64-token block; every later hash chains on it",
            "b": "vLLM does not cache blocks of 64 tokens",
            "c": "the session is shorter than 64 tokens",
        },
        "a",
        "Right: only full blocks are cached, each hash includes its parent's.",
        "Where does the attribution line sit (header_span), and what does block 0 hold?",
    ),
    Exercise(
        "04.2",
        "easy",
        False,
        "cache misses of a session stamped by day that spans one midnight",
        number(
            _midnight_misses,
            "{expected:.0f}: only the first request after midnight misses.",
            "The date changes once; how many requests see a different date than the one before?",
            rel_tol=0,
        ),
    ),
    Exercise(
        "04.3",
        "hard",
        False,
        "the names in SETTINGS_04_3 that reuse more than 'one slot' on two interleaved "
        "sessions (a set)",
        _interleaved_rescue,
    ),
    Exercise(
        "04.4",
        "medium",
        False,
        "the indices of the requests that read from the cache at a 4,096-token minimum",
        _haiku_cached,
    ),
    multiple_choice(
        "04.5",
        "medium",
        "why a fit on short prompts underestimates a 60k-token prompt",
        {
            "a": "attention's quadratic term is small at short lengths and dominates at long ones",
            "b": "longer prompts use a different model",
            "c": "it does not: prefill time is linear in the prompt length",
        },
        "a",
        "Right: every token attends to every earlier one, so that part grows with n².",
        "Compare prefill_flops at 4k and at 60k tokens: which term grows faster?",
    ),
    Exercise(
        "04.6",
        "hard",
        False,
        "the session's requests with your `git status` edit (a list of dicts)",
        _git_status_edit,
    ),
    multiple_choice(
        "05.1",
        "easy",
        "the fields a CI check would assert on",
        {
            "a": "totals.lost_tokens or totals.loss_fraction, below a threshold",
            "b": "n_tokens of each request",
            "c": "the text windows",
        },
        "a",
        "Right: the loss is what a cache-buster costs; fail the build above a threshold.",
        "Which number says how much a cache could not reuse?",
    ),
    Exercise(
        "05.2",
        "medium",
        False,
        "clock_and_tools.jsonl with each request's time in its latest user message",
        _clock_moved,
    ),
    Exercise(
        "05.3",
        "medium",
        False,
        "the indices of the requests that still lose tokens with the tools sorted",
        _sorted_tools_losses,
    ),
    Exercise(
        "05.4",
        "hard",
        False,
        "fix_failing_test.jsonl with a git status line that turns dirty once",
        _git_status_edit,
    ),
    multiple_choice(
        "05.5",
        "medium",
        "why the causes and the loss fraction hardly change with tiny-random",
        {
            "a": "causes come from the requests' structure and text; the loss is a ratio of counts",
            "b": "tiny-random has the same tokenizer",
            "c": "the linter ignores the tokenizer",
        },
        "a",
        "Right: a byte tokenizer scales every count about alike; the diff is the same.",
        "What does the linter compare before it counts tokens?",
    ),
    Exercise(
        "05.6",
        "medium",
        True,
        "the set of causes the linter names (your own capture; offline: the bundled one)",
        _own_busters,
        offline="lint data/sessions/cache_busters/clock_and_tools.jsonl",
    ),
]
