"""The LLM rows train through the one trainer: MTA-LoRA's smoke config through meta_train.py,
SIGKILLed at a step and rerun, ends bit-identical to an uninterrupted run (real processes, the
truncated 2-block SmolLM2 of the smoke config)."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOTAL = 4


def _train(workdir: pathlib.Path, kill_at=None) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
  if kill_at is not None:
    env["MTA_FAULT_KILL_AT_STEP"] = str(kill_at)
  return subprocess.run(
      [sys.executable, "experiments/meta_train.py", "--config=experiments/configs/llm.py:mta,smoke",
       f"--config.meta.steps={TOTAL}", "--config.ckpt_every=2", f"--workdir={workdir}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def _digest(workdir: pathlib.Path) -> str:
  cfg = next((workdir / "checkpoints" / str(TOTAL) / "config").glob("*"))
  return json.loads(cfg.read_text())["digest"]


def test_llm_mta_lora_killed_and_resumed_ends_bit_identical(tmp_path):
  ref = _train(tmp_path / "ref")
  assert ref.returncode == 0, ref.stderr[-3000:]
  kill_at = int(np.random.default_rng(3).integers(2, TOTAL))  # after a checkpoint, reproducibly
  run = tmp_path / "killed"
  killed = _train(run, kill_at=kill_at)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert not (run / "checkpoints" / str(TOTAL)).exists()
  resumed = _train(run)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from" in resumed.stderr
  # LoRA factors, learned inner rates, optimiser state and step, bit for bit.
  assert _digest(run) == _digest(tmp_path / "ref")
  rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
  assert {r["step"] for r in rows if "outer/loss" in r} >= set(range(kill_at + 1, TOTAL + 1))
