"""Hand-worked examples for the engine models in labkit.engines and labkit.engines.hosted_api.

Each expected number is worked out in the comments from the engine's rule, not read back from
the code. Token ids are plain ints; `run(a, b)` is the run of ids a, a+1, ..., b-1.
"""

from types import SimpleNamespace

import pytest

from labkit.engines import (
    ENGINE_NAMES,
    LlamaCppServer,
    ServeResult,
    SGLangRadixCache,
    VllmPrefixCache,
    block_hashes,
    make_engine,
    simulate,
)
from labkit.engines.hosted_api import AnthropicAPI, load_prompt_caching_apis


def run(start: int, stop: int) -> tuple[int, ...]:
    """Return the token ids start, start+1, ..., stop-1."""
    return tuple(range(start, stop))


def cached(results: list[ServeResult]) -> list[int]:
    return [r.cached for r in results]


# ---------------------------------------------------------------- common API


def test_make_engine_knows_every_name_and_rejects_others():
    for name in ENGINE_NAMES:
        engine = make_engine(name)
        assert engine.name == name
    with pytest.raises(ValueError, match="llamacpp, vllm, sglang, anthropic"):
        make_engine("tgi")


def test_simulate_accepts_sequences_mappings_and_objects():
    # Three forms of the same append-only pair: 40 tokens, then 60 that extend them.
    requests = [run(0, 40), {"tokens": run(0, 60)}, SimpleNamespace(tokens=run(0, 60), t_s=5)]
    results = simulate(SGLangRadixCache(), requests)
    # SGLang matches at most n - 1 tokens: 0, then the 40 shared, then 59 of the exact repeat.
    assert cached(results) == [0, 40, 59]
    assert all(r.cached + r.computed == r.n_tokens for r in results)


def test_engines_reject_text_and_empty_prompts():
    engine = VllmPrefixCache()
    with pytest.raises(TypeError, match="tokenize"):
        engine.serve("hello")
    with pytest.raises(ValueError, match="no tokens"):
        engine.serve([])


def test_serve_result_checks_its_counts():
    with pytest.raises(ValueError):
        ServeResult(n_tokens=10, cached=3, computed=6)
    assert ServeResult(n_tokens=10, cached=4, computed=6).cached_fraction == 0.4


# ---------------------------------------------------------------- llama.cpp


def test_llamacpp_one_slot_reuses_the_common_prefix():
    engine = LlamaCppServer()
    a, b = run(0, 100), run(1000, 1050)
    first = engine.serve(a)
    assert (first.detail["cache_n"], first.detail["prompt_n"]) == (0, 100)
    # A+B: the slot holds A, a 100-token common prefix -> cache_n 100, prompt_n 50.
    second = engine.serve(a + b)
    assert (second.detail["cache_n"], second.detail["prompt_n"]) == (100, 50)
    assert second.detail["selected_by"] == "lcp_similarity"  # sim = 100/150 > 0.1
    # Token 3 changed: the common prefix is tokens 0..2 -> cache_n 3 (sim 3/150 < 0.1, so the
    # only slot is taken by LRU; its saved copy keeps 3/150 < 0.25 and is not restored).
    changed = list(a + b)
    changed[3] = 99_999
    third = engine.serve(changed)
    assert (third.detail["cache_n"], third.detail["prompt_n"]) == (3, 147)
    # Exact repeat: the whole prompt matches, but one token is evaluated -> 149 of 150.
    assert engine.serve(changed).detail["cache_n"] == 149


def test_llamacpp_two_slots_share_below_threshold_goes_to_lru_slot():
    engine = LlamaCppServer(n_slots=2)
    p, q = run(0, 100), run(1000, 1100)
    # Both slots start unused (t_last = -1); the server's `<=` picks the highest id: slot 1.
    assert engine.serve(p).detail["slot"] == 1
    assert engine.serve(q).detail["slot"] == 0  # shares nothing with P: LRU slot 0
    # R shares 5 of its 100 tokens (5%) with Q in slot 0: 0.05 is not > 0.1, so R goes to
    # the least recently used slot, slot 1 (P), and shares nothing with it.
    r = engine.serve(q[:5] + run(5000, 5095))
    assert (r.detail["slot"], r.detail["selected_by"], r.cached) == (1, "lru", 0)
    # S shares 20 tokens (20%) with Q: 0.2 > 0.1, so S goes to Q's slot and reuses 20.
    s = engine.serve(q[:20] + run(6000, 6080))
    assert (s.detail["slot"], s.detail["selected_by"], s.cached) == (0, "lcp_similarity", 20)


