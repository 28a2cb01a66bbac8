"""Per-query candidate sets: the paper's protocol as it is usually described, without adaptation.

Each query gets its own candidate set (its gold tool plus distractors from its group, ``sd``, from
the whole pool, ``cd``, or the dataset's own list, ``own``) and is scored alone. The dataset cards'
difficulty tables and the LLM rows' prompts use it. Scores come through the same ``ScoreFn`` as the
task protocols of ``mta_jax.run_eval`` (a candidate set is a task of one query), so BM25, fixed
matrices and random scores plug in unchanged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mta_jax.data import ToolDataset
from mta_jax.run_eval import ScoreFn



def candidate_batch(query_rows, cands: np.ndarray) -> dict:
  """Per-query candidate sets as a ``ScoreFn`` input: one task per query (no support)."""
  rows = np.asarray(query_rows, np.int32)
  return {"query_rows": rows[:, None], "tool_ids": np.asarray(cands, np.int32)}


def score_candidates(score: ScoreFn, query_rows, cands: np.ndarray) -> np.ndarray:
  """(M, n) scores of each query against its own candidates (index-only score functions:
  BM25, fixed matrices, random)."""
  return np.asarray(score(candidate_batch(query_rows, cands)))[:, 0, :]


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
    accs.append(accuracy(score_candidates(score, query_rows, cands), cands, labels, rng))
  return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs}
