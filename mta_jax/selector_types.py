"""The selector's settings and small types: ``SelectorConfig``, ``Choice``, a cached ``Toolbox``,
and the helpers ``ToolSelector`` and its mixins share (including the hybrid scorer's lexical
feature: ``lexical_index``, ``lexical_feature``, ``mix_scores``)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from mta_jax import bm25
from mta_jax import lexical
from mta_jax import params as P
from mta_jax import toolspec
from mta_jax import windowing
from mta_jax.models import tokenizer as tok_lib
from mta_jax.scorer import Scorer


@dataclasses.dataclass(frozen=True)
class SelectorConfig:
  """Inference-time settings (not learned)."""

  n_views: int = 4  # documentation views per tool for the documentation-only adaptation
  batch_size: int = 32  # queries per jitted call (64 pads more: sorted chunks span more lengths)
  batch_buckets: tuple[int, ...] = (1, 4, 8, 16, 32)  # padded batch sizes; the last = batch_size
  # Fine buckets: queries are short (MTA-Tools: median 19 tokens), tool documents 100-160
  # tokens; the tokenizer's 16/32/64/128/256 would pad queries ~35% and documents ~60% more.
  length_buckets: tuple[int, ...] = (12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 96, 112, 128, 160,
                                     192, 256)
  # Single-query shapes set_tools compiles (86% of MTA-Tools queries); others compile on first use.
  warmup_lengths: tuple[int, ...] = (12, 16, 20, 24, 28, 32)
  tool_multiple: int = 64  # tool matrices padded to a multiple: one compile per size class
  short_text: int = 32  # adaptation texts up to this many tokens go in their own stream
  cache_size: int = 4  # toolboxes whose adaptation stays cached
  # Long texts: windows of 256 tokens sharing this many; window embeddings pooled by
  # (mean or max; mean chosen on validation, see README "Long and foreign texts").
  window_overlap: int = 64
  window_pool: str = "mean"
  query_from: str = toolspec.DEFAULT_QUERY_FROM  # chat requests: which turns are the query
  coverage_threshold: float = windowing.COVERAGE_THRESHOLD  # [UNK] + single-letter share
  strict: bool = False  # poorly covered texts raise InputError instead of a warning
  disk_min_tools: int = 128  # toolboxes from this size keep their adaptation in the disk cache

  def validate(self) -> None:
    if self.batch_buckets[-1] != self.batch_size or list(self.batch_buckets) != sorted(
        self.batch_buckets):
      raise ValueError(f"batch_buckets {self.batch_buckets} must be increasing and end at "
                       f"batch_size={self.batch_size}")
    if self.length_buckets[-1] != tok_lib.MAX_LENGTH:
      raise ValueError(f"length_buckets must end at {tok_lib.MAX_LENGTH}")
    if self.n_views < 0 or self.cache_size < 1:
      raise ValueError("n_views must be >= 0 and cache_size >= 1")
    if self.window_pool not in windowing.POOLS:
      raise ValueError(f"window_pool must be one of {windowing.POOLS}, got {self.window_pool!r}")
    if not 0 <= self.window_overlap < tok_lib.MAX_LENGTH - 2:
      raise ValueError(f"window_overlap must be in [0, {tok_lib.MAX_LENGTH - 2})")
    if self.query_from not in toolspec.QUERY_FROM:
      raise ValueError(f"query_from must be one of {toolspec.QUERY_FROM}")


class Choice(NamedTuple):
  """One ranked tool: its name and score (the cosine similarity; with the hybrid scorer
  ``mix/dense * cosine + mix/lex * lex``, see ``mix_scores``)."""

  name: str
  score: float


@dataclasses.dataclass
class Toolbox:
  """A toolbox's cached state: names, lower hidden states of the documents, adaptation."""

  names: list[str]
  index: dict[str, int]
  docs: dict  # {"h": (T, L, H), "m": (T, L)} lower hidden states of the main documents
  view_texts: list[str]
  view_labels: list[int]
  docs_only: tuple[P.Params, jax.Array]  # adapted params, padded (Tp, H) tool matrix
  # The hybrid scorer's BM25 index over the main documents (the corpus is the toolbox), built
  # once with the toolbox; None for a dense scorer.
  lex_index: "bm25.BM25 | None" = None


def round_up(n: int, m: int) -> int:
  return max(m, -(-n // m) * m)


def check_meta(scorer: Scorer, meta: dict) -> None:
  """Raises ``ValueError`` naming the mismatch if ``meta`` is not this scorer's parameters."""
  want = jax.eval_shape(scorer.init, jax.random.key(0))
  have = meta.get("params", {})
  missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
  shape = [k for k in want if k in have and tuple(have[k].shape) != tuple(want[k].shape)]
  if missing or extra or shape:
    raise ValueError(f"parameters do not match the scorer config {scorer.cfg}: missing "
                     f"{missing[:3]}, unexpected {extra[:3]}, wrong shape {shape[:3]}")


def config_n_views(config: Any, default: int) -> int:
  """The training config's number of documentation views per tool, where it says."""
  try:
    return int(config["episodes"]["n_views"])
  except (KeyError, TypeError, ValueError):
    return default


def top_choices(row: np.ndarray, names: Sequence[str], idx, top_k) -> list[Choice]:
  """The ``top_k`` best of ``row`` (restricted to indices ``idx``, None: all), best first."""
  idx = np.arange(len(names)) if idx is None else np.asarray(idx)
  s = row[idx]
  order = np.argsort(-s, kind="stable")[:top_k]
  return [Choice(names[idx[j]], float(s[j])) for j in order]


# ---------------------------------------------------------------------------- hybrid scorer

def lexical_index(scorer: Scorer, documents: Sequence[str]) -> bm25.BM25 | None:
  """The BM25 index of a toolbox's main documents (``Tool.document()``, the text the encoder
  reads, as ``data.Tool.document()`` in training) for a hybrid scorer (``cfg.lexical``); None
  for a dense one. Built once per toolbox: idf and lengths depend on the whole toolbox."""
  return bm25.BM25(list(documents)) if scorer.cfg.lexical else None


def lexical_feature(index: bm25.BM25, texts: Sequence[str], n_cols: int,
                    pad: str = "zeros") -> np.ndarray:
  """(len(texts), n_cols) float32: ``lexical.features(texts, documents)`` of the index's
  documents (each text's BM25 score divided by its best over the toolbox), then padded past the
  toolbox to ``n_cols`` columns: ``"zeros"`` beside a tool matrix's zero rows, ``"copy"`` (of
  column 0) beside document rows padded with copies of row 0 (``_lower``), so a padded class
  is a copy of tool 0 for the lexical term too."""
  feat = lexical.normalise(index.score_matrix(list(texts)))
  out = np.zeros((len(texts), n_cols), np.float32)
  out[:, :feat.shape[1]] = feat
  if pad == "copy" and feat.shape[1]:
    out[:, feat.shape[1]:] = feat[:, :1]
  return out


def mix_scores(params: P.Params, cos: np.ndarray, lex: np.ndarray | None) -> np.ndarray:
  """The selector's score: the cosine (dense scorer: ``lex`` None), or the hybrid scorer's
  ``mix/dense * cos + mix/lex * lex``: ``Scorer.logits`` times the temperature, so dense and
  hybrid scores share a scale and ranks equal the logits' ranks."""
  if lex is None:
    return cos
  return (np.float32(params["mix/dense"]) * cos + np.float32(params["mix/lex"]) * lex
          ).astype(np.float32)
