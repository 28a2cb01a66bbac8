"""Episodes: numpy index arrays with fixed shapes, and their gather into model features.

A *task* is a set of N candidate tools drawn from one group (SD: same domain / API / hub) or
from all tools (CD). An episode of a task has:
- ``tools``: the N tools' main documents (the class representations);
- ``support``: K labelled example queries per tool (K-shot adaptation data, optional);
- ``views``: up to V labelled documentation views per tool (name, description, parameter
  descriptions): the only adaptation data a brand-new tool has (0-shot);
- ``query``: Q labelled queries per tool, the outer loss (training) or the scored set (eval).

Sampling is vectorised over the meta-batch with random keys and ``argpartition`` (no Python loop
per episode) and is a pure function of a ``numpy.random.Generator``. ``gather`` turns the index
arrays into features by indexing the device-resident caches of lower-layer hidden states.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

STREAMS = ("support", "views", "query")


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
  """Shape of an episode: N ways, K support and Q query queries per tool, V views per tool."""

  n_way: int = 5
  k_shot: int = 2
  q_query: int = 3
  n_views: int = 0
  mode: str = "sd"  # "sd": tools of one group; "cd": tools of all groups
  # Hard negatives: the share of a meta-batch's episodes whose N tools are one tool (the anchor)
  # and its N - 1 nearest tools of the pool (``ToolPool.near``), like the hard N-way test tasks.
  hard_fraction: float = 0.0

  def validate(self, pool: "ToolPool") -> None:
    """Raises ``ValueError`` (one line naming the field) if ``pool`` cannot fill this shape."""
    if self.mode not in ("sd", "cd"):
      raise ValueError(f"episodes.mode must be 'sd' or 'cd', got {self.mode!r}")
    if self.n_way < 2:
      raise ValueError(f"episodes.n_way must be >= 2, got {self.n_way}")
    if not 0.0 <= self.hard_fraction <= 1.0:
      raise ValueError(f"episodes.hard_fraction must be in [0, 1], got {self.hard_fraction}")
    if self.hard_fraction > 0 and pool.near is not None and pool.near.shape[1] < self.n_way - 1:
      raise ValueError(
          f"episodes.hard_fraction={self.hard_fraction} needs each pool tool's "
          f"{self.n_way - 1} nearest tools (ToolPool.near), the pool has "
          f"{0 if pool.near is None else pool.near.shape[1]}")
    for name in ("k_shot", "q_query", "n_views"):
      if getattr(self, name) < 0:
        raise ValueError(f"episodes.{name} must be >= 0, got {getattr(self, name)}")
    if self.mode == "sd" and self.n_way > pool.max_group_size:
      raise ValueError(
          f"episodes.n_way={self.n_way} is larger than the {pool.max_group_size} tools of the "
          f"pool's largest group (mode 'sd' draws all candidates from one group; the pool has "
          f"{pool.n_tools} tools): lower episodes.n_way or set episodes.mode='cd'")
    if self.mode == "cd" and self.n_way > pool.n_tools:
      raise ValueError(f"episodes.n_way={self.n_way} is larger than the {pool.n_tools} tools of "
                       "the pool: lower episodes.n_way")
    need = self.k_shot + self.q_query
    if need > pool.min_queries:
      raise ValueError(
          f"episodes.k_shot + episodes.q_query = {self.k_shot} + {self.q_query} = {need} is more "
          f"than the {pool.min_queries} queries of the pool's tool with the fewest: lower them")


@dataclasses.dataclass
class ToolPool:
  """The tools an episode may draw from, with their query and documentation-view indices.

  ``queries[t]`` and ``views[t]`` index the query and document caches; ``doc[t]`` is the tool's
  main document; ``group[t]`` its group (domain, API or hub) as a small integer.
  """

  doc: np.ndarray
  group: np.ndarray
  queries: np.ndarray  # (T, max_q) padded with -1
  n_queries: np.ndarray  # (T,)
  views: np.ndarray  # (T, max_v) padded with -1
  n_views: np.ndarray  # (T,)
  near: np.ndarray | None = None  # (T, k) each tool's nearest pool tools, nearest first

  @classmethod
  def build(cls, doc, group, queries_by_tool, views_by_tool) -> "ToolPool":
    t = len(doc)
    if not (len(group) == len(queries_by_tool) == len(views_by_tool) == t):
      raise ValueError("doc, group, queries_by_tool and views_by_tool must have one entry a tool")
    max_q = max((len(q) for q in queries_by_tool), default=1) or 1
    max_v = max((len(v) for v in views_by_tool), default=1) or 1
    qs = np.full((t, max_q), -1, np.int32)
    vs = np.full((t, max_v), -1, np.int32)
    for i, (q, v) in enumerate(zip(queries_by_tool, views_by_tool)):
      qs[i, :len(q)] = q
      vs[i, :len(v)] = v
    return cls(np.asarray(doc, np.int32), np.asarray(group, np.int32), qs,
               np.array([len(q) for q in queries_by_tool], np.int32), vs,
               np.array([len(v) for v in views_by_tool], np.int32))

  @property
  def n_tools(self) -> int:
    return len(self.doc)

  @property
  def min_queries(self) -> int:
    return int(self.n_queries.min()) if self.n_tools else 0

  @property
  def max_group_size(self) -> int:
    return int(np.bincount(self.group).max()) if self.n_tools else 0


def _choose(rng: np.random.Generator, valid: np.ndarray, k: int) -> np.ndarray:
  """For each row of the boolean ``valid`` (..., M), k distinct valid column indices at random.

  Rows with fewer than k valid entries return some invalid columns; callers mask them.
  """
  if k == 0:
    return np.zeros(valid.shape[:-1] + (0,), np.int64)
  keys = rng.random(valid.shape)
  keys[~valid] = 2.0  # invalid entries sort last
  idx = np.argpartition(keys, k - 1, axis=-1)[..., :k]
  # argpartition leaves the k chosen in arbitrary order: shuffle by their keys for randomness.
  order = np.argsort(np.take_along_axis(keys, idx, -1), axis=-1)
  return np.take_along_axis(idx, order, -1)


def _sample_tools(rng, pool: ToolPool, spec: EpisodeSpec, n_episodes: int) -> np.ndarray:
  t = pool.n_tools
  if spec.mode == "cd":
    return _choose(rng, np.ones((n_episodes, t), bool), spec.n_way)
  sizes = np.bincount(pool.group)
  eligible = np.flatnonzero(sizes >= spec.n_way)
  # A group is chosen with probability proportional to its number of tools.
  p = sizes[eligible] / sizes[eligible].sum()
  groups = rng.choice(eligible, size=n_episodes, p=p)
  return _choose(rng, pool.group[None, :] == groups[:, None], spec.n_way)


def _stream(idx: np.ndarray, ok: np.ndarray, n_way: int) -> dict:
  """(E, N, K) indices and validity -> a flat stream (E, N*K) with labels and weights."""
  e, n, k = idx.shape
  labels = np.broadcast_to(np.arange(n_way, dtype=np.int32)[None, :, None], (e, n, k))
  return {"idx": np.where(ok, idx, 0).reshape(e, n * k).astype(np.int32),
          "y": labels.reshape(e, n * k).copy(),
          "w": ok.reshape(e, n * k).astype(np.float32)}


def _hard_tools(rng, pool: ToolPool, spec: EpisodeSpec, tools: np.ndarray) -> np.ndarray:
  """Replaces a ``spec.hard_fraction`` share of the episodes' tools by an anchor tool and its
  N - 1 nearest pool tools, in random order."""
  if pool.near is None:
    raise ValueError(f"episodes.hard_fraction={spec.hard_fraction} needs each pool tool's "
                     "nearest tools (ToolPool.near); the pool has no such table")
  e = len(tools)
  hard = rng.random(e) < spec.hard_fraction
  anchors = rng.integers(pool.n_tools, size=e)
  near = np.concatenate([anchors[:, None], pool.near[anchors, :spec.n_way - 1]], axis=1)
  near = rng.permuted(near, axis=1)
  return np.where(hard[:, None], near, tools)


def sample_episodes(rng: np.random.Generator, pool: ToolPool, spec: EpisodeSpec,
                    n_episodes: int) -> dict:
  """A meta-batch of ``n_episodes`` training episodes as numpy index arrays."""
  tools = _sample_tools(rng, pool, spec, n_episodes)  # (E, N)
  if spec.hard_fraction > 0:  # (no draw otherwise: runs without hard negatives are unchanged)
    tools = _hard_tools(rng, pool, spec, tools)
  kq = spec.k_shot + spec.q_query
  valid_q = np.arange(pool.queries.shape[1])[None, None, :] < pool.n_queries[tools][..., None]
  pick = _choose(rng, valid_q, kq)  # (E, N, K+Q) columns of pool.queries
  qidx = np.take_along_axis(pool.queries[tools], pick, -1)
  qok = qidx >= 0
  views = pool.views
  if views.shape[1] < spec.n_views:  # fewer views than asked: pad, the padding is masked
    views = np.pad(views, ((0, 0), (0, spec.n_views - views.shape[1])), constant_values=-1)
  valid_v = np.arange(views.shape[1])[None, None, :] < pool.n_views[tools][..., None]
  vpick = _choose(rng, valid_v, spec.n_views)
  vidx = np.take_along_axis(views[tools], vpick, -1) if spec.n_views else vpick
  vok = vidx >= 0 if spec.n_views else np.zeros(vidx.shape, bool)
  return {
      "tool_ids": tools.astype(np.int32),
      "tools": {"idx": pool.doc[tools]},
      "support": _stream(qidx[..., :spec.k_shot], qok[..., :spec.k_shot], spec.n_way),
      "views": _stream(vidx, vok, spec.n_way),
      "query": _stream(qidx[..., spec.k_shot:], qok[..., spec.k_shot:], spec.n_way),
  }


def gather(cache: dict, idx: dict) -> dict:
  """Index arrays -> features. ``cache``: {"q_h","q_m"} queries, {"d_h","d_m"} documents.

  Support and query streams index the query cache; tools and views the document cache. With
  the hybrid scorer's arrays in ``cache`` (``mta_jax.lexical``: ``q_lex``, ``d_lex``,
  ``doc_col``) every stream also gets ``lex`` (..., S, N): its texts' BM25 feature against the
  episode's N tools.
  """
  def take(h, m, i):
    return jnp.take(h, i, axis=0), jnp.take(m, i, axis=0)

  tool_rows = idx["tools"]["idx"]  # (..., N) document rows of the tools
  th, tm = take(cache["d_h"], cache["d_m"], tool_rows)
  out = {"tools": {"h": th, "m": tm}}
  lexical = "q_lex" in cache
  if lexical:
    cols = jnp.take(cache["doc_col"], tool_rows, axis=0)[..., None, :]  # (..., 1, N)
  for name, (hk, mk, lk) in (("support", ("q_h", "q_m", "q_lex")),
                             ("views", ("d_h", "d_m", "d_lex")),
                             ("query", ("q_h", "q_m", "q_lex"))):
    s = idx[name]
    h, m = take(cache[hk], cache[mk], s["idx"])
    out[name] = {"h": h, "m": m, "y": jnp.asarray(s["y"]), "w": jnp.asarray(s["w"])}
    if lexical:
      rows = jnp.take(cache[lk], s["idx"], axis=0)  # (..., S, n_tools)
      out[name]["lex"] = jnp.take_along_axis(
          rows, jnp.broadcast_to(cols, rows.shape[:-1] + cols.shape[-1:]), axis=-1)
  return out


gather_jit = jax.jit(gather)