def test_llamacpp_cache_ram_restores_an_exact_revisit():
    p, q = run(0, 1000), run(5000, 6000)
    with_ram, without_ram = LlamaCppServer(), LlamaCppServer(cache_ram=False)
    for engine in (with_ram, without_ram):
        engine.serve(p)
        engine.serve(q)  # overwrites the only slot; with cache_ram, P is saved to RAM first
    # P again: Q is saved, and P (f_keep 1.0, sim 1.0 beat the slot's 0, 0) is restored:
    # cache_n = 1000 - 1 (the last token is evaluated).
    again = with_ram.serve(p)
    assert (again.cached, again.detail["n_restored"]) == (999, 1000)
    assert without_ram.serve(p).cached == 0


def test_llamacpp_cache_ram_only_acts_when_the_slot_loses_most_of_its_prompt():
    engine = LlamaCppServer()
    x = run(0, 200)
    p, p2 = x + run(1000, 1800), x + run(5000, 5100)  # 1000 and 300 tokens sharing 200
    engine.serve(p)
    # P2 shares 200 tokens: sim 200/300 > 0.1 picks the slot by similarity, and f_keep =
    # 200/1000 = 0.2 < 0.5, so P is saved to RAM before the slot is overwritten.
    assert engine.serve(p2).cached == 200
    assert engine.ram == [p]
    # P again: sim 200/1000 = 0.2 > 0.1 picks the slot, and f_keep = 200/300 = 0.67 >= 0.5,
    # so the server never looks in RAM: only the 200 shared tokens are reused, not 999.
    again = engine.serve(p)
    assert (again.cached, again.detail["n_restored"]) == (200, 0)


def test_llamacpp_cache_ram_does_not_restore_a_prompt_it_would_mostly_discard():
    engine = LlamaCppServer()
    x = run(0, 100)
    simulate(engine, [x + run(1000, 1900), run(5000, 5500)])  # the first is saved to RAM
    # X+Z shares 100 tokens with the saved 1000-token prompt: its f_keep 0.1 < 0.25, so it is
    # not restored ("don't trash large prompts") and all 150 tokens are computed.
    assert engine.serve(x + run(7000, 7050)).cached == 0


def test_llamacpp_cache_ram_keeps_the_newest_prompts_within_its_limit():
    engine = LlamaCppServer(cache_ram_max_tokens=1500)
    p1, p2, p3 = run(0, 1000), run(10_000, 11_000), run(20_000, 21_000)
    simulate(engine, [p1, p2, p3])
    # RAM held [P1, P2] (2000 tokens > 1500), so the oldest, P1, was dropped.
    assert engine.ram == [p2]
    # P1: nothing to restore; saving P3 makes [P2, P3] and P2 is dropped.
    assert engine.serve(p1).cached == 0
    assert engine.serve(p3).cached == 999  # P3 restored from RAM


def test_llamacpp_changing_header_gets_no_help_from_cache_ram():
    # 8 stable header tokens, 2 that change per request (like cch=...), 490 stable tokens.
    body = run(100, 590)
    prompts = [run(1, 9) + (9000 + 2 * i, 9001 + 2 * i) + body for i in range(4)]
    engine = LlamaCppServer()
    # Every prompt shares 8 tokens (1.6% < 10%) with the slot and < 25% with saved prompts.
    assert cached(simulate(engine, prompts)) == [0, 8, 8, 8]
    # Revisiting the first prompt exactly is cheap again: it comes back from RAM.
    assert engine.serve(prompts[0]).cached == 499


# ---------------------------------------------------------------- vLLM


def test_vllm_reuses_only_full_blocks():
    # The design doc's example: block size 4, a request sharing its first 10 tokens.
    engine = VllmPrefixCache(block_size=4)
    engine.serve(run(0, 12))
    shared_10 = engine.serve(run(0, 10) + run(100, 104))
    # Blocks [0-3] and [4-7] match; block [8,9,100,101] differs -> 2 blocks, 8 tokens.
    assert (shared_10.cached, shared_10.detail["num_cached_blocks"]) == (8, 2)


def test_vllm_fully_cached_prompt_recomputes_its_last_block():
    engine = VllmPrefixCache(block_size=16)
    engine.serve(run(0, 32))
    # At most (32 - 1) // 16 = 1 block may hit: the whole second block is recomputed.
    assert engine.serve(run(0, 32)).cached == 16
    engine.serve(run(0, 40))
    # 40 tokens: (40 - 1) // 16 = 2 blocks -> 32; the 8-token tail is never cached.
    assert engine.serve(run(0, 40)).cached == 32


