"""The bi-level core: ``adapt`` -> ``episode_loss`` -> ``meta_loss`` -> ``meta_train_step``.

Two levels, two names:
- ``meta`` (φ): ``{"params": flat dict, "inner_lr": flat dict}``, updated by the outer optimiser;
- ``fast`` (θ): the subset of ``meta["params"]`` that the scorer's ``fast_pattern`` selects
  (plus Proto-MAML class weights), adapted per episode by ``inner_steps`` SGD steps on the
  episode's *support* streams, starting from φ. The outer loss is the adapted model's loss on
  the episode's *query* stream, differentiated through the adaptation (second order), or with
  ``stop_gradient`` on the inner gradients (first order).

An episode is a dict of fixed-shape arrays (see ``mta_jax.episodes``): ``tools`` (N documents),
``support`` and ``views`` (labelled texts to adapt on) and ``query`` (labelled texts to score),
each stream ``{"h": (S, L, H), "m": (S, L), "y": (S,), "w": (S,)}`` with ``w`` = 0 on padding.

Algorithms on the same episodes: ``maml`` (second order), ``fomaml``, ``reptile``, ``protonet``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from mta_jax import params as P
from mta_jax.scorer import Scorer

ALGORITHMS = ("maml", "fomaml", "reptile", "protonet")
LR_MODES = ("fixed", "per_tensor", "per_element")
SUPPORT_STREAMS = ("support", "views")
Episode = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class MetaConfig:
  """Static configuration of the bi-level optimisation."""

  algorithm: str = "maml"
  inner_steps: int = 3
  inner_lr: float = 0.01
  learn_inner_lr: str = "fixed"  # Meta-SGD: "per_tensor" or "per_element" learned rates
  remat: bool = False  # jax.checkpoint the inner step (memory for long unrolls)
  # One extra forward pass of the support streams at θ for the `inner/*_after` metrics (~3% of
  # a second-order step); off in the benchmark so the work equals the PyTorch peer's.
  track_adapted_support: bool = True
  # How the meta-batch is batched: "vmap" (one batched program; per-episode fast weights make
  # the dense layers batched matmuls) or "map" (lax.map: episodes one after another inside the
  # same jitted step, plain 2-D matmuls; faster on CPU, see BENCHMARKS.md).
  episode_batching: str = "vmap"

  @property
  def first_order(self) -> bool:
    return self.algorithm == "fomaml"

  def validate(self) -> None:
    if self.algorithm not in ALGORITHMS:
      raise ValueError(f"meta.algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
    if self.episode_batching not in ("vmap", "map"):
      raise ValueError(f"meta.episode_batching must be 'vmap' or 'map', got "
                       f"{self.episode_batching!r}")
    if self.learn_inner_lr not in LR_MODES:
      raise ValueError(f"meta.learn_inner_lr must be one of {LR_MODES}, got "
                       f"{self.learn_inner_lr!r}")
    if self.inner_steps < 0 or (self.inner_steps == 0 and self.algorithm in ("maml", "fomaml",
                                                                               "reptile")):
      raise ValueError(f"meta.inner_steps must be >= 1 for {self.algorithm}, got "
                       f"{self.inner_steps}")
    if self.inner_lr <= 0:
      raise ValueError(f"meta.inner_lr must be > 0, got {self.inner_lr}")


# ---------------------------------------------------------------------------- losses

def _weighted_ce(logits: jax.Array, y: jax.Array, w: jax.Array):
  """Sum of weighted cross-entropy, sum of weighted hits, sum of weights."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  hit = (jnp.argmax(logits, -1) == y).astype(logits.dtype)
  return jnp.sum(w * ce), jnp.sum(w * hit), jnp.sum(w)


def streams_loss(scorer: Scorer, p: P.Params, episode: Episode, names) -> tuple[jax.Array, jax.Array]:
  """Weighted mean cross-entropy and accuracy over the named streams of one episode."""
  tools = scorer.tool_repr(p, episode["tools"]["h"], episode["tools"]["m"])
  tot_l = tot_h = tot_w = 0.0
  for name in names:
    s = episode[name]
    if s["y"].shape[0] == 0:
      continue
    l, h, w = _weighted_ce(scorer.logits(p, s["h"], s["m"], tools), s["y"], s["w"])
    tot_l, tot_h, tot_w = tot_l + l, tot_h + h, tot_w + w
  denom = jnp.maximum(tot_w, 1.0)
  return tot_l / denom, tot_h / denom


