"""Evaluates a trained model or a baseline under every protocol of the paper, on unseen tools.

The unit of evaluation is a *task*: ``n_way`` candidate tools, adapted on once, scoring every
held-out query of its scored tools. Per seed, the scored tools (the split's unseen tools) are
shuffled and cut into groups of ``n_way`` (within a group for SD, across all for CD); a group
that comes up short is filled with distractors drawn at random from the distractor pool (same
group for SD), whose own queries are not scored. Each scored query is thus scored once per seed
against its gold tool and ``n_way - 1`` distractors from its group (SD) or anywhere (CD), as in
the paper's protocol (``mta_jax.evaluation``), while adaptation runs once per task instead of
once per query: 12 adapted episodes score MTA-Tools' 2,446 test queries.

Adaptation at test time (for models with an inner loop):
- ``0shot``: from the candidates' documentation views only (the paper's setting);
- ``k1``/``k5``: views plus K labelled queries per candidate, drawn from the other queries of
  the same tools; the scored queries never include them.

Full-pool ranking scores every scored query against all the split's tools (one episode adapted
on all their views): top-1, top-3, MRR. Scores are broken at random on exact ties.

Hard N-way tasks (modes ``hard5``, ``hard10``: each scored tool with its nearest tools by
documentation similarity, the same for every row) are built in ``mta_jax.hard_tasks`` and run
through ``protocol`` like SD and CD (``evaluate(..., neighbours=...)``). With
``EvalSpec.per_query``, each protocol also stores per-query hits (``mta_jax.paired``) for the
paired bootstrap of ``experiments/report.py --compare``.

A *score function* (``ScoreFn``, the one type for models and baselines) maps a batch of task
index dicts (``episodes.gather``'s input, episode axis first, plus ``tool_ids``/``query_rows``)
to (E, Q, N) scores; models and baselines differ only there. Index-only score functions (BM25,
fixed matrices, random) need only ``tool_ids`` and ``query_rows``, so the query-centred candidate
sets of the dataset cards (``mta_jax.per_query``) go through them too.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from mta_jax import bilevel, episodes, paired
from mta_jax.data import ToolDataset

ScoreFn = Callable[[dict], np.ndarray]
SHOTS = {"0shot": 0, "k1": 1, "k5": 5}
# The third word of each protocol's episode seed; SD and CD keep their original draws.
MODE_IDS = {"sd": 0, "cd": 1, "hard5": 2, "hard10": 3}


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  """What to evaluate: protocols, shots, seeds, sizes."""

  modes: tuple[str, ...] = ("sd", "cd")
  shots: tuple[str, ...] = ("0shot", "k1", "k5")
  seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
  n_way: int = 5
  n_views: int = 4
  batch: int = 8  # tasks per predict call (fixed, so predict compiles once per shape)
  full_pool: bool = True
  per_query: tuple[str, ...] = ()  # shots whose per-query hits (and full-pool ranks) are kept


@dataclasses.dataclass
class Split:
  """The tools a protocol scores, the tools distractors may come from, and the query rows.

  ``ranked_tools`` are the full-pool candidates: the split's own tools, including those without
  a query (None: ``scored_tools``)."""

  scored_tools: np.ndarray
  pool_tools: np.ndarray
  queries_by_tool: dict[int, np.ndarray]
  ranked_tools: np.ndarray | None = None


def split_for(ds: ToolDataset, split: str, distractors_from: tuple[str, ...] = ()) -> Split:
  """The unseen tools of ``split`` (all tools when the dataset has none in it: external
  benchmarks are zero-shot transfer) and their queries; ``distractors_from`` adds other splits'
  tools as distractors only (validation has 2 tools a domain: SD fills from train tools).

  Only tools with at least one query are scored; tools without one (364 of APIBench's 1,069,
  19 of ToolAlpaca's 94) are still candidates: distractors in 5-way tasks, ranked in the full
  pool."""
  own = ds.tool_indices(split)
  if not len(own):
    own = ds.tool_indices()
  pool = np.unique(np.concatenate([own] + [ds.tool_indices(s) for s in distractors_from]))
  by_tool: dict[int, list[int]] = {int(t): [] for t in pool}
  for i, q in enumerate(ds.queries):
    if q.tool in by_tool:
      by_tool[q.tool].append(i)
  scored = np.array([t for t in own if by_tool[int(t)]], np.int32)
  if not len(scored):
    raise ValueError(f"{ds.name}: no tool of split {split!r} has a query to score")
  return Split(scored, pool.astype(np.int32),
               {t: np.array(v, np.int32) for t, v in by_tool.items()}, own.astype(np.int32))


def _groups(ds: ToolDataset, tools: np.ndarray) -> np.ndarray:
  return np.array([ds.group_ids[ds.tools[t].group] for t in tools], np.int32)


def skip_reason(ds: ToolDataset, split: Split, mode: str, k_shot: int) -> str | None:
  """Why protocol (``mode``, ``k_shot``) cannot be measured on ``split``, or None if it can.

  K-shot needs each scored tool to keep a query beyond its K labelled ones. SD needs at least one
  group with two candidate tools: where every tool is its own group (MetaTool), an SD task would
  hold the gold tool alone and score 100%, which measures nothing."""
  counts = [len(split.queries_by_tool[int(t)]) for t in split.scored_tools]
  min_q = min((c for c in counts if c), default=0)
  if k_shot >= max(min_q, 1):
    return f"K={k_shot} needs more than the {min_q} queries of the tool with the fewest"
  if mode == "sd" and np.bincount(_groups(ds, split.pool_tools)).max() < 2:
    return (f"SD needs distractors from the gold tool's group, but each of the "
            f"{len(split.pool_tools)} candidate tools of {ds.name} is its own group")
  return None


def _stream(rows: list[list[int]], width: int) -> dict:
  """Per candidate position a list of rows -> a flat labelled stream of ``n * width`` slots."""
  n = len(rows)
  idx = np.zeros((n, width), np.int32)
  w = np.zeros((n, width), np.float32)
  for j, r in enumerate(rows):
    idx[j, :len(r)] = r[:width]
    w[j, :len(r)] = 1.0
  y = np.repeat(np.arange(n, dtype=np.int32), width)
  return {"idx": idx.reshape(-1), "y": y, "w": w.reshape(-1)}


def make_tasks(rng: np.random.Generator, ds: ToolDataset, split: Split, mode: str, n_way: int,
               k_shot: int, main_doc: np.ndarray, view_rows: list[np.ndarray],
               n_views: int) -> dict:
  """The tasks of one seed as stacked numpy index arrays (see the module docstring)."""
  if mode not in ("sd", "cd"):
    raise ValueError(f"mode must be 'sd' or 'cd', got {mode!r}")
  scored, pool = split.scored_tools, split.pool_tools
  g_scored, g_pool = _groups(ds, scored), _groups(ds, pool)
  chunks = []
  for g in (np.unique(g_scored) if mode == "sd" else [None]):
    members = scored if g is None else scored[g_scored == g]
    members = members[rng.permutation(len(members))]
    chunks += [members[i:i + n_way] for i in range(0, len(members), n_way)]
  max_q = max(len(split.queries_by_tool[int(t)]) for t in scored)
  out = {k: [] for k in ("tool_ids", "tools", "support", "views", "query", "query_rows")}
  for chunk in chunks:
    g = _groups(ds, chunk[:1])[0]
    others = pool[~np.isin(pool, chunk) & ((g_pool == g) if mode == "sd" else True)]
    fill = rng.choice(others, size=min(n_way - len(chunk), len(others)), replace=False)
    tools = np.concatenate([chunk, fill]).astype(np.int32)
    n_scored = len(chunk)
    order = rng.permutation(len(tools))
    tools, is_scored = tools[order], (order < n_scored)
    support, query = [], []
    for t, sc in zip(tools, is_scored):
      rows = split.queries_by_tool[int(t)]
      pick = rng.permutation(len(rows))
      support.append(list(rows[pick[:k_shot]]))
      query.append(list(rows[pick[k_shot:]]) if sc else [])
    views = [list(view_rows[t][:n_views]) for t in tools]
    pad = n_way - len(tools)  # groups smaller than n_way: masked slots (tool id -1)
    tool_ids = np.concatenate([tools, -np.ones(pad, np.int32)])
    support += [[]] * pad
    query += [[]] * pad
    views += [[]] * pad
    out["tool_ids"].append(tool_ids)
    out["tools"].append({"idx": main_doc[np.maximum(tool_ids, 0)]})
    out["support"].append(_stream(support, k_shot))
    out["views"].append(_stream(views, n_views))
    q = _stream(query, max_q)
    out["query"].append(q)
    out["query_rows"].append(np.where(q["w"] > 0, q["idx"], -1))
  return jax.tree.map(lambda *xs: np.stack(xs), *[
      {k: out[k][i] for k in out} for i in range(len(chunks))])


def _batches(tasks: dict, batch: int):
  """Fixed-size batches of tasks; the last is padded with copies whose queries weigh 0."""
  n = tasks["tool_ids"].shape[0]
  for s in range(0, n, batch):
    sel = np.arange(s, s + batch)
    real = sel < n
    b = jax.tree.map(lambda x: x[np.minimum(sel, n - 1)], tasks)
    b["query"]["w"] = b["query"]["w"] * real[:, None]
    b["query_rows"] = np.where(real[:, None], b["query_rows"], -1)
    yield b


def task_scores(score_fn: ScoreFn, tasks: dict, batch: int) -> tuple[np.ndarray, ...]:
  """(scores (M, N), labels (M,), query rows (M,), tool ids (M, N)) over every scored query."""
  s_all, y_all, r_all, t_all = [], [], [], []
  for b in _batches(tasks, batch):
    s = np.asarray(score_fn(b), np.float64)
    keep = b["query"]["w"] > 0
    tool_ids = np.broadcast_to(b["tool_ids"][:, None, :], s.shape)
    s = np.where(tool_ids >= 0, s, -np.inf)  # padded candidate slots never win
    s_all.append(s[keep])
    y_all.append(b["query"]["y"][keep])
    r_all.append(b["query_rows"][keep])
    t_all.append(tool_ids[keep])
  return tuple(np.concatenate(x) for x in (s_all, y_all, r_all, t_all))


def _hits(rng, scores, labels):
  jitter = 1e-9 * rng.random(scores.shape)  # exact ties (BM25 zeros) are broken at random
  return np.argmax(scores + jitter, axis=1) == labels


def scored_rows(split: Split) -> np.ndarray:
  """Every query row of the split's scored tools, sorted (the per-query blocks' order)."""
  return np.sort(np.concatenate([split.queries_by_tool[int(t)] for t in split.scored_tools]))


def protocol(score_fn: ScoreFn, ds: ToolDataset, split: Split, mode: str, k_shot: int,
             spec: EvalSpec, main_doc, view_rows, neighbours=None,
             per_query: bool = False) -> dict:
  """Top-1 accuracy, mean ± std over ``spec.seeds``, with per-group accuracy (and per test
  subset, ``Query.subset``, when the dataset names subsets).

  ``mode``: ``sd``, ``cd`` or a hard mode of ``mta_jax.hard_tasks`` (needs ``neighbours``).
  ``per_query``: also the per-query hits over the seeds (``mta_jax.paired``)."""
  if mode not in MODE_IDS:
    raise ValueError(f"mode must be one of {', '.join(MODE_IDS)}, got {mode!r}")
  hard = None
  if mode.startswith("hard"):
    from mta_jax import hard_tasks as hard  # pylint: disable=import-outside-toplevel
    if why := hard.skip_reason(split, mode, neighbours):
      raise ValueError(why)
  accs, per_group, per_subset, seed_rows, seed_hits = [], {}, {}, [], []
  for seed in spec.seeds:
    rng = np.random.default_rng([seed, k_shot, MODE_IDS[mode]])
    if hard is None:
      tasks = make_tasks(rng, ds, split, mode, spec.n_way, k_shot, main_doc, view_rows,
                         spec.n_views)
    else:
      tasks = hard.make_hard_tasks(rng, split, neighbours, hard.MODES[mode], k_shot, main_doc,
                                   view_rows, spec.n_views)
    scores, labels, rows, _ = task_scores(score_fn, tasks, spec.batch)
    hits = _hits(rng, scores, labels)
    accs.append(float(hits.mean()))
    seed_rows.append(rows)
    seed_hits.append(hits)
    for r, h in zip(rows, hits):
      per_group.setdefault(ds.tools[ds.queries[r].tool].group, []).append(float(h))
      if (sub := ds.queries[r].subset) is not None:
        per_subset.setdefault(sub, []).append(float(h))
  out = {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs,
         "n_queries": int(len(labels)),
         "per_group": {g: float(np.mean(v)) for g, v in sorted(per_group.items())}}
  if per_subset:  # the dataset names test subsets (MTA-Tools 1.1.0): accuracy on each
    out["per_subset"] = {s: float(np.mean(v)) for s, v in sorted(per_subset.items())}
  if hard is not None:
    out["tasks"] = {"n_way": hard.MODES[mode], "n_tasks": int(len(split.scored_tools)),
                    "candidate_sets_sha": neighbours.fingerprint(hard.MODES[mode]),
                    "similarity": hard.SIMILARITY}
  if per_query:
    out["per_query"] = paired.per_query_block(scored_rows(split), seed_rows, seed_hits)
  return out


def full_pool(score_fn: ScoreFn, ds: ToolDataset, split: Split, main_doc, view_rows,
              n_views: int, per_query: bool = False) -> dict:
  """Every scored query against all the split's tools (one episode): top-1, top-3, MRR."""
  tools = split.scored_tools if split.ranked_tools is None else split.ranked_tools
  rows = [split.queries_by_tool[int(t)] for t in tools]
  width = max(len(r) for r in rows)
  task = {"tool_ids": tools[None], "tools": {"idx": main_doc[tools][None]},
          "support": jax.tree.map(lambda x: x[None], _stream([[] for _ in tools], 0)),
          "views": jax.tree.map(lambda x: x[None], _stream(
              [list(view_rows[t][:n_views]) for t in tools], n_views)),
          "query": jax.tree.map(lambda x: x[None], _stream([list(r) for r in rows], width))}
  task["query_rows"] = np.where(task["query"]["w"] > 0, task["query"]["idx"], -1)
  scores, labels, qrows, _ = task_scores(score_fn, task, 1)
  jitter = 1e-9 * np.random.default_rng(0).random(scores.shape)
  s = scores + jitter
  gold = s[np.arange(len(labels)), labels][:, None]
  rank = 1 + (s > gold).sum(1)
  out = {"top1": float(np.mean(rank == 1)), "top3": float(np.mean(rank <= 3)),
         "mrr": float(np.mean(1.0 / rank)), "n_tools": int(len(tools)),
         "n_queries": int(len(labels))}
  if per_query:
    out["per_query"] = paired.ranks_block(qrows, rank)
  return out


