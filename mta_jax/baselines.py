"""Baselines that share the encoder, the scorer, the train state and the evaluator with MTA.

- **SFT** (the paper's fine-tuning baseline): ordinary supervised learning on the seen tools'
  queries, each scored against *all* seen tools' documents with cross-entropy; no episodes, no
  inner loop. It is the ``sft`` row of ``mta_jax.algorithms`` (its gradient rule); this module
  draws its batches (``sample_sft_batch``). Its train state has the same layout as the
  meta-learners', so checkpoints, resume and evaluation are shared; at test time it scores
  without adaptation.
- **Base**: the pretrained encoder, zero-shot (identity head, pretrained top layers).
- **Random** and **BM25** are plain score functions (``mta_jax.run_eval``).

ProtoNet, first-order MAML, Reptile and iMAML are rows of ``mta_jax.algorithms`` on the same
episodes; the trainer selects them with ``config.meta.algorithm``.
"""

from __future__ import annotations

import jax
import numpy as np

from mta_jax import bilevel, params as P
from mta_jax.episodes import ToolPool
from mta_jax.scorer import Scorer

NO_ADAPT = bilevel.MetaConfig(algorithm="maml", inner_steps=0, learn_inner_lr="fixed")


def _empty_stream(batch: int) -> dict:
  return {"idx": np.zeros((batch, 0), np.int32), "y": np.zeros((batch, 0), np.int32),
          "w": np.zeros((batch, 0), np.float32)}


def sample_sft_batch(rng: np.random.Generator, pool: ToolPool, batch: int) -> dict:
  """``batch`` seen-tool queries (uniform over queries) against all of ``pool``'s tools.

  Returned in ``episodes.gather``'s layout with one "episode" holding every tool, so the same
  gather and the same device cache serve both kinds of training.
  """
  valid = np.arange(pool.queries.shape[1])[None, :] < pool.n_queries[:, None]
  tool_of, col = np.nonzero(valid)
  pick = rng.choice(len(tool_of), size=batch, replace=len(tool_of) < batch)
  return {"tools": {"idx": pool.doc[None, :]},
          "support": _empty_stream(1), "views": _empty_stream(1),
          "query": {"idx": pool.queries[tool_of[pick], col[pick]][None].astype(np.int32),
                    "y": tool_of[pick][None].astype(np.int32),
                    "w": np.ones((1, batch), np.float32)}}


def base_meta(scorer: Scorer) -> dict:
  """The zero-shot pretrained scorer's meta-parameters (identity head, pretrained top)."""
  return {"params": scorer.init(jax.random.key(0)), "inner_lr": {}}


def base_score_fn(ds, cache_dir: str, q_len: int = 48, d_len: int = 128, n_views: int = 4,
                  encoder=None):
  """The zero-shot Base row as a ``run_eval`` score function, and the feature cache it reads.

  The pretrained encoder's sentence embeddings (all layers cached, mean pooled; queries cut at
  ``q_len`` tokens, documents at ``d_len``: the defaults of ``experiments/configs/mta.py``),
  scored by cosine with no adaptation. ``experiments/evaluate.py --baseline=base`` and the
  dataset card both use it.
  """
  # pylint: disable=import-outside-toplevel
  from mta_jax import features, run_eval
  from mta_jax.scorer import ScorerConfig
  if encoder is None:
    from mta_jax.models import registry
    encoder = registry.load()
  scorer_cfg = ScorerConfig(n_top=0, adapt="head", head=True)
  spec = features.FeatureSpec(n_lower=encoder.cfg.num_layers - scorer_cfg.n_top, q_len=q_len,
                              d_len=d_len, n_views=n_views)
  cache = features.text_cache(ds, spec, cache_dir, encoder)
  scorer = Scorer(scorer_cfg, encoder.model)
  meta = jax.device_put(base_meta(scorer))
  return run_eval.model_scorer(scorer, NO_ADAPT, cache.arrays())(meta), cache
