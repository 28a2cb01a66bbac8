"""The selector's text side: texts -> the encoder's outputs that ``ToolSelector`` scores.

``TextEncoding`` is a mixin of ``mta_jax.selector.ToolSelector`` (split out to keep each module
small): tokenised texts in length-sorted, bucketed batches through the frozen lower layers
(``selector_programs.hidden_program``), long texts as overlapping windows pooled
(``windowing``), sentence embeddings memoised in the process and on disk
(``embedding_cache``), query representations under adapted parameters, and the checks that
report long or foreign texts (``windowing.TextStats``). It reads the selector's ``encoder``,
``scorer``, ``cfg``, ``pooled``, ``_query``, ``_memo``, ``_covered``, ``_disk`` and ``_ns``.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from mta_jax import params as P
from mta_jax import windowing
from mta_jax.models import tokenizer as tok_lib
from mta_jax.selector_programs import hidden_program, plan_batches


class TextEncoding:
  """Texts to encoder outputs for ``ToolSelector`` (see the module docstring)."""

  def remember_texts(self, texts: Sequence[str], measured: Sequence[tuple[int, float]]) -> None:
    """Takes ``windowing.measure`` results a caller has already (the command line measures
    every text before the model loads), so ``set_tools``/``rank`` do not tokenise them again."""
    self._covered.update(zip(texts, measured))

  def _check_texts(self, items: Sequence[tuple[str, str, bool]], strict: bool | None) -> None:
    """``(label, text, windowed?)`` items: warns once per call (``TextWarning``) about texts
    that are windowed, cut, or outside the vocabulary; raises ``InputError`` for the latter if
    ``strict``. Each distinct text is measured once per process."""
    tok = self.encoder.tokenizer
    if len(self._covered) > 1_000_000:
      self._covered.clear()
    new = list(dict.fromkeys(t for _, t, _ in items if t not in self._covered))
    if new:
      self._covered.update(zip(new, windowing.measure(tok, tok.encode_full(new))))
    stats = windowing.TextStats(tok, self.cfg.window_pool, self.cfg.coverage_threshold)
    for label, text, windowed in items:
      stats.record(label, *self._covered[text], windowed)
    self.last_stats = stats
    stats.emit(self.cfg.strict if strict is None else strict)

  def _run_hidden(self, ids: Sequence[Sequence[int]], n_lower: int):
    """Yields (rows, mask, output) of ``hidden_program`` over length-sorted, bucketed batches of
    tokenised texts of at most 256 tokens (dispatched before the first is collected)."""
    tok = self.encoder.tokenizer
    lengths = np.array([len(r) for r in ids])
    program = hidden_program(self.encoder, n_lower)
    pending = []
    for rows, b, length in plan_batches(lengths, self.cfg):
      batch = tok.pad([ids[i] for i in rows] + [[]] * (b - len(rows)), length)
      pending.append((rows, batch.mask, program(self.encoder.params, batch.ids, batch.mask)))
    if len(ids) >= 1024:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      pending = tqdm(pending, desc="encode tools", unit="batch", leave=False)
    for rows, mask, out in pending:
      yield rows, mask, np.asarray(out)[:len(rows)]

  def _windows(self, ids: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[int]]:
    """Tokenised texts -> their windows (``tokenizer.windows``) and each window's text."""
    rows, owner = [], []
    for i, r in enumerate(ids):
      ws = tok_lib.windows(r, tok_lib.MAX_LENGTH, self.cfg.window_overlap)
      rows += ws
      owner += [i] * len(ws)
    return rows, owner

  def _embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
    """(N, H) unit sentence embeddings of tokenised texts (``encode_full``); a text longer than
    the encoder's window is the pooled embedding of its overlapping windows."""
    rows, owner = self._windows(ids)
    out = np.zeros((len(rows), self.encoder.cfg.hidden_size), np.float32)
    for r, _, o in self._run_hidden(rows, self.encoder.cfg.num_layers):
      out[r] = o
    if len(rows) == len(ids):
      return out
    return windowing.pool_rows(out, owner, len(ids), self.cfg.window_pool)

  def _pooled(self, texts: Sequence[str]) -> np.ndarray:
    """(N, H) sentence embeddings of ``texts``, each distinct text embedded once: from this
    process's memo, else the disk cache, else the encoder (then stored in both)."""
    out = np.empty((len(texts), self.encoder.cfg.hidden_size), np.float32)
    need: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
      v = self._memo.get(t)
      if v is None:
        need.setdefault(t, []).append(i)
      else:
        out[i] = v
    if not need:
      return out
    found = {}
    if self._disk is not None:
      found = self._disk.get_vectors(self._ns["emb"], need, self.encoder.cfg.hidden_size)
    rest = [t for t in need if t not in found]
    if rest:
      new = dict(zip(rest, self._embed_ids(self.encoder.tokenizer.encode_full(rest))))
      if self._disk is not None:
        self._disk.put_vectors(self._ns["emb"], new)
      found.update(new)
    if len(self._memo) > 1_000_000:
      self._memo.clear()
    for t, rows in need.items():
      out[rows] = self._memo[t] = found[t]
    return out

  def _lower(self, texts: Sequence[str], count: int) -> dict:
    """The scorer's inputs for ``texts``: hidden states after the frozen lower layers, rows
    padded to ``count`` with copies of row 0 (real text keeps inner-loop gradients finite;
    those rows get weight 0).

    With ``n_top == 0`` the scorer only mean-pools, so a text is stored as its sentence
    embedding, one "token" with mask 1, as ``features`` stores it for training: the same
    embedding at a fraction of the memory (``_pooled``: long texts windowed, cached). Otherwise
    texts run in length-sorted, bucketed batches; each row is then zero-padded to the longest
    (positions past a text's mask are never read); a text is cut at 256 tokens.
    """
    hidden = self.encoder.cfg.hidden_size
    if self.pooled:
      h = np.zeros((count, 1, hidden), np.float32)
      m = np.zeros((count, 1), np.int32)
      h[:len(texts), 0], m[:len(texts), 0] = self._pooled(texts), 1
    else:
      ids = self.encoder.tokenizer.encode(list(texts))
      lengths = np.array([len(r) for r in ids])
      width = tok_lib.bucket_for(int(lengths.max()), self.cfg.length_buckets)
      h = np.zeros((count, width, hidden), np.float32)
      m = np.zeros((count, width), np.int32)
      for rows, mask, out in self._run_hidden(ids, self.scorer.n_lower):
        h[rows, :out.shape[1]], m[rows, :out.shape[1]] = out, mask[:len(rows)]
    h[len(texts):], m[len(texts):] = h[0], m[0]
    return {"h": jnp.asarray(h), "m": jnp.asarray(m)}

  def _query_vectors(self, params: P.Params, ids: Sequence[Sequence[int]],
                     pooled: np.ndarray | None = None) -> np.ndarray:
    """(N, H) unit query representations under ``params`` for tokenised queries of any length
    (``encode_full``). Pooled scorers pool long queries' windows before the head (as tool
    documents); others run the adapted layers per window and pool the representations.
    ``pooled``: the queries' sentence embeddings, if already computed."""
    hidden = self.encoder.cfg.hidden_size
    if self.pooled:
      emb = self._embed_ids(ids) if pooled is None else pooled
      h, m, owner, n_rows = emb[:, None, :], np.ones((len(emb), 1), np.int32), None, len(emb)
    else:
      rows, owner = self._windows(ids)
      n_rows = len(rows)
    out = np.zeros((n_rows, hidden), np.float32)
    if self.pooled:
      for start in range(0, n_rows, self.cfg.batch_size):
        chunk = slice(start, min(start + self.cfg.batch_size, n_rows))
        b = tok_lib.bucket_for(chunk.stop - start, self.cfg.batch_buckets)
        hb = np.zeros((b, 1, hidden), np.float32)
        mb = np.zeros((b, 1), np.int32)
        hb[:chunk.stop - start], mb[:chunk.stop - start] = h[chunk], m[chunk]
        out[chunk] = np.asarray(self._query(params, hb, mb))[:chunk.stop - start]
      return out
    for r, mask, lower in self._run_hidden(rows, self.scorer.n_lower):
      b = tok_lib.bucket_for(len(r), self.cfg.batch_buckets)
      hb = np.zeros((b, *lower.shape[1:]), np.float32)
      mb = np.zeros((b, lower.shape[1]), np.int32)
      hb[:len(r)], mb[:len(r)] = lower, mask[:len(r)]
      out[r] = np.asarray(self._query(params, hb, mb))[:len(r)]
    if n_rows == len(ids):
      return out
    return windowing.pool_rows(out, owner, len(ids), self.cfg.window_pool)