def test_vllm_change_in_block_0_changes_every_later_hash():
    original = run(0, 64)
    changed = (-1,) + original[1:]  # only token 0 differs; blocks 1-3 hold equal tokens
    assert not set(block_hashes(original, 16)) & set(block_hashes(changed, 16))
    engine = VllmPrefixCache()
    engine.serve(original)
    assert engine.serve(changed).cached == 0
    late_change = original[:20] + (-1,) + original[21:]  # token 20 is in block 1
    assert engine.serve(late_change).cached == 16


def test_vllm_lru_eviction_frees_the_tail_first():
    engine = VllmPrefixCache(block_size=4, capacity_blocks=4)
    a, b = run(0, 16), run(100, 108)
    engine.serve(a)  # 4 blocks, freed a3, a2, a1, a0: a3 is evicted first
    engine.serve(b)  # needs 2 blocks, no empty one: evicts a3 and a2
    # A again: a0 and a1 are still cached, a2 is gone -> 2 blocks, 8 tokens.
    again = engine.serve(a)
    assert (again.cached, again.detail["num_cached_blocks"]) == (8, 2)
    with pytest.raises(ValueError, match="capacity_blocks"):
        engine.serve(run(0, 17))  # 5 blocks > 4


# ---------------------------------------------------------------- SGLang


def test_sglang_branches_split_nodes_and_share_the_prefix():
    engine = SGLangRadixCache()
    a, b = run(1, 11), (1, 2, 3, 4, 5, 99, 98)
    assert engine.serve(a).detail["tree_tokens"] == 10
    # B matches 1..5 inside A's node: the node splits into [1..5] -> [6..10], plus [99, 98].
    second = engine.serve(b)
    assert (second.detail["matched_prefix_len"], second.detail["tree_tokens"]) == (5, 12)
    assert engine.node_runs() == [(1, 2, 3, 4, 5), (6, 7, 8, 9, 10), (99, 98)]
    # Both branches are reusable: each prompt matches its first n - 1 tokens = 7.
    assert engine.serve((1, 2, 3, 4, 5, 99, 98, 7)).cached == 7
    assert engine.serve((1, 2, 3, 4, 5, 6, 7, 50)).cached == 7


def test_sglang_evicts_the_least_recently_used_leaf_whole():
    engine = SGLangRadixCache(capacity_tokens=12)
    a, b = run(1, 11), (1, 2, 3, 4, 5, 99, 98)
    simulate(engine, [a, b])
    # B again matches 6 tokens (n - 1), splitting [99, 98] into [99] -> [98]; B is now newer.
    assert engine.serve(b).cached == 6
    # D needs 3 new tokens and the pool is full: the LRU leaf [6..10] goes, all 5 tokens.
    d = engine.serve((50, 51, 52))
    assert d.detail["tree_tokens"] == 12 - 5 + 3
    assert engine.node_runs() == [(1, 2, 3, 4, 5), (99,), (98,), (50, 51, 52)]
    assert engine.serve(a).cached == 5  # only the shared [1..5] is left
    with pytest.raises(ValueError, match="capacity_tokens"):
        engine.serve(run(0, 13))


def test_sglang_page_size_reuses_whole_pages():
    engine = SGLangRadixCache(page_size=4)
    engine.serve(run(0, 10))  # inserts the 8 tokens of 2 whole pages
    # Match on the first 9 tokens cut to pages: 8.
    assert engine.serve(run(0, 10)).cached == 8


# ---------------------------------------------------------------- Anthropic


def test_anthropic_defaults_come_from_the_data_file():
    figures = load_prompt_caching_apis()
    assert figures["note"] and figures["anthropic"]["as_of"] and figures["openai"]["source"]
    engine = AnthropicAPI()
    assert (engine.ttl_s, engine.min_cacheable_tokens, engine.max_breakpoints) == (300, 1024, 4)
    assert (engine.write_multiplier, engine.read_multiplier) == (1.25, 0.1)
    assert AnthropicAPI(ttl_s=3600).write_multiplier == 2.0


def test_anthropic_below_minimum_caches_nothing():
    usage = AnthropicAPI().serve(run(0, 500)).detail  # 500 < 1024: no error, no caching
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (0, 0)
    assert usage["input_tokens"] == 500


