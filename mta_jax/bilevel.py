"""The bi-level core: ``adapt`` -> ``episode_loss`` -> ``meta_loss`` -> ``meta_train_step``, and
prediction, for every learner (``mta_jax.learner``) and every algorithm (``mta_jax.algorithms``).

Two levels, two names:
- ``meta`` (φ): ``{"params": flat dict, "inner_lr": flat dict}``, updated by the outer optimiser;
- ``fast`` (θ): the subset of ``meta["params"]`` that the learner's ``fast_pattern`` selects
  (plus per-episode weights such as Proto-MAML's class head), adapted per episode by
  ``inner_steps`` SGD steps on the episode's support streams, starting from φ. The outer loss is
  the adapted model's loss on the episode's *query* stream, differentiated through the
  adaptation (second order), with ``stop_gradient`` on the inner gradients (first order), or
  implicitly (iMAML).

Every function takes a ``Learner`` (a ``Scorer`` is accepted and wrapped as the encoder's
learner). What an algorithm does with an episode is in its row of ``mta_jax.algorithms.TABLE``;
this module only dispatches on that row.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from mta_jax import params as P
from mta_jax.learner import Learner, as_learner, full_params, split_trainable

LR_MODES = ("fixed", "per_tensor", "per_element")
Episode = dict[str, Any]


def _algorithms():
  from mta_jax import algorithms  # pylint: disable=import-outside-toplevel  # the table imports us
  return algorithms


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
  # iMAML: strength of the proximal term (λ/2)|θ - φ|² and conjugate-gradient iterations.
  prox_lambda: float = 1.0
  cg_steps: int = 10

  @property
  def algo(self):
    """This config's row of the algorithm table."""
    return _algorithms().get(self.algorithm)

  @property
  def first_order(self) -> bool:
    return self.algo.first_order

  def validate(self) -> None:
    algo = _algorithms().get(self.algorithm)  # raises with the known names
    if self.episode_batching not in ("vmap", "map"):
      raise ValueError(f"meta.episode_batching must be 'vmap' or 'map', got "
                       f"{self.episode_batching!r}")
    if self.learn_inner_lr not in LR_MODES:
      raise ValueError(f"meta.learn_inner_lr must be one of {LR_MODES}, got "
                       f"{self.learn_inner_lr!r}")
    if self.inner_steps < algo.min_inner_steps:
      raise ValueError(f"meta.inner_steps must be >= {algo.min_inner_steps} for "
                       f"{self.algorithm}, got {self.inner_steps}")
    if self.inner_lr <= 0:
      raise ValueError(f"meta.inner_lr must be > 0, got {self.inner_lr}")
    if self.prox_lambda <= 0 or self.cg_steps < 1:
      raise ValueError(f"meta.prox_lambda must be > 0 and meta.cg_steps >= 1, got "
                       f"{self.prox_lambda}, {self.cg_steps}")


# ---------------------------------------------------------------------------- losses

def streams_loss(learner, p: P.Params, episode: Episode, names) -> tuple[jax.Array, jax.Array]:
  """Weighted mean loss and accuracy over the named streams of one episode."""
  return as_learner(learner).loss(p, episode, tuple(names))


# ---------------------------------------------------------------------------- inner loop

def init_meta(learner, meta_cfg: MetaConfig, key: jax.Array) -> dict:
  """φ at initialisation: the learner's parameters and (Meta-SGD) inner learning rates."""
  learner = as_learner(learner)
  params = learner.init(key)
  fast, _ = P.partition(params, learner.fast_pattern)
  lrs = {}
  if meta_cfg.learn_inner_lr == "per_tensor":
    lrs = {k: jnp.full((), meta_cfg.inner_lr, jnp.float32) for k in fast}
  elif meta_cfg.learn_inner_lr == "per_element":
    lrs = {k: jnp.full(v.shape, meta_cfg.inner_lr, jnp.float32) for k, v in fast.items()}
  if learner.episode_init is not None and meta_cfg.learn_inner_lr != "fixed":
    lrs["proto/w"] = jnp.full((), meta_cfg.inner_lr, jnp.float32)
  return {"params": params, "inner_lr": lrs}


