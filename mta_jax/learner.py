"""The learner interface: what the bi-level core (``mta_jax.bilevel``) needs from a model.

A ``Learner`` is a frozen bundle of pure functions of flat parameter dicts (``mta_jax.params``)
and episodes (dicts of arrays with a fixed layout per learner). The core adapts, differentiates,
vmaps and checkpoints through these functions and never looks inside the model, so the encoder
scorer and the LLM (``mta_jax.llm.learner``) share one ``adapt``, one ``episode_loss``, one
``meta_train_step`` and one prediction path.

Parameters come in three kinds, all in one flat dict when a function sees them:
- *trainable* (``trainable_pattern``): updated by the outer optimiser (φ);
- *frozen*: saved with the run but never updated (e.g. the top layers' base weights under LoRA);
- *constants*: arrays every function needs but nothing trains or saves (the LLM's 135M base
  weights). They are an argument of the jitted step, never a baked-in constant, and the core
  merges them in with ``full_params``.
The *fast* parameters (θ, ``fast_pattern``) are the subset that the inner loop adapts.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from mta_jax import params as P

Episode = dict[str, Any]


@dataclasses.dataclass(frozen=True, eq=False)  # identity: the functions are closures
class Learner:
  """Pure functions of a model, as the bi-level core uses them.

  - ``init(key)``: every saved parameter (trainable and frozen) at initialisation;
  - ``loss(params, episode, streams)``: weighted mean loss and accuracy over the named labelled
    streams of one episode (the inner loop's objective on the support streams, the outer loss on
    ``"query"``);
  - ``classes(params, episode)``: the episode's class representations (None for learners that
    score tools another way), and ``stream_logits(params, stream, classes)``: a stream's
    (S, N) logits against them; together they are prediction;
  - ``episode_init(params, episode)``: extra per-episode fast weights (Proto-MAML's class head),
    or None;
  - ``prototypes(params, episode)``: ProtoNet's class representations, or None if the learner
    has no embedding to average;
  - ``support_streams``: the labelled streams the inner loop adapts on.
  """

  name: str
  init: Callable[[jax.Array], P.Params]
  loss: Callable[[P.Params, Episode, tuple[str, ...]], tuple[jax.Array, jax.Array]]
  fast_pattern: str
  trainable_pattern: str
  support_streams: tuple[str, ...]
  classes: Callable | None = None
  stream_logits: Callable | None = None
  episode_init: Callable | None = None
  prototypes: Callable | None = None
  constants: Any = dataclasses.field(default_factory=dict)

  def predict_logits(self, params: P.Params, episode: Episode, classes=None) -> jax.Array:
    """(Q, N) logits of the episode's query stream (against ``classes`` if given)."""
    if self.stream_logits is None:
      raise NotImplementedError(f"learner {self.name!r} has no stream_logits")
    if classes is None:
      classes = self.classes(params, episode)
    return self.stream_logits(params, episode["query"], classes)


def full_params(state: dict, constants: P.Params | None = None) -> dict:
  """φ as the learner's functions take it: trainable + frozen (+ constants) parameters, and the
  inner learning rates. The one place where the train state's parts are merged."""
  parts = [state["meta"]["params"], state["frozen"]] + ([constants] if constants else [])
  return {"params": P.merge(*parts), "inner_lr": state["meta"]["inner_lr"]}


def split_trainable(learner: Learner, params: P.Params) -> tuple[P.Params, P.Params]:
  """(trainable, frozen): the one place where φ is split for the optimiser."""
  return P.partition(params, learner.trainable_pattern)


# ---------------------------------------------------------------------------- the encoder

def weighted_ce(logits: jax.Array, y: jax.Array, w: jax.Array):
  """Sum of weighted cross-entropy, sum of weighted hits, sum of weights."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  hit = (jnp.argmax(logits, -1) == y).astype(logits.dtype)
  return jnp.sum(w * ce), jnp.sum(w * hit), jnp.sum(w)


def _normalize(x: jax.Array) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


ENCODER_SUPPORT_STREAMS = ("support", "views")


@functools.lru_cache(maxsize=None)
def _encoder_learner_for(scorer) -> Learner:
  return _build_encoder_learner(scorer)


def encoder_learner(scorer) -> Learner:
  """The encoder scorer (``mta_jax.scorer.Scorer``) as a ``Learner`` (one per scorer object).

  Episodes: ``tools`` (N documents) and labelled streams ``support``, ``views``, ``query``, each
  ``{"h": (S, L, H), "m": (S, L), "y": (S,), "w": (S,)}`` (``mta_jax.episodes``).
  """
  return _encoder_learner_for(scorer)


def _build_encoder_learner(scorer) -> Learner:
  def classes(p, episode):
    return scorer.tool_repr(p, episode["tools"]["h"], episode["tools"]["m"])

  def stream_logits(p, stream, cls):
    return scorer.logits(p, stream["h"], stream["m"], cls, stream.get("lex"))

  def loss(p, episode, names):
    cls = classes(p, episode)
    tot_l = tot_h = tot_w = 0.0
    for name in names:
      s = episode[name]
      if s["y"].shape[0] == 0:
        continue
      l, h, w = weighted_ce(stream_logits(p, s, cls), s["y"], s["w"])
      tot_l, tot_h, tot_w = tot_l + l, tot_h + h, tot_w + w
    denom = jnp.maximum(tot_w, 1.0)
    return tot_l / denom, tot_h / denom

  def episode_init(p, episode):
    # Proto-MAML: class weights start as the tools' embeddings (gradient flows into φ).
    return {"proto/w": scorer.embed(p, episode["tools"]["h"], episode["tools"]["m"])}

  def prototypes(p, episode):
    """(N, H) unit prototypes: mean embedding of each tool's document and its support texts."""
    n = episode["tools"]["h"].shape[0]
    total = scorer.embed(p, episode["tools"]["h"], episode["tools"]["m"])
    count = jnp.ones((n,), total.dtype)
    for name in ENCODER_SUPPORT_STREAMS:
      s = episode[name]
      if s["y"].shape[0] == 0:
        continue
      onehot = jax.nn.one_hot(s["y"], n, dtype=total.dtype) * s["w"][:, None]
      total = total + onehot.T @ scorer.embed(p, s["h"], s["m"])
      count = count + onehot.sum(0)
    return _normalize(total / count[:, None])

  return Learner(
      name="encoder", init=scorer.init, loss=loss, fast_pattern=scorer.cfg.fast_pattern,
      trainable_pattern=scorer.trainable_pattern(), support_streams=ENCODER_SUPPORT_STREAMS,
      classes=classes, stream_logits=stream_logits,
      episode_init=episode_init if scorer.cfg.proto_head else None, prototypes=prototypes)


def as_learner(model) -> Learner:
  """A ``Learner`` as is; a ``Scorer`` as its encoder learner."""
  if isinstance(model, Learner):
    return model
  return encoder_learner(model)
