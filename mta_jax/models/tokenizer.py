"""WordPiece tokenisation into length buckets, so that ``jit`` compiles once per bucket.

The packaged ``tokenizer.json`` bakes in truncation and padding to 128; sentence-transformers
truncates at 256 and pads per batch. We switch padding off, truncate at 256, and pad to the
smallest bucket that fits.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import numpy as np

BUCKETS = (16, 32, 64, 128, 256)
MAX_LENGTH = BUCKETS[-1]


@dataclasses.dataclass(frozen=True)
class Batch:
  """Token ids and attention mask, both (batch, length) int32."""

  ids: np.ndarray
  mask: np.ndarray


def bucket_for(n_tokens: int, buckets: Sequence[int] = BUCKETS) -> int:
  """The smallest bucket that holds ``n_tokens`` (inputs are truncated to the largest)."""
  for b in buckets:
    if n_tokens <= b:
      return b
  return buckets[-1]


class Tokenizer:
  """Wraps a ``tokenizers.Tokenizer`` with the padding and truncation that we need."""

  def __init__(self, path: pathlib.Path, max_length: int = MAX_LENGTH):
    from tokenizers import Tokenizer as HFTokenizer  # pylint: disable=import-outside-toplevel
    self._tok = HFTokenizer.from_file(str(path))
    self._tok.no_padding()
    self._tok.enable_truncation(max_length=max_length)
    self.max_length = max_length

  def encode(self, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, [CLS] ... [SEP], truncated to ``max_length``."""
    if isinstance(texts, str):
      raise TypeError("encode takes a sequence of strings, not a single string")
    return [e.ids for e in self._tok.encode_batch(list(texts))]

  def pad(self, ids: Sequence[Sequence[int]], length: int) -> Batch:
    """Right-pads (pad id 0) to ``length``; longer inputs are cut (keeping the final [SEP])."""
    out = np.zeros((len(ids), length), np.int32)
    mask = np.zeros((len(ids), length), np.int32)
    for i, row in enumerate(ids):
      row = list(row)
      if len(row) > length:
        row = row[:length - 1] + row[-1:]
      out[i, :len(row)] = row
      mask[i, :len(row)] = 1
    return Batch(out, mask)

  def __call__(self, texts: Sequence[str], length: int | None = None) -> Batch:
    """Tokenises and pads to ``length`` (default: the bucket of the longest text)."""
    ids = self.encode(texts)
    if length is None:
      length = bucket_for(max((len(r) for r in ids), default=1))
    return self.pad(ids, length)
