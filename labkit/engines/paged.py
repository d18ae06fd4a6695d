"""Model vLLM's and SGLang's prefix caches: chained block hashes, and a radix tree of token runs.

- vLLM (vllm-project/vllm): `vllm/v1/core/kv_cache_manager.py` (`get_computed_blocks`;
  `allocate_slots`, which caches the full blocks of `min(total_computed_tokens + num_new_tokens,
  request.num_tokens)` tokens, output included), `kv_cache_utils.py` (`hash_block_tokens`),
  `single_type_kv_cache_manager.py` (`free`), `block_pool.py`, and
  `docs/design/prefix_caching.md`.
- SGLang (sgl-project/sglang): `python/sglang/srt/mem_cache/radix_cache.py` (`match_prefix`,
  `_split_node`, `_insert_helper`, `evict`; `cache_finished_req`, which inserts
  `(req.origin_input_ids + req.output_ids)[:-1]`) and `managers/schedule_batch.py`
  (`Req.adjust_max_prefix_ids`).

Both keep what was generated but the last sampled token (never fed back): `generated` is the
reply through its end-of-turn token (`labkit.engines.replies`). No eviction happens unless a
capacity is set (`capacity_blocks`, `capacity_tokens`): by default the pool is unbounded.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from labkit.engines.base import LocalEngine, ServeResult, Tokens, common_prefix_len, token_bytes


def block_hashes(tokens: Sequence[int], block_size: int) -> list[bytes]:
    """Return the chained hash of each full block: block i's hash covers block i-1's hash."""
    hashes, parent = [], b"labkit-none-hash"  # vLLM seeds block 0 with a fixed NONE_HASH
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hashlib.sha256(parent + token_bytes(tokens[start : start + block_size])).digest()
        hashes.append(parent)
    return hashes


class VllmPrefixCache(LocalEngine):
    """vLLM automatic prefix caching: chained hashes of full blocks, LRU over free blocks.

    - Reuse: the leading full blocks whose chained hash is cached, at most (n - 1) // block_size
      of them (`max_cache_hit_length = num_tokens - 1`, and hits are whole blocks, so a fully
      cached prompt recomputes its whole last block).
    - After the request every full block of the prompt and of `generated[:-1]` (the blocks filled
      while decoding) is cached. Blocks are freed last block first, so under pressure a prompt's
      tail is evicted before its head. `capacity_blocks` is the pool size (None = unbounded); a
      request needs a block for every 16 (block_size) tokens it holds at once.
    Simplified: one block per hash (vLLM can briefly hold two blocks with the same hash).
    """

    name = "vllm"
    label = "vLLM"

    def __init__(self, block_size: int = 16, capacity_blocks: int | None = None):
        if block_size < 1 or (capacity_blocks is not None and capacity_blocks < 1):
            raise ValueError("block_size and capacity_blocks must be positive.")
        self.block_size, self.capacity_blocks = block_size, capacity_blocks
        self.reset()

    def reset(self) -> None:
        """Drop every cached block."""
        self.free_queue: OrderedDict[bytes, None] = OrderedDict()  # cached free blocks, LRU first

    def _serve(self, tokens: Tokens, kept: Tokens) -> ServeResult:
        """Serve one prompt and cache the full blocks of it and `kept` (`generated[:-1]`)."""
        held = tokens + kept
        n, size = len(tokens), self.block_size
        needed = -(-len(held) // size)
        if self.capacity_blocks is not None and needed > self.capacity_blocks:
            raise ValueError(
                f"The request (prompt and reply) needs {needed} blocks of {size} tokens but the "
                f"pool holds {self.capacity_blocks}: raise capacity_blocks."
            )
        hashes = block_hashes(held, size)
        hits = 0
        while hits < (n - 1) // size and hashes[hits] in self.free_queue:
            hits += 1
        for h in hashes[:hits]:
            del self.free_queue[h]  # in use by this request: cannot be evicted
        if self.capacity_blocks is not None:
            empty = self.capacity_blocks - hits - len(self.free_queue)
            for _ in range(max(0, needed - hits - empty)):
                self.free_queue.popitem(last=False)  # evict the least recently used block
        for h in reversed(hashes):  # free the tail first: the head ends most recently used
            self.free_queue[h] = None
            self.free_queue.move_to_end(h)
        cached = hits * size
        detail = {"num_cached_blocks": hits, "block_size": size, "generated_kept": len(held) - n}
        return ServeResult(n, cached, n - cached, detail)


@dataclass(eq=False)
class _Node:
    key: Tokens  # the token run this node adds to its parent's prefix
    parent: _Node | None
    last_access: int
    node_id: int
    children: dict = field(default_factory=dict)
    lock_ref: int = 0


class SGLangRadixCache(LocalEngine):
    """SGLang RadixAttention: a radix tree of token runs, LRU eviction of whole leaves.

    - Reuse: the longest tree path matching the prompt's first n - 1 tokens (at least one token
      is computed), cut to a multiple of `page_size`; a match ending inside a node splits it.
    - After the request the prompt and `generated[:-1]` (cut to whole pages) are inserted. When
      the pool (`capacity_tokens`, None = unbounded) lacks room for the tokens the request adds,
      the least recently used unlocked leaves are evicted whole; a parent left childless becomes
      a leaf.
    """

    name = "sglang"
    label = "SGLang"

    def __init__(self, capacity_tokens: int | None = None, page_size: int = 1):
        if page_size < 1 or (capacity_tokens is not None and capacity_tokens < 1):
            raise ValueError("page_size and capacity_tokens must be positive.")
        self.capacity_tokens, self.page_size = capacity_tokens, page_size
        self.reset()

    def reset(self) -> None:
        """Empty the tree."""
        self._clock, self._ids = itertools.count(1), itertools.count()
        self.root = _Node((), None, 0, next(self._ids), lock_ref=1)
        self.tree_tokens = 0

    def _serve(self, tokens: Tokens, kept: Tokens) -> ServeResult:
        """Serve one prompt, then insert it and `kept` (`generated[:-1]`) into the tree."""
        held = tokens + kept
        n, page = len(tokens), self.page_size
        if self.capacity_tokens is not None and len(held) > self.capacity_tokens:
            raise ValueError(
                f"The request (prompt and reply) holds {len(held)} tokens but the pool holds "
                f"{self.capacity_tokens}: raise capacity_tokens."
            )
        matched, last = self._match(tokens[: (n - 1) // page * page])
        self._lock(last, +1)
        if self.capacity_tokens is not None:
            self._evict(len(held) - matched - (self.capacity_tokens - self.tree_tokens))
        self._insert(held[: len(held) // page * page])
        self._lock(last, -1)
        detail = {"matched_prefix_len": matched, "tree_tokens": self.tree_tokens}
        detail["generated_kept"] = len(held) - n
        return ServeResult(n, matched, n - matched, detail)

    def node_runs(self) -> list[Tokens]:
        """Return every node's token run, depth first, children in insertion order."""
        runs, stack = [], list(reversed(self.root.children.values()))
        while stack:
            node = stack.pop()
            runs.append(node.key)
            stack.extend(reversed(node.children.values()))
        return runs

    def _child_key(self, key: Tokens) -> Tokens:
        return key[: self.page_size]

    def _match_len(self, a: Tokens, b: Tokens) -> int:
        lcp = common_prefix_len(a, b)
        return lcp - lcp % self.page_size

    def _new_node(self, key: Tokens, parent: _Node) -> _Node:
        node = _Node(key, parent, next(self._clock), next(self._ids))
        parent.children[self._child_key(key)] = node
        return node

    def _split(self, child: _Node, split_len: int) -> _Node:
        new = self._new_node(child.key[:split_len], child.parent)  # replaces child under parent
        new.lock_ref = child.lock_ref
        child.key, child.parent = child.key[split_len:], new
        new.children[self._child_key(child.key)] = child
        return new

    def _match(self, key: Tokens) -> tuple[int, _Node]:
        node, matched, now = self.root, 0, next(self._clock)
        while key and self._child_key(key) in node.children:
            child = node.children[self._child_key(key)]
            child.last_access = now
            run = self._match_len(child.key, key)
            matched += run
            if run < len(child.key):
                return matched, self._split(child, run)
            node, key = child, key[run:]
        return matched, node

    def _insert(self, key: Tokens) -> None:
        node, now = self.root, next(self._clock)
        while key and self._child_key(key) in node.children:
            node = node.children[self._child_key(key)]
            node.last_access = now
            run = self._match_len(node.key, key)
            if run < len(node.key):
                node = self._split(node, run)
            key = key[run:]
        if key:
            self._new_node(key, node)
            self.tree_tokens += len(key)

    def _lock(self, node: _Node, delta: int) -> None:
        while node is not self.root:
            node.lock_ref += delta
            node = node.parent

    def _evict(self, num_tokens: int) -> None:
        heap, stack = [], [self.root]
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            if not node.children and node.lock_ref == 0:
                heap.append((node.last_access, node.node_id, node))
        heapq.heapify(heap)
        while num_tokens > 0 and heap:
            _, _, leaf = heapq.heappop(heap)
            parent = leaf.parent
            del parent.children[self._child_key(leaf.key)]
            num_tokens -= len(leaf.key)
            self.tree_tokens -= len(leaf.key)
            if not parent.children and parent.lock_ref == 0:
                heapq.heappush(heap, (parent.last_access, parent.node_id, parent))
