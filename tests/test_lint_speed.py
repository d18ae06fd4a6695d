"""`labkit lint` on long prompts: pieces tokenized exactly as the whole text, the 7 MB benchmark
in under 10 s of CPU time, linear scaling, linear redaction, and `import labkit.lint` without
torch."""

import json
import random
import subprocess
import sys
import time

import pytest

from labkit.lint import lint_file
from labkit.models import tiny_random_tokenizer
from labkit.redact import REDACTED, redact
from labkit.resources import data_path, resolve_session
from labkit.sessions import load_requests, render_request
from labkit.timing import measure_alternating
from labkit.tokens import MemoTokenizer, encode_whole, newline_cut, text_pieces

TOKENIZERS = ["tiny_tok", "smol_tok"]  # smol_tok skips when `labkit fetch` has not run

HAND_PICKED = [
    "",
    "def f(x):\n    return x  \n\n\nclass A:\n\tpass\n",
    "a \nb\n \n c\n\n\nd  \n\t\ne\r\nf\rg",
    "héllo wörld\n日本語のテキスト\n😀 emoji\n\u00a0nbsp\n\u3000ideo\n\u2028ls\n\x1cfs\n\x85nel",
    "<|im_start|>system\nhi<|im_end|>\n<|im_start|>user\nyo<|im_end|>\n<|im_start|>assistant\n",
    "it's\n's\n'll\nI'm\n   \n\r\n\r\nx",
    "123\n456 789\n!!!\n???  \n   ...",
    "\n\n<|im_end|>",  # the newline ends a segment here: no cut (a cut once split "\n\n")
    "x  \n<|im_start|>y",
]


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Return texts of whitespace runs, unicode, quotes, digits and special tokens."""
    rng = random.Random(seed)
    alphabet = list("ab \n\t\r'sl1.日😀<|>_\u00a0\u3000\x85\x1c") + ["<|im_end|>", "<|im_start|>"]
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 200))) for _ in range(n)]


def session_texts(tokenizer) -> list[str]:
    """Return the rendered text of every request of the bundled sessions."""
    texts = []
    paths = [resolve_session(name) for name in ("fix_failing_test", "add_cli_flag")]
    for path in [*paths, data_path("sessions", "cache_busters", "clock_and_tools.jsonl")]:
        texts += [render_request(r, tokenizer).text for r in load_requests(path)]
    return texts


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_pieces_tokenize_exactly_as_the_whole_text(tok_name, request):
    tok = request.getfixturevalue(tok_name)
    memo = MemoTokenizer(tok)
    assert memo.added is not None and "<|im_end|>" in memo.added  # the piece path is taken
    texts = HAND_PICKED + random_texts(400) + session_texts(tok)
    n_cut = 0
    for text in texts:
        pieces = text_pieces(text, memo.added)
        assert "".join(pieces) == text
        n_cut += len(pieces) > 1
        ids, to_token = encode_whole(tok, text)
        memo_ids, memo_to_token = memo.encode(text)
        assert memo_ids == ids == memo(text, add_special_tokens=False)["input_ids"], repr(text)
        step = max(1, len(text) // 500)  # a long session text: every 500th offset, and the ends
        chars = [*range(-1, len(text) + 2, step), len(text)]
        assert [memo_to_token(c) for c in chars] == [to_token(c) for c in chars], repr(text)
    assert n_cut > len(texts) // 2


def test_a_tokenizer_it_cannot_prove_safe_is_called_on_the_whole_text():
    from tokenizers import normalizers

    tok = tiny_random_tokenizer()
    tok.backend_tokenizer.normalizer = normalizers.Lowercase()  # pieces might merge: not proved
    memo = MemoTokenizer(tok)
    assert memo.added is None and newline_cut(tok) is None
    text = "Ab\nCd\n<|im_end|>\nEf"
    assert memo.encode(text)[0] == encode_whole(tok, text)[0]
    assert memo(text, add_special_tokens=False)["input_ids"] == tok(text)["input_ids"]


def test_repeated_pieces_are_tokenized_once(tiny_tok):
    memo = MemoTokenizer(tiny_tok)
    memo.encode("\n".join(["the same line"] * 1000 + ["another line"]))
    assert len(memo._memo) == 3  # the first line, "\nthe same line", "\nanother line"


# -- the 7 MB benchmark -------------------------------------------------------------------


def write_repetitive_session(path, n_lines: int, shape: str = "anthropic") -> None:
    """Write two requests whose system prompt is n_lines repetitive lines (about 24 bytes each),
    the second with one line changed: Anthropic requests with a tool and cache_control (rendered,
    diffed and costed on the hosted API), or rendered prompts."""
    lines = [f"{k % 7}: the same words here {k % 3}" for k in range(n_lines)]
    changed = list(lines)
    changed[n_lines // 2] = "3: the SAME words here 0"
    tool = {"name": "read_file", "description": "Read a file.", "input_schema": {"type": "object"}}
    with open(path, "w") as out:
        for system in (lines, changed):
            request = {
                "model": "claude-sonnet-4-5",
                "system": [
                    {
                        "type": "text",
                        "text": "\n".join(system),
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
                "tools": [tool],
                "messages": [{"role": "user", "content": "Fix the failing test."}],
            }
            request = request if shape == "anthropic" else {"prompt": "\n".join(system)}
            out.write(json.dumps(request) + "\n")


def timed_lint(path, tok, clock=time.perf_counter) -> float:
    """Return the seconds `lint_file` takes on `clock`, after checking what it found."""
    start = clock()
    report = lint_file(path, tok)
    seconds = clock() - start
    row = report.requests[1]
    assert row.cause == "system-edited" and "the SAME words" in row.detail
    assert (row.where, report.hosted is not None) in (("system[0]", True), ("prompt", False))
    return seconds


# the default model's tokenizer on the whole path; the tiny one (a token per byte: 7 million
# tokens a request, three times as many) on rendered prompts, without the hosted-API costing
BENCHMARKS = [("smol_tok", "anthropic"), ("tiny_tok", "prompt")]


@pytest.mark.parametrize(("tok_name", "shape"), BENCHMARKS)
def test_lint_of_a_7_mb_repetitive_prompt_takes_under_10_cpu_s(tok_name, shape, request, tmp_path):
    """300,000 similar lines with one changed: once hours (a quadratic line diff), then 90 s
    (tokenizing 7 MB three times); now each distinct line is tokenized once.

    The budget is CPU time (the process's, all its threads): on an idle machine it equals the
    wall time of this single-threaded work, and other processes competing for the cores
    (LABKIT_STRESS=1) do not add to it as they add to the wall time."""
    tok = request.getfixturevalue(tok_name)
    path = tmp_path / "repetitive.jsonl"
    write_repetitive_session(path, 300_000, shape)
    assert path.stat().st_size > 14_000_000  # two requests of over 7 MB
    start = time.perf_counter()
    cpu_s = timed_lint(path, tok, clock=time.process_time)
    wall_s = time.perf_counter() - start
    print(f"7 MB lint ({tok_name}, {shape}): {cpu_s:.2f} s CPU, {wall_s:.2f} s wall")
    assert cpu_s < 10.0


def test_lint_time_grows_linearly_with_the_prompt(tmp_path, tiny_tok):
    small, double = tmp_path / "small.jsonl", tmp_path / "double.jsonl"
    write_repetitive_session(small, 40_000)
    write_repetitive_session(double, 80_000)
    timings = measure_alternating(
        {
            "small": lambda: timed_lint(small, tiny_tok),
            "double": lambda: timed_lint(double, tiny_tok),
        },
        rounds=2,
    )
    ratio = timings["double"].min_s / timings["small"].min_s
    print(f"twice the lines: {ratio:.2f}x the time")
    assert ratio < 3.0  # linear: about 2 (quadratic: 4 and more)


@pytest.mark.parametrize("unit", ["a.", "key=", "password=", "api_key=sk-", "Bearer "])
def test_redaction_of_a_long_line_is_linear(unit):
    """Once quadratic: a URL scheme, a value's digit or an earlier [REDACTED] searched for to
    the end of the line from every start (100,000 characters of "a." took 14 s)."""

    def text(n_chars):
        return (unit * (n_chars // len(unit) + 1))[:n_chars]

    short, long = text(20_000), text(80_000)
    timings = measure_alternating(
        {"short": lambda: redact(short), "long": lambda: redact(long)}, rounds=2
    )
    assert timings["long"].min_s / timings["short"].min_s < 8.0  # linear: 4 (quadratic: 16)
    assert REDACTED in redact(long[:1000] + " api_key=s3cr3tvalue1234")  # still redacts there


# -- importing without torch --------------------------------------------------------------


def test_importing_labkit_lint_proxy_and_sessions_does_not_import_torch():
    """The package root resolves its names on first use (PEP 562): `import labkit.lint` no
    longer loads torch (4 s and more) through `labkit/__init__.py`."""
    code = (
        "import sys\n"
        "import labkit, labkit.lint, labkit.proxy, labkit.sessions\n"
        "assert 'torch' not in sys.modules, 'import labkit.lint, labkit.proxy, labkit.sessions'\n"
        "assert sorted(labkit._HOME_OF) == sorted(labkit.__all__)  # every public name resolves\n"
        "from labkit import PrefixCache, lint_file  # names the notebooks use, loaded when asked\n"
        "assert 'torch' in sys.modules and PrefixCache.__module__ == 'labkit.prefix_cache'\n"
        "assert labkit.models.DEFAULT_MODEL and labkit.viz.__all__  # submodules as attributes\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
