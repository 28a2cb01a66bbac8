"""MTA-LoRA at test time: each evaluator task adapts the meta-learned LoRA init on its support.

Meta-training is the one trainer (``mta_jax.train`` with ``config.learner = "llm"``, set up by
``mta_jax.llm.trainer``) running the bi-level core (``mta_jax.bilevel``) on the LLM learner
(``mta_jax.llm.learner``). At evaluation (``task_adapter``), each evaluator task adapts on the K
labelled questions per candidate tool that ``run_eval.make_tasks`` draws (never a scored
question), with the same ``bilevel.adapt``, then scores its queries with θ; without support
(0-shot) φ's LoRA init is used as is.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np

from mta_jax import bilevel
from mta_jax.data import ToolDataset
from mta_jax.llm import batches, lora, select
from mta_jax.learner import full_params
from mta_jax.llm.learner import llm_learner
from mta_jax.llm.lm import LanguageModel, bucket_for


def task_adapter(model: LanguageModel, meta_cfg: bilevel.MetaConfig, n_way: int,
                 pcfg: select.PromptConfig, lcfg: lora.LoraConfig, meta: dict,
                 dataset: Callable[[], ToolDataset]):
  """``params_for_task(tools (N,), support rows, support labels)``: merged parameters adapted to
  one evaluator task (``mta_jax.llm.task_eval``) from its K labelled questions per candidate
  (``run_eval.make_tasks`` draws them among the candidates' queries that are not scored).

  ``dataset()`` returns the dataset being evaluated (the selector's, which changes between
  datasets).
  """

  @functools.partial(jax.jit, static_argnums=(3,))
  def adapted(meta, base, support, max_answer):
    learner = llm_learner(model, lcfg, max_answer)
    full = full_params({"meta": meta, "frozen": {}}, base)  # φ (as restored) + the base weights
    fast, _, _ = bilevel.adapt(learner, meta_cfg, full, {"support": support})
    return lora.apply(base, fast, lcfg)

  def params_for(tools, sup_rows, sup_y):
    if not len(sup_rows) or meta_cfg.inner_steps == 0:
      return lora.apply(model.params, meta["params"], lcfg)
    pairs = batches.episode_pairs(model, dataset(), pcfg, np.asarray(tools), sup_rows, sup_y)
    # Fixed batch (K per candidate slot) so the adaptation compiles once per length bucket.
    k = -(-len(sup_rows) // len(tools))
    support = batches.pack(pairs, model.tokenizer.pad_id, batch=k * n_way)
    return adapted(meta, model.params, support,
                   bucket_for(max(len(a) for _, a in pairs), batches.TRAIN_ANSWER_BUCKETS))

  return params_for
