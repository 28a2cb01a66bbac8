"""The LLM rows' set-up for the one trainer (``mta_jax.train``, ``config.learner = "llm"``).

LoRA SFT is the ``sft`` algorithm and MTA-LoRA any episodic algorithm of
``mta_jax.algorithms`` (``config.meta.algorithm``: ``maml`` by default, ``fomaml``, ``reptile``,
``imaml``), on the LLM learner (``mta_jax.llm.learner``), so they get the trainer's Orbax
checkpoints, bit-exact resume, SIGTERM save, non-finite stop, metric logs and progress bar.

Data of step ``s`` comes from ``numpy.random.default_rng((seed, s))`` like the encoder rows'.
Under ``jax.distributed`` each process builds only its own rows of it (``Setup.sample_rows``:
its episodes, or its SFT prompts); the processes agree on the prompt width (one all-gather of an
integer a step), so the global batch is the single-process one bit for bit.
Validation (which picks the best checkpoint) is the share of greedy-safe gold answers
(``Learner.loss``'s accuracy) on fixed batches over the validation tools, after the algorithm's
adaptation for episodic algorithms.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from mta_jax import algorithms, bilevel, episodes, run_config, sharding
from mta_jax.llm import batches, lora, select
from mta_jax.llm.learner import llm_learner
from mta_jax.llm.lm import LanguageModel

VALIDATION_SEED = 10**6  # the fixed validation batches' own seed (never a training step's)


def _pool(ds, split: str):
  tools = ds.tool_indices(split)
  _, main_doc, view_rows = ds.documents(1)
  return tools, ds.pool(tools, main_doc, view_rows, query_split=split)


def setup(config, workdir: pathlib.Path):
  """A ``train.Setup`` for the LLM config ``config`` (``experiments/configs/llm.py``)."""
  from mta_jax import train  # pylint: disable=import-outside-toplevel  # train imports us lazily
  from mta_jax.llm import run  # pylint: disable=import-outside-toplevel
  del workdir
  run.validate(config)
  algo = algorithms.get(config.meta.algorithm)
  ds = run.load_dataset(config.dataset, config.data_dir)
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.model.dtype]
  model = LanguageModel.pretrained(config.model.num_layers or None, dtype)
  pcfg = select.PromptConfig(**config.prompt.to_dict())
  lcfg = lora.LoraConfig(rank=config.lora.rank, alpha=config.lora.alpha,
                         targets=tuple(config.lora.targets))
  _, meta_cfg = run_config.model_configs(config)
  meta_cfg.validate()
  train_tools, pool = _pool(ds, "train")
  val_tools, val_pool = _pool(ds, "validation")
  max_answer = batches.answer_width(model, ds, np.concatenate([train_tools, val_tools]))
  learner = llm_learner(model, lcfg, max_answer)
  algorithms.check_learner(algo, learner)
  steps = config.meta.steps if algo.episodic else config.sft.steps
  o = config.optim
  optimizer = bilevel.make_optimizer(bilevel.OptimConfig(
      lr=o.lr, warmup_steps=o.warmup_steps, total_steps=steps, weight_decay=o.weight_decay,
      clip_norm=o.clip_norm, lr_of_inner_lr=o.lr_of_inner_lr))

  m = config.meta
  if algo.episodic:
    spec = episodes.EpisodeSpec(n_way=m.n_way, k_shot=m.k_shot, q_query=m.q_query, n_views=0,
                                mode=m.mode)
    try:
      spec.validate(pool)
    except ValueError as e:
      raise run_config.ConfigError(f"config.{e} (the {pool.n_tools} training tools of "
                                   f"{ds.name})") from None

    def sample_rows(rng, part: slice = slice(None), longest=None):  # the episodes ``part``
      return batches.episode_batch(rng, model, ds, pool, train_tools, spec, m.meta_batch, pcfg,
                                   max_answer, take=part, longest=longest)

    # Validation episodes draw from the validation tools across domains (2 a domain).
    val_spec = episodes.EpisodeSpec(n_way=min(m.n_way, val_pool.n_tools), k_shot=m.k_shot,
                                    q_query=m.q_query, n_views=0, mode="cd")
    val_batch = batches.episode_batch(np.random.default_rng(VALIDATION_SEED), model, ds,
                                      val_pool, val_tools, val_spec, m.meta_batch, pcfg,
                                      max_answer)
    score = functools.partial(bilevel.meta_loss, learner, meta_cfg)
  else:
    rows = np.array([r for r in ds.query_indices("train") if ds.queries[r].tool in set(train_tools)])
    if not len(rows):
      raise run_config.ConfigError(f"config.dataset={ds.name!r} has no train-split queries of "
                                   "train-split tools for LoRA SFT")
    s = config.sft

    def sample_rows(rng, part: slice = slice(None), longest=None):  # the query rows ``part``
      batch = batches.sft_batch(rng, model, ds, rows, train_tools, s.n_way, s.batch_size, pcfg,
                                take=part, longest=longest)
      return {"query": jax.tree.map(lambda x: x[None], batch)}

    val_rows = np.array([r for r in ds.query_indices("validation")
                         if ds.queries[r].tool in set(val_tools)])
    val_batch = {"query": jax.tree.map(
        lambda x: x[None], batches.sft_batch(np.random.default_rng(VALIDATION_SEED), model, ds,
                                             val_rows, val_tools, s.n_way, s.batch_size, pcfg))}

    def score(meta, batch):
      loss, acc = learner.loss(meta["params"], jax.tree.map(lambda x: x[0], batch), ("query",))
      return loss, {"outer/acc": acc}

  val_fn = jax.jit(lambda meta, batch: score(meta, batch)[1]["outer/acc"])

  def validate_state(state) -> float:
    return float(val_fn(bilevel.full_meta(state, learner.constants), val_batch))

  def sample(rng):
    return sample_rows(rng)

  def process_sample_rows(rng, part: slice):  # every process calls it at the same step
    return sample_rows(rng, part, longest=sharding.max_over_processes)

  return train.Setup(learner, meta_cfg, optimizer, sample, validate_state, steps,
                     process_sample_rows)
