"""Hard N-way tasks: each scored tool against its nearest tools by documentation similarity.

The random-distractor protocols (SD, CD) are nearly saturated (CD 95-98 for every trained row):
random distractors are rarely confusable. A *hard* N-way task (MetaTool's "similar choices")
puts each scored tool of the split, the *centre*, with its ``N - 1`` nearest tools of the split's
candidate pool, nearest by the cosine similarity of the zero-shot encoder's sentence embeddings
of the tools' main documents (the pretrained MiniLM: ``features.text_cache`` with every layer
cached, the Base row's cache). The neighbours are computed once per dataset from the
documentation alone, so every row (Random, BM25, Base, SFT, MTA, the LLM) is scored on the same
candidate sets; ties in similarity go to the lower tool index. Only the centre tool's queries
are scored; the neighbours are candidates (and, K-shot, give their K labelled queries).

Per seed (``run_eval.protocol``'s ``rng``) the candidate order within each task is shuffled and,
K-shot, each candidate's K labelled queries are drawn (the centre's never include a scored one);
the candidate *sets* do not depend on the seed. Tasks are ``run_eval.make_tasks``' index dicts,
so every ``run_eval.ScoreFn`` scores them unchanged. The query stream of a hard task holds only
the centre's queries (width: the most queries of a scored tool), not ``N`` per-candidate slots.
"""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import numpy as np

from mta_jax import run_eval
from mta_jax.data import ToolDataset

MODES = {"hard5": 5, "hard10": 10}
# The Base row's feature spec (``baselines.base_score_fn``'s defaults): the similarity never
# depends on the evaluated row's config. With every layer cached, lengths do not truncate.
SIM_Q_LEN, SIM_D_LEN, SIM_N_VIEWS = 48, 128, 4
SIMILARITY = ("cosine of the pretrained all-MiniLM-L6-v2 sentence embeddings of the tools' main "
              "documents (name, description, parameters)")


@dataclasses.dataclass(frozen=True)
class Neighbours:
  """Per scored tool (``centres``), its nearest pool tools, nearest first (``tools``, (C, k))."""

  centres: np.ndarray
  tools: np.ndarray
  sims: np.ndarray

  def of(self, centre: int, n: int) -> np.ndarray:
    i = int(np.flatnonzero(self.centres == centre)[0])
    return self.tools[i, :n]

  def fingerprint(self, n_way: int) -> str:
    """A hash of the candidate sets of the hard ``n_way`` tasks: equal for every row."""
    h = hashlib.sha256(self.centres.astype(np.int64).tobytes())
    h.update(self.tools[:, :n_way - 1].astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def nearest(doc_emb: np.ndarray, centres, pool, k: int) -> Neighbours:
  """The ``k`` tools of ``pool`` most similar to each centre (never itself): cosine similarity
  of the rows of ``doc_emb`` (n_tools, H); ties go to the lower tool index."""
  centres = np.asarray(centres, np.int64)
  pool = np.asarray(pool, np.int64)
  e = np.asarray(doc_emb, np.float64)
  e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
  sims = e[centres] @ e[pool].T  # (C, P)
  sims[centres[:, None] == pool[None, :]] = -np.inf
  k = min(k, len(pool) - 1)
  order = np.array([np.lexsort((pool, -row))[:k] for row in sims], np.int64).reshape(len(centres),
                                                                                     k)
  return Neighbours(centres.astype(np.int32), pool[order].astype(np.int32),
                    np.take_along_axis(sims, order, 1))


def doc_embeddings(ds: ToolDataset, cache_dir, encoder=None, progress: bool = False) -> np.ndarray:
  """(n_tools, H) zero-shot sentence embeddings of every tool's main document (the Base row's
  feature cache: loaded from ``cache_dir``, computed there once if missing)."""
  # pylint: disable=import-outside-toplevel
  from mta_jax import features
  from mta_jax.models import bert
  n_layers = encoder.cfg.num_layers if encoder is not None else bert.BertConfig().num_layers
  spec = features.FeatureSpec(n_lower=n_layers, q_len=SIM_Q_LEN, d_len=SIM_D_LEN,
                              n_views=SIM_N_VIEWS)
  cache = features.text_cache(ds, spec, cache_dir, encoder, progress=progress)
  return cache.d_h[cache.main_doc, 0, :]


def neighbours_for(ds: ToolDataset, split: run_eval.Split, doc_emb: np.ndarray) -> Neighbours:
  """The neighbour table of ``split`` for every hard mode (the largest N decides k)."""
  return nearest(doc_emb, split.scored_tools, split.pool_tools, max(MODES.values()) - 1)


def skip_reason(split: run_eval.Split, mode: str, neighbours: Neighbours | None) -> str | None:
  n_way = MODES[mode]
  if neighbours is None:
    return "no documentation similarity given (run_eval.evaluate(..., neighbours=...))"
  if len(split.pool_tools) < n_way:
    return f"hard {n_way}-way needs {n_way} candidate tools, the pool has {len(split.pool_tools)}"
  return None


def make_hard_tasks(rng: np.random.Generator, split: run_eval.Split, neighbours: Neighbours,
                    n_way: int, k_shot: int, main_doc: np.ndarray, view_rows: list[np.ndarray],
                    n_views: int) -> dict:
  """One task per scored tool (split order): the centre and its ``n_way - 1`` nearest tools,
  in an order shuffled by ``rng``; only the centre's queries (minus its K labelled) scored."""
  centres = split.scored_tools
  width = max(len(split.queries_by_tool[int(t)]) for t in centres)
  tasks = []
  for c in centres:
    tools = np.concatenate([[c], neighbours.of(int(c), n_way - 1)]).astype(np.int32)
    if len(tools) < n_way:
      raise ValueError(f"tool {c}: {len(tools) - 1} neighbours for a {n_way}-way task")
    order = rng.permutation(n_way)
    tools = tools[order]
    centre_pos = int(np.flatnonzero(order == 0)[0])
    support, scored = [], []
    for t in tools:
      rows = split.queries_by_tool[int(t)]
      pick = rng.permutation(len(rows))
      support.append(list(rows[pick[:k_shot]]))
      if t == c:
        scored = rows[pick[k_shot:]]
    q = {"idx": np.zeros(width, np.int32), "y": np.full(width, centre_pos, np.int32),
         "w": np.zeros(width, np.float32)}
    q["idx"][:len(scored)] = scored
    q["w"][:len(scored)] = 1.0
    tasks.append({
        "tool_ids": tools, "tools": {"idx": main_doc[tools]},
        "support": run_eval._stream(support, k_shot),  # pylint: disable=protected-access
        "views": run_eval._stream(  # pylint: disable=protected-access
            [list(view_rows[t][:n_views]) for t in tools], n_views),
        "query": q, "query_rows": np.where(q["w"] > 0, q["idx"], -1)})
  return jax.tree.map(lambda *xs: np.stack(xs), *tasks)
