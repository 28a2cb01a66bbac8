"""The LLM on the project's evaluator: the shared-prefix task path equals one full prompt per
query, the LLM's tasks are exactly the encoder rows' tasks, and the subset and result layout."""

import numpy as np
import pytest

from mta_jax import run_eval
from mta_jax.llm import lm as lm_mod
from mta_jax.llm import select, task_eval


def test_common_prefix_len_leaves_every_row_a_token():
  assert task_eval.common_prefix_len([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
  assert task_eval.common_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # identical: keep one token
  assert task_eval.common_prefix_len([[7], [7, 8]]) == 0
  assert task_eval.common_prefix_len([[1, 2], [3, 4]]) == 0


def test_shared_prefix_scores_equal_one_full_prompt_per_query(llm_small, mta_ds):
  tools = mta_ds.tool_indices("test")[:5]
  rows = np.concatenate([np.flatnonzero([q.tool == t for q in mta_ds.queries])[:3] for t in tools])
  cfg = select.PromptConfig(max_description_chars=60)
  shared = task_eval.TaskSelector(llm_small, mta_ds, cfg, batch_size=4, max_new=5)
  out = shared.score_task(tools, rows)
  full = select.Selector(llm_small, mta_ds, cfg, batch_size=4, max_new=5).run(
      rows, np.tile(tools, (len(rows), 1)))
  np.testing.assert_allclose(out["loglik"], full["loglik"], atol=2e-3, rtol=0)
  assert list(out["gen_text"]) == list(full["gen_text"])
  np.testing.assert_array_equal(out["gen_pick"], full["gen_pick"])
  # The tool list ran once: far fewer tokens than the prompts hold, none lost.
  assert shared.tokens["prefix"] + shared.tokens["suffix"] < shared.tokens["full_prompts"] / 3
  assert shared.tokens["prefix"] * len(rows) + shared.tokens["suffix"] == \
      shared.tokens["full_prompts"]
  assert shared._batch_fn._cache_size() == len(shared.shapes_seen)


def test_small_tasks_run_fewer_rows_with_the_same_scores(llm_small, mta_ds, monkeypatch):
  sel = task_eval.TaskSelector(llm_small, mta_ds, select.PromptConfig(max_description_chars=40),
                               batch_size=8, max_new=4)
  assert [sel.batch_rows(n) for n in (1, 2, 3, 5, 8, 9, 30)] == [1, 2, 4, 8, 8, 8, 8]
  tools = mta_ds.tool_indices("test")[:4]
  rows = np.flatnonzero([q.tool == tools[1] for q in mta_ds.queries])[:3]
  small = sel.score_task(tools, rows)
  assert {shape[3] for shape in sel.shapes_seen} == {4}  # 3 questions: 4 rows, not 8
  monkeypatch.setattr(sel, "batch_rows", lambda n: 8)  # the old behaviour: always the full batch
  full = sel.score_task(tools, rows)
  np.testing.assert_allclose(small["loglik"], full["loglik"], atol=1e-4, rtol=0)
  assert list(small["gen_text"]) == list(full["gen_text"])
  # Each task's answers are padded to a bucket of its own longest answer.
  longest = max(len(llm_small.tokenizer.encode(select.answer_text(mta_ds.tools[t].name)))
                for t in tools)
  assert {shape[2] for shape in sel.shapes_seen} == {
      lm_mod.bucket_for(longest, lm_mod.COARSE_ANSWER_BUCKETS)}
  # A reply may need the longest answer's length: max_new=4 is raised to its bucket.
  assert {shape[4] for shape in sel.shapes_seen} == {
      lm_mod.bucket_for(longest, lm_mod.COARSE_ANSWER_BUCKETS)} and longest > 4


def test_generation_budget_covers_the_longest_answer():
  assert select.generation_length(24, [[1] * 5, [2] * 24]) == 24
  assert select.generation_length(24, [[1] * 5, [2] * 25]) == 32
  assert select.generation_length(24, [[1] * 76]) == 128


def test_llm_tasks_are_the_encoder_rows_tasks(mta_ds):
  """The LLM passes placeholder documents; the drawn tasks must not depend on them."""
  split = run_eval.split_for(mta_ds, "test")
  _, main_doc, view_rows = mta_ds.documents(4)
  dummy_doc = np.zeros((len(mta_ds.tools),), np.int32)
  dummy_views = [np.zeros((0,), np.int32)] * len(mta_ds.tools)
  for mode, k in (("sd", 0), ("cd", 1)):
    a = run_eval.make_tasks(np.random.default_rng([3, k, 0]), mta_ds, split, mode, 5, k, main_doc,
                            view_rows, 4)
    b = run_eval.make_tasks(np.random.default_rng([3, k, 0]), mta_ds, split, mode, 5, k,
                            dummy_doc, dummy_views, 0)
    for key in ("tool_ids", "query_rows"):
      np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a["support"]["idx"], b["support"]["idx"])


def test_subset_split_is_deterministic_and_capped(mta_ds):
  split = run_eval.split_for(mta_ds, "test")
  sub, what = task_eval.subset_split(mta_ds, split, max_queries=100)
  kept = np.concatenate([sub.queries_by_tool[int(t)] for t in sub.scored_tools])
  assert 90 <= len(kept) <= 100 and "every 25th" in what
  assert [task_eval._ordinal(k) for k in (2, 3, 11, 12, 13, 21, 22, 34, 112)] == [
      "2nd", "3rd", "11th", "12th", "13th", "21st", "22nd", "34th", "112th"]
  np.testing.assert_array_equal(sub.pool_tools, split.pool_tools)
  again, _ = task_eval.subset_split(mta_ds, split, max_queries=100)
  assert all(np.array_equal(again.queries_by_tool[t], sub.queries_by_tool[t])
             for t in sub.queries_by_tool)
  few, what = task_eval.subset_split(mta_ds, split, max_tools=3, max_per_tool=2)
  assert len(few.scored_tools) == 3 and "the first 2 of each tool" in what
  assert [len(few.queries_by_tool[int(t)]) for t in few.scored_tools] == [2, 2, 2]


def test_evaluate_reports_the_evaluator_layout_and_every_read_out(llm_small, mta_ds):
  split, _ = task_eval.subset_split(mta_ds, run_eval.split_for(mta_ds, "test"), max_queries=6,
                                    max_tools=4)
  sel = task_eval.TaskSelector(llm_small, mta_ds, select.PromptConfig(max_description_chars=30),
                               batch_size=4, max_new=3)
  res = task_eval.evaluate(sel, mta_ds, split, ("sd",), ("0shot",), (0, 1), 2)
  block = res["sd"]["0shot"]
  assert len(block["per_seed"]) == 2 and block["n_queries"] == 6
  assert 0.0 <= block["mean"] <= 1.0 and set(block["per_group"]) <= set(mta_ds.group_ids)
  for k in ("loglik_mean", "generate"):
    assert len(block[k]["per_seed"]) == 2 and 0.0 <= block[k]["mean"] <= 1.0



def test_progress_bar_ticks_once_per_scored_question(llm_small, mta_ds, monkeypatch):
  bars = []

  class Bar:  # records what evaluate tells tqdm
    def __init__(self, total, **kwargs):
      self.total, self.n, self.closed = total, 0, False
      bars.append(self)

    def update(self, n):
      self.n += n

    def set_postfix_str(self, text):
      pass

    def close(self):
      self.closed = True

  monkeypatch.setattr("tqdm.auto.tqdm", Bar)
  split, _ = task_eval.subset_split(mta_ds, run_eval.split_for(mta_ds, "test"), max_tools=3,
                                    max_per_tool=3)
  sel = task_eval.TaskSelector(llm_small, mta_ds, select.PromptConfig(max_description_chars=30),
                               batch_size=2, max_new=2, generate=False)
  res = task_eval.evaluate(sel, mta_ds, split, ("cd",), ("0shot", "k1"), (0,), 2, progress=True)
  scored = [res["cd"][s]["n_queries"] for s in ("0shot", "k1")]
  assert scored == [9, 6]  # 3 tools x 3 questions; with K=1 one of each is support
  assert len(bars) == 1 and bars[0].total == bars[0].n == sum(scored) and bars[0].closed


class _FakeSelector:
  """Scores by a rule instead of a model: 'first' always prefers position 1, 'oracle' the gold
  tool (each query's own tool), 'prior' the oracle plus a position prior that calibration removes."""

  rule = "first"

  def __init__(self, model, ds, cfg, batch_size, generate):
    self.ds = ds

  def score_task(self, tools, rows, params=None):
    n = len(tools)
    s = np.zeros((len(rows), n))
    for i, r in enumerate(rows):
      gold = self.ds.queries[r].tool
      if self.rule == "first":
        s[i, 0] = 1.0
      else:
        s[i] = [2.0 * (t == gold) * (self.ds.queries[r].text != "N/A") for t in tools]
        if self.rule == "prior":
          s[i] += 5.0 * (np.arange(n) == 0)
    return {"loglik": s}


@pytest.mark.parametrize("rule,raw,calibrated", [("first", 0.2, None), ("oracle", 1.0, 1.0),
                                                 ("prior", 0.2, 1.0)])
def test_position_probe_tells_position_from_reading(monkeypatch, rule, raw, calibrated):
  from mta_jax.llm import probe  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(probe.task_eval, "TaskSelector", _FakeSelector)
  monkeypatch.setattr(_FakeSelector, "rule", rule)
  res = probe.run(model=None)
  n_q, n = len(probe.QUESTIONS), len(probe.TOOLS)
  assert len({tuple(o) for o in res["orders"]}) == n  # every rotation once
  assert res["raw"]["acc"] == [raw] * n
  if calibrated is not None:
    assert res["calibrated"]["acc"] == [calibrated] * n
  for name in ("raw", "calibrated"):
    assert sum(res[name]["positions"]) == n_q * n
  if rule != "oracle":
    assert res["raw"]["positions"] == [n_q * n, 0, 0, 0, 0]
