"""The algorithm table: every training algorithm by name, and everything that differs between them.

A row (``Algorithm``) says how the algorithm turns episodes into a meta-gradient (an
``episode_loss`` that the core differentiates, or a ``meta_grad`` rule of its own), how it
predicts (``predict_state``: the parameters and class representations its queries are scored
with), which data it trains on, its config defaults and name in the report. The trainer, the
evaluator, the selector, the configs and the report read this table; nothing else compares an
algorithm's name.

To add an algorithm: write its ``episode_loss`` (or ``meta_grad``) and ``predict_state`` from the
core's pieces (``bilevel.adapt``, ``Learner.loss``, ...) in a module of its own and ``register``
a row here (see ``mta_jax/imaml.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from mta_jax import bilevel
from mta_jax import names as names_lib
from mta_jax import params as P
from mta_jax.learner import Learner


@dataclasses.dataclass(frozen=True)
class Algorithm:
  """One row of the table."""

  name: str
  row: str  # the report's row name
  predict_state: Callable  # (learner, cfg, meta, episode) -> (params, classes)
  episode_loss: Callable | None = None  # (learner, cfg, meta, episode) -> (loss, metrics)
  meta_grad: Callable | None = None  # (learner, cfg, meta, episodes) -> (grads, metrics)
  inner_loop: bool = True  # adapts fast weights with the inner loop (train and test time)
  first_order: bool = False  # stop_gradient on the inner gradients
  episodic: bool = True  # trains on episodes (else on plain batches against all seen tools)
  min_inner_steps: int = 1
  needs: tuple[str, ...] = ()  # Learner fields it cannot work without
  # Config values the algorithm fixes (``meta.<key>``), e.g. SFT has no inner loop.
  fixed: tuple[tuple[str, object], ...] = ()
  # Config defaults of the experiment configs (``meta.<key>``); overridable.
  defaults: tuple[tuple[str, object], ...] = ()

  def adapts_at_test(self, cfg: bilevel.MetaConfig) -> bool:
    """Whether predictions use the task's support data (else K-shot settings equal 0-shot)."""
    return (self.inner_loop and cfg.inner_steps > 0) or "prototypes" in self.needs


TABLE: dict[str, Algorithm] = {}


def register(algo: Algorithm) -> Algorithm:
  """Adds a row (a name may be registered once)."""
  if algo.name in TABLE:
    raise ValueError(f"algorithm {algo.name!r} is already registered")
  if (algo.episode_loss is None) == (algo.meta_grad is None):
    raise ValueError(f"algorithm {algo.name!r}: give exactly one of episode_loss and meta_grad")
  TABLE[algo.name] = algo
  return algo


def names() -> tuple[str, ...]:
  return tuple(TABLE)


def get(name: str) -> Algorithm:
  """The row of ``name``; an unknown name raises ``ValueError`` naming the known ones."""
  return names_lib.lookup(TABLE, name, "meta.algorithm")


def check_learner(algo: Algorithm, learner: Learner) -> None:
  missing = [n for n in algo.needs if getattr(learner, n) is None]
  if missing:
    raise ValueError(f"meta.algorithm {algo.name!r} needs the learner's {', '.join(missing)}, "
                     f"which the {learner.name} learner does not have")


def row_names() -> dict[str, str]:
  return {name: a.row for name, a in TABLE.items()}


# ---------------------------------------------------------------------------- MAML family

def maml_loss(learner: Learner, cfg, meta, episode):
  """MAML (second order) / FOMAML: query loss after ``adapt``."""
  fast, slow, metrics = bilevel.adapt(learner, cfg, meta, episode)
  return bilevel.adapted_outer_loss(learner, cfg, fast, slow, episode, metrics)


def adapted_state(learner: Learner, cfg, meta, episode):
  """Inner-loop adaptation (none with 0 steps), then the learner's class representations."""
  if cfg.inner_steps == 0:
    p = meta["params"]
  else:
    fast, slow, _ = bilevel.adapt(learner, cfg, meta, episode)
    p = P.merge(fast, slow)
  return p, learner.classes(p, episode)