# ---------------------------------------------------------------------------- inner loop

def init_meta(scorer: Scorer, meta_cfg: MetaConfig, key: jax.Array) -> dict:
  """φ at initialisation: scorer parameters and (Meta-SGD) inner learning rates."""
  params = scorer.init(key)
  fast, _ = P.partition(params, scorer.cfg.fast_pattern)
  lrs = {}
  if meta_cfg.learn_inner_lr == "per_tensor":
    lrs = {k: jnp.full((), meta_cfg.inner_lr, jnp.float32) for k in fast}
  elif meta_cfg.learn_inner_lr == "per_element":
    lrs = {k: jnp.full(v.shape, meta_cfg.inner_lr, jnp.float32) for k, v in fast.items()}
  if scorer.cfg.proto_head and meta_cfg.learn_inner_lr != "fixed":
    lrs["proto/w"] = jnp.full((), meta_cfg.inner_lr, jnp.float32)
  return {"params": params, "inner_lr": lrs}


def _split_fast(scorer: Scorer, meta: dict, episode: Episode):
  fast, slow = P.partition(meta["params"], scorer.cfg.fast_pattern)
  if scorer.cfg.proto_head:
    # Proto-MAML: class weights start as the tools' embeddings (gradient flows into φ).
    fast["proto/w"] = scorer.embed(meta["params"], episode["tools"]["h"], episode["tools"]["m"])
  return fast, slow


def adapt(scorer: Scorer, cfg: MetaConfig, meta: dict, episode: Episode,
          streams=SUPPORT_STREAMS) -> tuple[P.Params, P.Params, dict]:
  """θ = ``inner_steps`` SGD steps on the support streams from φ, as a ``lax.scan``.

  Returns ``(fast, slow, metrics)``; ``merge(fast, slow)`` is the adapted parameter set.
  """
  fast, slow = _split_fast(scorer, meta, episode)
  lrs = meta["inner_lr"]

  def support_loss(f):
    return streams_loss(scorer, P.merge(f, slow), episode, streams)

  def step(f, _):
    (loss, acc), g = jax.value_and_grad(support_loss, has_aux=True)(f)
    if cfg.first_order:
      g = jax.lax.stop_gradient(g)
    f = {k: f[k] - (lrs[k] if k in lrs else cfg.inner_lr) * g[k] for k in f}
    return f, (loss, acc)

  if cfg.remat:
    step = jax.checkpoint(step)
  fast, (losses, accs) = jax.lax.scan(step, fast, None, length=cfg.inner_steps)
  metrics = {"inner/loss_before": losses[0], "inner/acc_before": accs[0],
             "inner/loss_last_step": losses[-1]}
  return fast, slow, metrics


# ---------------------------------------------------------------------------- episode losses

def episode_loss(scorer: Scorer, cfg: MetaConfig, meta: dict, episode: Episode):
  """Outer loss of one episode (and metrics), differentiable w.r.t. φ."""
  if cfg.algorithm == "protonet":
    return _protonet_loss(scorer, meta, episode)
  fast, slow, metrics = adapt(scorer, cfg, meta, episode)
  adapted = P.merge(fast, slow)
  if cfg.track_adapted_support:
    after_l, after_a = streams_loss(scorer, jax.lax.stop_gradient(adapted), episode,
                                    SUPPORT_STREAMS)
    metrics.update({"inner/loss_after": after_l, "inner/acc_after": after_a})
  loss, acc = streams_loss(scorer, adapted, episode, ("query",))
  metrics.update({"outer/loss": loss, "outer/acc": acc})
  return loss, metrics