def test_anthropic_breakpoint_hit_reads_the_prefix():
    engine = AnthropicAPI()
    first = engine.serve(run(0, 2000), breakpoints=[1500], t_s=0)
    # Writes the 1500-token prefix; the 500 tokens after the breakpoint are plain input.
    assert [
        first.detail[k]
        for k in ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens")
    ] == [0, 1500, 500]
    second = engine.serve(run(0, 1500) + run(5000, 5300), breakpoints=[1500], t_s=10)
    assert [
        second.detail[k]
        for k in ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens")
    ] == [1500, 0, 300]
    assert (second.cached, second.computed) == (1500, 300)


def test_anthropic_ttl_expiry_and_refresh():
    prompt = run(0, 2000)
    engine = AnthropicAPI()
    engine.serve(prompt, t_s=0)  # written, expires at 300
    assert engine.serve(prompt, t_s=299).cached == 2000  # hit: refreshed to expire at 599
    assert engine.serve(prompt, t_s=598).cached == 2000  # only alive thanks to the refresh
    assert engine.serve(prompt, t_s=898.5).cached == 0  # 598 + 300 = 898 < 898.5: expired
    engine.reset()
    engine.serve(prompt, t_s=0)
    missed = engine.serve(prompt, t_s=301)  # never refreshed: a miss, written again
    assert (missed.cached, missed.detail["cache_creation_input_tokens"]) == (0, 2000)


def test_anthropic_cost_uses_the_multipliers():
    engine = AnthropicAPI()
    write = engine.serve(run(0, 2000), breakpoints=[1500], t_s=0)
    read = engine.serve(run(0, 1500) + run(5000, 5300), breakpoints=[1500], t_s=10)
    # Sonnet 4.5 at $3/MTok: (1500 x 1.25 + 500) x 3e-6 = $0.007125;
    # (1500 x 0.1 + 300) x 3e-6 = $0.00135, against 1800 x 3e-6 = $0.0054 uncached.
    assert engine.cost_usd(write, 3.0) == pytest.approx(0.007125)
    assert engine.cost_usd(read, 3.0) == pytest.approx(0.00135)
    one_hour = AnthropicAPI(ttl_s=3600)
    assert one_hour.cost_usd(one_hour.serve(run(0, 2000), breakpoints=[1500]), 3.0) == (
        pytest.approx((1500 * 2.0 + 500) * 3e-6)
    )
    with pytest.raises(ValueError, match="AnthropicAPI"):
        engine.cost_usd(VllmPrefixCache().serve(run(0, 10)), 3.0)


def test_anthropic_rejects_bad_breakpoints():
    engine = AnthropicAPI()
    with pytest.raises(ValueError, match="at most 4"):
        engine.serve(run(0, 5000), breakpoints=[1000, 2000, 3000, 4000, 5000])
    with pytest.raises(ValueError, match="prompt length"):
        engine.serve(run(0, 5000), breakpoints=[6000])
    assert engine.serve(run(0, 5000), breakpoints=[]).detail["input_tokens"] == 5000


def test_anthropic_lookback_stops_after_lookback_blocks_positions():
    def warmed(lookback_blocks):
        engine = AnthropicAPI(min_cacheable_tokens=0, lookback_blocks=lookback_blocks)
        for n, t_s in ((100, 0), (200, 1), (300, 2)):
            engine.serve(run(0, n), t_s=t_s)  # entries at 100, 200, 300 (expire ~302)
        engine.serve(run(0, 100), t_s=250)  # keeps only the 100 entry alive (to 550)
        return engine

    # At t=400 the breakpoint at 400 looks back past 300 and 200 (expired) ...
    assert warmed(2).serve(run(0, 400), t_s=400).cached == 0  # ... and stops after 2
    assert warmed(3).serve(run(0, 400), t_s=400).cached == 100  # the third is live
    # A second breakpoint at the end of the stable part finds it despite the limit.
    assert warmed(2).serve(run(0, 400), breakpoints=[100, 400], t_s=400).cached == 100


# ---------------------------------------------------------------- engines side by side