def split_fast(learner: Learner, meta: dict, episode: Episode) -> tuple[P.Params, P.Params]:
  """(θ at its start, the rest): the fast parameters and the learner's per-episode weights."""
  fast, slow = P.partition(meta["params"], learner.fast_pattern)
  if learner.episode_init is not None:
    fast.update(learner.episode_init(meta["params"], episode))
  return fast, slow


def inner_update(cfg: MetaConfig, lrs: dict, f: P.Params, g: P.Params) -> P.Params:
  """One SGD step of the fast weights with per-tensor/element learned rates where they exist."""
  return {k: f[k] - (lrs[k] if k in lrs else cfg.inner_lr) * g[k] for k in f}


def adapt(learner, cfg: MetaConfig, meta: dict, episode: Episode,
          streams=None) -> tuple[P.Params, P.Params, dict]:
  """θ = ``inner_steps`` SGD steps on the support streams from φ, as a ``lax.scan``.

  Returns ``(fast, slow, metrics)``; ``merge(fast, slow)`` is the adapted parameter set.
  """
  learner = as_learner(learner)
  streams = tuple(streams or learner.support_streams)
  fast, slow = split_fast(learner, meta, episode)
  lrs = meta["inner_lr"]

  def support_loss(f):
    return learner.loss(P.merge(f, slow), episode, streams)

  def step(f, _):
    (loss, acc), g = jax.value_and_grad(support_loss, has_aux=True)(f)
    if cfg.first_order:
      g = jax.lax.stop_gradient(g)
    return inner_update(cfg, lrs, f, g), (loss, acc)

  if cfg.remat:
    step = jax.checkpoint(step)
  fast, (losses, accs) = jax.lax.scan(step, fast, None, length=cfg.inner_steps)
  metrics = {"inner/loss_before": losses[0], "inner/acc_before": accs[0],
             "inner/loss_last_step": losses[-1]}
  return fast, slow, metrics


def adapted_outer_loss(learner: Learner, cfg: MetaConfig, fast: P.Params, slow: P.Params,
                       episode: Episode, metrics: dict):
  """The query loss of adapted weights, with the optional support metrics after adaptation."""
  adapted = P.merge(fast, slow)
  if cfg.track_adapted_support:
    after_l, after_a = learner.loss(jax.lax.stop_gradient(adapted), episode,
                                    learner.support_streams)
    metrics.update({"inner/loss_after": after_l, "inner/acc_after": after_a})
  loss, acc = learner.loss(adapted, episode, ("query",))
  metrics.update({"outer/loss": loss, "outer/acc": acc})
  return loss, metrics


# ---------------------------------------------------------------------------- meta level

def episode_loss(learner, cfg: MetaConfig, meta: dict, episode: Episode):
  """Outer loss of one episode (and metrics), differentiable w.r.t. φ."""
  return cfg.algo.episode_loss(as_learner(learner), cfg, meta, episode)


def meta_loss(learner, cfg: MetaConfig, meta: dict, episodes: Episode):
  """Mean over the meta-batch of the vmapped ``episode_loss`` (episodes on axis 0)."""
  one = functools.partial(episode_loss, as_learner(learner), cfg)
  if cfg.episode_batching == "map":
    losses, metrics = jax.lax.map(lambda ep: one(meta, ep), episodes)
  else:
    losses, metrics = jax.vmap(one, in_axes=(None, 0))(meta, episodes)
  return losses.mean(), jax.tree.map(jnp.mean, metrics)


def meta_grad(learner, cfg: MetaConfig, meta: dict, episodes: Episode):
  """(gradient w.r.t. φ, metrics): the algorithm's own rule (Reptile's update direction, SFT's
  plain gradient) or the gradient of ``meta_loss``."""
  learner = as_learner(learner)
  if cfg.algo.meta_grad is not None:
    return cfg.algo.meta_grad(learner, cfg, meta, episodes)
  (_, metrics), grads = jax.value_and_grad(
      functools.partial(meta_loss, learner, cfg), has_aux=True)(meta, episodes)
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


