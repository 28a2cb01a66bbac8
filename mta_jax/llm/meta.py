"""MTA-LoRA: the bi-level core with the LLM's LoRA factors as the fast parameters.

Same two levels as ``mta_jax.bilevel`` (and its ``MetaConfig``, ``OptimConfig`` and outer
optimiser), with the LLM's episode loss in place of the encoder scorer's:
- φ = ``{"params": LoRA init (flat dict), "inner_lr": per-tensor (Meta-SGD) rates}``;
- an episode = ``n_way`` train tools (one domain for SD, any for CD), ``k_shot`` support and
  ``q_query`` query questions a tool, every prompt listing the same ``n_way`` tools in the same
  order; the loss of a prompt is the NLL of ``Use [gold] tool``;
- θ = ``inner_steps`` SGD steps on the support prompts from φ (``lax.scan``); the outer loss is
  θ's loss on the query prompts, differentiated through the adaptation (``maml``) or with
  ``stop_gradient`` on the inner gradients (``fomaml``); episodes are vmapped.
At evaluation (``task_adapter``), each evaluator task adapts on the K labelled questions per
candidate tool that ``run_eval.make_tasks`` draws (never a scored question), then scores its
queries with θ; without support (0-shot) φ's LoRA init is used as is.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mta_jax import bilevel, episodes
from mta_jax import params as P
from mta_jax.data import ToolDataset
from mta_jax.llm import lora, select, train
from mta_jax.llm.lm import PROMPT_BUCKETS, LanguageModel, bucket_for
from mta_jax.llm.train import TRAIN_ANSWER_BUCKETS


def meta_config(config) -> bilevel.MetaConfig:
  m = config.meta
  cfg = bilevel.MetaConfig(algorithm=m.algorithm, inner_steps=m.inner_steps, inner_lr=m.inner_lr,
                           learn_inner_lr=m.learn_inner_lr)
  cfg.validate()
  if cfg.algorithm not in ("maml", "fomaml"):
    raise ValueError(f"MTA-LoRA supports meta.algorithm maml or fomaml, got {cfg.algorithm!r}")
  if cfg.learn_inner_lr == "per_element":
    raise ValueError("MTA-LoRA learns per_tensor (or fixed) inner learning rates")
  return cfg


def init_meta(base: P.Params, lcfg: lora.LoraConfig, mcfg: bilevel.MetaConfig, key) -> dict:
  """φ: LoRA init (A random, B zero) and one learned inner learning rate per LoRA tensor."""
  adapters = lora.init(base, lcfg, key)
  lrs = ({k: jnp.full((), mcfg.inner_lr, jnp.float32) for k in adapters}
         if mcfg.learn_inner_lr == "per_tensor" else {})
  return {"params": adapters, "inner_lr": lrs}


def adapt(model: LanguageModel, lcfg: lora.LoraConfig, mcfg: bilevel.MetaConfig, meta: dict,
          base: P.Params, support: dict, max_answer: int):
  """θ after ``inner_steps`` SGD steps on one episode's support prompts; (θ, inner metrics)."""
  lrs = meta["inner_lr"]

  def step(fast, _):
    (loss, _), g = jax.value_and_grad(
        lambda f: train.answer_nll(model, lcfg, f, base, support, max_answer), has_aux=True)(fast)
    if mcfg.first_order:
      g = jax.lax.stop_gradient(g)
    return {k: fast[k] - lrs.get(k, mcfg.inner_lr) * g[k] for k in fast}, loss

  fast, losses = jax.lax.scan(step, meta["params"], None, length=mcfg.inner_steps)
  return fast, {"inner/loss_before": losses[0], "inner/loss_last_step": losses[-1]}


def episode_loss(model, lcfg, mcfg, meta, base, episode, max_answer):
  """Outer loss of one episode: the adapted LoRA's answer NLL on the query prompts."""
  fast, metrics = adapt(model, lcfg, mcfg, meta, base, episode["support"], max_answer)
  after, _ = train.answer_nll(model, lcfg, jax.lax.stop_gradient(fast), base, episode["support"],
                              max_answer)
  loss, exact = train.answer_nll(model, lcfg, fast, base, episode["query"], max_answer)
  return loss, {**metrics, "inner/loss_after": after, "outer/loss": loss, "outer/exact": exact}


def make_meta_step(model: LanguageModel, lcfg: lora.LoraConfig, mcfg: bilevel.MetaConfig,
                   opt: optax.GradientTransformation):
  """``step(state, base, episodes, max_answer) -> (state, metrics)``; episodes on axis 0."""

  def meta_loss(meta, base, eps, max_answer):
    losses, metrics = jax.vmap(
        lambda e: episode_loss(model, lcfg, mcfg, meta, base, e, max_answer))(eps)
    return losses.mean(), jax.tree.map(jnp.mean, metrics)

  def step(state, base, eps, max_answer):
    (_, metrics), g = jax.value_and_grad(meta_loss, has_aux=True)(state["meta"], base, eps,
                                                                  max_answer)
    updates, opt_state = opt.update(g, state["opt"], state["meta"])
    meta = optax.apply_updates(state["meta"], updates)
    metrics = {**metrics, "grad_norm": P.global_norm(g)}
    if meta["inner_lr"]:
      metrics["inner/lr_mean"] = jnp.mean(jnp.stack(list(meta["inner_lr"].values())))
    return {"meta": meta, "opt": opt_state, "step": state["step"] + 1}, metrics

  return jax.jit(step, donate_argnums=(0,), static_argnums=(3,))


