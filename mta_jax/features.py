"""Text caches: the frozen encoder's outputs for every query and document text of a dataset.

The meta-learning core never runs the frozen lower layers: it adapts the top ``n_top`` layers
(and a head) on cached hidden states. This module computes those caches once per dataset with
``TextEncoder.lower_hidden`` and keeps them on disk, keyed by everything they depend on
(dataset content, encoder depth and width, ``n_lower``, sequence lengths, views per tool), so a
resumed or repeated run loads them instead of recomputing.

With ``n_top == 0`` nothing above the cache is trainable except the head, and the scorer's
``embed`` is a masked mean over the cache followed by L2 normalisation. The cache then holds the
full-length mean-pooled sentence embedding as a single "token" with mask 1: the mean of one
vector is that vector, so this is exactly the sentence encoder's embedding (no truncation) at a
fraction of the memory.

    cache = features.text_cache(ds, features.FeatureSpec(n_lower=6), cache_dir)
    feats = episodes.gather(cache.device_arrays(), idx)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile

import numpy as np

from mta_jax.data import ToolDataset

FORMAT_VERSION = 1  # bump when the on-disk layout or the meaning of a key changes
_ARRAYS = ("q_h", "q_m", "d_h", "d_m")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  """What a cache holds: hidden states after ``n_lower`` layers at fixed lengths."""

  n_lower: int
  q_len: int = 48  # query tokens kept (99% of MTA-Tools queries are shorter)
  d_len: int = 128  # document tokens kept (tool documents are 100-160 tokens)
  n_views: int = 4  # documentation views per tool (name, description, parameters)

  def validate(self, num_layers: int) -> None:
    if not 0 <= self.n_lower <= num_layers:
      raise ValueError(f"features.n_lower must be in [0, {num_layers}], got {self.n_lower}")
    if min(self.q_len, self.d_len) < 1 or self.n_views < 0:
      raise ValueError(f"features: q_len and d_len must be >= 1 and n_views >= 0, got {self}")


@dataclasses.dataclass
class TextCache:
  """Cached encoder outputs for one dataset, with the document layout of ``ds.documents``."""

  q_h: np.ndarray  # (n_queries, Lq, H) hidden states of ds.queries, in order
  q_m: np.ndarray  # (n_queries, Lq) int32 masks
  d_h: np.ndarray  # (n_docs, Ld, H) main documents and views (see ``main_doc``/``view_rows``)
  d_m: np.ndarray
  main_doc: np.ndarray  # (n_tools,) row of each tool's main document
  view_rows: list[np.ndarray]  # per tool, rows of its documentation views
  key: str
  lexical: dict | None = None  # ``mta_jax.lexical.arrays`` for the hybrid scorer, or None

  def arrays(self) -> dict:
    """The dict ``episodes.gather`` indexes (numpy; ``jax.device_put`` it once); with the
    lexical feature's arrays when the cache was made with ``lexical=True``."""
    return {**{k: getattr(self, k) for k in _ARRAYS}, **(self.lexical or {})}


def _fingerprint(ds: ToolDataset, doc_texts: list[str], spec: FeatureSpec, model_cfg) -> str:
  h = hashlib.sha256()
  h.update(json.dumps([FORMAT_VERSION, dataclasses.asdict(spec), repr(model_cfg)]).encode())
  for t in [q.text for q in ds.queries] + doc_texts:
    h.update(t.encode("utf-8"))
    h.update(b"\0")
  return h.hexdigest()[:16]


def cache_key(ds: ToolDataset, spec: FeatureSpec, model_cfg) -> str:
  """Folder name of a cache: readable prefix + a hash of every input it depends on."""
  texts, _, _ = ds.documents(spec.n_views)
  pooled = "-pooled" if spec.n_lower == model_cfg.num_layers else ""
  return (f"{ds.name}-l{spec.n_lower}-q{spec.q_len}-d{spec.d_len}-v{spec.n_views}{pooled}-"
          f"{_fingerprint(ds, texts, spec, model_cfg)}")


def _compute(encoder, texts: list[str], spec: FeatureSpec, length: int, progress: bool):
  if spec.n_lower == encoder.cfg.num_layers:
    # Full-length sentence embedding as a single token (see the module docstring).
    emb = encoder.embed(texts, progress=progress)
    return emb[:, None, :], np.ones((len(texts), 1), np.int32)
  return encoder.lower_hidden(texts, spec.n_lower, length, progress=progress)


def _load(folder: pathlib.Path) -> dict:
  return {k: np.load(folder / f"{k}.npy") for k in _ARRAYS}


def text_cache(ds: ToolDataset, spec: FeatureSpec, cache_dir: str | os.PathLike, encoder=None,
               progress: bool = True, lexical: bool = False) -> TextCache:
  """Loads (or computes and stores) the cache of ``ds`` for ``spec`` under ``cache_dir``.

  ``encoder`` (a ``TextEncoder``) is loaded only when the cache must be computed. A cache that
  fails to load (truncated file) is recomputed with a warning. ``lexical``: also compute the
  hybrid scorer's BM25 feature (``mta_jax.lexical``; seconds of numpy, never stored). Writes are atomic (a temporary
  folder renamed into place), so a run killed while writing leaves no half cache behind.
  """
  from mta_jax.models import bert  # pylint: disable=import-outside-toplevel
  model_cfg = encoder.cfg if encoder is not None else bert.BertConfig()
  spec.validate(model_cfg.num_layers)
  texts, main_doc, view_rows = ds.documents(spec.n_views)
  key = cache_key(ds, spec, model_cfg)
  root = pathlib.Path(cache_dir).absolute()
  folder = root / key
  arrays = None
  if folder.exists():
    try:
      arrays = _load(folder)
      logging.info("features: loaded %s", folder)
    except (OSError, ValueError, EOFError) as e:
      logging.warning("features: cache %s is unreadable (%s); recomputing", folder, e)
      shutil.rmtree(folder, ignore_errors=True)
  if arrays is None:
    if encoder is None:
      from mta_jax.models import registry  # pylint: disable=import-outside-toplevel
      encoder = registry.load()
    logging.info("features: computing %s (%d queries, %d documents)", key, len(ds.queries),
                 len(texts))
    q_h, q_m = _compute(encoder, [q.text for q in ds.queries], spec, spec.q_len, progress)
    d_h, d_m = _compute(encoder, texts, spec, spec.d_len, progress)
    arrays = {"q_h": q_h.astype(np.float32), "q_m": q_m.astype(np.int32),
              "d_h": d_h.astype(np.float32), "d_m": d_m.astype(np.int32)}
    try:
      root.mkdir(parents=True, exist_ok=True)
      tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
      for k, v in arrays.items():
        np.save(tmp / f"{k}.npy", v)
      os.replace(tmp, folder)
    except OSError as e:  # A read-only cache dir costs time, not correctness.
      logging.warning("features: could not store the cache in %s (%s)", root, e)
  lex = None
  if lexical:
    from mta_jax import lexical as lexical_lib  # pylint: disable=import-outside-toplevel
    lex = lexical_lib.for_dataset(ds, spec.n_views)
  return TextCache(main_doc=main_doc, view_rows=view_rows, key=key, lexical=lex, **arrays)
