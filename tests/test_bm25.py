"""Tests of the numpy Okapi BM25 against a hand computation and its basic properties."""

import math

import numpy as np

from mta_jax import bm25


def test_tokenize_lowercase_alphanumeric_runs():
  assert bm25.tokenize("Get_UserToken(v2), HELLO world!") == ["get", "usertoken", "v2", "hello",
                                                            "world"]


def test_scores_match_hand_computation():
  docs = ["red apple", "green apple apple pie", "blue sky"]
  index = bm25.BM25(docs, k1=1.5, b=0.75)
  got = index.scores("apple pie")
  n, avgdl = 3, (2 + 4 + 2) / 3

  def idf(df):
    return math.log(1 + (n - df + 0.5) / (df + 0.5))

  def term(tf, dl, df):
    return idf(df) * tf * 2.5 / (tf + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))

  want = [term(1, 2, 2), term(2, 4, 2) + term(1, 4, 1), 0.0]
  np.testing.assert_allclose(got, want, rtol=1e-12)
  assert got.argmax() == 1


def test_rare_terms_weigh_more_and_length_normalises():
  index = bm25.BM25(["alarm clock set alarm", "alarm", "timer countdown"])
  s = index.scores("alarm")
  assert s[1] > s[0] > 0 == s[2]  # the short document wins on the same term
  s = index.scores("countdown alarm")
  assert s[2] > s[1]  # "countdown" is in 1 document, "alarm" in 2: the rarer term weighs more


def test_score_matrix_matches_scores_and_unknown_tokens_are_zero():
  docs = ["send an email", "read the calendar", "email a calendar invite"]
  index = bm25.BM25(docs)
  queries = ["email my boss", "what is on the calendar", "zzz unknown"]
  mat = index.score_matrix(queries, chunk=2)
  for i, q in enumerate(queries):
    np.testing.assert_allclose(mat[i], index.scores(q))
  np.testing.assert_array_equal(mat[2], 0.0)


def test_top1_credit_shares_ties():
  scores = np.array([[1.0, 3.0, 2.0], [0.0, 0.0, 0.0], [5.0, 5.0, 1.0]])
  np.testing.assert_allclose(bm25.top1_credit(scores, np.array([1, 2, 0])), [1.0, 1 / 3, 0.5])
  np.testing.assert_allclose(bm25.top1_credit(scores, np.array([0, 0, 2])), [0.0, 1 / 3, 0.0])
