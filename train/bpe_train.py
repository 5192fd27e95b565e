"""Training a byte-level BPE: count the pre-tokens of a text, then learn merges from the counts.

Pair counts are kept up to date incrementally: a merge only touches the distinct words that contain the
pair (found through an index pair -> words), and in each of them only the pairs next to where it merged,
so its cost grows with the pair's occurrences, never with the length of the words it sits in. The best
pair comes from a max-heap with lazy deletion. Ties between equally frequent pairs go to the smallest
(left id, right id), so the same counts always give the same merges, in whatever order the words come.
"""
import heapq
from collections import Counter

from train.pretokenize import MAX_PIECE_CHARS, split_batch

BATCH_CHARS = 1 << 20  # text is split in batches of about this many characters (memory stays bounded)


def count_pieces(texts, max_piece=MAX_PIECE_CHARS):
    """Counter of the pre-tokens of an iterable of strings (each split on its own), what BPE trains on."""
    counts = Counter()
    for batch in batches(((t, False) for t in texts), BATCH_CHARS):
        counts.update(split_batch([t for t, _ in batch], max_piece)[0])
    return counts


def batches(pieces, size):
    """Lists of consecutive (text, end) pieces holding about `size` characters each (a longer text alone)."""
    batch, n = [], 0
    for piece in pieces:
        batch.append(piece)
        n += len(piece[0])
        if n >= size:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def merge(ids, pair, new):
    """(ids with every non-overlapping occurrence of `pair`, left to right, replaced by `new`, the positions
    in `ids` where those occurrences start). The search for the pair's first id runs in C (list.index)."""
    a, b = pair
    out, sites = [], []
    i, n = 0, len(ids)
    while True:
        try:
            j = ids.index(a, i)
        except ValueError:
            break
        if j + 1 < n and ids[j + 1] == b:
            out.extend(ids[i:j])
            out.append(new)
            sites.append(j)
            i = j + 2
        else:
            out.extend(ids[i:j + 1])
            i = j + 1
    if not sites:
        return ids, sites
    out.extend(ids[i:])
    return out, sites


def learn_merges(counts, n_merges, min_pair_count=2):
    """Up to n_merges merges (pairs of ids; the r-th makes id 256 + r) from {pre-token: count}; fewer when
    no pair occurs min_pair_count times any more."""
    words = [list(w.encode("utf-8", "surrogatepass")) for w in counts]
    freqs = list(counts.values())
    pair_counts = Counter()
    where = {}  # pair -> indices of words that contain (or once contained) it
    for wi, w in enumerate(words):
        f = freqs[wi]
        for p in zip(w, w[1:]):
            pair_counts[p] += f
            where.setdefault(p, set()).add(wi)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negc:
            continue  # stale entry: the pair's current count was pushed separately
        if count < min_pair_count:
            break
        new = 256 + len(merges)
        merges.append(pair)
        delta = Counter()
        for wi in where.pop(pair):
            w = words[wi]
            merged, sites = merge(w, pair, new)
            if not sites:
                continue  # the index is a superset: this word lost the pair in an earlier merge
            # Only the pairs next to a merge change: (x, a) (a, b) (b, y) become (x, new) (new, y).
            f, last_old, last_new = freqs[wi], len(w) - 2, len(merged) - 2
            for k in {k for i in sites for k in (i - 1, i, i + 1) if 0 <= k <= last_old}:
                delta[w[k], w[k + 1]] -= f
            for k in {k for j, i in enumerate(sites) for k in (i - j - 1, i - j) if 0 <= k <= last_new}:
                p = (merged[k], merged[k + 1])
                delta[p] += f
                where.setdefault(p, set()).add(wi)
            words[wi] = merged
        for p, d in delta.items():
            if d == 0:
                continue
            c = pair_counts[p] + d
            if c > 0:
                pair_counts[p] = c
                heapq.heappush(heap, (-c, p))
            else:
                del pair_counts[p]
        pair_counts.pop(pair, None)
    return merges