def reptile_grad(learner: Learner, cfg, meta, episodes):
  """Reptile: adapt on every labelled stream; the outer 'gradient' is φ_fast - θ."""
  def direction(m, episode):
    streams = learner.support_streams + ("query",)
    fast, _, metrics = bilevel.adapt(learner, cfg, m, episode, streams=streams)
    meta_fast, _ = P.partition(m["params"], learner.fast_pattern)
    d = {k: meta_fast[k] - fast[k] for k in meta_fast}
    metrics.update({"outer/loss": metrics["inner/loss_last_step"],
                    "outer/acc": metrics["inner/acc_before"]})
    return d, metrics

  dirs, metrics = jax.vmap(direction, in_axes=(None, 0))(meta, episodes)
  grads = jax.tree.map(jnp.zeros_like, meta)
  grads["params"].update(jax.tree.map(lambda d: d.mean(0), dirs))
  return grads, jax.tree.map(jnp.mean, metrics)


# ---------------------------------------------------------------------------- ProtoNet

def protonet_loss(learner: Learner, cfg, meta, episode):
  """ProtoNet: no inner loop; queries are scored against the episode's prototypes."""
  del cfg
  from mta_jax.learner import weighted_ce  # pylint: disable=import-outside-toplevel
  p = meta["params"]
  q = episode["query"]
  l, h, w = weighted_ce(learner.stream_logits(p, q, learner.prototypes(p, episode)),
                        q["y"], q["w"])
  loss, acc = l / jnp.maximum(w, 1.0), h / jnp.maximum(w, 1.0)
  return loss, {"outer/loss": loss, "outer/acc": acc}


def protonet_state(learner: Learner, cfg, meta, episode):
  del cfg
  p = meta["params"]
  return p, learner.prototypes(p, episode)


# ---------------------------------------------------------------------------- SFT

def sft_grad(learner: Learner, cfg, meta, batch):
  """SFT: plain cross-entropy of a batch of seen-tool queries against all seen tools (the batch
  is one "episode" holding every tool); no inner loop, inner rates untouched."""
  del cfg
  one = jax.tree.map(lambda x: x[0], batch)

  def loss_fn(params):
    if learner.stream_logits is None:  # learners without class scores (the LLM): their loss
      loss, acc = learner.loss(params, one, ("query",))
      return loss, {"outer/loss": loss, "outer/acc": acc}
    # Every query of an SFT batch weighs 1: a plain mean, the pre-table SFT loss op for op (its
    # results are checked identical to the digit), rather than Learner.loss's weighted sum.
    q = one["query"]
    logits = learner.stream_logits(params, q, learner.classes(params, one))
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, q["y"])
    acc = (jnp.argmax(logits, -1) == q["y"]).astype(jnp.float32)
    return ce.mean(), {"outer/loss": ce.mean(), "outer/acc": acc.mean()}

  (_, metrics), g = jax.value_and_grad(loss_fn, has_aux=True)(meta["params"])
  return {"params": g, "inner_lr": jax.tree.map(jnp.zeros_like, meta["inner_lr"])}, metrics


def as_is_state(learner: Learner, cfg, meta, episode):
  del cfg
  return meta["params"], (learner.classes(meta["params"], episode)
                          if learner.classes is not None else None)


# ---------------------------------------------------------------------------- the table

# Registration order is the report's row order: baselines first, the method (MTA) last.
register(Algorithm("sft", "SFT", predict_state=as_is_state, meta_grad=sft_grad,
                   inner_loop=False, episodic=False, min_inner_steps=0,
                   fixed=(("inner_steps", 0), ("learn_inner_lr", "fixed"))))
register(Algorithm("protonet", "ProtoNet", predict_state=protonet_state,
                   episode_loss=protonet_loss, inner_loop=False, min_inner_steps=0,
                   needs=("prototypes", "stream_logits"), defaults=(("learn_inner_lr", "fixed"),)))
register(Algorithm("fomaml", "FOMAML", predict_state=adapted_state, episode_loss=maml_loss,
                   first_order=True, defaults=(("learn_inner_lr", "fixed"),)))
register(Algorithm("reptile", "Reptile", predict_state=adapted_state, meta_grad=reptile_grad,
                   defaults=(("learn_inner_lr", "fixed"),)))
register(Algorithm("maml", "MTA", predict_state=adapted_state, episode_loss=maml_loss,
                   defaults=(("learn_inner_lr", "per_tensor"),)))

from mta_jax import imaml  # pylint: disable=wrong-import-position,unused-import  # registers itself
