"""The trainer as a library: determinism, resume after SIGTERM, non-finite stops, bad workdirs.

Runs the real ``train.train`` (real MiniLM, pooled features) on a small slice of MTA-Tools
written as JSONL (6 tools a domain, 8 queries a tool), a few steps each. The features are cached
under .jax_cache/test_features, keyed by content, so only the first run on a machine embeds.
"""

import json
import os
import pathlib
import signal
import sys
import threading
import time

import numpy as np
import pytest

from mta_jax import checkpointing, inference, metrics_log, run_config, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
FEATURE_CACHE = ROOT / ".jax_cache" / "test_features"
sys.path.insert(0, str(ROOT / "experiments" / "configs"))
import mta  # pylint: disable=wrong-import-position


def write_small_dataset(dst: pathlib.Path, per_split=(("train", 3), ("validation", 1), ("test", 2)),
                        queries_per_tool=8) -> pathlib.Path:
  """A slice of MTA-Tools' JSONL: per domain, the first tools of each split, re-indexed."""
  src = ROOT / "datasets_tfds" / "mta_tools" / "data"
  tools = [json.loads(l) for l in (src / "tools.jsonl").read_text().splitlines() if l]
  qa = [json.loads(l) for l in (src / "qa.jsonl").read_text().splitlines() if l]
  keep, count = [], {}
  for t in tools:
    for split, n in per_split:
      if t["split"] == split and count.get((t["domain"], split), 0) < n:
        count[(t["domain"], split)] = count.get((t["domain"], split), 0) + 1
        keep.append(t)
  new_index = {t["index"]: i for i, t in enumerate(keep)}
  out_tools = [dict(t, index=new_index[t["index"]]) for t in keep]
  out_qa, per_tool = [], {}
  for q in qa:
    if q["tool_index"] in new_index and per_tool.get(q["tool_index"], 0) < queries_per_tool:
      per_tool[q["tool_index"]] = per_tool.get(q["tool_index"], 0) + 1
      out_qa.append(dict(q, tool_index=new_index[q["tool_index"]]))
  dst.mkdir(parents=True, exist_ok=True)
  (dst / "tools.jsonl").write_text("".join(json.dumps(t) + "\n" for t in out_tools))
  (dst / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in out_qa))
  return dst


def small_config(data_dir, **overrides):
  c = mta.get_config("sd,smoke")
  c.data_dir = str(data_dir)
  c.cache_dir = str(FEATURE_CACHE)
  c.episodes.n_way = c.eval.n_way = 3
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return write_small_dataset(tmp_path_factory.mktemp("data"))


def _final_state(workdir):
  bundle = inference.restore_for_inference(workdir, "latest")
  return bundle


def _metric_rows(workdir):
  return [{k: v for k, v in r.items() if k not in ("wall_time", "steps_per_s")}
          for r in metrics_log.read_jsonl(workdir)]


def test_same_seed_gives_same_metrics_and_parameters(data_dir, tmp_path):
  a = train.train(small_config(data_dir), tmp_path / "a")
  b = train.train(small_config(data_dir), tmp_path / "b")
  assert a["step"] == b["step"] == 6
  rows_a, rows_b = _metric_rows(tmp_path / "a"), _metric_rows(tmp_path / "b")
  assert len(rows_a) >= 6 and rows_a == rows_b
  pa, pb = _final_state(tmp_path / "a"), _final_state(tmp_path / "b")
  for k in pa.meta["params"]:
    np.testing.assert_array_equal(np.asarray(pa.meta["params"][k]),
                                  np.asarray(pb.meta["params"][k]))
  # A different seed gives different data, hence different parameters.
  c = train.train(small_config(data_dir, seed=1), tmp_path / "c")
  assert c["step"] == 6
  pc = _final_state(tmp_path / "c")
  assert not np.array_equal(np.asarray(pa.meta["params"]["head/w"]),
                            np.asarray(pc.meta["params"]["head/w"]))
  # The TensorBoard file holds the same scalars as the JSONL.
  events = metrics_log.read_events(next((tmp_path / "a" / "tensorboard").iterdir()))
  losses = {s: v for s, t, v in events if t == "outer/loss"}
  assert sorted(losses) == list(range(1, 7))
  jsonl = {r["step"]: r["outer/loss"] for r in rows_a if "outer/loss" in r}
  assert all(abs(losses[s] - jsonl[s]) <= 1e-6 * abs(jsonl[s]) for s in losses)


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes_bit_for_bit(data_dir, tmp_path):
  cfg = dict(total_steps=40, ckpt_every=1000, eval_every=1000)
  ref = tmp_path / "ref"
  train.train(small_config(data_dir, **cfg), ref)
  run = tmp_path / "run"

  def send_sigterm_after_3_steps():
    while len(metrics_log.read_jsonl(run)) < 3:
      time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)

  threading.Thread(target=send_sigterm_after_3_steps, daemon=True).start()
  with pytest.raises(train.TrainingInterrupted) as err:
    train.train(small_config(data_dir, **cfg), run)
  assert err.value.signum == signal.SIGTERM and 3 <= err.value.step < 40
  # The interrupted step was saved although it is not a multiple of ckpt_every.
  assert (run / "checkpoints" / str(err.value.step)).is_dir()
  train.train(small_config(data_dir, **cfg), run)  # the same call resumes
  a, b = _final_state(ref), _final_state(run)
  assert a.step == b.step == 40
  for k in a.meta["params"]:
    np.testing.assert_array_equal(np.asarray(a.meta["params"][k]), np.asarray(b.meta["params"][k]))
  steps = [r["step"] for r in metrics_log.read_jsonl(run) if "outer/loss" in r]
  assert steps == list(range(1, 41))  # the resumed log has no duplicate or missing step