def _episode_pairs(model, ds, pcfg, tools, rows, labels):
  """Prompts listing ``tools`` for each query row, with the labelled tool's answer."""
  out = []
  for r, y in zip(rows, labels):
    prompt, answers = select.episode_tokens(model, ds, int(r), tools, pcfg)
    out.append((prompt, answers[int(y)]))
  return out


def sample_batch(rng, model: LanguageModel, ds: ToolDataset, pool: episodes.ToolPool,
                 pool_tools: np.ndarray, spec: episodes.EpisodeSpec, meta_batch: int,
                 pcfg: select.PromptConfig) -> tuple[dict, int]:
  """A meta-batch as packed arrays {"support", "query"} of shape (E, S, T), and the answer width."""
  idx = episodes.sample_episodes(rng, pool, spec, meta_batch)
  streams = {name: [] for name in ("support", "query")}
  for e in range(meta_batch):
    tools = pool_tools[idx["tool_ids"][e]]
    for name in streams:
      s = idx[name]
      pairs = _episode_pairs(model, ds, pcfg, tools, s["idx"][e], s["y"][e])
      streams[name].append((pairs, s["w"][e]))
  every = [p for name in streams for pairs, _ in streams[name] for p in pairs]
  t = max(len(p) + len(a) for p, a in every)
  c = bucket_for(max(len(a) for _, a in every), TRAIN_ANSWER_BUCKETS)
  t = bucket_for(t, PROMPT_BUCKETS)
  out = {}
  for name, per_ep in streams.items():
    packed = [train.pack(pairs, model.tokenizer.pad_id, length=t, max_answer=c)
              for pairs, _ in per_ep]
    for p, (_, w) in zip(packed, per_ep):
      p["w"] = p["w"] * w  # the sampler's weights mark padded (missing) questions
    out[name] = {k: np.stack([p[k] for p in packed]) for k in packed[0]}
  return out, c


def train_mta(model: LanguageModel, ds: ToolDataset, config, pcfg: select.PromptConfig,
              lcfg: lora.LoraConfig) -> tuple[dict, dict]:
  """Meta-trains φ (LoRA init + inner rates) on train-tool episodes; returns (φ, log)."""
  m = config.meta
  mcfg = meta_config(config)
  pool_tools = ds.tool_indices("train")
  texts, main_doc, view_rows = ds.documents(1)
  del texts
  pool = ds.pool(pool_tools, main_doc, view_rows, query_split="train")
  spec = episodes.EpisodeSpec(n_way=m.n_way, k_shot=m.k_shot, q_query=m.q_query, n_views=0,
                              mode=m.mode)
  spec.validate(pool)
  ocfg = bilevel.OptimConfig(lr=config.optim.lr, warmup_steps=config.optim.warmup_steps,
                             total_steps=m.steps, weight_decay=config.optim.weight_decay,
                             clip_norm=config.optim.clip_norm,
                             lr_of_inner_lr=config.optim.lr_of_inner_lr)
  opt = bilevel.make_optimizer(ocfg)
  meta = init_meta(model.params, lcfg, mcfg, jax.random.key(config.seed))
  state = {"meta": meta, "opt": opt.init(meta), "step": jnp.zeros((), jnp.int32)}
  step = make_meta_step(model, lcfg, mcfg, opt)
  rng = np.random.default_rng(config.seed)
  log = []
  it = range(m.steps)
  if config.progress:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    it = tqdm(it, desc="mta-lora", unit="step")
  for i in it:
    batch, c = sample_batch(rng, model, ds, pool, pool_tools, spec, m.meta_batch, pcfg)
    state, metrics = step(state, model.params, batch, c)
    if (i + 1) % config.log_every == 0 or i + 1 == m.steps:
      row = {k: float(v) for k, v in metrics.items()}
      if not np.isfinite(row["outer/loss"]):
        raise FloatingPointError(f"MTA-LoRA: non-finite outer loss at step {i + 1}: {row}")
      log.append({"step": i + 1, **row})
  return state["meta"], {"mta": log, "meta_params": P.count(state["meta"])}


def task_adapter(model: LanguageModel, config, pcfg: select.PromptConfig, lcfg: lora.LoraConfig,
                 meta: dict, dataset: Callable[[], ToolDataset]):
  """``params_for_task(tools (N,), support rows, support labels)``: merged parameters adapted to
  one evaluator task (``mta_jax.llm.task_eval``) from its K labelled questions per candidate
  (``run_eval.make_tasks`` draws them among the candidates' queries that are not scored).

  ``dataset()`` returns the dataset being evaluated (the selector's, which changes between
  datasets).
  """
  mcfg = meta_config(config)

  @functools.partial(jax.jit, static_argnums=(3,))
  def adapted(meta, base, support, max_answer):
    fast, _ = adapt(model, lcfg, mcfg, meta, base, support, max_answer)
    return lora.apply(base, fast, lcfg)

  def params_for(tools, sup_rows, sup_y):
    if not len(sup_rows) or mcfg.inner_steps == 0:
      return lora.apply(model.params, meta["params"], lcfg)
    pairs = _episode_pairs(model, dataset(), pcfg, np.asarray(tools), sup_rows, sup_y)
    # Fixed batch (K per candidate slot) so the adaptation compiles once per length bucket.
    k = -(-len(sup_rows) // len(tools))
    support = train.pack(pairs, model.tokenizer.pad_id, batch=k * config.eval.n_way)
    return adapted(meta, model.params, support,
                   bucket_for(max(len(a) for _, a in pairs), TRAIN_ANSWER_BUCKETS))

  return params_for
