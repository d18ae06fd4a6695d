"""Shared fixtures: the tiny random model (always) and the default model (when prepared)."""

import pytest

import labkit
from labkit.models import default_model_ready


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
