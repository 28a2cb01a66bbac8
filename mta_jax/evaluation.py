"""The evaluation protocol: query-centred candidate episodes and ranking metrics.

The paper's protocol: for each test query, its gold tool plus 4 distractors, drawn from the gold
tool's own group (SD: same domain, API or hub) or from all tools (CD), the gold at a random
position; accuracy = top-1 over the candidates, repeated over 5 episode seeds. A benchmark's own
candidate list, where it has one, is a third protocol (``own``). Full-pool ranking (top-1,
top-3, MRR) scores every tool of the pool.

Everything here is numpy and deterministic per seed; scorers are plain callables
``score(query_rows, candidate_tools) -> scores`` so BM25, the zero-shot encoder and adapted
meta-learned models share one evaluator.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from mta_jax.data import ToolDataset

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def candidate_sets(rng: np.random.Generator, ds: ToolDataset, query_rows: Sequence[int],
                   mode: str, n_way: int = 5,
                   pool_tools: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Per query: (candidates (M, n_way) tool indices, -1 padded; label (M,) gold position).

  ``sd``: distractors from the gold tool's group; ``cd``: from all of ``pool_tools`` (default
  every tool of the dataset); ``own``: the query's own candidate list. Groups with fewer tools
  than ``n_way`` give smaller sets (padded with -1).
  """
  pool = np.asarray(pool_tools if pool_tools is not None else ds.tool_indices(), np.int32)
  groups = np.array([ds.group_ids[ds.tools[t].group] for t in pool])
  m = len(query_rows)
  width = n_way
  if mode == "own":
    width = max(len(ds.queries[r].candidates) for r in query_rows)
  cands = np.full((m, width), -1, np.int32)
  labels = np.zeros((m,), np.int32)
  for i, r in enumerate(query_rows):
    q = ds.queries[r]
    gold = q.tool
    if mode == "own":
      names = list(q.candidates)
      chosen = np.array([ds.tool_by_name[n].index for n in names], np.int32)
      if gold not in chosen:
        raise ValueError(f"query {q.id}: gold tool is not among its own candidates")
      chosen = chosen[rng.permutation(len(chosen))]
    else:
      if mode == "sd":
        others = pool[(groups == ds.group_ids[ds.tools[gold].group]) & (pool != gold)]
      elif mode == "cd":
        others = pool[pool != gold]
      else:
        raise ValueError(f"mode must be 'sd', 'cd' or 'own', got {mode!r}")
      k = min(n_way - 1, len(others))
      chosen = np.concatenate([[gold], rng.choice(others, size=k, replace=False)])
      chosen = chosen[rng.permutation(len(chosen))]
    cands[i, :len(chosen)] = chosen
    labels[i] = int(np.flatnonzero(chosen == gold)[0])
  return cands, labels


def accuracy(scores: np.ndarray, cands: np.ndarray, labels: np.ndarray,
             rng: np.random.Generator | None = None) -> float:
  """Top-1 accuracy; padded candidates never win; exact ties are broken at random."""
  s = np.where(cands >= 0, scores.astype(np.float64), -np.inf)
  if rng is not None:
    s = s + 1e-9 * rng.random(s.shape) * (cands >= 0)
  return float(np.mean(np.argmax(s, axis=1) == labels))


def episode_accuracy(score: ScoreFn, ds: ToolDataset, query_rows: Sequence[int], mode: str,
                     seeds: Sequence[int] = (0, 1, 2, 3, 4), n_way: int = 5,
                     pool_tools: Sequence[int] | None = None) -> dict:
  """Mean and std of top-1 accuracy over episode seeds (one episode per query per seed)."""
  accs = []
  for seed in seeds:
    rng = np.random.default_rng(seed)
    cands, labels = candidate_sets(rng, ds, query_rows, mode, n_way, pool_tools)
    accs.append(accuracy(score(np.asarray(query_rows), cands), cands, labels, rng))
  return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs}


def ranking_metrics(scores: np.ndarray, gold_cols: np.ndarray) -> dict:
  """Full-pool ranking: scores (M, T) over the pool's tools, gold column per query.

  Ties with the gold are broken uniformly at random *in expectation* (a tie is neither a win
  nor a loss): with g tools scored higher and t tied, the gold's position is uniform on
  g+1 .. g+t+1, and top-k and MRR are their expectations over that position.
  """
  gold = scores[np.arange(len(gold_cols)), gold_cols][:, None]
  greater = (scores > gold).sum(1)
  ties = (scores == gold).sum(1) - 1
  top = lambda k: np.clip((k - greater) / (ties + 1), 0.0, 1.0)
  mrr = np.array([np.mean(1.0 / np.arange(g + 1, g + t + 2)) for g, t in zip(greater, ties)])
  return {"top1": float(np.mean(top(1))), "top3": float(np.mean(top(3))),
          "mrr": float(np.mean(mrr))}


def matrix_scorer(query_emb: np.ndarray, tool_emb: np.ndarray) -> ScoreFn:
  """Scores from precomputed embeddings: rows of ``query_emb`` by query row, of ``tool_emb`` by
  tool index (padded candidates get 0 and are masked by ``accuracy``)."""
  def score(rows, cands):
    t = tool_emb[np.maximum(cands, 0)]
    return np.einsum("mh,mnh->mn", query_emb[rows], t)
  return score


def bm25_scorer(ds: ToolDataset) -> ScoreFn:
  """BM25 of the query against each candidate's document (corpus statistics: all tools)."""
  from mta_jax import bm25  # pylint: disable=import-outside-toplevel
  index = bm25.BM25([t.document() for t in ds.tools])
  cache: dict[int, np.ndarray] = {}

  def score(rows, cands):
    out = np.zeros(cands.shape, np.float64)
    for i, r in enumerate(rows):
      r = int(r)
      if r not in cache:
        cache[r] = index.scores(ds.queries[r].text)
      out[i] = cache[r][np.maximum(cands[i], 0)]
    return out
  return score


def random_scorer(seed: int = 0) -> ScoreFn:
  rng = np.random.default_rng(seed)
  return lambda rows, cands: rng.random(cands.shape)
