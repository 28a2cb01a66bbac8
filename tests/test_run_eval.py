"""The evaluation protocol: task construction invariants and metrics on known score functions."""

import collections

import numpy as np
import pytest

from mta_jax import run_eval
from mta_jax.data import Query, Tool, ToolDataset


def _dataset(groups=(("a", 6), ("b", 5), ("c", 2)), queries_per_tool=9, split="test"):
  tools, queries = [], []
  for g, n in groups:
    for _ in range(n):
      i = len(tools)
      tools.append(Tool(i, f"tool_{i}", f"does thing {i}", {}, g, split))
      for j in range(queries_per_tool):
        queries.append(Query(f"q{i}-{j}", f"please thing {i} now", i, split))
  # Seen tools: distractor candidates for validation-style splits, never scored.
  for g, _ in groups:
    i = len(tools)
    tools.append(Tool(i, f"seen_{i}", "seen", {}, g, "train"))
    queries += [Query(f"s{i}-{j}", "seen", i, "train") for j in range(queries_per_tool)]
  return ToolDataset("toy", tools, queries)


def _layout(ds, n_views=2):
  main = np.arange(len(ds.tools), dtype=np.int32) * (1 + n_views)
  views = [m + 1 + np.arange(n_views, dtype=np.int32) for m in main]
  return main, views


def _oracle(ds, sign=1.0):
  """A score matrix that ranks the gold tool first (sign=1) or last (sign=-1)."""
  m = np.zeros((len(ds.queries), len(ds.tools)))
  m[np.arange(len(ds.queries)), [q.tool for q in ds.queries]] = sign
  return run_eval.matrix_score_fn(m)


@pytest.mark.parametrize("mode", ["sd", "cd"])
@pytest.mark.parametrize("k_shot", [0, 3])
def test_tasks_score_each_query_once_never_on_its_own_support(mode, k_shot):
  ds = _dataset()
  split = run_eval.split_for(ds, "test")
  main, views = _layout(ds)
  tasks = run_eval.make_tasks(np.random.default_rng(0), ds, split, mode, 5, k_shot, main, views, 2)
  scored = collections.Counter()
  for e in range(tasks["tool_ids"].shape[0]):
    tools = tasks["tool_ids"][e]
    real = tools[tools >= 0]
    assert len(set(real)) == len(real)  # distinct candidates
    if mode == "sd":
      assert len({ds.tools[t].group for t in real}) == 1
    q = tasks["query"]
    rows = tasks["query_rows"][e][q["w"][e] > 0]
    labels = q["y"][e][q["w"][e] > 0]
    for r, y in zip(rows, labels):
      assert tools[y] == ds.queries[r].tool  # the label points at the gold tool
      scored[r] += 1
    sup = tasks["support"]
    sup_rows = set(sup["idx"][e][sup["w"][e] > 0])
    assert not sup_rows & set(rows)  # never adapted on a scored query
    assert len(sup_rows) == k_shot * len(real)
    for r, y in zip(sup["idx"][e][sup["w"][e] > 0], sup["y"][e][sup["w"][e] > 0]):
      assert tools[y] == ds.queries[r].tool
    np.testing.assert_array_equal(tasks["tools"]["idx"][e][tools >= 0], main[real])
  test_queries = [i for i, q in enumerate(ds.queries) if q.split == "test"]
  assert set(scored) <= set(test_queries) and set(scored.values()) == {1}
  assert len(scored) == len(test_queries) - k_shot * len(split.scored_tools)


def test_small_groups_are_padded_and_padded_slots_never_win():
  ds = _dataset()
  split = run_eval.split_for(ds, "test")
  main, views = _layout(ds)
  tasks = run_eval.make_tasks(np.random.default_rng(1), ds, split, "sd", 5, 0, main, views, 2)
  group_c = [e for e in range(len(tasks["tool_ids"]))
             if ds.tools[tasks["tool_ids"][e].max()].group == "c"]
  assert group_c and all((tasks["tool_ids"][e] == -1).sum() == 3 for e in group_c)
  # A score function that prefers the padded slots still cannot pick them.
  prefer_pad = lambda b: np.where(b["tool_ids"][:, None, :] < 0, 100.0, 0.0) + np.zeros(
      b["query"]["idx"].shape + (1,))
  s, y, _, _ = run_eval.task_scores(prefer_pad, tasks, 4)
  assert np.all(np.isfinite(s.max(1))) and np.isneginf(s).any()


