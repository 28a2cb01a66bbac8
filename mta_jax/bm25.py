"""Okapi BM25 in plain numpy: the lexical floor every learned tool selector must clear.

Tokens are the lowercase alphanumeric runs of a text (``"Get_UserToken v2"`` ->
``["get", "usertoken", "v2"]``). A document's score for a query is, with k1 = 1.5, b = 0.75,

    score(q, d) = sum over query tokens t of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

with ``idf(t) = log(1 + (N - n_t + 0.5) / (n_t + 0.5))`` (the non-negative Lucene form), N the
number of documents and n_t the number that contain t; a token repeated in the query counts each
time. Corpus statistics (idf, avgdl) come from the documents given to :class:`BM25`, so fit it on
the whole tool pool once and score any candidate subset of it: the scores of a candidate do not
depend on which other candidates are in the episode.

    bm25 = BM25(["Sets the thermostat.", "Plays a song."])
    bm25.scores("set the thermostat to 21")        # (2,) one score a document
    bm25.score_matrix(["play music", "heat up"])   # (2, 2) queries x documents
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
  """The lowercase alphanumeric runs of ``text``."""
  return _TOKEN.findall(text.lower())


class BM25:
  """A BM25 index over a fixed list of documents (dense numpy, fine up to ~10^4 documents)."""

  def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75):
    self.k1, self.b = float(k1), float(b)
    tokens = [tokenize(d) for d in documents]
    self.vocab: dict[str, int] = {}
    for toks in tokens:
      for t in toks:
        self.vocab.setdefault(t, len(self.vocab))
    n_docs, n_terms = len(tokens), len(self.vocab)
    tf = np.zeros((n_docs, n_terms), np.float64)
    for i, toks in enumerate(tokens):
      np.add.at(tf[i], [self.vocab[t] for t in toks], 1.0)
    doc_len = tf.sum(1)
    avgdl = doc_len.mean() if n_docs else 0.0
    df = (tf > 0).sum(0)
    self.idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    norm = self.k1 * (1.0 - self.b + self.b * doc_len / max(avgdl, 1e-9))
    # weights[d, t]: the contribution of one occurrence of query token t to document d's score.
    self.weights = self.idf[None, :] * tf * (self.k1 + 1.0) / (tf + norm[:, None])
    self.n_docs = n_docs

  def _query_counts(self, queries: Sequence[str]) -> np.ndarray:
    counts = np.zeros((len(queries), len(self.vocab)), np.float64)
    for i, q in enumerate(queries):
      ids = [self.vocab[t] for t in tokenize(q) if t in self.vocab]  # unknown tokens score 0
      np.add.at(counts[i], ids, 1.0)
    return counts

  def scores(self, query: str) -> np.ndarray:
    """BM25 score of every document for one query, shape (n_docs,)."""
    return self.score_matrix([query])[0]

  def score_matrix(self, queries: Sequence[str], chunk: int = 2048) -> np.ndarray:
    """Scores of every query against every document, shape (n_queries, n_docs)."""
    out = np.zeros((len(queries), self.n_docs), np.float64)
    for s in range(0, len(queries), chunk):
      out[s:s + chunk] = self._query_counts(queries[s:s + chunk]) @ self.weights.T
    return out


def top1_credit(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
  """Top-1 accuracy per row with ties shared: 1/m if the gold column is among m tied maxima.

  ``scores`` (Q, C) candidate scores, ``gold`` (Q,) the gold column. This is the expected
  accuracy of breaking ties at random, without the randomness.
  """
  best = scores.max(axis=1, keepdims=True)
  tied = np.isclose(scores, best, rtol=1e-12, atol=1e-12)
  gold_tied = tied[np.arange(len(gold)), gold]
  return np.where(gold_tied, 1.0 / tied.sum(1), 0.0)
