"""A BERT encoder in Flax NNX, shaped for all-MiniLM-L6-v2 and for meta-learning.

The encoder can run whole or split in two at any depth: ``lower(ids, mask, n_lower)`` runs the
embeddings and the first ``n_lower`` layers (frozen, computed once per text and cached), and
``upper(hidden, mask, n_lower)`` runs the rest. The meta-learning core differentiates only
through the upper part, as a pure function of its parameters (``nnx.split`` / ``nnx.merge``).

Dense layers flatten activations to ``(batch * tokens, features)`` before the matmul: XLA's CPU
backend runs the backward pass of a 2-D dot noticeably faster than a batched 3-D one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Architecture hyper-parameters (defaults: all-MiniLM-L6-v2)."""

  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  intermediate_size: int = 1536
  max_position: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads


class Dense(nnx.Module):
  """y = x @ kernel + bias over the last axis, computed on a 2-D view of ``x``."""

  def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    init = nnx.initializers.normal(0.02)
    self.kernel = nnx.Param(init(rngs.params(), (din, dout), dtype))
    self.bias = nnx.Param(jnp.zeros((dout,), dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    lead = x.shape[:-1]
    y = x.reshape(-1, x.shape[-1]) @ self.kernel[...] + self.bias[...]
    return y.reshape(*lead, -1)


class LayerNorm(nnx.Module):
  """LayerNorm with BERT's epsilon (nnx's default 1e-6 would not match the checkpoint)."""

  def __init__(self, dim: int, eps: float, dtype=jnp.float32):
    self.scale = nnx.Param(jnp.ones((dim,), dtype))
    self.bias = nnx.Param(jnp.zeros((dim,), dtype))
    self.eps = eps

  def __call__(self, x: jax.Array) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


class Embeddings(nnx.Module):
  """Word + position + token-type (always 0) embeddings, then LayerNorm."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
    init = nnx.initializers.normal(0.02)
    self.word = nnx.Param(init(rngs.params(), (cfg.vocab_size, cfg.hidden_size), dtype))
    self.position = nnx.Param(init(rngs.params(), (cfg.max_position, cfg.hidden_size), dtype))
    self.token_type = nnx.Param(init(rngs.params(), (cfg.type_vocab_size, cfg.hidden_size), dtype))
    self.norm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype)

  def __call__(self, ids: jax.Array) -> jax.Array:
    t = ids.shape[-1]
    x = self.word[...][ids] + self.position[...][:t] + self.token_type[...][0]
    return self.norm(x)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax attention, (B, T, heads, d) inputs, (B, T) key mask.

  Written out rather than ``jax.nn.dot_product_attention``: that one computes the logits with
  ``preferred_element_type=float32``, which breaks float64 gradient checks, and plain einsums
  are differentiable to any order on every backend.
  """
  scores = jnp.einsum("bqnd,bknd->bnqk", q, k) * (q.shape[-1] ** -0.5)
  scores = jnp.where(mask[:, None, None, :].astype(bool), scores, jnp.finfo(scores.dtype).min)
  return jnp.einsum("bnqk,bknd->bqnd", jax.nn.softmax(scores, axis=-1), v)


class Layer(nnx.Module):
  """One post-LayerNorm transformer block (self-attention, exact-GELU MLP)."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
    h, i = cfg.hidden_size, cfg.intermediate_size
    self.num_heads = cfg.num_heads
    self.query = Dense(h, h, rngs=rngs, dtype=dtype)
    self.key = Dense(h, h, rngs=rngs, dtype=dtype)
    self.value = Dense(h, h, rngs=rngs, dtype=dtype)
    self.attn_out = Dense(h, h, rngs=rngs, dtype=dtype)
    self.attn_norm = LayerNorm(h, cfg.layer_norm_eps, dtype)
    self.ffn_in = Dense(h, i, rngs=rngs, dtype=dtype)
    self.ffn_out = Dense(i, h, rngs=rngs, dtype=dtype)
    self.ffn_norm = LayerNorm(h, cfg.layer_norm_eps, dtype)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """x: (..., T, H) hidden states; mask: (..., T) with 1 for real tokens."""
    *lead, t, h = x.shape
    n = self.num_heads
    split = lambda y: y.reshape(-1, t, n, h // n)
    q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
    ctx = attention(q, k, v, mask.reshape(-1, t))
    x = self.attn_norm(x + self.attn_out(ctx.reshape(*lead, t, h)))
    y = self.ffn_out(jax.nn.gelu(self.ffn_in(x), approximate=False))
    return self.ffn_norm(x + y)


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
  """Mask-weighted mean over tokens, then L2 normalisation (sentence-transformers' recipe)."""
  m = mask.astype(hidden.dtype)[..., None]
  pooled = (hidden * m).sum(-2) / jnp.maximum(m.sum(-2), 1e-9)
  return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


class BertEncoder(nnx.Module):
  """The full sentence encoder; ``lower``/``upper`` split it at any depth."""

  def __init__(self, cfg: BertConfig = BertConfig(), *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.cfg = cfg
    self.embeddings = Embeddings(cfg, rngs=rngs, dtype=dtype)
    self.layers = nnx.List([Layer(cfg, rngs=rngs, dtype=dtype) for _ in range(cfg.num_layers)])

  def lower(self, ids: jax.Array, mask: jax.Array, n_lower: int) -> jax.Array:
    """Embeddings and layers [0, n_lower): the part that is frozen and cached."""
    x = self.embeddings(ids)
    for layer in list(self.layers)[:n_lower]:
      x = layer(x, mask)
    return x

  def upper(self, hidden: jax.Array, mask: jax.Array, n_lower: int) -> jax.Array:
    """Layers [n_lower, num_layers) on cached hidden states, then mean pooling."""
    for layer in list(self.layers)[n_lower:]:
      hidden = layer(hidden, mask)
    return mean_pool(hidden, mask)

  def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
    """Sentence embeddings (..., H), unit norm."""
    n = self.cfg.num_layers
    return self.upper(self.lower(ids, mask, n), mask, n)


class TopLayers(nnx.Module):
  """The top ``k`` layers of an encoder as a module of their own: the adaptable part.

  Its parameters are a small pytree that the meta-learning core treats as (part of) the fast
  weights; ``__call__`` maps cached lower hidden states to pooled, normalised embeddings.
  """

  def __init__(self, layers: list[Layer]):
    self.layers = nnx.List(layers)

  def __call__(self, hidden: jax.Array, mask: jax.Array) -> jax.Array:
    for layer in self.layers:
      hidden = layer(hidden, mask)
    return mean_pool(hidden, mask)


def top_layers(model: BertEncoder, k: int) -> TopLayers:
  """Shares (does not copy) the top ``k`` layers of ``model`` as a ``TopLayers`` module."""
  if not 0 <= k <= model.cfg.num_layers:
    raise ValueError(f"k must be in [0, {model.cfg.num_layers}], got {k}")
  n = model.cfg.num_layers
  return TopLayers(list(model.layers)[n - k:])
