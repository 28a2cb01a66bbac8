"""Orbax checkpoints: exact round trip, corruption detection and fallback, inference bundles,
workdir checks. Uses a tiny BERT top (synthetic config) so each test runs in about a second."""

import json
import logging
import pathlib

import jax
import numpy as np
import pytest
from flax import nnx

from mta_jax import bilevel, checkpointing, inference, params as P, synthetic
from mta_jax.models import bert
from mta_jax.scorer import Scorer, ScorerConfig

CONFIG = {"scorer": {"n_top": 1, "adapt": "head", "head": True, "train_top": False,
                     "temperature": 0.5, "lora_rank": 0},
          "meta": {"algorithm": "maml", "inner_steps": 2, "inner_lr": 0.1,
                   "learn_inner_lr": "per_tensor", "remat": False}}


def _state(seed=0):
  model = bert.BertEncoder(synthetic.tiny_bert_config(8), rngs=nnx.Rngs(seed))
  scorer = Scorer(ScorerConfig(n_top=1, adapt="head", train_top=False, temperature=0.5), model)
  meta_cfg = bilevel.MetaConfig(inner_steps=2, inner_lr=0.1, learn_inner_lr="per_tensor")
  opt = bilevel.make_optimizer(bilevel.OptimConfig(total_steps=10))
  init = lambda k: bilevel.init_train_state(scorer, meta_cfg, opt, k)
  state = init(jax.random.key(seed))
  # Non-trivial values everywhere (a step's worth of optimiser state included).
  state = jax.tree.map(lambda x: x + 0.25 if x.dtype == np.float32 else x + 3, state)
  return state, jax.eval_shape(init, jax.random.key(seed))


def _equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(la, lb))