def test_non_finite_loss_stops_naming_step_and_metric_and_keeps_good_checkpoint(data_dir,
                                                                               tmp_path):
  # Warm-up makes step 1's learning rate 0 (a good step) and step 2's 1e35: the parameters'
  # norm overflows float32 at step 2.
  cfg = small_config(data_dir, total_steps=30, ckpt_every=1, eval_every=1000, log_every=5)
  cfg.optim.lr, cfg.optim.warmup_steps = 1e36, 10
  with pytest.raises(train.NonFiniteError, match=r"non-finite [\w/]+ = (nan|inf|-inf) at step "
                     r"(\d+)") as err:
    train.train(cfg, tmp_path)
  bad_step = int(str(err.value).split(" at step ")[1].split(";")[0])
  bundle = inference.restore_for_inference(tmp_path, "latest")
  assert bundle.step == bad_step - 1  # every step before the bad one was good and saved
  assert all(np.isfinite(np.asarray(v)).all() for v in bundle.meta["params"].values())


def test_unwritable_workdir_fails_before_training(data_dir, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  t0 = time.perf_counter()
  with pytest.raises(checkpointing.CheckpointError, match="a_file/run is not writable"):
    train.train(small_config(data_dir), blocker / "run")
  assert time.perf_counter() - t0 < 5  # before the encoder, the data and the compile


@pytest.mark.parametrize("key,value,match", [
    ("total_steps", -3, r"config.total_steps must be >= 1, got -3"),
    ("meta.algorithm", "mamll", r"config.meta.algorithm must be one of"),
])
def test_config_values_out_of_range_are_named(data_dir, tmp_path, key, value, match):
  with pytest.raises(ValueError, match=match):
    train.train(small_config(data_dir, **{key: value}), tmp_path)


def test_model_configs_round_trip_through_json():
  c = mta.get_config("sd,top")
  scorer_cfg, meta_cfg = run_config.model_configs(json.loads(c.to_json()))
  assert scorer_cfg.n_top == 1 and scorer_cfg.adapt == "top+head"
  assert meta_cfg.algorithm == "maml" and meta_cfg.learn_inner_lr == "per_tensor"
  _, sft_meta = run_config.model_configs(json.loads(mta.get_config("sd,sft").to_json()))
  assert sft_meta.inner_steps == 0


def test_tfevents_framing_uses_the_crc32c_check_value():
  # The standard CRC-32C check value (RFC 3720, appendix B.4); TensorBoard rejects bad CRCs.
  assert metrics_log.crc32c(b"123456789") == 0xE3069283
  assert metrics_log.crc32c(b"") == 0


def test_init_from_takes_another_runs_best_parameters(data_dir, tmp_path):
  train.train(small_config(data_dir, total_steps=3, eval_every=3), tmp_path / "src")
  src = inference.restore_for_inference(tmp_path / "src", "best")
  # With zero learning rates the run's parameters stay where init_from put them.
  cfg = small_config(data_dir, total_steps=2, seed=5, init_from=str(tmp_path / "src"))
  cfg.optim.lr = cfg.optim.lr_of_inner_lr = 0.0
  train.train(cfg, tmp_path / "dst")
  dst = inference.restore_for_inference(tmp_path / "dst", "latest")
  assert set(dst.meta["params"]) == set(src.meta["params"])
  for k, v in src.meta["params"].items():
    np.testing.assert_array_equal(np.asarray(dst.meta["params"][k]), np.asarray(v))
  assert not np.allclose(np.asarray(src.meta["params"]["head/w"]), np.eye(384))  # it trained


def test_hybrid_scorer_with_hard_negative_episodes_trains_its_mix(data_dir, tmp_path):
  """The BM25 term and hard-negative episodes through the real trainer: the mix weights are
  meta-learned (they move), and the run is deterministic like every other."""
  cfg = dict(**{"scorer.lexical": True, "episodes.hard_fraction": 0.5})
  out = train.train(small_config(data_dir, **cfg), tmp_path / "h")
  assert out["step"] == 6
  params = _final_state(tmp_path / "h").meta["params"]
  assert float(params["mix/lex"]) != pytest.approx(0.2, abs=1e-6)
  assert float(params["mix/dense"]) != pytest.approx(1.0, abs=1e-6)
  train.train(small_config(data_dir, **cfg), tmp_path / "h2")
  assert _metric_rows(tmp_path / "h") == _metric_rows(tmp_path / "h2")