def evaluate(score_fn: ScoreFn, ds: ToolDataset, split: Split, main_doc, view_rows,
             spec: EvalSpec = EvalSpec(), adapts: bool = True, progress: bool = False,
             neighbours=None) -> dict:
  """Every protocol of ``spec`` for one score function. ``adapts=False`` (no inner loop, no
  support set: Random, BM25, Base, SFT) evaluates the K-shot settings once and labels them.
  Hard modes need ``neighbours`` (``hard_tasks.neighbours_for``), computed once per dataset and
  passed unchanged for every row; without them they are skipped with the reason."""
  out: dict = {}
  jobs = [(m, s) for m in spec.modes for s in spec.shots]
  if progress:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    jobs = tqdm(jobs, desc="protocols", leave=False)
  for mode, shot in jobs:
    k = SHOTS[shot]
    why = skip_reason(ds, split, "cd" if mode.startswith("hard") else mode, k)
    if why is None and mode.startswith("hard"):
      from mta_jax import hard_tasks  # pylint: disable=import-outside-toplevel
      why = hard_tasks.skip_reason(split, mode, neighbours)
    if why:
      out.setdefault(mode, {})[shot] = {"skipped": why}
      continue
    if not adapts and k > 0 and "mean" in out[mode].get("0shot", {}):
      res = dict(out[mode]["0shot"], note="no test-time adaptation: equals 0shot")
      res.pop("per_query", None)  # the 0shot block's; a comparison reads it from there
    else:
      res = protocol(score_fn, ds, split, mode, k, spec, main_doc, view_rows, neighbours,
                     per_query=shot in spec.per_query)
    out.setdefault(mode, {})[shot] = res
  if spec.full_pool:
    out["full_pool"] = {"0shot": full_pool(score_fn, ds, split, main_doc, view_rows,
                                           spec.n_views, per_query="0shot" in spec.per_query)}
  return out