def prototypes(scorer: Scorer, p: P.Params, episode: Episode) -> jax.Array:
  """(N, H) unit prototypes: mean embedding of each tool's document and its support texts."""
  n = episode["tools"]["h"].shape[0]
  total = scorer.embed(p, episode["tools"]["h"], episode["tools"]["m"])
  count = jnp.ones((n,), total.dtype)
  for name in SUPPORT_STREAMS:
    s = episode[name]
    if s["y"].shape[0] == 0:
      continue
    onehot = jax.nn.one_hot(s["y"], n, dtype=total.dtype) * s["w"][:, None]
    total = total + onehot.T @ scorer.embed(p, s["h"], s["m"])
    count = count + onehot.sum(0)
  protos = total / count[:, None]
  return protos / jnp.maximum(jnp.linalg.norm(protos, axis=-1, keepdims=True), 1e-12)


def _protonet_loss(scorer: Scorer, meta: dict, episode: Episode):
  """ProtoNet: no inner loop; queries are scored against the episode's prototypes."""
  p = meta["params"]
  q = episode["query"]
  l, h, w = _weighted_ce(scorer.logits(p, q["h"], q["m"], prototypes(scorer, p, episode)),
                         q["y"], q["w"])
  loss, acc = l / jnp.maximum(w, 1.0), h / jnp.maximum(w, 1.0)
  return loss, {"outer/loss": loss, "outer/acc": acc}


def _reptile_direction(scorer: Scorer, cfg: MetaConfig, meta: dict, episode: Episode):
  """Reptile: adapt on every labelled stream; the outer 'gradient' is φ_fast - θ."""
  fast, _, metrics = adapt(scorer, cfg, meta, episode, streams=SUPPORT_STREAMS + ("query",))
  meta_fast, _ = P.partition(meta["params"], scorer.cfg.fast_pattern)
  direction = {k: meta_fast[k] - fast[k] for k in meta_fast}
  metrics.update({"outer/loss": metrics["inner/loss_last_step"], "outer/acc": metrics[
      "inner/acc_before"]})
  return direction, metrics


# ---------------------------------------------------------------------------- meta level

def meta_loss(scorer: Scorer, cfg: MetaConfig, meta: dict, episodes: Episode):
  """Mean over the meta-batch of the vmapped ``episode_loss`` (episodes on axis 0)."""
  one = functools.partial(episode_loss, scorer, cfg)
  if cfg.episode_batching == "map":
    losses, metrics = jax.lax.map(lambda ep: one(meta, ep), episodes)
  else:
    losses, metrics = jax.vmap(one, in_axes=(None, 0))(meta, episodes)
  return losses.mean(), jax.tree.map(jnp.mean, metrics)


def meta_grad(scorer: Scorer, cfg: MetaConfig, meta: dict, episodes: Episode):
  """(gradient w.r.t. φ, metrics) for every algorithm (Reptile's is its update direction)."""
  if cfg.algorithm == "reptile":
    dirs, metrics = jax.vmap(functools.partial(_reptile_direction, scorer, cfg),
                             in_axes=(None, 0))(meta, episodes)
    grads = jax.tree.map(jnp.zeros_like, meta)
    grads["params"].update(jax.tree.map(lambda d: d.mean(0), dirs))
    return grads, jax.tree.map(jnp.mean, metrics)
  (_, metrics), grads = jax.value_and_grad(
      functools.partial(meta_loss, scorer, cfg), has_aux=True)(meta, episodes)
  return grads, metrics


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """The outer optimiser: AdamW with clipping, linear warm-up then cosine decay."""

  lr: float = 1e-4
  warmup_steps: int = 50
  total_steps: int = 1000
  weight_decay: float = 1e-4
  clip_norm: float = 1.0
  lr_of_inner_lr: float = 1e-3  # Meta-SGD learning rates move on their own scale


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
  sched = optax.warmup_cosine_decay_schedule(
      0.0, cfg.lr, max(cfg.warmup_steps, 1), max(cfg.total_steps, cfg.warmup_steps + 1))
  lr_sched = optax.warmup_cosine_decay_schedule(
      0.0, cfg.lr_of_inner_lr, max(cfg.warmup_steps, 1),
      max(cfg.total_steps, cfg.warmup_steps + 1))
  return optax.chain(
      optax.clip_by_global_norm(cfg.clip_norm),
      optax.multi_transform(
          {"params": optax.adamw(sched, weight_decay=cfg.weight_decay),
           "inner_lr": optax.adam(lr_sched)},
          {"params": "params", "inner_lr": "inner_lr"}))


