"""Claims the lessons make about the world, checked: the API framing, versions, library facts.

The framing test reads every text a learner reads (READMEs, notebooks, labkit's docstrings and
messages) for statements that put the attribution line's cost on Anthropic's own API, which
handles the line apart from the prompt: the engine model is an Anthropic-style cache that sees the
line as text, a gateway's or a proxy's view.
"""

import inspect
import json
import re
from pathlib import Path

import pytest
import torch

import labkit
from labkit.resources import data_path
from labkit.viz.figures_cache import kv_models_figure, kv_size_rows

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {  # pattern -> what it gets wrong
    r"\bAPI\b[^.\n]{0,60}\breuses nothing": "the official API handles the line apart",
    r"\b[Oo]n the API\b[^.\n]{0,80}\b(line|header)\b": "a gateway's cost, not the API's",
    r"(SGLang|vLLM|llama\.cpp),? (and|or) Anthropic's API": "it is an Anthropic-style cache",
    r"Anthropic's API\)? (reuses|caches|stops|breaks)": "say which: the API or a gateway",
    r"local server \(llama\.cpp, vLLM, SGLang\)": "llama.cpp rewrites cch on /v1/messages",
}
OLD_TEXTS = [  # statements the lessons used to make: each pattern must catch one
    "and the API reuses nothing: each of its entries ends at a",
    "- On the API, the line makes prompt caching cost more than no caching",
    "- how llama.cpp, vLLM, SGLang and Anthropic's API decide, turn by turn",
    "- **Anthropic's API** reuses nothing with the line",
    "Sent to a local server (llama.cpp, vLLM, SGLang) or a third-party gateway",
]


def learner_texts() -> dict[str, str]:
    """Return every text a learner reads, by file: Markdown, notebook cells, labkit's sources."""
    texts = {}
    for path in [ROOT / "README.md", *ROOT.glob("*/README.md"), *ROOT.glob("data/**/README.md")]:
        texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts[str(path.relative_to(ROOT))] = "\n\n".join("".join(c["source"]) for c in cells)
    for path in sorted((ROOT / "labkit").rglob("*.py")):
        texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return texts


def test_framing_patterns_catch_the_old_statements():
    for text in OLD_TEXTS:
        assert any(re.search(p, text) for p in FORBIDDEN), text


def test_no_text_calls_the_gateway_model_the_api():
    texts = learner_texts()
    assert "notebooks/04_agent_session.ipynb" in texts and len(texts) > 40
    found = [
        f"{name}: {m.group(0)!r} ({why})"
        for name, text in texts.items()
        for pattern, why in FORBIDDEN.items()
        for m in re.finditer(pattern, " ".join(text.split()))  # one line: wrapped text too
    ]
    assert not found, "\n".join(found)


def test_version_statements_agree():
    """Claude Code 2.1.x sends a fresh cch per request; v2.1.181+ is *reported* to keep it."""
    texts = learner_texts()
    mentions = 0
    for name, text in texts.items():
        flat = " ".join(text.split())
        for m in re.finditer(r"2\.1\.181", flat):
            mentions += 1
            around = flat[max(0, m.start() - 150) : m.end() + 150]
            assert "reported" in around, f"{name}: {around!r} states the v2.1.181 claim as fact"
            assert "conversation" in around, f"{name}: {around!r} does not say what it keeps"
    assert mentions >= 4  # README, notebooks 04 and 05, the lint fix


def test_transformers_takes_cache_and_still_past_key_values():
    """Notebook 01: transformers 5 names the argument `cache`; `past_key_values=` still works,
    with a deprecation warning (transformers 5.24, where it says it goes in 5.40)."""
    model, _ = labkit.load_model("tiny-random", device="cpu")
    params = inspect.signature(model.forward).parameters
    if "cache" not in params:
        pytest.skip("transformers before 5 names the argument past_key_values only")
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    with pytest.warns(Warning, match=r"past_key_values.*deprecated.*cache"):
        model(input_ids=torch.tensor([[1, 2, 3, 4]]), past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == 4  # it was used, not ignored


def test_model_sizes_figure_names_the_dtype_it_was_given():
    configs = json.loads(data_path("model_configs.json").read_text())["models"]
    title = kv_models_figure(kv_size_rows(configs, dtype="float16")).layout.title.text
    assert "(float16)" in title and "bfloat16" not in title
    by_name = {c["name"]: c for c in configs}
    llama2 = by_name["Llama-2-7B"]
    assert llama2["num_kv_heads"] == llama2["num_attention_heads"]  # multi-head attention
    assert "70B uses GQA" in llama2["source"]
