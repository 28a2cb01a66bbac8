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

The index is held term-major and sparse (each word's postings: the documents holding it and its
weight there), so scoring costs the postings of the query's words, not the vocabulary: a single
query over a 4,030-tool catalogue takes well under a millisecond (a dense queries x vocabulary
product took 16 ms), and the hybrid scorer's features, the BM25 row and the selector share it.

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
  """A BM25 index over a fixed list of documents (sparse postings per word)."""

  def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75):
    self.k1, self.b = float(k1), float(b)
    tokens = [tokenize(d) for d in documents]
    self.vocab: dict[str, int] = {}
    for toks in tokens:
      for t in toks:
        self.vocab.setdefault(t, len(self.vocab))
    n_docs, n_terms = len(tokens), len(self.vocab)
    # (document, word) pairs with their counts, without a dense documents x vocabulary table.
    pairs = np.array([(i, self.vocab[t]) for i, toks in enumerate(tokens) for t in toks],
                     np.int64).reshape(-1, 2)
    keys, tf = np.unique(pairs[:, 1] * max(n_docs, 1) + pairs[:, 0], return_counts=True)
    term, doc = keys // max(n_docs, 1), keys % max(n_docs, 1)  # sorted by word, then document
    doc_len = np.bincount(pairs[:, 0], minlength=n_docs).astype(np.float64)
    avgdl = doc_len.mean() if n_docs else 0.0
    df = np.bincount(term, minlength=n_terms)
    self.idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    norm = self.k1 * (1.0 - self.b + self.b * doc_len / max(avgdl, 1e-9))
    tf = tf.astype(np.float64)
    # Postings of word t: documents docs[indptr[t]:indptr[t+1]] with the contribution of one
    # occurrence of t in a query to each document's score.
    self.indptr = np.searchsorted(term, np.arange(n_terms + 1))
    self.docs = doc
    self.weights = self.idf[term] * tf * (self.k1 + 1.0) / (tf + norm[doc])
    self.n_docs = n_docs

  def scores(self, query: str) -> np.ndarray:
    """BM25 score of every document for one query, shape (n_docs,)."""
    return self.score_matrix([query])[0]

  def score_matrix(self, queries: Sequence[str], chunk: int = 2048) -> np.ndarray:
    """Scores of every query against every document, shape (n_queries, n_docs)."""
    out = np.zeros((len(queries), self.n_docs), np.float64)
    for s in range(0, len(queries), chunk):
      block = queries[s:s + chunk]
      # One (query, word) pair per query token in the vocabulary (unknown tokens score 0).
      q, t = [], []
      for i, text in enumerate(block):
        ids = [self.vocab[w] for w in tokenize(text) if w in self.vocab]
        q += [i] * len(ids)
        t += ids
      q, t = np.asarray(q, np.int64), np.asarray(t, np.int64)
      lo, n = self.indptr[t], self.indptr[t + 1] - self.indptr[t]
      rows = np.repeat(q, n)  # every posting of every pair
      at = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())
      flat = rows * self.n_docs + self.docs[at]
      out[s:s + len(block)] = np.bincount(flat, weights=self.weights[at],
                                          minlength=len(block) * self.n_docs
                                          ).reshape(len(block), self.n_docs)
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
