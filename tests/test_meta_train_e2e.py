"""End to end through the command line: meta_train.py from a flagfile, SIGKILL at a random step,
resume, bit-for-bit equality with an uninterrupted run, corrupt-checkpoint fallback, then
evaluate.py and report.py on the result. Real processes, real MiniLM, a small MTA-Tools slice.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest

from mta_jax import inference

# pylint: disable-next=wrong-import-order
from test_train import FEATURE_CACHE, ROOT, write_small_dataset

TOTAL = 8


def _flagfile(tmp: pathlib.Path, data_dir: pathlib.Path) -> pathlib.Path:
  path = tmp / "e2e.flags"
  path.write_text("\n".join([
      "--config=experiments/configs/mta.py:sd,smoke",
      f"--config.data_dir={data_dir}",
      f"--config.cache_dir={FEATURE_CACHE}",
      "--config.episodes.n_way=3",
      "--config.eval.n_way=3",
      f"--config.total_steps={TOTAL}",
      "--config.ckpt_every=2",
      "--config.eval_every=4",
  ]) + "\n")
  return path


def _run(script: str, *args, env_extra=None) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning", **(env_extra or {}))
  return subprocess.run([sys.executable, f"experiments/{script}", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def _train(flags: pathlib.Path, workdir: pathlib.Path, kill_at=None):
  env = {"MTA_FAULT_KILL_AT_STEP": str(kill_at)} if kill_at is not None else None
  return _run("meta_train.py", f"--flagfile={flags}", f"--workdir={workdir}", env_extra=env)


def _final_digest(workdir: pathlib.Path) -> str:
  cfg = next((workdir / "checkpoints" / str(TOTAL) / "config").glob("*"))
  return json.loads(cfg.read_text())["digest"]


def _kill_resume_compare(flags, tmp, ref_digest, kill_at, tag=""):
  # The tag keeps workdirs of different tests apart (same kill step, same module-scoped tmp).
  run = tmp / f"killed_at_{kill_at}{tag}"
  killed = _train(flags, run, kill_at=kill_at)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert not (run / "checkpoints" / str(TOTAL)).exists()
  resumed = _train(flags, run)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from" in resumed.stderr or kill_at < 2  # no checkpoint before step 2
  assert _final_digest(run) == ref_digest  # parameters, optimiser state and step, bit for bit
  return run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("e2e")
  data_dir = write_small_dataset(tmp / "data")
  flags = _flagfile(tmp, data_dir)
  ref = _train(flags, tmp / "ref")
  assert ref.returncode == 0, ref.stderr[-3000:]
  return tmp, data_dir, flags, _final_digest(tmp / "ref")


def test_kill_resume_corrupt_fallback_then_evaluate_and_report(setup):
  tmp, data_dir, flags, ref_digest = setup
  kill_at = int(np.random.default_rng(7).integers(1, TOTAL))  # a "random" step, reproducibly
  run = _kill_resume_compare(flags, tmp, ref_digest, kill_at)
  ref_params = inference.restore_for_inference(tmp / "ref", "latest").meta["params"]
  run_params = inference.restore_for_inference(run, "latest").meta["params"]
  assert all(np.array_equal(np.asarray(ref_params[k]), np.asarray(run_params[k]))
             for k in ref_params)

  # Corrupt the newest checkpoint: the rerun skips it with a warning naming it, falls back to
  # the previous one, and still ends bit-identical.
  newest = run / "checkpoints" / str(TOTAL)
  victim = max((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  victim.write_bytes(victim.read_bytes()[:victim.stat().st_size // 2])
  again = _train(flags, run)
  assert again.returncode == 0, again.stderr[-2000:]
  assert f"skipped step {TOTAL}" in again.stderr and str(newest) in again.stderr
  assert f"resuming from step {TOTAL - 2}" in again.stderr
  assert _final_digest(run) == ref_digest

  # Evaluate the checkpoint under every protocol; an unbuilt dataset is skipped, not dropped.
  ev = _run("evaluate.py", f"--workdir={run}", f"--data_dir={data_dir}",
            f"--cache_dir={FEATURE_CACHE}", "--datasets=mta_tools,metatool", "--seeds=2",
            "--shots=0shot,k1", "--sweep_inner_steps=0,2")
  assert ev.returncode == 0, ev.stderr[-3000:]
  res = json.loads((run / "eval.json").read_text())
  assert res["row"] == "MTA" and res["step"] >= 4
  mt = res["results"]["mta_tools"]
  for mode in ("sd", "cd"):
    for shot in ("0shot", "k1"):
      assert 0.0 <= mt[mode][shot]["mean"] <= 1.0 and len(mt[mode][shot]["per_seed"]) == 2
  assert 0.0 < mt["full_pool"]["0shot"]["mrr"] <= 1.0
  assert set(mt["inner_steps_sweep"]) == {"0", "2"}
  assert "not built" in res["results"]["metatool"]["skipped"]

  out = tmp / "REPORT.md"
  rep = _run("report.py", f"--workdirs={run}", f"--out={out}", "--title=e2e")
  assert rep.returncode == 0, rep.stderr[-3000:]
  text = out.read_text()
  assert "| MTA (paper, reported¹) | 94.04 | 97.33 |" in text
  assert "| MTA | " in text and "not built³" in text
  assert all((tmp / "results" / p).stat().st_size > 1000 for p in (
      "training_curves.png", "inner_steps.png", "k_shots.png", "per_domain.png"))


def test_kill_at_several_random_steps_resumes_bit_for_bit(setup):
  tmp, _, flags, ref_digest = setup
  for kill_at in np.random.default_rng(11).choice(np.arange(1, TOTAL), size=3, replace=False):
    _kill_resume_compare(flags, tmp, ref_digest, int(kill_at), tag="_multi")
