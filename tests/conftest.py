"""Shared fixtures: the tiny random model (always) and the default model (when prepared)."""

import pytest

import labkit
from labkit.models import default_model_ready, load_tokenizer


@pytest.fixture(scope="session")
def tiny():
    """Return (model, tokenizer) of the tiny random Llama, on the CPU in float32."""
    return labkit.load_model("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def default_model():
    """Return (model, tokenizer) of the default model, or skip if `labkit fetch` has not run."""
    if not default_model_ready():
        pytest.skip("the default model is not prepared: run `labkit fetch` (make setup does)")
    return labkit.load_model(device="cpu")


@pytest.fixture(scope="session")
def tiny_tok():
    """Return the tiny model's byte-level ChatML tokenizer (built in code)."""
    return load_tokenizer("tiny-random")


@pytest.fixture(scope="session")
def smol_tok():
    """Return the default model's tokenizer, or skip if `labkit fetch` has not run."""
    if not default_model_ready():
        pytest.skip("the default model is not prepared: run `labkit fetch` (make setup does)")
    return load_tokenizer()


@pytest.fixture(scope="session")
def llama_server_ready():
    """Skip unless a llama-server binary and the default model's GGUF file are both there."""
    from labkit.fetch import default_gguf_path
    from labkit.server import ServerNotBuiltError, find_server_binary

    try:
        find_server_binary()
    except ServerNotBuiltError as err:
        pytest.skip(f"llama-server is not built ({err}); `make server` builds it")
    if not default_gguf_path().is_file():
        pytest.skip("the default model's GGUF file is missing: run `labkit fetch`")
