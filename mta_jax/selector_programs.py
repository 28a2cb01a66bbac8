"""The jitted programs behind ``ToolSelector`` and the batching plan that feeds them.

Programs are cached module-wide by (encoder structure, scorer config, meta config): a second
selector, or a reloaded checkpoint of the same kind, compiles nothing new.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from mta_jax import bilevel
from mta_jax.models import TextEncoder, bert, tokenizer as tok_lib
from mta_jax.scorer import Scorer


def plan_batches(lengths: np.ndarray, cfg) -> list[tuple[np.ndarray, int, int]]:
  """Texts sorted by token count, cut into ``(rows, padded batch, padded length)`` chunks.

  ``cfg`` is a ``selector.SelectorConfig`` (``batch_size``, ``batch_buckets``, ``length_buckets``).

  The partial chunk takes the shortest texts, where padding it to its batch bucket is cheapest.
  """
  order = np.argsort(lengths, kind="stable")
  cuts = list(range(len(order) % cfg.batch_size, len(order), cfg.batch_size))
  if not cuts or cuts[0] != 0:
    cuts = [0] + cuts
  chunks = [order[a:b] for a, b in zip(cuts, cuts[1:] + [len(order)]) if b > a]
  return [(rows, tok_lib.bucket_for(len(rows), cfg.batch_buckets),
           tok_lib.bucket_for(int(lengths[rows].max()), cfg.length_buckets)) for rows in chunks]


# Jitted programs are shared by every selector with the same encoder structure and configs
# (a ``Scorer`` is a pure function of its config and the encoder's structure), so a new selector
# or a reloaded checkpoint of the same kind compiles nothing new.
_PROGRAMS: dict = {}


def hidden_program(encoder: TextEncoder, n_lower: int):
  """jit ``(encoder params, ids, mask) -> (B, L, H)`` hidden states after ``n_lower`` layers,
  or ``(B, H)`` sentence embeddings when ``n_lower`` is the whole encoder."""
  key = ("hidden", encoder.graphdef, n_lower)
  if key not in _PROGRAMS:
    graphdef, pooled = encoder.graphdef, n_lower == encoder.cfg.num_layers

    def hidden(enc_params, ids, mask):
      h = nnx.merge(graphdef, enc_params).lower(ids, mask, n_lower)
      return bert.mean_pool(h, mask) if pooled else h

    _PROGRAMS[key] = jax.jit(hidden)
  return _PROGRAMS[key]


def score_program(encoder: TextEncoder, scorer: Scorer):
  """jit ``(encoder params, params, ids (B, L), mask, tools (Tp, H), lex) -> (B, Tp) scores``:
  cosines (dense scorer, ``lex`` None), or for the hybrid scorer ``mix/dense * cos + mix/lex *
  lex`` with ``lex`` (B, Tp) the queries' lexical feature (``Scorer.logits`` times the
  temperature; the same numbers, without a division the ranking does not need)."""
  key = ("score", encoder.graphdef, scorer.cfg)
  if key not in _PROGRAMS:
    graphdef, n_lower = encoder.graphdef, scorer.n_lower

    def score(enc_params, params, ids, mask, tool_mat, lex=None):
      hidden = nnx.merge(graphdef, enc_params).lower(ids, mask, n_lower)
      q = scorer.query_repr(params, scorer.embed(params, hidden, mask))
      return scorer.mix(params, q @ tool_mat.T, lex)

    _PROGRAMS[key] = jax.jit(score)
  return _PROGRAMS[key]


def adapt_program(encoder: TextEncoder, scorer: Scorer, meta_cfg: bilevel.MetaConfig):
  """jit ``(meta, episode) -> (adapted params, (N, H) tool representations)``.

  Exactly the evaluator's prediction (``bilevel.predict_state``: the algorithm's row of
  ``mta_jax.algorithms`` decides: the inner loop, prototypes, or no adaptation), so the selector
  never predicts differently from evaluation.
  """
  key = ("adapt", encoder.graphdef, scorer.cfg, meta_cfg)
  if key in _PROGRAMS:
    return _PROGRAMS[key]
  learner = bilevel.as_learner(scorer)

  def fn(meta, episode):
    p, reprs = bilevel.predict_state(learner, meta_cfg, meta, episode)
    # Per-toolbox class weights live in the tool matrix; dropping them keeps the query
    # function's parameter shapes independent of the toolbox size (one compile).
    return {k: v for k, v in p.items() if not k.startswith("proto/")}, reprs

  _PROGRAMS[key] = jax.jit(fn)
  return _PROGRAMS[key]
