"""Episode sampling (numpy) and the evaluation protocol's candidate sets."""

import dataclasses

import numpy as np
import pytest

from mta_jax import data, episodes, per_query, run_eval, synthetic
from datasets_tfds.mta_tools import synthesize


@pytest.fixture(scope="module")
def pool():
  _, p = synthetic.make_task_family(synthetic.SyntheticSpec(n_tools=30, n_groups=3,
                                                            queries_per_tool=8), 8)
  return p


@pytest.mark.parametrize("mode", ["sd", "cd"])
def test_episodes_are_well_formed(pool, mode):
  spec = episodes.EpisodeSpec(n_way=5, k_shot=2, q_query=3, n_views=2, mode=mode)
  spec.validate(pool)
  ep = episodes.sample_episodes(np.random.default_rng(0), pool, spec, 64)
  tools = ep["tool_ids"]
  assert tools.shape == (64, 5)
  assert all(len(set(row)) == 5 for row in tools), "tools of an episode are distinct"
  if mode == "sd":
    assert all(len(set(pool.group[row])) == 1 for row in tools)
  else:
    assert any(len(set(pool.group[row])) > 1 for row in tools)
  owner = {int(q): t for t in range(pool.n_tools) for q in pool.queries[t, :pool.n_queries[t]]}
  for name, k in (("support", 2), ("query", 3)):
    s = ep[name]
    assert s["idx"].shape == (64, 5 * k)
    # Every labelled query belongs to the tool its label points at.
    for e in range(64):
      for i, y in zip(s["idx"][e], s["y"][e]):
        assert owner[int(i)] == tools[e, y]
  # Support and query queries of a tool never overlap.
  for e in range(64):
    assert not set(ep["support"]["idx"][e]) & set(ep["query"]["idx"][e])
  v = ep["views"]
  assert v["idx"].shape == (64, 10) and v["w"].min() == 1.0


def test_sampling_is_deterministic_per_seed(pool):
  spec = episodes.EpisodeSpec()
  a = episodes.sample_episodes(np.random.default_rng(7), pool, spec, 8)
  b = episodes.sample_episodes(np.random.default_rng(7), pool, spec, 8)
  c = episodes.sample_episodes(np.random.default_rng(8), pool, spec, 8)
  assert all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b)))
  assert not all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(c)))


def _leaves(d):
  import jax  # pylint: disable=import-outside-toplevel
  return jax.tree.leaves(d)


def test_missing_views_are_masked(pool):
  spec = episodes.EpisodeSpec(n_views=5)  # the synthetic tools have only 2 views
  ep = episodes.sample_episodes(np.random.default_rng(0), pool, spec, 4)
  assert ep["views"]["w"].sum() == 4 * 5 * 2


@pytest.mark.parametrize("bad,match", [
    (dict(n_way=31, mode="cd"), "larger than the 30 tools"),
    (dict(n_way=11, mode="sd"), "largest group"),
    (dict(k_shot=5, q_query=5), "more than the 8 queries"),
    (dict(mode="xd"), "must be 'sd' or 'cd'"),
])
def test_spec_validation_errors(pool, bad, match):
  with pytest.raises(ValueError, match=match):
    episodes.EpisodeSpec(**bad).validate(pool)


@pytest.fixture(scope="module")
def mta():
  return data.from_jsonl(synthesize.DATA_DIR)


@pytest.mark.parametrize("mode", ["sd", "cd"])
def test_candidate_sets_follow_the_protocol(mta, mode):
  rows = mta.query_indices("test")[:300]
  cands, labels = per_query.candidate_sets(np.random.default_rng(0), mta, rows, mode)
  assert cands.shape == (300, 5)
  gold = np.array([mta.queries[r].tool for r in rows])
  assert np.array_equal(cands[np.arange(300), labels], gold)
  assert all(len(set(c)) == 5 for c in cands)
  assert all(mta.tools[t].split == "test" for t in gold)
  groups = np.array([[mta.tools[t].group for t in c] for c in cands])
  if mode == "sd":
    assert (groups == groups[:, :1]).all()
  else:
    assert (groups != groups[:, :1]).any()
  # The gold position is uniform-ish, not always first.
  assert len(set(labels.tolist())) == 5


