"""The hybrid scorer: the BM25 feature (equals mta_jax.bm25), its gather, its gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mta_jax import baselines, bilevel, bm25, episodes, lexical, synthetic
from mta_jax.models import bert
from mta_jax.scorer import Scorer, ScorerConfig

HIDDEN = 8
DOCS = ["set_alarm_clock: Rings at a clock time every day. Parameters: time (string)",
        "start_countdown_timer: Counts down a duration. Parameters: minutes (integer)",
        "add_personal_reminder: Remembers a note for later. Parameters: note (string)",
        "play_music: Plays a song or playlist. Parameters: song (string)"]
QUERIES = ["wake me at seven with the alarm clock", "count down ten minutes",
           "remind me to buy milk", "play my running playlist", "zzz unknown words"]


def test_feature_equals_bm25_scores_divided_by_each_rows_best():
  raw = bm25.BM25(DOCS).score_matrix(QUERIES)
  feat = lexical.features(QUERIES, DOCS)
  chex.assert_shape(feat, (len(QUERIES), len(DOCS)))
  for i in range(len(QUERIES)):
    if raw[i].max() > 0:
      np.testing.assert_allclose(feat[i] * raw[i].max(), raw[i], rtol=1e-6)
      assert feat[i].max() == pytest.approx(1.0)
      # One positive number a row: every ranking is BM25's.
      np.testing.assert_array_equal(np.argsort(-feat[i], kind="stable"),
                                    np.argsort(-raw[i], kind="stable"))
    else:  # no query word in the corpus: a zero row, not NaN
      np.testing.assert_array_equal(feat[i], 0.0)


def test_arrays_index_queries_views_and_tools_like_the_caches():
  # Two tools, main documents at rows 0 and 3, views at 1-2 and 4.
  doc_texts = [DOCS[0], "alarm clock", "rings at a clock time", DOCS[1], "count down"]
  arr = lexical.arrays(QUERIES, doc_texts, DOCS[:2], np.array([0, 3]),
                       [np.array([1, 2]), np.array([4])])
  np.testing.assert_array_equal(arr["doc_col"], [0, 0, 0, 1, 1])
  np.testing.assert_allclose(arr["q_lex"], lexical.features(QUERIES, DOCS[:2]))
  np.testing.assert_allclose(arr["d_lex"], lexical.features(doc_texts, DOCS[:2]))
  with pytest.raises(ValueError, match="2 tool documents but 1 main rows"):
    lexical.arrays(QUERIES, doc_texts, DOCS[:2], np.array([0]), [np.array([1])])


def _lex_cache(cache, pool, seed=0):
  """Random lexical arrays in the layout of ``lexical.arrays`` for a synthetic cache."""
  rng = np.random.default_rng(seed)
  n_tools = pool.n_tools
  doc_col = np.zeros(cache["d_h"].shape[0], np.int32)
  for t in range(n_tools):
    doc_col[pool.doc[t]] = t
    doc_col[pool.views[t, :pool.n_views[t]]] = t
  return {**cache, "q_lex": rng.random((cache["q_h"].shape[0], n_tools)).astype(cache["q_h"].dtype),
          "d_lex": rng.random((cache["d_h"].shape[0], n_tools)).astype(cache["d_h"].dtype),
          "doc_col": doc_col}


def _family(dtype=np.float32, seed=0):
  cache, pool = synthetic.make_task_family(
      synthetic.SyntheticSpec(n_tools=12, queries_per_tool=6, views_per_tool=2, seed=seed),
      HIDDEN, dtype=dtype)
  return _lex_cache(cache, pool, seed), pool


def test_gather_gives_each_stream_its_texts_feature_against_the_episode_tools():
  cache, pool = _family()
  spec = episodes.EpisodeSpec(n_way=3, k_shot=2, q_query=2, n_views=2, mode="cd")
  idx = episodes.sample_episodes(np.random.default_rng(3), pool, spec, 4)
  feats = episodes.gather(jax.tree.map(jnp.asarray, cache), idx)
  cols = cache["doc_col"][idx["tools"]["idx"]]  # (E, N) the episode's tools as columns
  for name, table in (("support", "q_lex"), ("views", "d_lex"), ("query", "q_lex")):
    rows = idx[name]["idx"]
    want = np.array([[[cache[table][rows[e, s], cols[e, n]] for n in range(3)]
                      for s in range(rows.shape[1])] for e in range(4)])
    np.testing.assert_array_equal(np.asarray(feats[name]["lex"]), want)
  # The columns really are the episode's tools (ids of the pool).
  np.testing.assert_array_equal(cols, idx["tool_ids"])
  # SFT's one "episode" of every tool, query rows on axis 1.
  sft = baselines.sample_sft_batch(np.random.default_rng(0), pool, 5)
  f = episodes.gather(jax.tree.map(jnp.asarray, cache), sft)
  chex.assert_shape(f["query"]["lex"], (1, 5, pool.n_tools))
  np.testing.assert_array_equal(np.asarray(f["query"]["lex"][0]),
                                cache["q_lex"][sft["query"]["idx"][0]])


def _scorer(cfg, dtype=jnp.float32):
  model = bert.BertEncoder(synthetic.tiny_bert_config(HIDDEN), rngs=nnx.Rngs(0), dtype=dtype)
  return Scorer(cfg, model)


def test_hybrid_logits_mix_dense_and_lexical_terms():
  cache, pool = _family()
  idx = episodes.sample_episodes(np.random.default_rng(1), pool,
                                 episodes.EpisodeSpec(n_way=3, k_shot=0, q_query=2, mode="cd"), 1)
  ep = jax.tree.map(lambda x: x[0], episodes.gather(jax.tree.map(jnp.asarray, cache), idx))
  dense = _scorer(ScorerConfig(n_top=1, adapt="head", temperature=0.5))
  hybrid = _scorer(ScorerConfig(n_top=1, adapt="head", temperature=0.5, lexical=True,
                                lexical_weight=0.3))
  pd, ph = dense.init(jax.random.key(0)), hybrid.init(jax.random.key(0))
  assert set(ph) - set(pd) == {"mix/dense", "mix/lex"}
  q = ep["query"]
  tools_d = dense.tool_repr(pd, ep["tools"]["h"], ep["tools"]["m"])
  base = dense.logits(pd, q["h"], q["m"], tools_d)
  mixed = hybrid.logits(ph, q["h"], q["m"], tools_d, q["lex"])
  np.testing.assert_allclose(mixed, base + 0.3 * q["lex"] / 0.5, rtol=1e-5, atol=1e-5)
  # The dense scorer ignores a feature it was not built for; the hybrid one needs it.
  np.testing.assert_allclose(dense.logits(pd, q["h"], q["m"], tools_d, q["lex"]), base)
  with pytest.raises(ValueError, match="no 'lex' feature"):
    hybrid.logits(ph, q["h"], q["m"], tools_d)
  # Lexical only (dense weight 0): the ranking is the feature's, i.e. BM25's.
  lex_only = hybrid.logits({**ph, "mix/dense": jnp.zeros(())}, q["h"], q["m"], tools_d, q["lex"])
  np.testing.assert_array_equal(np.argsort(np.asarray(lex_only), -1),
                                np.argsort(np.asarray(q["lex"]), -1))



def test_the_selectors_host_mix_equals_the_scorers_mix():
  """selector_types.mix_scores is Scorer.mix in numpy (long lists score on the host)."""
  from mta_jax import selector_types  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  cos, lex = rng.uniform(-1, 1, (4, 7)).astype(np.float32), rng.random((4, 7)).astype(np.float32)
  hybrid = _scorer(ScorerConfig(n_top=1, adapt="head+mix", lexical=True, lexical_weight=0.3))
  params = {**hybrid.init(jax.random.key(0)), "mix/dense": jnp.float32(0.8),
            "mix/lex": jnp.float32(0.45)}
  np.testing.assert_allclose(selector_types.mix_scores(params, cos, lex),
                             hybrid.mix(params, jnp.asarray(cos), jnp.asarray(lex)), rtol=1e-6)
  dense = _scorer(ScorerConfig(n_top=1, adapt="head"))
  pd = dense.init(jax.random.key(0))
  np.testing.assert_array_equal(selector_types.mix_scores(pd, cos, None),
                                dense.mix(pd, jnp.asarray(cos), None))

def test_adapting_the_mix_without_the_lexical_term_is_a_config_error():
  with pytest.raises(ValueError, match="scorer.lexical is False"):
    ScorerConfig(adapt="head+mix").validate(6)


def _fd(f, x, d, eps=1e-5):
  plus = jax.tree.map(lambda a, b: a + eps * b, x, d)
  minus = jax.tree.map(lambda a, b: a - eps * b, x, d)
  return (f(plus) - f(minus)) / (2 * eps)


@pytest.mark.parametrize("adapt", ["top+head+mix", "head"])
def test_hybrid_meta_gradient_matches_finite_differences(adapt):
  """Second-order MAML through the hybrid scorer, the mix adapted in the inner loop or only
  meta-learned: the analytic directional derivative equals central differences in float64."""
  with jax.enable_x64(True):
    cache, pool = _family(np.float64)
    scorer = _scorer(ScorerConfig(n_top=1, adapt=adapt, temperature=0.5, lexical=True,
                                  lexical_weight=0.4), jnp.float64)
    spec = episodes.EpisodeSpec(n_way=3, k_shot=2, q_query=2, n_views=1, mode="cd")
    idx = episodes.sample_episodes(np.random.default_rng(0), pool, spec, 3)
    feats = episodes.gather(jax.tree.map(jnp.asarray, cache), idx)
    cfg = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.3,
                             learn_inner_lr="per_tensor")
    meta = jax.tree.map(lambda x: x.astype(jnp.float64),
                        bilevel.init_meta(scorer, cfg, jax.random.key(1)))
    keys = jax.random.split(jax.random.key(7), len(jax.tree.leaves(meta)))
    leaves, treedef = jax.tree.flatten(meta)
    meta = treedef.unflatten([x + 0.05 * jax.random.normal(k, x.shape, x.dtype)
                              for k, x in zip(keys, leaves)])
    if adapt == "top+head+mix":
      assert {"mix/dense", "mix/lex"} <= set(meta["inner_lr"])
    f = lambda m: bilevel.meta_loss(scorer, cfg, m, feats)[0]
    g = jax.grad(f)(meta)
    assert abs(float(g["params"]["mix/lex"])) > 1e-6  # the lexical weight is learned
    for seed in (11, 12):
      d = treedef.unflatten([jax.random.normal(k, x.shape, x.dtype) for k, x in zip(
          jax.random.split(jax.random.key(seed), len(leaves)), jax.tree.leaves(meta))])
      analytic = float(sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g),
                                                          jax.tree.leaves(d))))
      numeric = float(_fd(f, meta, d))
      assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), (analytic, numeric)


def test_a_union_of_datasets_scores_each_part_against_its_own_corpus():
  sources = ["a", "a", "b", "b"]
  arr = lexical.arrays(QUERIES, DOCS, DOCS, np.arange(4), [np.array([], np.int64)] * 4, sources)
  np.testing.assert_allclose(arr["q_lex"][:, :2], lexical.features(QUERIES, DOCS[:2]))
  np.testing.assert_allclose(arr["q_lex"][:, 2:], lexical.features(QUERIES, DOCS[2:]))
  one = lexical.arrays(QUERIES, DOCS, DOCS, np.arange(4), [np.array([], np.int64)] * 4)
  np.testing.assert_allclose(one["q_lex"], lexical.features(QUERIES, DOCS))


def test_for_dataset_lays_the_feature_out_like_the_dataset_documents(mta_ds):
  """The layout text_cache stores: rows of ds.queries and ds.documents(n), columns of ds.tools."""
  n_views = 2
  lex = lexical.for_dataset(mta_ds, n_views)
  doc_texts, main_doc, view_rows = mta_ds.documents(n_views)
  chex.assert_shape(lex["q_lex"], (len(mta_ds.queries), len(mta_ds.tools)))
  chex.assert_shape(lex["d_lex"], (len(doc_texts), len(mta_ds.tools)))
  np.testing.assert_array_equal(lex["doc_col"][main_doc], np.arange(len(mta_ds.tools)))
  for t in (0, len(mta_ds.tools) - 1):
    np.testing.assert_array_equal(lex["doc_col"][view_rows[t]], t)
  rows = [0, len(mta_ds.queries) // 2, len(mta_ds.queries) - 1]
  want = lexical.features([mta_ds.queries[i].text for i in rows],
                          [t.document() for t in mta_ds.tools])
  np.testing.assert_allclose(lex["q_lex"][rows], want, rtol=1e-6)
  # Columns are the gold tools: misaligned, top-1 would sit near chance (1/155), not BM25's ~0.6.
  gold = np.array([q.tool for q in mta_ds.queries])
  assert (lex["q_lex"].argmax(1) == gold).mean() > 0.3