# ---------------------------------------------------------------------------- query-centred sets

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


# ---------------------------------------------------------------------------- score functions

def model_scorer(scorer, meta_cfg: bilevel.MetaConfig, cache_arrays: dict) -> Callable:
  """``bind(meta) -> ScoreFn``: adapted-model scores from ``make_predict`` on gathered features.

  ``predict`` is built (and compiled) once and the cache moved to the device once, so binding
  new meta-parameters (every validation of a training run) costs no recompilation.
  """
  predict = bilevel.make_predict(scorer, meta_cfg)
  dev = jax.device_put(cache_arrays)

  def bind(meta: dict) -> ScoreFn:
    def score(b):
      feats = episodes.gather_jit(dev, {k: b[k] for k in ("tools", "support", "views", "query")})
      return np.asarray(predict(meta, feats))
    return score
  return bind


def matrix_score_fn(matrix: np.ndarray) -> ScoreFn:
  """Scores from a (n_queries, n_tools) matrix (BM25 or any fixed scorer)."""
  def score(b):
    rows = np.maximum(b["query_rows"], 0)
    tools = np.maximum(b["tool_ids"], 0)
    return matrix[rows[:, :, None], tools[:, None, :]]
  return score


def random_score_fn(seed: int = 0) -> ScoreFn:
  rng = np.random.default_rng(seed)
  return lambda b: rng.random(b["query_rows"].shape + (b["tool_ids"].shape[1],))


def bm25_score_fn(ds: ToolDataset) -> ScoreFn:
  """BM25 of each query against each tool's main document (corpus: all the dataset's tools)."""
  from mta_jax import bm25  # pylint: disable=import-outside-toplevel
  index = bm25.BM25([t.document() for t in ds.tools])
  return matrix_score_fn(index.score_matrix([q.text for q in ds.queries]))