def init_train_state(scorer: Scorer, meta_cfg: MetaConfig, optimizer, key: jax.Array) -> dict:
  """The train state: trainable φ, frozen parameters, optimiser state, step counter."""
  meta = init_meta(scorer, meta_cfg, key)
  trainable, frozen = P.partition(meta["params"], scorer.trainable_pattern())
  meta = {"params": trainable, "inner_lr": meta["inner_lr"]}
  return {"meta": meta, "frozen": frozen, "opt": optimizer.init(meta),
          "step": jnp.zeros((), jnp.int32)}


def full_meta(state: dict) -> dict:
  """φ with the frozen parameters merged back in (what the scorer functions take)."""
  return {"params": P.merge(state["meta"]["params"], state["frozen"]),
          "inner_lr": state["meta"]["inner_lr"]}


def meta_train_step_fn(scorer: Scorer, meta_cfg: MetaConfig, optimizer) -> Callable:
  """The un-jitted ``step(state, episodes, key) -> (state, metrics)``."""
  meta_cfg.validate()

  def step(state, episodes, key):
    del key  # Deterministic; the key is in the signature for stochastic variants (dropout).
    frozen = state["frozen"]
    full = {"params": P.merge(state["meta"]["params"], frozen),
            "inner_lr": state["meta"]["inner_lr"]}
    grads_full, metrics = meta_grad(scorer, meta_cfg, full, episodes)
    # Only the trainable part of φ has optimiser state; frozen parameters' gradients are dropped.
    grads = {"params": {k: grads_full["params"][k] for k in state["meta"]["params"]},
             "inner_lr": grads_full["inner_lr"]}
    updates, opt = optimizer.update(grads, state["opt"], state["meta"])
    meta = optax.apply_updates(state["meta"], updates)
    metrics = dict(metrics)
    metrics["grad_norm"] = P.global_norm(grads)
    metrics["param_norm"] = P.global_norm(meta["params"])
    if meta["inner_lr"]:
      metrics["inner/lr_mean"] = jnp.mean(jnp.stack(
          [jnp.mean(v) for v in meta["inner_lr"].values()]))
    return {"meta": meta, "frozen": frozen, "opt": opt, "step": state["step"] + 1}, metrics

  return step


def make_meta_train_step(scorer: Scorer, meta_cfg: MetaConfig, optimizer,
                         mesh: jax.sharding.Mesh | None = None) -> Callable:
  """``step(state, episodes, key) -> (state, metrics)``, jitted once, state donated.

  With a ``mesh``, the episode axis of ``episodes`` is sharded over the mesh's ``"episodes"``
  axis and the state is replicated: XLA inserts the cross-device mean of the gradients.
  """
  step = meta_train_step_fn(scorer, meta_cfg, optimizer)
  if mesh is None:
    return jax.jit(step, donate_argnums=(0,))
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("episodes"))
  return jax.jit(step, donate_argnums=(0,), in_shardings=(rep, shard, rep),
                 out_shardings=(rep, rep))


def make_predict(scorer: Scorer, meta_cfg: MetaConfig) -> Callable:
  """``predict(meta, episodes) -> (E, Q, N) logits`` of the query stream after adaptation."""

  def one(meta, episode):
    if meta_cfg.algorithm == "protonet":
      p = meta["params"]
      protos = prototypes(scorer, p, episode)
      return scorer.logits(p, episode["query"]["h"], episode["query"]["m"], protos)
    if meta_cfg.inner_steps == 0:
      p = meta["params"]
    else:
      fast, slow, _ = adapt(scorer, meta_cfg, meta, episode)
      p = P.merge(fast, slow)
    tools = scorer.tool_repr(p, episode["tools"]["h"], episode["tools"]["m"])
    return scorer.logits(p, episode["query"]["h"], episode["query"]["m"], tools)

  return jax.jit(jax.vmap(one, in_axes=(None, 0)))
