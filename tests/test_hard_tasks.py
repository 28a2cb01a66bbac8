"""Hard N-way tasks (nearest tools by documentation similarity), per-query results and the paired
bootstrap, and ``report.py --compare`` end to end on small eval.json files."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mta_jax import hard_tasks, paired, run_eval

# pylint: disable-next=wrong-import-order
from test_run_eval import _dataset, _layout, _oracle

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setup(seed=0, dim=6, **kw):
  ds = _dataset(**kw)
  split = run_eval.split_for(ds, "test")
  main, views = _layout(ds)
  emb = np.random.default_rng(seed).normal(size=(len(ds.tools), dim))
  return ds, split, main, views, emb, hard_tasks.neighbours_for(ds, split, emb)


def _recording(fn, log):
  def score(b):
    log.append((b["tool_ids"].copy(), b["query_rows"].copy()))
    return fn(b)
  return score


def test_neighbours_are_the_nearest_by_cosine_and_ties_go_to_the_lower_index():
  ds, split, _, _, emb, nb = _setup()
  e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  pool = split.pool_tools
  for c, near, sims in zip(nb.centres, nb.tools, nb.sims):
    others = pool[pool != c]
    cos = e[others] @ e[c]
    np.testing.assert_allclose(sims, e[near] @ e[c], atol=1e-12)
    assert c not in near and len(set(near)) == len(near) == 9
    assert np.all(np.diff(sims) <= 0)  # nearest first
    # No tool left out is nearer than the farthest one kept.
    assert cos[~np.isin(others, near)].max() <= sims[-1]
  # Ties (equal documents): the lower tool index first, and the scale of a vector is irrelevant.
  tied = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
  nn = hard_tasks.nearest(tied, [0, 1], np.arange(5), 3)
  np.testing.assert_array_equal(nn.tools, [[2, 3, 4], [4, 0, 2]])
  assert len(ds.tools) > 13 and set(nb.centres) == set(split.scored_tools)


def test_similarity_reads_the_base_rows_sentence_embeddings_of_the_main_documents(monkeypatch):
  from mta_jax import features  # pylint: disable=import-outside-toplevel
  ds = _dataset()
  _, main, views = ds.documents(4)
  asked = []

  def fake_cache(ds_, spec, cache_dir, encoder=None, progress=True):
    asked.append((spec, cache_dir, encoder))
    d_h = np.arange(len(ds_.documents(4)[0]), dtype=np.float32)[:, None, None] * np.ones((1, 1, 3))
    return features.TextCache(np.zeros((1, 1, 3)), np.ones((1, 1)), d_h, np.ones(d_h.shape[:2]),
                              main, views, "k")
  monkeypatch.setattr(features, "text_cache", fake_cache)
  emb = hard_tasks.doc_embeddings(ds, "/cache")
  np.testing.assert_array_equal(emb[:, 0], main)  # row t = tool t's main document
  # The pooled sentence embedding (every layer cached) with the Base row's lengths, whatever
  # the evaluated row's config.
  assert asked == [(features.FeatureSpec(n_lower=6, q_len=48, d_len=128, n_views=4), "/cache",
                    None)]


def test_hard_tasks_are_deterministic_and_the_same_for_every_score_function():
  ds, split, main, views, _, nb = _setup()
  spec = run_eval.EvalSpec(seeds=(0, 1, 2), batch=4)
  seen = {}
  for name, fn in (("oracle", _oracle(ds)), ("random", run_eval.random_score_fn(3)),
                   ("bm25", run_eval.bm25_score_fn(ds))):
    log = []
    run_eval.protocol(_recording(fn, log), ds, split, "hard5", 0, spec, main, views, nb)
    seen[name] = log
  for name in ("random", "bm25"):  # the same tasks, in the same order, for every row
    assert len(seen[name]) == len(seen["oracle"])
    for (t1, q1), (t2, q2) in zip(seen["oracle"], seen[name]):
      np.testing.assert_array_equal(t1, t2)
      np.testing.assert_array_equal(q1, q2)
  a = hard_tasks.make_hard_tasks(np.random.default_rng([0, 1, 2]), split, nb, 5, 1, main,
                                 views, 2)
  b = hard_tasks.make_hard_tasks(np.random.default_rng([0, 1, 2]), split, nb, 5, 1, main,
                                 views, 2)
  for x, y in zip(*(jax_leaves(t) for t in (a, b))):
    np.testing.assert_array_equal(x, y)
  # Seeds shuffle the candidates' order; the candidate sets never change.
  c = hard_tasks.make_hard_tasks(np.random.default_rng(7), split, nb, 5, 0, main, views, 2)
  assert not np.array_equal(a["tool_ids"], c["tool_ids"])
  assert [set(r) for r in a["tool_ids"]] == [set(r) for r in c["tool_ids"]]
  # The neighbour table depends on the documentation embeddings only.
  again = hard_tasks.neighbours_for(ds, split, _setup()[4])
  assert again.fingerprint(5) == nb.fingerprint(5) != nb.fingerprint(10)


def jax_leaves(tree):
  import jax  # pylint: disable=import-outside-toplevel
  return jax.tree.leaves(tree)


@pytest.mark.parametrize("n_way,k_shot", [(5, 0), (10, 0), (5, 3)])
def test_each_task_scores_only_its_centre_tools_queries(n_way, k_shot):
  ds, split, main, views, _, nb = _setup()
  tasks = hard_tasks.make_hard_tasks(np.random.default_rng(0), split, nb, n_way, k_shot, main,
                                     views, 2)
  assert tasks["tool_ids"].shape == (len(split.scored_tools), n_way)
  scored = []
  for e, centre in enumerate(split.scored_tools):
    tools = tasks["tool_ids"][e]
    assert set(tools) == {centre, *nb.of(centre, n_way - 1)}
    q = tasks["query"]
    keep = q["w"][e] > 0
    rows = tasks["query_rows"][e][keep]
    assert {ds.queries[r].tool for r in rows} == {centre}  # the centre's queries only
    assert set(tools[q["y"][e][keep]]) == {centre}  # labelled with the centre's position
    assert len(rows) == len(split.queries_by_tool[int(centre)]) - k_shot
    sup = tasks["support"]
    sup_rows = sup["idx"][e][sup["w"][e] > 0]
    assert not set(sup_rows) & set(rows) and len(sup_rows) == k_shot * n_way
    np.testing.assert_array_equal(tools[sup["y"][e][sup["w"][e] > 0]],
                                  [ds.queries[r].tool for r in sup_rows])
    np.testing.assert_array_equal(tasks["tools"]["idx"][e], main[tools])
    scored += list(rows)
  assert len(scored) == len(set(scored))  # each query once per seed


def test_hard_protocol_through_evaluate_and_its_skips():
  ds, split, main, views, _, nb = _setup()
  spec = run_eval.EvalSpec(modes=("sd", "cd", "hard5", "hard10"), seeds=(0, 1),
                           per_query=("0shot", "k1"))
  out = run_eval.evaluate(_oracle(ds), ds, split, main, views, spec, adapts=True, neighbours=nb)
  for mode in ("hard5", "hard10"):
    assert out[mode]["0shot"]["mean"] == 1.0 and out[mode]["k5"]["mean"] == 1.0
    assert out[mode]["0shot"]["tasks"]["candidate_sets_sha"] == nb.fingerprint(
        hard_tasks.MODES[mode])
  worst = run_eval.evaluate(_oracle(ds, -1.0), ds, split, main, views, spec, adapts=False,
                            neighbours=nb)
  assert worst["hard10"]["0shot"]["mean"] == 0.0
  assert "equals 0shot" in worst["hard5"]["k1"]["note"] and "per_query" not in worst["hard5"]["k1"]
  rand = run_eval.evaluate(run_eval.random_score_fn(0), ds, split, main, views,
                           run_eval.EvalSpec(modes=("hard10",), seeds=tuple(range(5)),
                                             full_pool=False), adapts=False, neighbours=nb)
  assert 0.02 < rand["hard10"]["0shot"]["mean"] < 0.2  # chance is 1/10
  no_nb = run_eval.evaluate(_oracle(ds), ds, split, main, views,
                            run_eval.EvalSpec(modes=("hard5",), full_pool=False))
  assert "no documentation similarity" in no_nb["hard5"]["0shot"]["skipped"]
  small = _dataset(groups=(("a", 3), ("b", 3)))
  s_split = run_eval.split_for(small, "test")
  s_nb = hard_tasks.neighbours_for(small, s_split, np.eye(len(small.tools)))
  s_out = run_eval.evaluate(_oracle(small), small, s_split, *_layout(small),
                            run_eval.EvalSpec(modes=("hard5", "hard10"), full_pool=False),
                            neighbours=s_nb)
  assert s_out["hard5"]["0shot"]["mean"] == 1.0
  assert "hard 10-way needs 10 candidate tools, the pool has 6" in s_out["hard10"]["0shot"][
      "skipped"]


def test_per_query_results_match_the_means_and_leave_sd_cd_unchanged():
  ds, split, main, views, _, nb = _setup()
  fn = run_eval.matrix_score_fn(np.random.default_rng(1).random((len(ds.queries), len(ds.tools))))
  plain = run_eval.evaluate(fn, ds, split, main, views, run_eval.EvalSpec(seeds=(0, 1, 2)),
                            adapts=True)
  spec = run_eval.EvalSpec(modes=("sd", "cd", "hard5"), seeds=(0, 1, 2),
                           per_query=("0shot", "k1", "k5"))
  rec = run_eval.evaluate(fn, ds, split, main, views, spec, adapts=True, neighbours=nb)
  for mode in ("sd", "cd"):  # recording per-query hits changes no draw and no number
    for shot in ("0shot", "k1", "k5"):
      assert rec[mode][shot]["per_seed"] == plain[mode][shot]["per_seed"]
  assert {k: v for k, v in rec["full_pool"]["0shot"].items() if k != "per_query"} == plain[
      "full_pool"]["0shot"]
  for mode in ("sd", "cd", "hard5"):
    block = rec[mode]["0shot"]["per_query"]
    rows, hits, scored = paired.decode_block(block)
    np.testing.assert_array_equal(rows, run_eval.scored_rows(split))
    assert block["scored"] == 3 and hits.sum() / scored.sum() == pytest.approx(
        rec[mode]["0shot"]["mean"])
    k5 = rec[mode]["k5"]["per_query"]  # K-shot: each seed leaves its labelled queries out
    _, hits5, scored5 = paired.decode_block(k5)
    assert isinstance(k5["scored"], str) and scored5.sum() == 3 * (len(rows) - 5 * 13)
  fp = rec["full_pool"]["0shot"]
  vals = paired.rank_values(fp["per_query"], "mrr")
  assert np.mean(list(vals.values())) == pytest.approx(fp["mrr"])


def test_per_query_encodings_round_trip():
  rows = np.array([0, 1, 2, 5, 6, 9])
  assert paired.encode_rows(rows) == [[0, 3], [5, 7], [9, 10]]
  np.testing.assert_array_equal(paired.decode_rows(paired.encode_rows(rows)), rows)
  counts = np.array([0, 5, 9, 10, 35, 61])
  assert paired.encode_counts(counts) == "059azZ"
  np.testing.assert_array_equal(paired.decode_counts(paired.encode_counts(counts)), counts)
  assert paired.encode_counts([3, 62]) == [3, 62]  # over one digit: a list
  block = paired.per_query_block(np.array([3, 4, 8]), [np.array([8, 3]), np.array([4, 8])],
                                 [np.array([1, 0]), np.array([1, 0])])
  assert block == {"rows": [[3, 5], [8, 9]], "hits": "011", "scored": "112"}
  assert paired.per_query_means(block) == {3: 0.0, 4: 1.0, 8: 0.5}
  uniform = paired.per_query_block(np.array([3, 4]), [np.array([4, 3])], [np.array([1, 0])])
  assert uniform == {"rows": [[3, 5]], "hits": "01", "scored": 1}


def test_paired_bootstrap_on_known_inputs():
  rng = np.random.default_rng(0)
  a = rng.random(200)
  same = paired.paired_bootstrap(a, a)
  assert (same["diff"], same["lo"], same["hi"]) == (0.0, 0.0, 0.0)
  shifted = paired.paired_bootstrap(a + 0.25, a)
  assert shifted["diff"] == pytest.approx(0.25) and shifted["lo"] == pytest.approx(0.25)
  assert shifted["hi"] == pytest.approx(0.25) and shifted["n"] == 200
  hits_a, hits_b = (rng.random(500) < 0.8).astype(float), (rng.random(500) < 0.7).astype(float)
  r = paired.paired_bootstrap(hits_a, hits_b, n_boot=2000, seed=1)
  assert r == paired.paired_bootstrap(hits_a, hits_b, n_boot=2000, seed=1)  # deterministic
  assert r["lo"] < r["diff"] < r["hi"] and r["diff"] == pytest.approx(hits_a.mean() - hits_b.mean())
  # The interval is about mean ± 1.96 standard errors of the paired differences.
  se = np.std(hits_a - hits_b) / np.sqrt(500)
  assert r["hi"] - r["lo"] == pytest.approx(2 * 1.96 * se, rel=0.1)
  with pytest.raises(ValueError):
    paired.paired_bootstrap([1.0, 2.0], [1.0])
  rows, xa, xb = paired.pair_values([{1: 1.0, 2: 0.0, 3: 1.0}, {1: 0.0, 2: 0.0}], [{1: 1.0, 2: 1.0}])
  np.testing.assert_array_equal(rows, [1, 2])
  np.testing.assert_array_equal(xa, [0.5, 0.0])
  np.testing.assert_array_equal(xb, [1.0, 1.0])


def _eval_json(path: pathlib.Path, row: str, results: dict):
  path.mkdir(parents=True)
  (path / "eval.json").write_text(json.dumps({
      "row": row, "kind": "baseline", "algorithm": row, "workdir": str(path), "step": None,
      "command": f"python experiments/evaluate.py --name={row}", "date": "2026-12-04T00:00:00",
      "eval_seconds": 1.0, "results": results}))


def test_report_compare_end_to_end(tmp_path):
  ds, split, main, views, _, nb = _setup()
  spec = run_eval.EvalSpec(modes=("sd", "cd", "hard5", "hard10"), seeds=(0, 1), shots=("0shot",),
                           per_query=("0shot",))
  good = run_eval.evaluate(_oracle(ds), ds, split, main, views, spec, adapts=False,
                           neighbours=nb)
  bad = run_eval.evaluate(_oracle(ds, -1.0), ds, split, main, views, spec, adapts=False,
                          neighbours=nb)
  _eval_json(tmp_path / "runs" / "good", "Good", {"mta_tools": good})
  _eval_json(tmp_path / "runs" / "good2", "Good", {"mta_tools": good})
  _eval_json(tmp_path / "runs" / "bad", "Bad", {"mta_tools": bad})
  out = tmp_path / "R.md"
  env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
  proc = subprocess.run(
      [sys.executable, "experiments/report.py", f"--workdirs={tmp_path}/runs/*", f"--out={out}",
       "--compare=Good,Bad", "--compare=Good,Good", "--n_boot=500"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = out.read_text()
  lines = text.splitlines()
  table = lines[lines.index("## Paired comparison: Good vs Bad"):]
  n = len(split.scored_tools) * 9
  for proto in ("SD 0-shot", "CD 0-shot", "hard 5-way 0-shot", "hard 10-way 0-shot",
                "full-pool top-1"):
    assert f"| {proto} | MTA-Tools | 100.00 | 0.00 | +100.00 | [+100.00, +100.00] | {n} |" in table
  worst_mrr = 100 * np.mean(1 / 13)
  assert (f"| full-pool MRR | MTA-Tools | 100.00 | {worst_mrr:.2f} | +{100 - worst_mrr:.2f} | "
          f"[+{100 - worst_mrr:.2f}, +{100 - worst_mrr:.2f}] | {n} |") in table
  same = lines[lines.index("## Paired comparison: Good vs Good"):]
  assert f"| hard 5-way 0-shot | MTA-Tools | 100.00 | 100.00 | +0.00 | [+0.00, +0.00] | {n} |" in same
  assert "| Good | 100.00 ± 0.00 / 100.00 ± 0.00 |" in text  # the hard 5 / 10 table
  # An unknown row is one line naming the rows.
  proc = subprocess.run(
      [sys.executable, "experiments/report.py", f"--workdirs={tmp_path}/runs/*", f"--out={out}",
       "--compare=Good,Bda"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "report: error: --compare: no row 'Bda' (did you mean 'Bad'?)")


def test_evaluate_unknown_mode_or_per_query_shot_is_one_line(tmp_path):
  from test_bad_inputs import _cli_run, _one_line_error  # pylint: disable=import-outside-toplevel
  line = _one_line_error(_cli_run("evaluate.py", f"--workdir={tmp_path}", "--modes=sd,hard7"),
                         "evaluate")
  assert line == ("evaluate: error: --modes: unknown setting 'hard7' (did you mean 'hard5'?); "
                  "known: sd, cd, hard5, hard10")
  line = _one_line_error(_cli_run("evaluate.py", f"--workdir={tmp_path}",
                                  "--per_query_shots=k2"), "evaluate")
  assert line.startswith("evaluate: error: --per_query_shots: unknown setting 'k2'")