def test_distractors_come_from_the_pool_when_the_split_is_small():
  ds = _dataset(groups=(("a", 2), ("b", 2)))
  split = run_eval.split_for(ds, "test", distractors_from=("train",))
  main, views = _layout(ds)
  tasks = run_eval.make_tasks(np.random.default_rng(0), ds, split, "sd", 3, 0, main, views, 2)
  assert (tasks["tool_ids"] >= 0).all()  # 2 test tools + 1 seen tool of the same group
  seen = {t.index for t in ds.tools if t.split == "train"}
  rows = tasks["query_rows"][tasks["query_rows"] >= 0]
  assert not {ds.queries[r].tool for r in rows} & seen  # seen tools are never scored


def test_evaluate_on_known_score_functions():
  ds = _dataset()
  split = run_eval.split_for(ds, "test")
  main, views = _layout(ds)
  spec = run_eval.EvalSpec(seeds=(0, 1, 2), batch=3)
  perfect = run_eval.evaluate(_oracle(ds), ds, split, main, views, spec, adapts=False)
  for mode in ("sd", "cd"):
    assert perfect[mode]["0shot"]["mean"] == 1.0 and perfect[mode]["0shot"]["std"] == 0.0
    assert "equals 0shot" in perfect[mode]["k5"]["note"]
  assert perfect["full_pool"]["0shot"] == pytest.approx(
      {"top1": 1.0, "top3": 1.0, "mrr": 1.0, "n_tools": 13, "n_queries": 13 * 9})
  worst = run_eval.evaluate(_oracle(ds, -1.0), ds, split, main, views, spec, adapts=False)
  assert worst["cd"]["0shot"]["mean"] == 0.0
  assert worst["full_pool"]["0shot"]["mrr"] == pytest.approx(1 / 13, rel=1e-6)
  rand = run_eval.evaluate(run_eval.random_score_fn(0), ds, split, main, views,
                           run_eval.EvalSpec(seeds=tuple(range(5))), adapts=False)
  assert 0.1 < rand["cd"]["0shot"]["mean"] < 0.3  # chance is 1/5
  assert set(perfect["sd"]["0shot"]["per_group"]) == {"a", "b", "c"}


def test_k_larger_than_the_queries_is_skipped_with_a_reason():
  ds = _dataset(queries_per_tool=5)
  split = run_eval.split_for(ds, "test")
  main, views = _layout(ds)
  out = run_eval.evaluate(_oracle(ds), ds, split, main, views,
                          run_eval.EvalSpec(seeds=(0,), full_pool=False), adapts=True)
  assert "K=5 needs more than the 5 queries" in out["sd"]["k5"]["skipped"]
  assert out["sd"]["k1"]["mean"] == 1.0


def test_tools_without_queries_are_candidates_but_never_scored():
  # External benchmarks list tools no query asks for (APIBench: 364 of 1,069): they must not
  # zero the K bound (which skipped every protocol) but still compete as candidates.
  ds = _dataset()
  empty = {t.index for t in ds.tools if t.split == "test" and t.index % 3 == 0}
  ds = ToolDataset("toy", ds.tools, [q for q in ds.queries if q.tool not in empty])
  split = run_eval.split_for(ds, "test")
  assert not empty & set(split.scored_tools.tolist())
  assert empty <= set(split.pool_tools.tolist()) and empty <= set(split.ranked_tools.tolist())
  main, views = _layout(ds)
  out = run_eval.evaluate(_oracle(ds), ds, split, main, views, run_eval.EvalSpec(seeds=(0, 1)))
  assert out["cd"]["0shot"]["mean"] == 1.0 and out["sd"]["k5"]["mean"] == 1.0
  assert out["full_pool"]["0shot"]["n_tools"] == 13  # queryless tools are ranked too
  assert out["full_pool"]["0shot"]["n_queries"] == 9 * (13 - len(empty))
  seen_as_candidate = set()
  for seed in range(5):
    tasks = run_eval.make_tasks(np.random.default_rng(seed), ds, split, "cd", 5, 0, main, views, 2)
    seen_as_candidate |= set(tasks["tool_ids"].ravel().tolist()) & empty
  assert seen_as_candidate  # drawn as distractors


