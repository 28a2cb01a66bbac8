"""A synthetic family of tool-selection tasks, for tests and smoke runs (no data files).

Each of ``n_tools`` tools has a random direction u_t. Its document is a sequence of tokens near
u_t; its queries are sequences near ``R u_t`` for one rotation ``R`` shared by all tools: the
cross-tool pattern that meta-learning must find. With the identity head the query and document
embeddings are unrelated (chance accuracy); a model that learns to undo ``R`` scores well on
tools it never saw, which is exactly the generalisation that MTA is after.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mta_jax.episodes import ToolPool
from mta_jax.models import bert


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  n_tools: int = 40
  n_groups: int = 4
  queries_per_tool: int = 12
  views_per_tool: int = 2
  q_len: int = 4
  d_len: int = 6
  noise: float = 0.3
  seed: int = 0


def tiny_bert_config(hidden: int = 16, layers: int = 2) -> bert.BertConfig:
  """A BERT small enough for float64 finite differences and fast CPU tests."""
  return bert.BertConfig(vocab_size=32, hidden_size=hidden, num_layers=layers, num_heads=2,
                         intermediate_size=2 * hidden, max_position=16, type_vocab_size=2,
                         layer_norm_eps=1e-6)


def make_task_family(spec: SyntheticSpec, hidden: int, dtype=np.float32):
  """Returns ``(cache, pool)``: hidden-state caches (as ``episodes.gather`` expects) and pool."""
  rng = np.random.default_rng(spec.seed)
  u = rng.normal(size=(spec.n_tools, hidden))
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  rot, _ = np.linalg.qr(rng.normal(size=(hidden, hidden)))

  def seqs(centres, length):
    x = centres[:, None, :] + spec.noise * rng.normal(size=(len(centres), length, hidden))
    return (x * 2.0).astype(dtype)  # scale ~ post-LayerNorm activations

  n_q = spec.n_tools * spec.queries_per_tool
  q_owner = np.repeat(np.arange(spec.n_tools), spec.queries_per_tool)
  q_h = seqs(u[q_owner] @ rot.T, spec.q_len)
  # Document 0 of each tool is its main document; the next ones are its views.
  n_docs = 1 + spec.views_per_tool
  d_owner = np.repeat(np.arange(spec.n_tools), n_docs)
  d_h = seqs(u[d_owner], spec.d_len)
  cache = {"q_h": q_h, "q_m": np.ones((n_q, spec.q_len), np.int32),
           "d_h": d_h, "d_m": np.ones((len(d_owner), spec.d_len), np.int32)}
  # Ragged real lengths, so that masks matter.
  cache["q_m"][::3, -1] = 0
  cache["d_m"][::2, -2:] = 0
  pool = ToolPool.build(
      doc=np.arange(spec.n_tools) * n_docs,
      group=np.arange(spec.n_tools) % spec.n_groups,
      queries_by_tool=[np.flatnonzero(q_owner == t) for t in range(spec.n_tools)],
      views_by_tool=[t * n_docs + 1 + np.arange(spec.views_per_tool)
                     for t in range(spec.n_tools)])
  return cache, pool


def split_pool(pool: ToolPool, tools: np.ndarray) -> ToolPool:
  """The sub-pool of the given tool indices (e.g. seen vs unseen tools)."""
  return ToolPool(pool.doc[tools], pool.group[tools], pool.queries[tools], pool.n_queries[tools],
                  pool.views[tools], pool.n_views[tools])
