"""The encoder rows' training set-up for ``mta_jax.train``: the MiniLM scorer (dense or hybrid) on
cached lower-layer features, episodes (or SFT batches) of the training tools, hard-negative
episodes when asked, and validation on the validation tools' 5-way tasks.

``setup(config, workdir)`` returns the ``train.Setup`` that the one training loop runs
(``config.learner="encoder"``, the default); ``mta_jax/llm/trainer.py`` is the LLM's twin.
"""

from __future__ import annotations

import logging
import pathlib

import jax
import ml_collections
import numpy as np

from mta_jax import algorithms, baselines, bilevel, episodes, features, run_eval
from mta_jax.run_config import (episode_spec, feature_spec, load_dataset, model_configs,
                                optim_config, validate_data)
from mta_jax.train import Setup, rows_of


def setup(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> Setup:
  """The encoder rows: cached lower-layer features, episodes (or SFT batches) of train tools,
  validation on the validation tools' 5-way SD tasks."""
  ds = load_dataset(config.dataset, config.data_dir, config.get("dataset_version", ""))
  validate_data(config, ds)  # before the encoder loads: a bad N or K fails in seconds
  from mta_jax.models import registry  # pylint: disable=import-outside-toplevel
  scorer_cfg, meta_cfg = model_configs(config)
  encoder = registry.load(scorer_cfg.backbone)
  cache_dir = config.cache_dir or str(workdir / "features")
  cache = features.text_cache(ds, feature_spec(config, encoder.cfg.num_layers), cache_dir,
                              encoder, lexical=scorer_cfg.lexical)
  dev_cache = jax.device_put(cache.arrays())
  train_tools = ds.tool_indices("train")
  pool = ds.pool(train_tools, cache.main_doc, cache.view_rows, query_split="train")
  algo = algorithms.get(config.meta.algorithm)
  spec = episode_spec(config)
  if algo.episodic and spec.hard_fraction > 0:
    pool.near = _nearest_train_tools(ds, train_tools, cache_dir, encoder, spec.n_way - 1)
  if algo.episodic:
    spec.validate(pool)
  val_split = run_eval.split_for(ds, "validation", distractors_from=("train",))
  logging.info("data: %s, %d train tools / %d queries, %d validation tools", ds.name,
               len(train_tools), int(pool.n_queries.sum()), len(val_split.scored_tools))
  from mta_jax.scorer import Scorer  # pylint: disable=import-outside-toplevel
  scorer = Scorer(scorer_cfg, encoder.model)
  learner = bilevel.as_learner(scorer)
  eval_spec = run_eval.EvalSpec(seeds=tuple(range(config.eval.seeds)), n_way=config.eval.n_way,
                                n_views=config.features.n_views, batch=config.eval.batch)
  bind = run_eval.model_scorer(learner, meta_cfg, cache.arrays())

  def indices(rng):
    if algo.episodic:
      idx = episodes.sample_episodes(rng, pool, spec, config.episodes.batch)
    else:
      idx = baselines.sample_sft_batch(rng, pool, config.sft.batch)
    return {k: idx[k] for k in ("tools", "support", "views", "query")}

  def sample(rng):
    return episodes.gather_jit(dev_cache, indices(rng))

  def sample_rows(rng, rows: slice):
    return episodes.gather_jit(dev_cache, rows_of(indices(rng), rows, algo.episodic))

  def validate_state(st) -> float:
    res = run_eval.protocol(bind(bilevel.full_meta(st)), ds, val_split, config.eval.mode, 0,
                            eval_spec, cache.main_doc, cache.view_rows)
    return res["mean"]

  return Setup(learner, meta_cfg, bilevel.make_optimizer(optim_config(config)), sample,
               validate_state, config.total_steps, sample_rows)


def _nearest_train_tools(ds, train_tools: np.ndarray, cache_dir: str, encoder, k: int):
  """(T, k) pool-local indices of each training tool's k nearest training tools, by the zero-shot
  encoder's similarity of their documents (as the hard N-way test tasks: ``hard_tasks``)."""
  from mta_jax import hard_tasks  # pylint: disable=import-outside-toplevel
  near = hard_tasks.nearest(hard_tasks.doc_embeddings(ds, cache_dir, encoder), train_tools,
                            train_tools, k)
  local = {int(t): i for i, t in enumerate(train_tools)}
  return np.vectorize(local.__getitem__, otypes=[np.int32])(near.tools)
