"""Model llama.cpp's `llama-server` prompt reuse: slots, LCP slot choice and the RAM prompt cache.

Rules from ggml-org/llama.cpp `tools/server/server-context.cpp` (`get_available_slot`; the
`[TAG_PROMPT_LOGITS]` step of `update_slots`; in `update_slots`, a generating slot's
`slot.prompt.tokens.push_back(slot.sampled)` before each decode step, and the slot's release when
`process_token` returns false), `tools/server/server-task.cpp` (`server_prompt_cache::alloc`,
`load`, `update`) and `tools/server/server.cpp` (`-np` auto: `n_parallel = 4`, `kv_unified`).

Simplified: the model defaults to one slot; `llama-server`'s default `-np` auto gives 4 slots on
a unified KV cache, and with one client sending one request at a time the LCP-similarity slot
choice sends every turn of a conversation back to the slot that holds it, which one slot
reproduces. The RAM cache is unbounded in tokens unless `cache_ram_max_tokens` is set (the server
caps it in MiB, 8192 by default); `--cache-reuse` chunk shifting is left out.
"""

from __future__ import annotations

from labkit.engines.base import LocalEngine, ServeResult, Tokens, common_prefix_len


class LlamaCppServer(LocalEngine):
    """llama.cpp `llama-server` with `cache_prompt` on: slots, LCP slot choice, RAM prompt cache.

    - Slot choice: among non-empty slots, the one whose common prefix with the prompt covers the
      largest share `sim` of the prompt, if `sim > slot_prompt_similarity` (0 turns this off);
      else the least recently used slot (ties go to the highest slot id, as the server's `<=`).
    - RAM cache (`--cache-ram`): only when the slot was chosen by LRU, or by similarity with
      `f_keep` (common prefix / slot length) < 0.5, the slot's prompt is saved (skipped if a saved
      prompt already contains it; saved prompts it contains are dropped), then the saved prompt
      that beats the slot on both `f_keep` and `sim` (with its own `f_keep` >= 0.25) is moved
      into the slot. Oldest saved prompts go past `cache_ram_max_tokens`, keeping at least one
      (the server caps in MiB, default 8192; here in tokens).
    - Reuse (`cache_n`): the common prefix with the slot, minus one token if it is the whole
      prompt (the last token is always evaluated to get logits).
    - After the request the slot holds the prompt and the `generated` tokens but the last one
      (the sampled token that ended generation is never fed back). `generated=()` keeps the
      prompt only, as with `--replies ignored`.
    """

    name = "llamacpp"
    label = "llama.cpp server"

    def __init__(
        self,
        n_slots: int = 1,
        cache_ram: bool = True,
        slot_prompt_similarity: float = 0.1,
        cache_ram_max_tokens: int | None = None,
    ):
        if n_slots < 1:
            raise ValueError("n_slots must be at least 1 (llama-server --parallel).")
        self.n_slots, self.cache_ram = n_slots, cache_ram
        self.slot_prompt_similarity = slot_prompt_similarity
        self.cache_ram_max_tokens = cache_ram_max_tokens
        self.reset()

    def reset(self) -> None:
        """Empty every slot and the RAM prompt cache."""
        self.slots: list[Tokens] = [() for _ in range(self.n_slots)]
        self.ram: list[Tokens] = []  # saved prompts, oldest first
        self._t_last_used = [-1] * self.n_slots
        self._n_served = 0

    def _serve(self, tokens: Tokens, kept: Tokens) -> ServeResult:
        """Serve one prompt, then keep it and `kept` (`generated[:-1]`) in the slot."""
        slot, selected_by, update_cache = self._select_slot(tokens)
        n_restored = 0
        if update_cache and self.cache_ram:
            self._ram_save(self.slots[slot])
            n_restored = self._ram_load(slot, tokens)
            self._ram_trim()
        n = len(tokens)
        cache_n = common_prefix_len(self.slots[slot], tokens)
        if cache_n == n:
            cache_n -= 1  # evaluate at least one token to get logits
        self.slots[slot] = tokens + kept
        self._t_last_used[slot], self._n_served = self._n_served, self._n_served + 1
        detail = {
            "cache_n": cache_n,
            "prompt_n": n - cache_n,
            "slot": slot,
            "selected_by": selected_by,
            "n_restored": n_restored,
            "ram_prompts": len(self.ram),
            "generated_kept": len(kept),
        }
        return ServeResult(n, cache_n, n - cache_n, detail)

    def _select_slot(self, tokens: Tokens) -> tuple[int, str, bool]:
        best, lcp_best = None, 0
        if self.slot_prompt_similarity != 0:
            for i, held in enumerate(self.slots):  # empty slots are skipped: lcp is 0
                lcp = common_prefix_len(held, tokens)
                if lcp > lcp_best and lcp / len(tokens) > self.slot_prompt_similarity:
                    best, lcp_best = i, lcp
        if best is not None:
            return best, "lcp_similarity", lcp_best / len(self.slots[best]) < 0.5
        lru = 0
        for i, t_last in enumerate(self._t_last_used):
            if t_last <= self._t_last_used[lru]:
                lru = i
        return lru, "lru", True

    def _ram_save(self, prompt: Tokens) -> None:
        if not prompt or any(common_prefix_len(s, prompt) == len(prompt) for s in self.ram):
            return
        self.ram = [s for s in self.ram if common_prefix_len(s, prompt) < len(s)]
        self.ram.append(prompt)

    def _ram_load(self, slot: int, tokens: Tokens) -> int:
        held = self.slots[slot]
        lcp = common_prefix_len(held, tokens)
        f_keep_best = lcp / len(held) if held else -1.0  # empty slot: any saved prompt may win
        sim_best, best = lcp / len(tokens), None
        for i, saved in enumerate(self.ram):
            lcp = common_prefix_len(saved, tokens)
            f_keep, sim = lcp / len(saved), lcp / len(tokens)
            if f_keep >= 0.25 and f_keep_best < f_keep and sim_best < sim:
                best, f_keep_best, sim_best = i, f_keep, sim
        if best is None:
            return 0
        self.slots[slot] = self.ram.pop(best)
        return len(self.slots[slot])

    def _ram_trim(self) -> None:
        limit = self.cache_ram_max_tokens
        while limit is not None and len(self.ram) > 1 and sum(map(len, self.ram)) > limit:
            self.ram.pop(0)
