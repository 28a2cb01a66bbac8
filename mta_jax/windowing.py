"""Long texts and foreign texts: windows, pooling, and the one-line summaries users see.

The encoder reads at most 256 tokens. A longer text is cut into overlapping windows
(``tokenizer.windows``); each window is embedded and the unit embeddings are pooled (``pool``:
mean or element-wise max, then L2-normalised). Nothing is cut silently: ``TextStats`` counts the
windowed texts and the texts the encoder's vocabulary does not cover (share of ``[UNK]`` and of
single-character letter pieces over ``threshold``), and says so in one line each.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import jax
import numpy as np

from mta_jax.models import TextEncoder, tokenizer as tok_lib

POOLS = ("mean", "max")
COVERAGE_THRESHOLD = 0.2


class TextWarning(UserWarning):
  """Texts were windowed, or the vocabulary does not cover them (see ``TextStats``)."""


def pool(vectors: np.ndarray, how: str) -> np.ndarray:
  """(W, H) unit window embeddings -> (H,) unit embedding of the whole text."""
  if how not in POOLS:
    raise ValueError(f"window pooling must be one of {POOLS}, got {how!r}")
  v = vectors.mean(0) if how == "mean" else vectors.max(0)
  return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def pool_rows(vectors: np.ndarray, owner: Sequence[int], n: int, how: str) -> np.ndarray:
  """Rows of ``vectors`` (one per window) pooled per text: ``owner[r]`` is row r's text."""
  owner = np.asarray(owner)
  out = np.empty((n, vectors.shape[1]), np.float32)
  counts = np.bincount(owner, minlength=n)
  single = counts == 1
  out[owner[single[owner]]] = vectors[single[owner]]
  for i in np.flatnonzero(~single):
    out[i] = pool(vectors[owner == i], how)
  return out


_PROGRAMS: dict = {}


def query_program(encoder: TextEncoder, scorer):
  """jit ``(params, hidden (B, L, H), mask (B, L)) -> (B, H)`` unit query representations from
  the frozen lower layers' output (the adapted top, the head): what ``rank`` scores against a
  tool matrix when a query is windowed or ranked against its own tool list."""
  key = ("query", encoder.graphdef, scorer.cfg)
  if key not in _PROGRAMS:
    _PROGRAMS[key] = jax.jit(lambda params, h, m: scorer.query_repr(params,
                                                                    scorer.embed(params, h, m)))
  return _PROGRAMS[key]


def measure(tokenizer: tok_lib.Tokenizer, ids: Sequence[Sequence[int]]
            ) -> list[tuple[int, float]]:
  """Per text tokenised by ``encode_full``: (tokens, share of ``[UNK]`` and single non-ASCII
  letter pieces among its word pieces)."""
  return [(len(r), (unk + single) / n if n else 0.0)
          for r, (n, unk, single) in zip(ids, tokenizer.coverage_ids(ids))]


@dataclasses.dataclass
class TextStats:
  """Counts what happened to a batch of texts: windowed, truncated, poorly covered.

  ``add(labels, ids)`` takes texts tokenised by ``Tokenizer.encode_full`` and a label each
  (``"queries.jsonl:4"``, ``"tool 'x'"``); ``lines()`` are the summaries, at most one per kind.
  ``windowed=False`` says the texts are cut at 256 tokens instead (a selector that adapts top
  layers over token states reads one window of a tool document).
  """

  tokenizer: tok_lib.Tokenizer
  pool: str = "mean"
  threshold: float = COVERAGE_THRESHOLD
  long: list = dataclasses.field(default_factory=list)  # (label, tokens, windowed?)
  foreign: list = dataclasses.field(default_factory=list)  # (label, share)
  n_texts: int = 0

  def record(self, label: str, length: int, share: float, windowed: bool = True) -> None:
    """One text's ``measure``: its token count and its share of uncovered pieces."""
    self.n_texts += 1
    if length > tok_lib.MAX_LENGTH:
      self.long.append((label, length, windowed))
    if share > self.threshold:
      self.foreign.append((label, share))

  def add(self, labels: Sequence[str], ids: Sequence[Sequence[int]], windowed: bool = True):
    for label, (length, share) in zip(labels, measure(self.tokenizer, ids)):
      self.record(label, length, share, windowed)
    return self

  def add_texts(self, labels: Sequence[str], texts: Sequence[str], windowed: bool = True):
    return self.add(labels, self.tokenizer.encode_full(list(texts)), windowed)

  def coverage_line(self) -> str | None:
    if not self.foreign:
      return None
    first = ", ".join(f"{l} ({100 * s:.0f}%)" for l, s in self.foreign[:3])
    return (f"{len(self.foreign)} of {self.n_texts} texts are over {100 * self.threshold:.0f}% "
            f"[UNK] or single-character word pieces, first {first}: the encoder's vocabulary "
            "does not cover this text's language, so their rankings are unreliable")

  def window_lines(self) -> list[str]:
    out = []
    for windowed in (True, False):
      rows = [r for r in self.long if r[2] == windowed]
      if not rows:
        continue
      longest = max(rows, key=lambda r: r[1])
      first = ", ".join(f"{l} ({n} tokens)" for l, n, _ in rows[:3])
      if windowed:
        out.append(f"{len(rows)} of {self.n_texts} texts are longer than the encoder's "
                   f"{tok_lib.MAX_LENGTH}-token window and were embedded as overlapping windows, "
                   f"{self.pool}-pooled (longest {longest[1]} tokens; first {first})")
      else:
        out.append(f"{len(rows)} tool documents are longer than {tok_lib.MAX_LENGTH} tokens and "
                   f"were cut to the first {tok_lib.MAX_LENGTH}: this selector adapts encoder "
                   f"layers over token states, which read one window (first {first})")
    return out

  def lines(self) -> list[str]:
    return self.window_lines() + ([self.coverage_line()] if self.foreign else [])

  def emit(self, strict: bool) -> None:
    """Raises ``InputError`` on poorly covered texts if ``strict``; else warns once per kind."""
    from mta_jax import toolspec  # pylint: disable=import-outside-toplevel
    if strict and self.foreign:
      raise toolspec.InputError(f"{self.coverage_line()} (strict mode)")
    for line in self.lines():
      warnings.warn(line, TextWarning, stacklevel=4)
