"""The LLM (SmolLM2 with LoRA adapters) as a ``mta_jax.learner.Learner``.

The fast and trainable parameters are the LoRA factors (``lora/blocks/<t>/{a,b}``); the base
weights are the learner's *constants*: an argument of every jitted step, merged into the flat
parameter dict by the core, never trained, never saved. An episode is a dict of packed prompt
streams (``mta_jax.llm.batches.pack``), ``{"support": ..., "query": ...}``, each
``{"ids": (S, T), "prompt_len": (S,), "ans_len": (S,), "w": (S,)}``: every prompt lists the
episode's candidate tools and ends with the gold answer ``Use [name] tool``. The loss of a
stream is the weighted mean answer-token NLL; its accuracy is the share of answers whose every
token has probability > 1/2 (greedy-safe).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mta_jax import params as P
from mta_jax.learner import Learner
from mta_jax.llm import lora
from mta_jax.llm.lm import LanguageModel

LORA_PREFIX = "lora/"


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


def llm_learner(model: LanguageModel, lcfg: lora.LoraConfig, max_answer: int) -> Learner:
  """The LoRA-adapted LLM as a learner; ``max_answer`` is the answer width of every batch (one
  compiled program per prompt-length bucket)."""
  lcfg.validate()

  def init(key):
    return lora.init(model.params, lcfg, key)

  def loss(params, episode, names):
    adapters = {k: v for k, v in params.items() if k.startswith(LORA_PREFIX)}
    base = {k: v for k, v in params.items() if not k.startswith(LORA_PREFIX)}
    streams = [episode[n] for n in names if episode[n]["ids"].shape[0]]
    # Several streams (Reptile adapts on support and query) are one token-weighted mean.
    batch = streams[0] if len(streams) == 1 else jax.tree.map(
        lambda *xs: jnp.concatenate(xs, axis=0), *streams)
    return answer_nll(model, lcfg, adapters, base, batch, max_answer)

  return Learner(name="llm", init=init, loss=loss, fast_pattern=f"^{LORA_PREFIX}",
                 trainable_pattern=f"^{LORA_PREFIX}", support_streams=("support",),
                 constants=model.params)
