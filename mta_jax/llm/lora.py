"""LoRA on the attention projections, as flat parameter dicts (``mta_jax.params``).

For each target kernel W (stacked over layers, (L, in, out)) the adapter holds
``lora/blocks/<t>/a`` (L, in, r) and ``lora/blocks/<t>/b`` (L, r, out); the adapted kernel is
W + (alpha / r) * A @ B, merged at apply time so the NNX model needs no change. A ~ N(0, 1/in) and
B = 0, so an initial adapter is the base model exactly. The LoRA dict is the *fast* parameter set
of MTA-LoRA and the only trained parameters of LoRA SFT; the base weights stay frozen.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from mta_jax import params as P

TARGETS = ("q", "k", "v", "o")


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  rank: int = 8
  alpha: float = 16.0
  targets: tuple[str, ...] = TARGETS

  @property
  def scale(self) -> float:
    return self.alpha / self.rank

  def validate(self) -> None:
    if self.rank < 1:
      raise ValueError(f"lora.rank must be >= 1, got {self.rank}")
    bad = [t for t in self.targets if t not in TARGETS]
    if bad or not self.targets:
      raise ValueError(f"lora.targets must be a non-empty subset of {TARGETS}, got {self.targets}")


def init(base: P.Params, cfg: LoraConfig, key: jax.Array) -> P.Params:
  """Fresh adapters for ``cfg.targets`` of the stacked blocks in ``base`` (A random, B zero)."""
  cfg.validate()
  out = {}
  for t, k in zip(cfg.targets, jax.random.split(key, len(cfg.targets))):
    n_layers, din, dout = base[f"blocks/{t}"].shape
    out[f"lora/blocks/{t}/a"] = jax.random.normal(k, (n_layers, din, cfg.rank),
                                                  jnp.float32) / jnp.sqrt(din)
    out[f"lora/blocks/{t}/b"] = jnp.zeros((n_layers, cfg.rank, dout), jnp.float32)
  return out


def apply(base: P.Params, adapters: P.Params, cfg: LoraConfig) -> P.Params:
  """The base parameters with every adapter merged into its kernel (a new flat dict)."""
  out = dict(base)
  for t in cfg.targets:
    a, b = adapters[f"lora/blocks/{t}/a"], adapters[f"lora/blocks/{t}/b"]
    w = base[f"blocks/{t}"]
    out[f"blocks/{t}"] = w + (cfg.scale * jnp.einsum("lir,lro->lio", a, b)).astype(w.dtype)
  return out