def test_sd_is_skipped_where_every_tool_is_its_own_group():
  # MetaTool: one tool per group. An SD task would hold the gold tool alone (100%, meaningless).
  ds = _dataset(groups=tuple((f"g{i}", 1) for i in range(7)))
  split = run_eval.split_for(ds, "test")
  main, views = _layout(ds)
  out = run_eval.evaluate(_oracle(ds, -1.0), ds, split, main, views,
                          run_eval.EvalSpec(seeds=(0,), full_pool=False))
  for shot in ("0shot", "k1", "k5"):
    assert "each of the 7 candidate tools of toy is its own group" in out["sd"][shot]["skipped"]
  assert out["cd"]["0shot"]["mean"] == 0.0  # CD still runs (gold ranked last: never right)
  # One group of two is enough for SD to mean something.
  ds2 = _dataset(groups=(("pair", 2),) + tuple((f"g{i}", 1) for i in range(5)))
  split2 = run_eval.split_for(ds2, "test")
  assert run_eval.skip_reason(ds2, split2, "sd", 0) is None


def test_bm25_scores_the_lexical_match_first():
  ds = _dataset(groups=(("a", 5),))
  split = run_eval.split_for(ds, "test")
  main, views = _layout(ds)
  out = run_eval.evaluate(run_eval.bm25_score_fn(ds), ds, split, main, views,
                          run_eval.EvalSpec(seeds=(0,), shots=("0shot",)), adapts=False)
  # Each query names its tool's number, which only that tool's description contains.
  assert out["sd"]["0shot"]["mean"] == 1.0


def test_mta_tools_11_test_subsets_are_scored_apart_and_add_up():
  """1.1.0 names its antonym/variant test tools (metadata.json ``test_subsets``): each protocol
  gives accuracy on each subset, and the subsets' query-weighted mean is the overall accuracy."""
  import json  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(__file__).resolve().parents[1] / "datasets_tfds/mta_tools/data/1.1.0"
  ds = data.from_jsonl(root)
  subsets = json.loads((root / "metadata.json").read_text())["test_subsets"]
  for q in ds.queries:  # only test queries carry a subset, the one naming their tool
    want = next((s for s, names in subsets.items() if ds.tools[q.tool].name in names), None)
    assert q.subset == (want if q.split == "test" else None)
  split = run_eval.split_for(ds, "test")
  _, main, views = ds.documents(2)
  spec = run_eval.EvalSpec(seeds=(0,), shots=("0shot",), modes=("sd",), full_pool=False)
  res = run_eval.protocol(run_eval.bm25_score_fn(ds), ds, split, "sd", 0, spec, main, views)
  n = collections.Counter(q.subset for q in ds.queries if q.split == "test")
  assert set(res["per_subset"]) == set(subsets) == set(n)
  weighted = sum(res["per_subset"][s] * n[s] for s in n) / sum(n.values())
  assert weighted == pytest.approx(res["mean"], abs=1e-9)
  # 1.0.0 names no subsets: no per_subset key.
  old = data.from_jsonl(root.parent)
  split0 = run_eval.split_for(old, "test")
  _, main0, views0 = old.documents(2)
  assert "per_subset" not in run_eval.protocol(run_eval.bm25_score_fn(old), old, split0, "sd", 0,
                                               spec, main0, views0)
