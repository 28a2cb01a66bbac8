r"""The accelerator check: one command, one JSON report (``make gpu-check``; < 8 min on one GPU).

    .venv/bin/python experiments/gpu_check.py [--out=workdirs/gpu_check/report.json]
    JAX_PLATFORMS=cpu .venv/bin/python experiments/gpu_check.py --smoke   # the CPU smoke test

Each step runs in its own subprocess (so no process holds the accelerator's memory while
another needs it), bounded in time; a failed step is recorded with the tail of its output and
the check goes on. Steps:

1. ``devices``: what JAX sees (backend, kinds, counts, processes);
2. ``tests``: ``tests/test_bilevel.py`` and ``tests/test_encoder.py`` on the device;
3. ``memory``: the compiled meta-train step's ``memory_analysis()`` (temp bytes) at the reference
   shape (``experiments/benchmarks/meta_step.py``: E=8, N=5, K=2, Q=3, 32/64 tokens, top layer +
   head, second order) for inner_steps 1, 3, 10, with and without ``remat``;
4. ``bench``: that benchmark's s/step and GFLOP/s on the device, and ``bench_cpu``: the same with
   ``JAX_PLATFORMS=cpu`` on this host's CPU (skipped when the device is the CPU);
5. ``train``: 300 steps of ``experiments/flags/mta_top.flags`` (top layer + head adapted) on every
   device, then ``evaluate``: its SD/CD evaluation on MTA-Tools' unseen tools;
6. ``llm_sft_smoke``, ``llm_mta_smoke``: the LLM LoRA smoke flagfiles.

``--smoke`` shrinks every step to seconds (a few tests, a tiny benchmark shape, inner_steps 1,
the smoke training config; no LLM) so ``make test`` runs the script end to end on a CPU. The
report is printed as the last line of stdout and written to ``--out``; exit status 1 if any step
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable
MTA_JSONL = ROOT / "datasets_tfds" / "mta_tools" / "data"


def _tail(text: str, n: int = 1500) -> str:
  return text[-n:] if text else ""


def run_step(name: str, cmd: list, timeout: float, env: dict | None = None) -> dict:
  """Runs one step; returns {name, cmd, rc, wall_s, ok, stdout/stderr tails on failure}."""
  t0 = time.perf_counter()
  full_env = dict(os.environ, **(env or {}))
  try:
    proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    rc, out, err = proc.returncode, proc.stdout, proc.stderr
  except subprocess.TimeoutExpired as e:
    rc = "timeout"
    out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
  row = {"name": name, "cmd": " ".join(str(c) for c in cmd), "rc": rc, "ok": rc == 0,
         "wall_s": round(time.perf_counter() - t0, 1)}
  if rc != 0:
    row["stdout_tail"], row["stderr_tail"] = _tail(out), _tail(err)
  row["_stdout"] = out
  print(f"[gpu_check] {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {row['wall_s']} s",
        file=sys.stderr, flush=True)
  return row


# ---------------------------------------------------------------------------- in-subprocess parts

def _devices() -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  devs = jax.devices()
  return {"backend": jax.default_backend(), "jax": jax.__version__,
          "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
          "process_count": jax.process_count(),
          "kinds": sorted({d.device_kind for d in devs}), "devices": [str(d) for d in devs],
          "cpus": os.cpu_count()}


def _memory(shape: dict, inner_steps: list) -> dict:
  """temp/argument/output bytes of the compiled meta-train step at ``shape``."""
  import jax  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
  import meta_step  # pylint: disable=import-outside-toplevel
  from mta_jax import bilevel  # pylint: disable=import-outside-toplevel
  from mta_jax.models import registry  # pylint: disable=import-outside-toplevel
  from mta_jax.scorer import Scorer, ScorerConfig  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  a = argparse.Namespace(**shape)
  enc = registry.load()
  scorer = Scorer(ScorerConfig(n_top=1, adapt="top+head", temperature=0.05), enc.model)
  graphdef, params = enc.graphdef, enc.params
  lower = jax.jit(lambda ids, m: nnx.merge(graphdef, params).lower(ids, m, 5))
  feats = meta_step.make_features(lower, a, *meta_step.rand_batch(np.random.default_rng(0), a))
  opt = bilevel.make_optimizer(bilevel.OptimConfig(lr=1e-4, warmup_steps=1, total_steps=100))
  rows = []
  for steps in inner_steps:
    for remat in (False, True):
      cfg = bilevel.MetaConfig(algorithm="maml", inner_steps=steps, inner_lr=0.01, remat=remat,
                               track_adapted_support=False)
      state = jax.eval_shape(lambda k, c=cfg: bilevel.init_train_state(scorer, c, opt, k),
                             jax.random.key(0))
      t0 = time.perf_counter()
      compiled = bilevel.make_meta_train_step(scorer, cfg, opt).lower(
          state, feats, jax.random.key(0)).compile()
      ma = compiled.memory_analysis()
      get = lambda name, ma=ma: int(getattr(ma, name, -1)) if ma is not None else -1
      rows.append({"inner_steps": steps, "remat": remat,
                   "temp_bytes": get("temp_size_in_bytes"),
                   "argument_bytes": get("argument_size_in_bytes"),
                   "output_bytes": get("output_size_in_bytes"),
                   "compile_s": round(time.perf_counter() - t0, 1)})
  return {"backend": jax.default_backend(), "shape": shape, "rows": rows}


# ---------------------------------------------------------------------------- the check

REFERENCE_SHAPE = dict(E=8, N=5, K=2, Q=3, Tq=32, Tt=64)
SMOKE_SHAPE = dict(E=2, N=2, K=1, Q=1, Tq=16, Tt=16)


def _bench_numbers(path: pathlib.Path) -> dict:
  res = json.loads(path.read_text())
  return {"machine": res.get("machine"), "matmul_gflops": res.get("matmul_gflops"),
          "variants": {r["variant"]: {"s_per_step": round(r["s_per_step"], 4),
                                      "gflops": round(r["gflops"], 2),
                                      "compile_s": round(r["compile_s"], 1)}
                       for r in res.get("jax", [])}}


def _done_line(stdout: str) -> dict:
  m = re.search(r"done: step (\d+), best validation accuracy ([0-9.]+) at step (\d+)", stdout)
  return {"step": int(m[1]), "best_val": float(m[2]), "best_step": int(m[3])} if m else {}


def _eval_summary(path: pathlib.Path) -> dict:
  """The headline numbers of an eval.json: every leaf named ``mean`` (SD/CD x shots)."""
  if not path.exists():
    return {}
  found = {}

  def walk(node, where):
    if isinstance(node, dict):
      for k, v in node.items():
        if k == "mean" and isinstance(v, (int, float)):
          found["/".join(where)] = round(float(v), 4)
        elif k not in ("per_query", "hits", "seeds"):
          walk(v, where + [str(k)])
  walk(json.loads(path.read_text()), [])
  return dict(list(found.items())[:40])


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--smoke", action="store_true", help="seconds-sized steps (CPU test)")
  ap.add_argument("--workdir", default=str(ROOT / "workdirs" / "gpu_check"))
  ap.add_argument("--out", default="", help="report path (default <workdir>/report.json)")
  ap.add_argument("--data_dir", default=str(MTA_JSONL),
                  help="MTA-Tools (a JSONL folder or a TFDS data dir) for the training step")
  ap.add_argument("--cache_dir", default="", help="feature cache (default <workdir>/features)")
  ap.add_argument("--train_steps", type=int, default=300)
  ap.add_argument("--skip", default="", help="comma-separated step names to skip")
  ap.add_argument("--_part", default="", help=argparse.SUPPRESS)  # a subprocess's own part
  ap.add_argument("--_arg", default="", help=argparse.SUPPRESS)
  a = ap.parse_args(argv)

  if a._part:  # pylint: disable=protected-access
    arg = json.loads(a._arg or "{}")  # pylint: disable=protected-access
    out = _devices() if a._part == "devices" else _memory(**arg)  # pylint: disable=protected-access
    print("PART " + json.dumps(out))
    return 0

  work = pathlib.Path(a.workdir).absolute()
  work.mkdir(parents=True, exist_ok=True)
  cache = a.cache_dir or str(work / "features")
  skip = {s for s in a.skip.split(",") if s}
  me = [PY, str(pathlib.Path(__file__).resolve())]
  t_start = time.perf_counter()
  report: dict = {"smoke": a.smoke, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "steps": {}}

  def part(name, arg, timeout):
    row = run_step(name, me + ["--_part", name if name == "devices" else "memory",
                               "--_arg", json.dumps(arg)], timeout)
    line = [l for l in row.pop("_stdout").splitlines() if l.startswith("PART ")]
    if line:
      row["result"] = json.loads(line[-1][5:])
    return row

  steps = report["steps"]
  steps["devices"] = part("devices", {}, 120)
  backend = steps["devices"].get("result", {}).get("backend", "?")
  report["devices"] = steps["devices"].get("result")

  pytest = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n0"]
  if "tests" not in skip:
    tests = (["tests/test_bilevel.py", "-k", "traces_once or inner_loop_lowers"] if a.smoke
             else ["tests/test_bilevel.py", "tests/test_encoder.py"])
    row = run_step("tests", pytest + tests, 120 if a.smoke else 300)
    out = row.pop("_stdout")
    m = re.search(r"(\d+) passed", out)
    row["passed"] = int(m[1]) if m else 0
    row["failed"] = int(re.search(r"(\d+) failed", out)[1]) if " failed" in out else 0
    steps["tests"] = row

  if "memory" not in skip:
    steps["memory"] = part("memory", {"shape": SMOKE_SHAPE if a.smoke else REFERENCE_SHAPE,
                                      "inner_steps": [1] if a.smoke else [1, 3, 10]},
                           120 if a.smoke else 420)

  bench = [PY, "experiments/benchmarks/meta_step.py"]
  bench += ([f"--{k}={v}" for k, v in SMOKE_SHAPE.items()] + [
      "--inner_steps=1", "--steps=1", "--warmup=1", "--variants=vmap"] if a.smoke else [
          "--steps=5", "--variants=vmap,first_order"])
  for name, env in (("bench", {}), ("bench_cpu", {"JAX_PLATFORMS": "cpu"})):
    if name in skip or (name == "bench_cpu" and backend == "cpu"):
      continue
    path = work / f"{name}.json"
    row = run_step(name, bench + [f"--json_out={path}"], 120 if a.smoke else 300, env)
    row.pop("_stdout")
    if row["ok"] and path.exists():
      row["result"] = _bench_numbers(path)
    steps[name] = row

  train_wd = work / ("train_smoke" if a.smoke else "mta_top")
  if "train" not in skip:
    if a.smoke:
      cmd = [PY, "experiments/meta_train.py", "--config=experiments/configs/mta.py:sd,smoke",
             "--config.episodes.n_way=3", "--config.eval.n_way=3", "--config.total_steps=4",
             "--config.ckpt_every=4", "--config.eval_every=4"]
    else:
      cmd = [PY, "experiments/meta_train.py", "--flagfile=experiments/flags/mta_top.flags",
             f"--config.total_steps={a.train_steps}"]
    cmd += [f"--config.data_dir={a.data_dir}", f"--config.cache_dir={cache}",
            f"--workdir={train_wd}"]
    row = run_step("train", cmd, 120 if a.smoke else 420)
    row["result"] = _done_line(row.pop("_stdout"))
    rows = [json.loads(l) for l in (train_wd / "metrics.jsonl").read_text().splitlines()
            if l.strip()] if (train_wd / "metrics.jsonl").exists() else []
    rates = [r["steps_per_s"] for r in rows if "steps_per_s" in r]
    if rates:
      row["result"]["steps_per_s_last"] = round(rates[-1], 3)
    steps["train"] = row
    if "evaluate" not in skip and row["ok"]:
      cmd = [PY, "experiments/evaluate.py", f"--workdir={train_wd}", "--datasets=mta_tools",
             f"--data_dir={a.data_dir}", f"--cache_dir={cache}", "--modes=sd,cd"]
      if a.smoke:
        cmd += ["--seeds=1", "--shots=0shot", "--modes=sd"]
      row = run_step("evaluate", cmd, 120 if a.smoke else 300)
      row.pop("_stdout")
      row["result"] = _eval_summary(train_wd / "eval.json")
      steps["evaluate"] = row

  for flag in ("llm_sft_smoke", "llm_mta_smoke"):
    if a.smoke or flag in skip:
      steps[flag] = {"name": flag, "ok": True, "skipped": "smoke" if a.smoke else "--skip"}
      continue
    wd = work / flag
    row = run_step(flag, [PY, "experiments/llm_select.py",
                          f"--flagfile=experiments/flags/{flag}.flags", f"--workdir={wd}"], 300)
    row.pop("_stdout")
    steps[flag] = row

  report["ok"] = all(s.get("ok") for s in steps.values())
  report["wall_s"] = round(time.perf_counter() - t_start, 1)
  out = pathlib.Path(a.out or work / "report.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(report, indent=1))
  print(json.dumps(report))
  return 0 if report["ok"] else 1


if __name__ == "__main__":
  sys.exit(main())
