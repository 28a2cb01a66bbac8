"""Per-query results in eval.json, and the paired bootstrap between two rows.

Two rows evaluated with the same episode seeds are scored on the same tasks (``run_eval``: the
tasks are a function of the dataset, the protocol and the seed only), so their difference can
be tested query by query. ``run_eval.protocol`` (with ``EvalSpec.per_query``) stores, per
protocol, the scored query rows once (as ``[start, stop)`` ranges of the split's query rows, in
dataset order) and, per query, how many episode seeds it was right in (``hits``) and how many it
was scored in (``scored``: one number when every query was scored in every seed, the 0-shot
case; K-shot leaves a query out of the seeds where it was drawn as a labelled example), each a
string of one base-62 digit per query: 2,446 MTA-Tools queries cost 2.4 kB per 0-shot protocol.
The full pool stores each query's rank of its gold tool (space-separated).

``paired_bootstrap`` resamples queries (with replacement, a seeded generator: deterministic)
and gives the 95% percentile interval of the mean per-query difference.
"""

from __future__ import annotations

import string

import numpy as np

_DIGITS = string.digits + string.ascii_lowercase + string.ascii_uppercase  # base 62


def encode_rows(rows) -> list[list[int]]:
  """Sorted query rows -> ``[start, stop)`` ranges."""
  rows = np.asarray(rows, np.int64)
  if not len(rows):
    return []
  breaks = np.flatnonzero(np.diff(rows) != 1) + 1
  starts = np.concatenate([[0], breaks])
  stops = np.concatenate([breaks, [len(rows)]])
  return [[int(rows[a]), int(rows[b - 1]) + 1] for a, b in zip(starts, stops)]


def decode_rows(ranges) -> np.ndarray:
  if not ranges:
    return np.zeros((0,), np.int64)
  return np.concatenate([np.arange(a, b) for a, b in ranges]).astype(np.int64)


def encode_counts(counts):
  """Small non-negative counts -> one base-62 digit each (a list if any is over 61)."""
  counts = np.asarray(counts, np.int64)
  if len(counts) and (counts.min() < 0 or counts.max() >= len(_DIGITS)):
    return [int(c) for c in counts]
  return "".join(_DIGITS[c] for c in counts)


def decode_counts(s) -> np.ndarray:
  if isinstance(s, list):
    return np.asarray(s, np.int64)
  return np.array([_DIGITS.index(ch) for ch in s], np.int64)


def per_query_block(universe: np.ndarray, seed_rows: list[np.ndarray],
                    seed_hits: list[np.ndarray]) -> dict:
  """The eval.json block of one protocol: ``universe`` (sorted rows), per seed the scored rows
  and their 0/1 hits."""
  pos = {int(r): i for i, r in enumerate(universe)}
  hits = np.zeros(len(universe), np.int64)
  scored = np.zeros(len(universe), np.int64)
  for rows, h in zip(seed_rows, seed_hits):
    idx = np.array([pos[int(r)] for r in rows], np.int64)
    np.add.at(scored, idx, 1)
    np.add.at(hits, idx, np.asarray(h, np.int64))
  uniform = len(scored) and (scored == scored[0]).all()
  return {"rows": encode_rows(universe), "hits": encode_counts(hits),
          "scored": int(scored[0]) if uniform else encode_counts(scored)}


def decode_block(block: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(rows, hits, scored) of a per-query block (``scored`` expanded per query)."""
  rows = decode_rows(block["rows"])
  hits = decode_counts(block["hits"])
  scored = block["scored"]
  scored = (np.full(len(rows), scored, np.int64) if isinstance(scored, int)
            else decode_counts(scored))
  return rows, hits, scored


def per_query_means(block: dict) -> dict[int, float]:
  """{query row: fraction of the seeds it was scored in where it was right}."""
  rows, hits, scored = decode_block(block)
  keep = scored > 0
  return dict(zip(rows[keep].tolist(), (hits[keep] / scored[keep]).tolist()))


def ranks_block(rows: np.ndarray, ranks: np.ndarray) -> dict:
  order = np.argsort(rows, kind="stable")
  return {"rows": encode_rows(np.asarray(rows)[order]),
          "ranks": " ".join(str(int(r)) for r in np.asarray(ranks)[order])}


def rank_values(block: dict, metric: str) -> dict[int, float]:
  """{query row: top1 | top3 | mrr of its gold tool's rank} from a full-pool block."""
  rows = decode_rows(block["rows"])
  ranks = np.array(block["ranks"].split(), np.float64)
  vals = {"top1": ranks == 1, "top3": ranks <= 3, "mrr": 1.0 / ranks}[metric]
  return dict(zip(rows.tolist(), np.asarray(vals, np.float64).tolist()))


def paired_bootstrap(a, b, n_boot: int = 10_000, seed: int = 0, level: float = 0.95,
                     chunk: int = 500) -> dict:
  """Mean of ``a``, of ``b`` and of ``a - b`` over paired items, with the ``level`` percentile
  interval of the mean difference over ``n_boot`` resamplings of the items (seeded)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f"paired values must be two 1-D arrays of one length, got {a.shape}, "
                     f"{b.shape}")
  n = len(a)
  if not n:
    raise ValueError("no paired items")
  d = a - b
  rng = np.random.default_rng(seed)
  means = []
  for s in range(0, n_boot, chunk):
    idx = rng.integers(0, n, size=(min(chunk, n_boot - s), n))
    means.append(d[idx].mean(axis=1))
  means = np.concatenate(means)
  lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
  return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "diff": float(d.mean()),
          "lo": float(lo), "hi": float(hi), "n": int(n), "n_boot": int(n_boot),
          "level": float(level)}


def pair_values(va: list[dict[int, float]], vb: list[dict[int, float]]):
  """Per-query values of two rows (each a list over its runs, averaged over the runs) on the
  queries every run of both scored: (rows, a, b)."""
  common = set(va[0])
  for v in va[1:] + vb:
    common &= set(v)
  rows = np.array(sorted(common), np.int64)
  a = np.mean([[v[r] for r in rows] for v in va], axis=0) if len(rows) else np.zeros(0)
  b = np.mean([[v[r] for r in rows] for v in vb], axis=0) if len(rows) else np.zeros(0)
  return rows, a, b
