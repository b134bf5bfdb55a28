"""Near-duplicate search over perceptual hashes without comparing every pair.

Pigeonhole (multi-index hashing): split the hash into `t + 1` blocks; two hashes within `t` bits
agree exactly on at least one block. So each kept hash is filed under its blocks, and a new hash is
compared only with the kept hashes that share a block: near-linear for real data, exact by
construction (no pair within `t` bits is missed).
"""

from __future__ import annotations

from collections.abc import Sequence


def near_duplicates(hashes: Sequence[str], max_hamming: int) -> list[tuple[int, int, int]]:
    """Greedy in order: (row, the kept row it is within `max_hamming` bits of, the distance).

    A row that duplicates nothing kept is kept itself, so the first of a cluster always wins.
    """
    if not hashes:
        return []
    values = [int(h, 16) for h in hashes]
    nbits = 4 * max(len(h) for h in hashes)
    if max_hamming + 1 > nbits:  # every pair is within the threshold: the first row wins
        return [(i, 0, (values[i] ^ values[0]).bit_count()) for i in range(1, len(values))]
    n_blocks = max_hamming + 1
    bounds = [nbits * b // n_blocks for b in range(n_blocks + 1)]
    masks = [((1 << (hi - lo)) - 1, lo) for lo, hi in zip(bounds, bounds[1:])]
    tables: list[dict[int, list[int]]] = [{} for _ in masks]
    hits = []
    for i, value in enumerate(values):
        keys = [(value >> shift) & mask for mask, shift in masks]
        candidates = {c for table, key in zip(tables, keys) for c in table.get(key, ())}
        best, best_d = -1, max_hamming + 1
        for c in sorted(candidates):
            d = (value ^ values[c]).bit_count()
            if d < best_d:
                best, best_d = c, d
        if best >= 0:
            hits.append((i, best, best_d))
            continue
        for table, key in zip(tables, keys):
            table.setdefault(key, []).append(i)
    return hits
