"""ToolSelector with the hybrid scorer (``ScorerConfig.lexical``): the pretrained default's
scores = ``Scorer.logits`` x temperature with ``lexical.features`` of the toolbox; a
hybrid-trained checkpoint ranks with the term (inner loop on views and examples included, =
``bilevel.make_predict`` on the same episode with every stream's ``lex``); ``lexical=False``
is the dense zero-shot; windowed texts, chat requests, per-query tool lists and the disk cache
(dense entries never read by the hybrid) add the term too."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mta_jax import bilevel, lexical, toolspec
from mta_jax.selector import SelectorConfig, ToolSelector

from test_selector import (NAMES, OPENAI, SUPPORT, TEXTS, _episode,  # pylint: disable=wrong-import-order
                           write_checkpoint)

DOCS = [t.document() for t in toolspec.parse_tools(OPENAI)]
LONG = ("The quarterly planning document describes budgets, hiring, travel and the schedule of "
        "every team meeting in detail. " * 30 + "Please convert 250 US dollars into Japanese yen.")


@pytest.fixture(scope="module")
def hybrid(text_encoder):
  return ToolSelector.pretrained(encoder=text_encoder).set_tools(OPENAI, warmup=False)


@pytest.fixture(scope="module")
def dense(text_encoder):
  return ToolSelector.pretrained(encoder=text_encoder, lexical=False).set_tools(
      OPENAI, warmup=False)


def _pooled_logits(scorer, params, q_emb, tool_emb, lex):
  """``Scorer.logits`` on sentence embeddings (the pooled scorer's inputs) x temperature."""
  qh = jnp.asarray(q_emb)[:, None, :]
  qm = jnp.ones(qh.shape[:2], jnp.int32)
  tools = scorer.tool_repr(params, jnp.asarray(tool_emb)[:, None, :],
                           jnp.ones((len(tool_emb), 1), jnp.int32))
  return np.asarray(scorer.logits(params, qh, qm, tools, jnp.asarray(lex))) * \
      scorer.cfg.temperature


def test_pretrained_default_is_the_hybrid_and_equals_scorer_logits(hybrid, text_encoder):
  assert hybrid.scorer.cfg.lexical and hybrid.scorer.cfg.lexical_weight == pytest.approx(0.2)
  params = {"mix/dense": jnp.ones(()), "mix/lex": jnp.full((), 0.2)}
  lex = lexical.features(TEXTS, DOCS)  # the corpus is the toolbox
  ref = _pooled_logits(hybrid.scorer, params, text_encoder.embed(TEXTS), text_encoder.embed(DOCS),
                       lex)
  got = hybrid.scores(TEXTS)
  np.testing.assert_allclose(got, ref, atol=1e-5)
  for row, ranking in zip(ref, hybrid.rank(TEXTS, top_k=None)):
    want = [NAMES[j] for j in np.argsort(-row, kind="stable")]
    assert [c.name for c in ranking][:3] == want[:3]
  # The term is there: the scores moved from the cosines by 0.2 x the feature.
  cos = text_encoder.embed(TEXTS) @ text_encoder.embed(DOCS).T
  assert np.abs(got - cos).max() > 0.05
  # One BM25 index per toolbox, cached with it.
  box = hybrid._box_for(toolspec.parse_tools(OPENAI))  # pylint: disable=protected-access
  assert box.lex_index is hybrid._box.lex_index  # pylint: disable=protected-access


def test_dense_option_is_the_old_zero_shot(dense, text_encoder):
  assert not dense.scorer.cfg.lexical and dense._box.lex_index is None  # pylint: disable=protected-access
  ref = text_encoder.embed(TEXTS) @ text_encoder.embed(DOCS).T
  np.testing.assert_allclose(dense.scores(TEXTS), ref, atol=1e-5)
  for row, ranking in zip(ref, dense.rank(TEXTS, top_k=3)):
    assert [c.name for c in ranking] == [NAMES[j] for j in np.argsort(-row, kind="stable")[:3]]


def test_windowed_chat_and_candidates_add_the_term(hybrid, dense):
  texts = [LONG, "We land in Porto at 7pm.\nBook a table for four at 9."]
  lex = lexical.features(texts, DOCS)  # BM25 reads the whole text, windowed or not
  got, cos = hybrid.scores(texts), dense.scores(texts)
  np.testing.assert_allclose(got, cos + 0.2 * lex, atol=1e-5)
  assert np.abs(got - cos).max() > 0.05
  chat = [{"role": "user", "content": "We land in Porto at 7pm."},
          {"role": "user", "content": "Book a table for four at 9."}]
  (ranking,) = hybrid.rank({"messages": chat}, query_from="user_turns", top_k=None)
  np.testing.assert_allclose([c.score for c in ranking],
                             [got[1][NAMES.index(c.name)] for c in ranking], atol=1e-6)
  (sub,) = hybrid.rank(texts[1], candidates=["search_flights", "send_email"], top_k=None)
  assert {c.name: c.score for c in sub} == pytest.approx(
      {n: float(got[1][NAMES.index(n)]) for n in ("search_flights", "send_email")}, abs=1e-6)


def test_per_query_lists_use_their_own_corpus(hybrid, dense, text_encoder):
  a, b = [dict(t["function"]) for t in OPENAI[:4]], [dict(t["function"]) for t in OPENAI[3:]]
  queries = ["will it rain in Lisbon?", "book a flight to Porto"]
  got = hybrid.rank(queries, tools=[a, b], top_k=None)
  for q, tools, ranking in zip(queries, [a, b], got):
    docs = [t.document() for t in toolspec.parse_tools(tools)]
    want = (text_encoder.embed([q]) @ text_encoder.embed(docs).T)[0] + \
        0.2 * lexical.features([q], docs)[0]
    names = [t["name"] for t in tools]
    np.testing.assert_allclose([c.score for c in ranking],
                               [want[names.index(c.name)] for c in ranking], atol=1e-5)
    assert [c.name for c in ranking] == [names[j] for j in np.argsort(-want, kind="stable")]
    alone = ToolSelector.pretrained(encoder=text_encoder).set_tools(tools, warmup=False)
    np.testing.assert_allclose([c.score for c in ranking],
                               [c.score for c in alone.rank(q, top_k=None)[0]], atol=1e-5)
  # Against the toolbox of set_tools (None) the corpus is that toolbox.
  (mixed,) = hybrid.rank(queries[:1], tools=[None], top_k=3)
  (alone,) = hybrid.rank(queries[0], top_k=3)
  assert [c.name for c in mixed] == [c.name for c in alone]
  np.testing.assert_allclose([c.score for c in mixed], [c.score for c in alone], atol=1e-5)


def test_disk_cache_entries_of_dense_are_not_read_by_hybrid(text_encoder, tmp_path):
  cfg = SelectorConfig(disk_min_tools=2)
  first = ToolSelector.pretrained(cfg, text_encoder, lexical=False).use_cache(tmp_path)
  first.set_tools(OPENAI, warmup=False)
  second = ToolSelector.pretrained(cfg, text_encoder).use_cache(tmp_path)
  assert second._ns["adapted"] != first._ns["adapted"]  # pylint: disable=protected-access
  # Sentence embeddings are the encoder's alone: shared.
  assert second._ns["emb"] == first._ns["emb"]  # pylint: disable=protected-access
  second.set_tools(OPENAI, warmup=False)
  assert len([p for p in (tmp_path / "adapted").rglob("*") if p.is_file()]) == 2
  fresh = ToolSelector.pretrained(encoder=text_encoder).set_tools(OPENAI, warmup=False)
  np.testing.assert_allclose(second.scores(TEXTS), fresh.scores(TEXTS), atol=1e-6)
  third = ToolSelector.pretrained(cfg, text_encoder).use_cache(tmp_path)  # its own entry back
  third._adapted = lambda *a: pytest.fail("adapted again")  # pylint: disable=protected-access
  third.set_tools(OPENAI, warmup=False)
  np.testing.assert_allclose(third.scores(TEXTS), fresh.scores(TEXTS), atol=1e-6)


def test_one_compile_per_bucket_with_the_feature(text_encoder):
  sel = ToolSelector.pretrained(encoder=text_encoder).set_tools(OPENAI, warmup=False)
  size = sel._score._cache_size  # pylint: disable=protected-access
  sel.rank(["wake me up at six"])
  n = size()
  sel.rank(["play some jazz in the kitchen"])  # the same (1, 12) bucket
  sel.set_tools([dict(t["function"]) for t in OPENAI[:5]], warmup=False)  # same 64 rows
  sel.rank(["set a timer"])
  assert size() == n


# ---------------------------------------------------------------------------- checkpoints

def _lex_episode(enc, scorer, tools, labelled, rows, queries):
  """``test_selector._episode`` with every stream's ``lex`` against the episode's tools (the
  corpus: these tools), as ``episodes.gather`` gives training."""
  ep = _episode(enc, scorer, tools, labelled, rows, queries)
  docs = [t.document() for t in tools]
  texts = [t for t, _ in labelled]
  views = lexical.features(texts + [texts[0]] * (rows - len(texts)), docs)
  views[len(texts):] = lexical.features(texts[:1], docs)
  ep["views"]["lex"] = views[None]
  ep["query"]["lex"] = lexical.features(queries, docs)[None]
  ep["support"]["lex"] = np.zeros((1, 0, len(docs)), np.float32)
  return ep


def test_hybrid_checkpoint_ranks_with_the_term_after_its_inner_loop(tmp_path, text_encoder):
  # mta.py:sd,smoke,hybrid: MTA adapting the head in 3 inner steps; mix weights moved away
  # from their initial values, as training moves them.
  saved = write_checkpoint(tmp_path, text_encoder, arg="sd,smoke,hybrid",
                           set_params={"mix/dense": 0.8, "mix/lex": 0.6})
  sel = ToolSelector.load(str(tmp_path), encoder=text_encoder).set_tools(OPENAI, warmup=False)
  assert sel.scorer.cfg == saved["scorer_cfg"] and sel.scorer.cfg.lexical
  assert saved["meta_cfg"].algo.inner_loop and saved["meta_cfg"].inner_steps > 0
  n_views, temp = saved["n_views"], saved["scorer_cfg"].temperature
  tools = toolspec.parse_tools(OPENAI)
  views = [(v, i) for i, t in enumerate(tools) for v in t.views(n_views)]
  examples = [(s["query"], NAMES.index(s["tool"])) for s in SUPPORT]
  predict = bilevel.make_predict(sel.scorer, saved["meta_cfg"])

  def reference(labelled, meta=saved["meta"]):
    ep = _lex_episode(text_encoder, sel.scorer, tools, labelled, len(labelled), TEXTS)
    return np.asarray(predict(meta, ep)[0]) * temp

  docs_only = sel.scores(TEXTS)
  np.testing.assert_allclose(docs_only, reference(views), atol=1e-4)
  sel.adapt(SUPPORT)
  np.testing.assert_allclose(sel.scores(TEXTS), reference(views + examples), atol=1e-4)
  # Without the term (mix/lex = 0, inner loop included) the scores differ: the term counts.
  no_lex = jax.tree.map(lambda x: x, saved["meta"])
  no_lex["params"] = dict(no_lex["params"], **{"mix/lex": jnp.zeros(())})
  assert np.abs(reference(views, no_lex) - docs_only).max() > 1e-2
  # Per-query lists with an inner loop: each list adapted on its own views, its own corpus.
  a = [dict(t["function"]) for t in OPENAI[:4]]
  (ranking,) = sel.rank(TEXTS[:1], tools=[a], top_k=None)
  ta = toolspec.parse_tools(a)
  va = [(v, i) for i, t in enumerate(ta) for v in t.views(n_views)]
  ep = _lex_episode(text_encoder, sel.scorer, ta, va, len(va), TEXTS[:1])
  want = np.asarray(predict(saved["meta"], ep)[0])[0] * temp
  np.testing.assert_allclose([c.score for c in ranking],
                             [want[[t.name for t in ta].index(c.name)] for c in ranking],
                             atol=1e-4)
