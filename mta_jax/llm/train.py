"""LoRA SFT of the LLM on the seen tools, with the answer-string loss.

A training example is a tool-selection prompt over ``n_way`` train-split tools (the gold tool and
distractors from its domain (SD) or from all train tools (CD), drawn by the evaluator's own
``candidate_sets``) followed by the gold answer ``Use [name] tool``; the loss is the mean negative
log-likelihood of the answer tokens. Only the LoRA factors train; the base weights are an
argument of the jitted step (never a baked-in constant) and get no gradient.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mta_jax import evaluation
from mta_jax import params as P
from mta_jax.data import ToolDataset
from mta_jax.llm import lora, select
from mta_jax.llm.lm import PROMPT_BUCKETS, LanguageModel, bucket_for

# Coarser than inference's answer buckets: tool answers are 6-14 tokens, and one width keeps a
# training run at one compile per prompt bucket (each compile of a gradient step costs seconds).
TRAIN_ANSWER_BUCKETS = (16, 32, 64)


def pack(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, batch: int | None = None,
         length: int | None = None, max_answer: int | None = None) -> dict:
  """(prompt ids, answer ids) pairs -> {"ids" (B, T), "prompt_len", "ans_len", "w"} numpy.

  T and the answer width default to the buckets of the longest pair; padding rows get w = 0.
  """
  n = batch or len(pairs)
  t = length or bucket_for(max(len(p) + len(a) for p, a in pairs), PROMPT_BUCKETS)
  c = max_answer or bucket_for(max(len(a) for _, a in pairs), TRAIN_ANSWER_BUCKETS)
  ids = np.full((n, t), pad_id, np.int32)
  plen = np.ones((n,), np.int32)
  alen = np.ones((n,), np.int32)
  w = np.zeros((n,), np.float32)
  for i, (p, a) in enumerate(pairs):
    if len(p) + len(a) > t or len(a) > c:
      raise ValueError(f"example {i} ({len(p)}+{len(a)} tokens) does not fit ({t}, {c})")
    ids[i, :len(p) + len(a)] = list(p) + list(a)
    plen[i], alen[i], w[i] = len(p), len(a), 1.0
  return {"ids": ids, "prompt_len": plen, "ans_len": alen, "w": w}


def answer_nll(model: LanguageModel, lcfg: lora.LoraConfig, adapters: P.Params, base: P.Params,
               batch: dict, max_answer: int) -> tuple[jax.Array, jax.Array]:
  """Weighted mean answer-token NLL, and the fraction of sequences whose answer is argmax-exact.

  ``batch`` arrays have any leading shape (..., T); weights ``w`` zero out padding sequences.
  """
  params = lora.apply(jax.lax.stop_gradient(base), adapters, lcfg)
  lead = batch["ids"].shape[:-1]
  flat = {k: v.reshape(-1, *v.shape[len(lead):]) for k, v in batch.items()}
  tok, valid = model.answer_logprob(params, flat["ids"], flat["prompt_len"], flat["ans_len"],
                                    max_answer)
  valid = valid.astype(tok.dtype)
  w = flat["w"]
  nll = -jnp.sum(w[:, None] * tok * valid) / jnp.maximum(jnp.sum(w[:, None] * valid), 1.0)
  # A sequence counts as "exact" when every answer token has probability > 1/2 (greedy-safe).
  exact = jnp.all((tok > jnp.log(0.5)) | (valid == 0), axis=-1).astype(tok.dtype)
  return nll, jnp.sum(w * exact) / jnp.maximum(jnp.sum(w), 1.0)


def make_optimizer(ocfg, total_steps: int) -> optax.GradientTransformation:
  sched = optax.warmup_cosine_decay_schedule(0.0, ocfg.lr, max(ocfg.warmup_steps, 1),
                                             max(total_steps, ocfg.warmup_steps + 1))
  return optax.chain(optax.clip_by_global_norm(ocfg.clip_norm),
                     optax.adamw(sched, weight_decay=ocfg.weight_decay))


def make_sft_step(model: LanguageModel, lcfg: lora.LoraConfig, opt: optax.GradientTransformation):
  """``step(state, base, batch, max_answer) -> (state, metrics)``, jitted, state donated."""

  def step(state, base, batch, max_answer):
    (loss, exact), g = jax.value_and_grad(
        lambda a: answer_nll(model, lcfg, a, base, batch, max_answer), has_aux=True)(
            state["lora"])
    updates, opt_state = opt.update(g, state["opt"], state["lora"])
    new = optax.apply_updates(state["lora"], updates)
    metrics = {"loss": loss, "exact": exact, "grad_norm": P.global_norm(g)}
    return {"lora": new, "opt": opt_state, "step": state["step"] + 1}, metrics

  return jax.jit(step, donate_argnums=(0,), static_argnums=(3,))


def sft_batch(rng: np.random.Generator, model: LanguageModel, ds: ToolDataset, rows: np.ndarray,
              pool: np.ndarray, n_way: int, batch_size: int, pcfg: select.PromptConfig) -> dict:
  """A random batch of SFT examples over the ``pool`` tools (SD or CD distractors at random)."""
  picked = rng.choice(rows, size=batch_size, replace=len(rows) < batch_size)
  mode = "sd" if rng.random() < 0.5 else "cd"
  cands, labels = evaluation.candidate_sets(rng, ds, picked, mode, n_way, pool_tools=pool)
  pairs = []
  for r, c, y in zip(picked, cands, labels):
    prompt, answers = select.episode_tokens(model, ds, r, c, pcfg)
    pairs.append((prompt, answers[y]))
  return pack(pairs, model.tokenizer.pad_id)


def train_sft(model: LanguageModel, ds: ToolDataset, config, pcfg: select.PromptConfig,
              lcfg: lora.LoraConfig) -> tuple[P.Params, dict]:
  """Trains LoRA adapters on the train-split tools' queries; returns (adapters, log)."""
  scfg, ocfg = config.sft, config.optim
  pool = ds.tool_indices("train")
  rows = np.array([r for r in ds.query_indices("train") if ds.queries[r].tool in set(pool)])
  if not len(rows):
    raise ValueError(f"{ds.name} has no train-split queries of train-split tools for LoRA SFT")
  key = jax.random.key(config.seed)
  opt = make_optimizer(ocfg, scfg.steps)
  adapters = lora.init(model.params, lcfg, jax.random.fold_in(key, 0))
  state = {"lora": adapters, "opt": opt.init(adapters), "step": jnp.zeros((), jnp.int32)}
  step = make_sft_step(model, lcfg, opt)
  rng = np.random.default_rng(config.seed)
  log = []
  it = range(scfg.steps)
  if config.progress:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    it = tqdm(it, desc="lora sft", unit="step")
  for i in it:
    batch = sft_batch(rng, model, ds, rows, pool, scfg.n_way, scfg.batch_size, pcfg)
    c = bucket_for(int(batch["ans_len"].max()), TRAIN_ANSWER_BUCKETS)
    state, metrics = step(state, model.params, batch, c)
    if (i + 1) % config.log_every == 0 or i + 1 == scfg.steps:
      m = {k: float(v) for k, v in metrics.items()}
      if not np.isfinite(m["loss"]):
        raise FloatingPointError(f"LoRA SFT: non-finite loss at step {i + 1}: {m}")
      log.append({"step": i + 1, **m})
  return state["lora"], {"sft": log, "trainable_params": P.count(state["lora"])}