def test_accuracy_and_ranking_metrics():
  cands = np.array([[3, 1, -1], [0, 2, 4]])
  scores = np.array([[0.1, 0.9, 5.0], [0.3, 0.2, 0.1]])
  assert per_query.accuracy(scores, cands, np.array([1, 0])) == 1.0  # padded column ignored
  assert per_query.accuracy(scores, cands, np.array([0, 0])) == 0.5
  r = run_eval.ranking_metrics(np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.9]]), np.array([0, 0]))
  assert r == {"top1": 0.5, "top3": 1.0, "mrr": pytest.approx((1 + 1 / 3) / 2)}


def test_ranking_ties_are_neither_wins_nor_losses():
  r = run_eval.ranking_metrics(np.zeros((1, 4)), np.array([2]))
  assert r["top1"] == pytest.approx(0.25) and r["top3"] == pytest.approx(0.75)
  assert r["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)


def _with_near(pool, k):
  """Each tool's k nearest tools by a fixed random similarity (the test needs any table)."""
  sims = np.random.default_rng(5).random((pool.n_tools, pool.n_tools))
  np.fill_diagonal(sims, -np.inf)
  return dataclasses.replace(pool, near=np.argsort(-sims, axis=1)[:, :k].astype(np.int32))


def test_hard_negative_episodes_are_an_anchor_and_its_nearest_tools(pool):
  pool = _with_near(pool, 4)
  base = episodes.EpisodeSpec(n_way=3, k_shot=1, q_query=2, mode="sd")
  hard = episodes.EpisodeSpec(n_way=3, k_shot=1, q_query=2, mode="sd", hard_fraction=1.0)
  tools = episodes.sample_episodes(np.random.default_rng(0), pool, hard, 64)["tool_ids"]
  neighbourhoods = {frozenset([a, *pool.near[a, :2]]) for a in range(pool.n_tools)}
  assert all(frozenset(row) in neighbourhoods for row in tools)
  assert len({tuple(r) for r in tools}) > 1 and not (tools[:, 0] == tools[:, 0][0]).all()
  # A share of 0 draws nothing more: the episodes of runs without hard negatives are unchanged.
  off = episodes.EpisodeSpec(n_way=3, k_shot=1, q_query=2, mode="sd", hard_fraction=0.0)
  a = episodes.sample_episodes(np.random.default_rng(1), pool, base, 8)
  b = episodes.sample_episodes(np.random.default_rng(1), pool, off, 8)
  for k in ("tool_ids",):
    np.testing.assert_array_equal(a[k], b[k])
  np.testing.assert_array_equal(a["query"]["idx"], b["query"]["idx"])
  # About the asked share of episodes are hard.
  half = dataclasses.replace(hard, hard_fraction=0.5)
  tools = episodes.sample_episodes(np.random.default_rng(2), pool, half, 400)["tool_ids"]
  share = np.mean([frozenset(r) in neighbourhoods for r in tools])
  assert 0.4 < share < 0.65, share


def test_hard_negatives_need_a_neighbour_table(pool):
  spec = episodes.EpisodeSpec(n_way=3, mode="sd", hard_fraction=0.5)
  assert pool.near is None
  with pytest.raises(ValueError, match="nearest tools"):
    episodes.sample_episodes(np.random.default_rng(0), pool, spec, 2)
  with pytest.raises(ValueError, match="needs each pool tool's 2 nearest tools"):
    spec.validate(_with_near(pool, 1))
  with pytest.raises(ValueError, match=r"hard_fraction must be in \[0, 1\]"):
    dataclasses.replace(spec, hard_fraction=1.5).validate(_with_near(pool, 2))
