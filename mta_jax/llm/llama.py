"""A llama-architecture decoder in Flax NNX, shaped for SmolLM2-135M-Instruct, with a KV cache.

Grouped-query attention, rotary position embeddings in the GGUF's *interleaved* layout, RMSNorm,
a SwiGLU feed-forward and tied input/output embeddings. The 30 blocks are stored stacked (one
leading layer axis per parameter, created with ``nnx.vmap``) and run with ``lax.scan``, so a
forward pass compiles one block instead of 30.

The KV cache is a plain pytree ``{"k", "v"}`` of shape ``(layers, batch, slots, kv_heads,
head_dim)`` that goes in and comes out of ``__call__`` (no mutable module state): one function
then serves prefill, extension and decoding, and stays pure under ``jit``/``grad``. A call
writes its ``T`` new keys/values at cache slots ``[write_index, write_index + T)`` and attends over
all slots through an explicit boolean mask ``(batch, T, slots)``. Slots and positions are
decoupled: a right-padded prompt keeps its padding slots (masked out), and the next tokens of each
row continue at that row's own position. This is what lets 5 candidate answers share one cached
prompt: they are laid side by side after it, each masked to see the prompt and its own past only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

KVCache = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  """Architecture hyper-parameters (defaults: SmolLM2-135M-Instruct)."""

  vocab_size: int = 49152
  hidden_size: int = 576
  num_layers: int = 30
  num_heads: int = 9
  num_kv_heads: int = 3
  head_dim: int = 64
  intermediate_size: int = 1536
  rms_norm_eps: float = 1e-5
  rope_base: float = 100000.0
  max_position: int = 8192

  def validate(self) -> None:
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                       f"num_kv_heads={self.num_kv_heads}")
    if self.head_dim % 2:
      raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
  # Normalise in (at least) float32 whatever the compute dtype: a bf16 variance drifts.
  wide = jnp.promote_types(x.dtype, jnp.float32)
  x32 = x.astype(wide)
  y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True) + eps)
  return (y * scale.astype(wide)).astype(x.dtype)


def rope(x: jax.Array, positions: jax.Array, base: float) -> jax.Array:
  """Rotates the interleaved pairs (x[2i], x[2i+1]) of (B, T, heads, D) by position * base^(-2i/D).

  llama.cpp's converter permutes the rows of the q/k projections so that HF's "rotate half"
  pairs (i, i + D/2) become adjacent; rotating adjacent pairs on GGUF weights is therefore
  the same model.
  """
  d = x.shape[-1]
  wide = jnp.promote_types(x.dtype, jnp.float32)
  inv_freq = base ** (-jnp.arange(0, d, 2, dtype=wide) / d)  # (D/2,)
  angle = positions.astype(wide)[..., None] * inv_freq  # (B, T, D/2)
  cos, sin = jnp.cos(angle)[:, :, None, :], jnp.sin(angle)[:, :, None, :]
  pairs = x.astype(wide).reshape(*x.shape[:-1], d // 2, 2)
  x0, x1 = pairs[..., 0], pairs[..., 1]
  out = jnp.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)
  return out.reshape(x.shape).astype(x.dtype)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """Grouped-query attention: q (B, T, H, D), k/v (B, S, KV, D), mask (B, T, S) -> (B, T, H, D).

  Each of the KV heads serves H / KV consecutive query heads. The softmax runs in at least
  float32 but never below the input's precision (``jax.nn.dot_product_attention`` casts to
  float32 even for float64 inputs, which breaks finite-difference checks of meta-gradients).
  """
  b, t, h, d = q.shape
  kv = k.shape[2]
  wide = jnp.promote_types(q.dtype, jnp.float32)
  qg = q.reshape(b, t, kv, h // kv, d)
  scores = jnp.einsum("btkgd,bskd->bkgts", qg, k).astype(wide) / jnp.sqrt(d).astype(wide)
  scores = jnp.where(mask[:, None, None], scores, jnp.finfo(wide).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  return jnp.einsum("bkgts,bskd->btkgd", probs, v).reshape(b, t, h, d)


def _dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
  # A 2-D dot on (batch * tokens, features): XLA's CPU backward is faster than a batched 3-D one.
  lead = x.shape[:-1]
  return (x.reshape(-1, x.shape[-1]) @ kernel.astype(x.dtype)).reshape(*lead, -1)


class Block(nnx.Module):
  """One pre-norm transformer block: x + attn(norm(x)); x + mlp(norm(x))."""

  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
    init = nnx.initializers.normal(0.02)
    d, hd, f = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size

    def param(*shape):
      return nnx.Param(init(rngs.params(), shape, param_dtype))

    self.attn_norm = nnx.Param(jnp.ones((d,), param_dtype))
    self.q = param(d, cfg.num_heads * hd)
    self.k = param(d, cfg.num_kv_heads * hd)
    self.v = param(d, cfg.num_kv_heads * hd)
    self.o = param(cfg.num_heads * hd, d)
    self.mlp_norm = nnx.Param(jnp.ones((d,), param_dtype))
    self.gate = param(d, f)
    self.up = param(d, f)
    self.down = param(f, d)
    self.cfg = cfg

  def __call__(self, x, positions, mask, cache_k, cache_v, write_index):
    """x (B, T, D) -> (x', cache_k', cache_v'); caches (B, S, KV, hd) or None (no cache)."""
    cfg = self.cfg
    b, t, _ = x.shape
    h = rms_norm(x, self.attn_norm[...], cfg.rms_norm_eps)
    q = _dense(h, self.q[...]).reshape(b, t, cfg.num_heads, cfg.head_dim)
    k = _dense(h, self.k[...]).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
    v = _dense(h, self.v[...]).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
    q, k = rope(q, positions, cfg.rope_base), rope(k, positions, cfg.rope_base)
    if cache_k is not None:
      start = (0, write_index, 0, 0)
      cache_k = jax.lax.dynamic_update_slice(cache_k, k.astype(cache_k.dtype), start)
      cache_v = jax.lax.dynamic_update_slice(cache_v, v.astype(cache_v.dtype), start)
      k, v = cache_k.astype(x.dtype), cache_v.astype(x.dtype)
    att = attention(q, k, v, mask)
    x = x + _dense(att.reshape(b, t, -1), self.o[...])
    h = rms_norm(x, self.mlp_norm[...], cfg.rms_norm_eps)
    x = x + _dense(jax.nn.silu(_dense(h, self.gate[...])) * _dense(h, self.up[...]),
                   self.down[...])
    return x, cache_k, cache_v


class Llama(nnx.Module):
  """Token ids -> final hidden states (and an updated KV cache); ``logits`` applies the tied head."""

  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32,
               dtype=jnp.float32):
    cfg.validate()
    self.cfg = cfg
    self.dtype = dtype
    self.embed = nnx.Param(
        nnx.initializers.normal(0.02)(rngs.params(), (cfg.vocab_size, cfg.hidden_size),
                                      param_dtype))

    @nnx.split_rngs(splits=cfg.num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(r):
      return Block(cfg, rngs=r, param_dtype=param_dtype)

    self.blocks = make_blocks(rngs)
    self.final_norm = nnx.Param(jnp.ones((cfg.hidden_size,), param_dtype))

  def __call__(self, ids: jax.Array, positions: jax.Array, mask: jax.Array,
               cache: KVCache | None = None, write_index: jax.Array | int = 0):
    """ids, positions (B, T); mask (B, T, S) with S = T without a cache, else the cache's slots.

    Returns ``(hidden (B, T, D) after the final norm, cache')`` (``cache'`` is None without one).
    """
    x = self.embed[...][ids].astype(self.dtype)
    graphdef, stacked = nnx.split(self.blocks)

    def body(h, xs):
      params, ck, cv = xs
      h, ck, cv = nnx.merge(graphdef, params)(h, positions, mask, ck, cv, write_index)
      return h, (ck, cv)

    if cache is None:
      x, _ = jax.lax.scan(lambda h, p: (body(h, (p, None, None))[0], None), x, stacked)
      new_cache = None
    else:
      x, (ks, vs) = jax.lax.scan(body, x, (stacked, cache["k"], cache["v"]))
      new_cache = {"k": ks, "v": vs}
    return rms_norm(x, self.final_norm[...], self.cfg.rms_norm_eps), new_cache

  def logits(self, hidden: jax.Array) -> jax.Array:
    """Tied output head: hidden (..., D) -> logits (..., V) in (at least) float32."""
    return _dense(hidden, self.embed[...].T).astype(jnp.promote_types(hidden.dtype, jnp.float32))


def init_cache(cfg: LlamaConfig, batch: int, slots: int, dtype=jnp.float32) -> KVCache:
  """An empty KV cache with ``slots`` positions per row."""
  shape = (cfg.num_layers, batch, slots, cfg.num_kv_heads, cfg.head_dim)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def causal_mask(lengths: jax.Array, t: int) -> jax.Array:
  """(B, T, T): token i sees tokens j <= i that are real (j < length); padding rows see token 0.

  Padded query positions keep at least one visible key so that no softmax row is empty.
  """
  i = jnp.arange(t)
  causal = i[None, :, None] >= i[None, None, :]
  return causal & (i[None, None, :] < jnp.maximum(lengths, 1)[:, None, None])
