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
UNK = "[UNK]"


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

  def _untruncated(self):
    """A second tokenizer with the same vocabulary and no truncation (built once)."""
    if getattr(self, "_full_tok", None) is None:
      from tokenizers import Tokenizer as HFTokenizer  # pylint: disable=import-outside-toplevel
      full = HFTokenizer.from_str(self._tok.to_str())
      full.no_truncation()
      full.no_padding()
      self._full_tok = full  # pylint: disable=attribute-defined-outside-init
    return self._full_tok

  def encode_full(self, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, [CLS] ... [SEP], never truncated (``windows`` cuts them up)."""
    if isinstance(texts, str):
      raise TypeError("encode_full takes a sequence of strings, not a single string")
    return [e.ids for e in self._untruncated().encode_batch(list(texts))]

  def coverage(self, texts: Sequence[str]) -> list[tuple[int, int, int]]:
    """Per text: (word pieces, of which ``[UNK]``, of which single-character letter pieces);
    see ``coverage_ids``."""
    return self.coverage_ids(self.encode_full(texts))

  def coverage_ids(self, ids: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """``coverage`` of texts tokenised by ``encode_full`` (``[CLS] ... [SEP]``).

    A single-character letter piece is one non-ASCII letter, alone or as a continuation
    (``##x``): what a language outside the vocabulary breaks into (Korean into jamo pieces,
    Chinese into characters, Russian into letters). ASCII letters are left out: short English
    slang and code names break into them too (``my ##s ##q ##l``, ``th ##x``), and accented
    Latin letters lose their accents before the vocabulary is looked up. [CLS]/[SEP] are not
    counted.
    """
    if getattr(self, "_single", None) is None:
      vocab = self._tok.get_vocab()
      single = np.zeros(max(vocab.values()) + 1, bool)
      for t, i in vocab.items():
        core = t[2:] if t.startswith("##") else t
        single[i] = len(core) == 1 and core.isalpha() and not core.isascii()
      self._single = single  # pylint: disable=attribute-defined-outside-init
      self._unk = vocab[UNK]  # pylint: disable=attribute-defined-outside-init
    out = []
    for row in ids:
      body = np.asarray(row[1:-1], np.int64)
      out.append((int(body.size), int((body == self._unk).sum()), int(self._single[body].sum())))
    return out

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


def windows(ids: Sequence[int], max_length: int = MAX_LENGTH, overlap: int = 64) -> list[list[int]]:
  """A tokenised text (``[CLS] ... [SEP]``) as windows of at most ``max_length`` tokens.

  A text that fits is one window, itself. A longer one becomes overlapping windows of
  ``max_length`` tokens, each ``[CLS] + piece + [SEP]``; consecutive pieces share ``overlap``
  tokens and the last window ends at the text's end (every window is full).
  """
  ids = list(ids)
  if len(ids) <= max_length:
    return [ids]
  width = max_length - 2
  if not 0 <= overlap < width:
    raise ValueError(f"overlap must be in [0, {width}), got {overlap}")
  cls, body, sep = ids[0], ids[1:-1], ids[-1]
  starts = list(range(0, len(body) - width, width - overlap)) + [len(body) - width]
  return [[cls] + body[s:s + width] + [sep] for s in starts]