def test_append_only_history_agrees_across_engines():
    """Each prompt extends the previous one; nothing is evicted.

    llama.cpp (1 slot), SGLang and Anthropic (one breakpoint at the end, no minimum) all reuse
    the previous prompt. They differ only on an exact repeat: llama.cpp and SGLang always compute
    the last token (n - 1 cached), Anthropic reads all n. vLLM reuses the same prefix rounded down
    to full 16-token blocks, with at most n - 1 tokens, i.e. floor(llama.cpp's count / 16) * 16.
    """
    base = run(0, 230)
    prompts = [base[:n] for n in (40, 90, 150, 230, 230)]  # the last is an exact repeat
    llama = cached(simulate(LlamaCppServer(), prompts))
    sglang = cached(simulate(SGLangRadixCache(), prompts))
    anthropic = cached(simulate(AnthropicAPI(min_cacheable_tokens=0), prompts))
    vllm = cached(simulate(VllmPrefixCache(), prompts))
    assert llama == sglang == [0, 40, 90, 150, 229]
    assert anthropic == [0, 40, 90, 150, 230]
    assert vllm == [c // 16 * 16 for c in llama] == [0, 32, 80, 144, 224]


def test_changing_token_at_position_10_caps_reuse_for_every_engine():
    # A 500-token prompt whose token 10 changes on every request, like the cch= value.
    prompts = [run(0, 10) + (20_000 + i,) + run(100, 589) for i in range(4)]
    engines = [
        LlamaCppServer(),
        SGLangRadixCache(),
        VllmPrefixCache(),
        AnthropicAPI(min_cacheable_tokens=0),
    ]
    results = {e.name: cached(simulate(e, prompts)) for e in engines}
    assert results["llamacpp"] == results["sglang"] == [0, 10, 10, 10]  # tokens 0..9 only
    assert results["vllm"] == [0, 0, 0, 0]  # block 0 (tokens 0..15) holds the change
    assert results["anthropic"] == [0, 0, 0, 0]  # no entry is a prefix: 500 written each time
    # With the changing token removed, the same prompts are almost fully reused.
    stable = [run(0, 10) + run(100, 590)] * 2
    for engine in engines:
        engine.reset()
    fixed = {e.name: simulate(e, stable)[1].cached for e in engines}
    assert fixed == {"llamacpp": 499, "sglang": 499, "vllm": 496, "anthropic": 500}


# ---------------------------------------------------------------- replies


def test_replies_are_kept_but_the_last_sampled_token():
    """Request 1 is 100 tokens; the engine generates a 20-token reply, the last being the
    end-of-turn token that stopped generation (never fed back, so no engine holds its KV).
    Request 2 carries request 1, the reply and 50 new tokens (170 tokens).

    llama.cpp and SGLang keep 100 + 19 = 119 tokens and reuse them all. vLLM keeps the full
    16-token blocks of those 119 tokens: 7 blocks, 112 tokens. With the reply ignored they reuse
    the prompt only: 100, 100 and 6 blocks (96). The Anthropic-style cache reads its entry at the
    end of request 1 (100 tokens) either way: a reply is cached only when a request carries it.
    """
    prompt, reply = run(0, 100), run(500, 520)
    requests = [prompt, prompt + reply + run(600, 650)]
    engines = [
        LlamaCppServer(),
        SGLangRadixCache(),
        VllmPrefixCache(),
        AnthropicAPI(min_cacheable_tokens=0),
    ]
    kept = {e.name: simulate(e, requests, generated=[reply, ()])[1].cached for e in engines}
    assert kept == {"llamacpp": 119, "sglang": 119, "vllm": 112, "anthropic": 100}
    for engine in engines:
        engine.reset()
    ignored = {e.name: simulate(e, requests)[1].cached for e in engines}
    assert ignored == {"llamacpp": 100, "sglang": 100, "vllm": 96, "anthropic": 100}


def test_vllm_caches_the_blocks_filled_while_decoding():
    # A 30-token prompt fills one 16-token block; 19 kept reply tokens bring it to 49: 3 blocks.
    engine = VllmPrefixCache()
    prompt, reply = run(0, 30), run(100, 120)
    assert engine.serve(prompt, generated=reply).detail["generated_kept"] == 19
    assert len(engine.free_queue) == 3
    # The next request diverges inside the reply, at token 40: blocks 0 and 1 (32 tokens) hit.
    follow = prompt + reply[:10] + run(900, 950)
    assert engine.serve(follow).cached == 32


def test_a_reply_a_later_request_does_not_carry_is_not_reused():
    # The client edited the reply (or the model's output re-tokenized differently): reuse stops
    # where the held reply and the carried one differ, as for any other prompt change.
    for engine in (LlamaCppServer(), SGLangRadixCache()):
        engine.serve(run(0, 100), generated=run(500, 520))
        assert engine.serve(run(0, 100) + run(500, 505) + run(700, 760)).cached == 105
    sglang = SGLangRadixCache(capacity_tokens=150)
    sglang.serve(run(0, 100), generated=run(500, 520))
    assert sglang.tree_tokens == 119
    with pytest.raises(ValueError, match="prompt and reply"):
        SGLangRadixCache(capacity_tokens=110).serve(run(0, 100), generated=run(500, 520))