def _truncate_biggest_file(folder: pathlib.Path) -> pathlib.Path:
  files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  victim = files[-1]
  data = victim.read_bytes()
  victim.write_bytes(data[:len(data) // 2])
  return victim


def test_save_restore_is_exact_and_keeps_the_last_few(tmp_path):
  state, abstract = _state()
  ck = checkpointing.Checkpoints(tmp_path, keep=2)
  for step in (1, 2, 3):
    ck.save(step, state, {"config": CONFIG, "train": {"best_val": 0.5}})
  ck.wait()
  assert ck.latest.all_steps() == [2, 3]
  restored, record = ck.restore_latest(abstract)
  ck.close()
  assert record["step"] == 3 and record["train"]["best_val"] == 0.5
  assert jax.tree.structure(restored) == jax.tree.structure(state) and _equal(restored, state)


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(tmp_path, caplog):
  state, abstract = _state()
  ck = checkpointing.Checkpoints(tmp_path, keep=3)
  ck.save(1, state, {"config": CONFIG})
  newer = jax.tree.map(lambda x: x * 2, state)
  ck.save(2, newer, {"config": CONFIG})
  ck.wait()
  _truncate_biggest_file(tmp_path / "checkpoints" / "2")
  with caplog.at_level(logging.WARNING):
    restored, record = ck.restore_latest(abstract)
  assert record["step"] == 1 and _equal(restored, state)
  warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert "skipped step 2" in warning and str(tmp_path / "checkpoints" / "2") in warning
  # The corrupt step was moved aside, so step 2 can be saved again by the resumed run.
  assert ck.latest.all_steps() == [1] and list((tmp_path / "corrupt_checkpoints").iterdir())
  ck.save(2, newer, {"config": CONFIG})
  ck.wait()
  assert ck.latest.all_steps() == [1, 2]
  ck.close()


def test_missing_state_folder_and_flipped_bytes_are_detected(tmp_path):
  state, abstract = _state()
  ck = checkpointing.Checkpoints(tmp_path, keep=3)
  ck.save(1, state, {"config": CONFIG})
  ck.wait()
  import shutil  # pylint: disable=import-outside-toplevel
  shutil.rmtree(tmp_path / "checkpoints" / "1" / "state")
  with pytest.raises(checkpointing.CheckpointError, match=r"no intact checkpoint in .*"
                     r"checkpoints/1 is unreadable"):
    ck.restore_latest(abstract)
  # A readable checkpoint whose bytes changed fails the digest check.
  ck.save(5, state, {"config": CONFIG, "train": {}})
  ck.wait()
  ck.close()
  cfg_file = next((tmp_path / "checkpoints" / "5" / "config").glob("*"))
  record = json.loads(cfg_file.read_text())
  record["digest"] = "0" * 64
  cfg_file.write_text(json.dumps(record))
  ck = checkpointing.Checkpoints(tmp_path, keep=3)
  with pytest.raises(checkpointing.CheckpointError, match="do not match the digest"):
    ck.restore_latest(abstract)
  ck.close()


def test_restore_for_inference_returns_all_params_and_prefers_best(tmp_path):
  state, _ = _state()
  best = jax.tree.map(lambda x: x * 3, state)
  ck = checkpointing.Checkpoints(tmp_path, keep=2)
  ck.save(4, state, {"config": CONFIG})
  ck.save(2, best, {"config": CONFIG}, best=True)
  ck.wait()
  ck.close()
  b = inference.restore_for_inference(tmp_path)  # which="best"
  assert b.step == 2 and b.config == CONFIG
  assert b.scorer_cfg == ScorerConfig(n_top=1, adapt="head", train_top=False, temperature=0.5)
  assert b.meta_cfg.learn_inner_lr == "per_tensor" and b.meta_cfg.inner_steps == 2
  full = bilevel.full_meta(best)
  assert set(b.meta["params"]) == set(full["params"])  # frozen top layers included
  assert state["frozen"] and set(state["frozen"]) <= set(b.meta["params"])
  assert _equal(b.meta, full)
  latest = inference.restore_for_inference(tmp_path, "latest")
  assert latest.step == 4 and _equal(latest.meta, bilevel.full_meta(state))


def test_restore_for_inference_errors_name_the_path(tmp_path):
  with pytest.raises(checkpointing.CheckpointError, match=f"no checkpoint in {tmp_path}"):
    inference.restore_for_inference(tmp_path)
  state, _ = _state()
  ck = checkpointing.Checkpoints(tmp_path, keep=2)
  ck.save(3, state, {"config": CONFIG})
  ck.wait()
  ck.close()
  _truncate_biggest_file(tmp_path / "checkpoints" / "3")
  with pytest.raises(checkpointing.CheckpointError, match=r"checkpoints/3 is (unreadable|corrupt)"):
    inference.restore_for_inference(tmp_path, "latest")
  with pytest.raises(ValueError, match="which must be one of"):
    inference.restore_for_inference(tmp_path, "newest")


def test_check_workdir_reports_unwritable_and_full_disks(tmp_path):
  assert checkpointing.check_workdir(tmp_path / "new") == (tmp_path / "new").absolute()
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(checkpointing.CheckpointError, match=f"{blocker}/run is not writable"):
    checkpointing.check_workdir(blocker / "run")
  with pytest.raises(checkpointing.CheckpointError, match="MiB free"):
    checkpointing.check_workdir(tmp_path, need_bytes=1 << 60)


def test_digest_ignores_container_classes_but_not_values():
  state, _ = _state()
  as_lists = jax.tree.map(lambda x: x, state)
  as_lists["opt"] = jax.tree_util.tree_map(lambda x: x, list(state["opt"]))
  d = checkpointing.state_digest(state)
  assert checkpointing.state_digest(as_lists) == d
  bumped = P.merge({k: v for k, v in state["meta"]["params"].items()})
  bumped["head/b"] = bumped["head/b"].at[0].add(1e-7)
  changed = dict(state, meta=dict(state["meta"], params=bumped))
  assert checkpointing.state_digest(changed) != d