def init_train_state(learner, meta_cfg: MetaConfig, optimizer, key: jax.Array) -> dict:
  """The train state: trainable φ, frozen parameters, optimiser state, step counter."""
  learner = as_learner(learner)
  meta = init_meta(learner, meta_cfg, key)
  trainable, frozen = split_trainable(learner, meta["params"])
  meta = {"params": trainable, "inner_lr": meta["inner_lr"]}
  return {"meta": meta, "frozen": frozen, "opt": optimizer.init(meta),
          "step": jnp.zeros((), jnp.int32)}


def full_meta(state: dict, constants: P.Params | None = None) -> dict:
  """φ with the frozen parameters (and any learner constants) merged back in."""
  return full_params(state, constants)


def meta_train_step_fn(learner, meta_cfg: MetaConfig, optimizer) -> Callable:
  """The un-jitted ``step(state, episodes, key, constants) -> (state, metrics)``."""
  learner = as_learner(learner)
  meta_cfg.validate()
  _algorithms().check_learner(meta_cfg.algo, learner)

  def step(state, episodes, key, constants=None):
    del key  # Deterministic; the key is in the signature for stochastic variants (dropout).
    full = full_params(state, constants)
    grads_full, metrics = meta_grad(learner, meta_cfg, full, episodes)
    # Only the trainable part of φ has optimiser state; other gradients are dropped.
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
    return {"meta": meta, "frozen": state["frozen"], "opt": opt,
            "step": state["step"] + 1}, metrics

  return step


def make_meta_train_step(learner, meta_cfg: MetaConfig, optimizer,
                         mesh: jax.sharding.Mesh | None = None) -> Callable:
  """``step(state, episodes, key) -> (state, metrics)``, jitted once, state donated.

  The learner's constants (e.g. the LLM's base weights) are passed to the jitted function as an
  argument on every call, never baked into the program. With a ``mesh`` (data parallel,
  ``mta_jax.sharding``), the inputs come placed on it: the state replicated and the batch split
  over the devices (``sharding.batch_spec``: episodes on axis 0, SFT's query rows on axis 1);
  XLA inserts the cross-device mean of the gradients, the state stays replicated and the
  constants are replicated once, here.
  """
  learner = as_learner(learner)
  step = meta_train_step_fn(learner, meta_cfg, optimizer)
  constants = learner.constants or None
  if mesh is None:
    jitted = jax.jit(step, donate_argnums=(0,))
  else:
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    jitted = jax.jit(step, donate_argnums=(0,), out_shardings=(rep, rep))
    if constants is not None:
      constants = jax.device_put(constants, rep)
  if constants is None:
    return jitted
  return lambda state, episodes, key: jitted(state, episodes, key, constants)


# ---------------------------------------------------------------------------- prediction

def predict_state(learner, cfg: MetaConfig, meta: dict, episode: Episode):
  """(parameters, class representations) with which the algorithm scores an episode's queries:
  after the inner loop (MAML family), from prototypes (ProtoNet) or as is (SFT, 0 steps)."""
  return cfg.algo.predict_state(as_learner(learner), cfg, meta, episode)


def predict_one(learner, cfg: MetaConfig, meta: dict, episode: Episode) -> jax.Array:
  """(Q, N) logits of one episode's query stream after the algorithm's test-time adaptation."""
  learner = as_learner(learner)
  params, classes = predict_state(learner, cfg, meta, episode)
  return learner.stream_logits(params, episode["query"], classes)


def make_predict(learner, meta_cfg: MetaConfig) -> Callable:
  """``predict(meta, episodes) -> (E, Q, N)`` logits of the query stream after adaptation."""
  learner = as_learner(learner)
  return jax.jit(jax.vmap(functools.partial(predict_one, learner, meta_cfg), in_axes=(None, 0)))
