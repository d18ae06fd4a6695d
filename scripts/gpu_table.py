"""The GPU table (README "Models and devices"): labkit's cache timings on an accelerator.

    python scripts/gpu_table.py --pack DIR                  # here, where the default model is
    python scripts/gpu_table.py --model-dir DIR [--out F]   # on the GPU machine

Made for a lent GPU machine that has torch and transformers but no network and no room for the
weights (what travels there is small): `--pack` copies the default model's config, tokenizer and
chat template (about 3.5 MB) into DIR. The run builds that architecture with random weights
(seeded): a dense forward pass costs the same whatever numbers the weights hold, so the times are
the model's, while its answers would be noise (no answer is read here). On the device it picks
(labkit.pick_device: CUDA, then MPS, then CPU) in its default dtype, timed with CUDA events on a
GPU, it measures
  1. cold vs warm time to first token over prefix lengths (labkit bench's sweep: runs alternate);
  2. notebook 04's replay of the bundled `fix_failing_test` session with the attribution line
     and without it (one llama.cpp slot), at the notebook's full-mode size, its LONG_REPLAY
     size, and the whole session where its longest request fits the model's positions;
and checks that every replay reused exactly the tokens the llama.cpp engine model predicts (token
counts do not depend on the device). It writes a markdown table (`--out`, default
build/gpu_table.md) naming the GPU, CUDA, torch, transformers and the dtype, and prints it.
`--quick` runs tiny sizes (the test suite runs it that way on the CPU).
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # labkit from this checkout: the GPU machine has no install

PACKED = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
SESSION = "fix_failing_test"
# (label, system tokens, requests, block tokens): notebook 04's full mode and LONG_REPLAY sizes
REPLAYS = (("notebook 04 full", 800, 6, 64), ("notebook 04 LONG_REPLAY", 2000, 8, 160))
PREFIX_LENS = (250, 500, 1000, 2000, 4000, 8000)
QUICK_REPLAYS = (("quick", 120, 3, 16),)
QUICK_PREFIX_LENS = (32, 64)


def pack(dest: Path) -> list[Path]:
    """Copy the default model's config and tokenizer files into `dest`; return what was copied."""
    from labkit.model_files import default_model_dir

    source = default_model_dir()
    missing = [name for name in PACKED if not (source / name).is_file()]
    if missing:
        raise SystemExit(f"{source} lacks {', '.join(missing)}: run `labkit fetch` first.")
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(source / name, dest / name)) for name in PACKED]


def random_model(model_dir: Path, device, dtype, seed: int = 0):
    """Return the architecture of `model_dir`'s config.json with seeded random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_config(config)
    return model.to(device=device, dtype=dtype).eval()


def replay_rows(model, tokenizer, replays, repeats: int, whole: bool = True) -> list[dict]:
    """Replay the session at each size (and whole), header on and off; check the reuse; return
    table rows."""
    from labkit.engines.session_sim import simulate_session
    from labkit.experiments.replay import replay_sessions, shorten_session
    from labkit.resources import resolve_session
    from labkit.sessions import load_requests, render_session

    requests = load_requests(resolve_session(SESSION))
    sizes = [
        (label, shorten_session(requests, tokenizer, system_tokens=s, n_requests=n, block_tokens=b))
        for label, s, n, b in replays
    ]
    sizes += [("whole session", requests)] if whole else []
    rows = []
    for label, session in sizes:
        rendered = {
            "on": render_session(session, tokenizer, attribution=True, seed=0),
            "off": render_session(session, tokenizer, attribution=False),
        }
        longest = max(r.n_tokens for runs in rendered.values() for r in runs)
        if longest > model.config.max_position_embeddings:
            print(
                f"{label}: skipped, its longest request ({longest:,} tokens) is past the "
                f"model's {model.config.max_position_embeddings:,} positions"
            )
            continue
        replay = replay_sessions(model, rendered, repeats=repeats, keep="last")
        row = {"replay": label, "requests": len(session)}
        for key, turns in replay.items():
            predicted = simulate_session(
                rendered[key], "llamacpp", cache_ram=False, replies="ignored"
            )
            if [t.tokens_reused for t in turns] != [r.cached for r in predicted]:
                raise SystemExit(f"{label}, header {key}: reuse differs from the engine model")
            row[f"computed_{key}"] = sum(t.tokens_computed for t in turns)
            row[f"ms_{key}"] = 1e3 * sum(t.prefill_s for t in turns)
        rows.append(row)
    return rows


def table(sweep, replays, header: str) -> str:
    """Return the markdown of both tables under `header`."""
    lines = [
        header,
        "",
        "| prefix tokens | cold TTFT | warm TTFT | cold / warm |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.prefix_len:,} | {r.cold_ttft_s * 1e3:.1f} ms | {r.warm_ttft_s * 1e3:.1f} ms "
        f"| {r.speedup:.1f}× |"
        for r in sweep
    ]
    lines += [
        "",
        "| replay | requests | prefilled, line on / off | prefill, line on / off | on / off |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['replay']} | {r['requests']} | {r['computed_on']:,} / {r['computed_off']:,} "
        f"| {r['ms_on']:.0f} ms / {r['ms_off']:.0f} ms | {r['ms_on'] / r['ms_off']:.1f}× |"
        for r in replays
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", type=Path, help="copy config and tokenizer files here, then stop")
    parser.add_argument("--model-dir", type=Path, help="a folder --pack wrote")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu_table.md")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per point")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    args = parser.parse_args(argv)
    if args.pack:
        print(f"packed: {', '.join(p.name for p in pack(args.pack))} into {args.pack}")
        return 0
    if not args.model_dir:
        parser.error("give --model-dir (a folder --pack wrote) or --pack")

    import torch
    import transformers
    from transformers import AutoTokenizer

    from labkit.device import default_dtype, device_name, pick_device
    from labkit.experiments.bench import prefix_reuse_sweep

    device = pick_device()
    dtype = default_dtype(device)
    model = random_model(args.model_dir, device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    lens = QUICK_PREFIX_LENS if args.quick else PREFIX_LENS
    sweep = prefix_reuse_sweep(model, tokenizer, prefix_lens=lens, repeats=args.repeats)
    replay_repeats = max(1, args.repeats // 2)
    replays = replay_rows(
        model,
        tokenizer,
        QUICK_REPLAYS if args.quick else REPLAYS,
        replay_repeats,
        whole=not args.quick,
    )
    clock = "CUDA events" if device.type == "cuda" else "perf_counter"
    header = (
        f"{device_name(device)}, {str(dtype).removeprefix('torch.')}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, {datetime.date.today()}: "
        f"{args.model_dir.name or 'model'}'s architecture with random weights; medians of "
        f"{args.repeats} runs (replays: {replay_repeats}), timed with {clock}."
    )
    text = table(sweep, replays, header)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
