"""Benchmark: one MTA outer step at the reference shape, JAX variants side by side with the peer.

Reference shape (issue 5 and ../shared/peers): meta-batch 8 episodes, N=5 tools, K=2 support and
Q=3 query queries per tool, queries padded to 32 tokens and tool documents to 64, 3 inner SGD
steps (lr 0.01), second order, adapting the top transformer layer plus a 384x384 query head,
cross-entropy over cos/0.05, Adam 1e-4 outside.

Variants:
- ``vmap``: the jitted step, episodes vmapped (what meta_train.py runs), on cached lower states;
- ``vmap+bottom``: the same plus recomputing the 5 frozen layers every step (the peer's work);
- ``loop``: one jitted episode gradient per episode in a Python loop, then the update;
- ``first_order``: ``vmap`` with first-order MAML;
- ``map``: the jitted step with ``episode_batching="map"`` (``lax.map`` over episodes).
Also the 2048^3 float32 matmul ceiling and, if ``--peer_python`` is given, the PyTorch peer
(``--peer_variants``) run after the JAX variants in the same invocation, so ratios compare
numbers measured minutes apart on the same machine.

    .venv/bin/python experiments/benchmarks/meta_step.py [--steps 5] [--peer_python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from mta_jax import bilevel
from mta_jax.models import registry
from mta_jax.scorer import Scorer, ScorerConfig

PEER = pathlib.Path(__file__).resolve().parents[3] / "shared" / "peers" / "torch_maml_step.py"


def layer_flops(t, h=384, i=1536):
  """Matmul FLOPs of one BERT layer on one sequence of length t (the peer's formula)."""
  return 2 * t * (4 * h * h + 2 * h * i) + 2 * 2 * t * t * h


def analytic_flops(a, first_order):
  """The peer's FLOP model, so GFLOP/s figures are comparable across implementations."""
  e, n, k, q, s = a.E, a.N, a.K, a.Q, a.inner_steps
  lq, lt, proj = layer_flops(a.Tq), layer_flops(a.Tt), 2 * 384 * 384
  bottom = 5 * (e * n * (k + q) * lq + e * n * lt)
  sup = n * k * (lq + proj) + n * lt
  qry = n * q * (lq + proj) + n * lt
  top = e * (s * (3 if first_order else 9) * sup + 3 * qry)
  return {"bottom": bottom, "top": top}


def rand_batch(rng, a):
  """Random token sequences with ragged lengths, as the peer generates them."""
  def seqs(n, t):
    lengths = rng.integers(8, t + 1, n)
    ids = rng.integers(1000, 29000, (n, t))
    mask = np.arange(t)[None] < lengths[:, None]
    ids = np.where(mask, ids, 0)
    ids[:, 0] = 101
    ids[np.arange(n), lengths - 1] = 102
    return ids.astype(np.int32), mask.astype(np.int32)
  q_ids, q_m = seqs(a.E * a.N * (a.K + a.Q), a.Tq)
  t_ids, t_m = seqs(a.E * a.N, a.Tt)
  return q_ids, q_m, t_ids, t_m


def make_features(lower, a, q_ids, q_m, t_ids, t_m):
  """Lower hidden states -> the episode feature dict of ``bilevel`` (E leading)."""
  e, n, k, q = a.E, a.N, a.K, a.Q
  hq = lower(q_ids, q_m).reshape(e, n, k + q, a.Tq, -1)
  mq = jnp.asarray(q_m).reshape(e, n, k + q, a.Tq)
  ht = lower(t_ids, t_m).reshape(e, n, a.Tt, -1)
  mt = jnp.asarray(t_m).reshape(e, n, a.Tt)
  lab = lambda c: jnp.broadcast_to(jnp.arange(n)[None, :, None], (e, n, c)).reshape(e, n * c)

  def stream(h, m, c):
    return {"h": h.reshape(e, n * c, a.Tq, -1), "m": m.reshape(e, n * c, a.Tq), "y": lab(c),
            "w": jnp.ones((e, n * c), jnp.float32)}

  empty = {"h": jnp.zeros((e, 0, a.Tt, ht.shape[-1])), "m": jnp.zeros((e, 0, a.Tt), jnp.int32),
           "y": jnp.zeros((e, 0), jnp.int32), "w": jnp.zeros((e, 0), jnp.float32)}
  return {"tools": {"h": ht, "m": mt}, "support": stream(hq[:, :, :k], mq[:, :, :k], k),
          "views": empty, "query": stream(hq[:, :, k:], mq[:, :, k:], q)}


def timed(fn, warmup, steps):
  for _ in range(warmup):
    jax.block_until_ready(fn())
  ts = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    ts.append(time.perf_counter() - t0)
  return ts


def bench_matmul(n=2048, iters=10):
  x = jax.random.normal(jax.random.key(0), (n, n))
  y = jax.random.normal(jax.random.key(1), (n, n))
  f = jax.jit(lambda a, b: a @ b)
  ts = timed(lambda: f(x, y), 3, iters)
  return 2 * n ** 3 / statistics.median(ts) / 1e9


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for name, default in (("E", 8), ("N", 5), ("K", 2), ("Q", 3), ("Tq", 32), ("Tt", 64),
                        ("inner_steps", 3), ("steps", 5), ("warmup", 2)):
    ap.add_argument(f"--{name}", type=int, default=default)
  ap.add_argument("--variants", default="vmap,vmap+bottom,loop,first_order")
  ap.add_argument("--peer_python", default="", help="python of a venv with torch (peer)")
  ap.add_argument("--peer_variants", default="autograd_loop")
  ap.add_argument("--json_out", default="")
  a = ap.parse_args(argv)

  enc = registry.load()
  scfg = ScorerConfig(n_top=1, adapt="top+head", temperature=0.05)
  scorer = Scorer(scfg, enc.model)
  opt = bilevel.make_optimizer(bilevel.OptimConfig(lr=1e-4, warmup_steps=1, total_steps=10**6,
                                                   weight_decay=0.0, clip_norm=1e9))
  graphdef, params = enc.graphdef, enc.params
  from flax import nnx  # pylint: disable=import-outside-toplevel
  lower = jax.jit(lambda ids, m: nnx.merge(graphdef, params).lower(ids, m, 5))
  rng = np.random.default_rng(0)
  batches = [rand_batch(rng, a) for _ in range(3)]
  feats = [make_features(lower, a, *b) for b in batches]
  results = {"machine": {"jax": jax.__version__, "backend": jax.default_backend(),
                         "devices": str(jax.devices()), "cpus": os.cpu_count()}}
  results["matmul_gflops"] = bench_matmul()
  print(f"matmul 2048^3 float32: {results['matmul_gflops']:.1f} GFLOP/s", flush=True)

  rows = []
  for variant in a.variants.split(","):
    fo = variant == "first_order"
    mcfg = bilevel.MetaConfig(algorithm="fomaml" if fo else "maml",
                              inner_steps=a.inner_steps, inner_lr=0.01,
                              track_adapted_support=False,
                              episode_batching="map" if variant == "map" else "vmap")
    state = bilevel.init_train_state(scorer, mcfg, opt, jax.random.key(0))
    i = [0]
    if variant in ("vmap", "first_order", "vmap+bottom", "map"):
      step = bilevel.make_meta_train_step(scorer, mcfg, opt)
      if variant == "vmap+bottom":
        def run():
          b = batches[i[0] % 3]
          i[0] += 1
          f = make_features(lower, a, *b)
          st, m = step(holder[0], f, jax.random.key(0))
          holder[0] = st
          return m["outer/loss"]
      else:
        def run():
          f = feats[i[0] % 3]
          i[0] += 1
          st, m = step(holder[0], f, jax.random.key(0))
          holder[0] = st
          return m["outer/loss"]
      holder = [state]
      t0 = time.perf_counter()
      jax.block_until_ready(run())
      compile_s = time.perf_counter() - t0
      flops_xla = None
    else:  # loop: jit one episode's meta-gradient, accumulate in Python, then update.
      grad_one = jax.jit(jax.value_and_grad(
          lambda meta, ep: bilevel.episode_loss(scorer, mcfg, meta, ep), has_aux=True))
      update = jax.jit(lambda st, g: _apply(opt, st, g), donate_argnums=(0,))
      holder = [state]

      def run():
        f = feats[i[0] % 3]
        i[0] += 1
        st = holder[0]
        meta = bilevel.full_meta(st)
        acc, loss = None, 0.0
        for e in range(a.E):
          ep = jax.tree.map(lambda x, e=e: x[e], f)
          (l, _), g = grad_one(meta, ep)
          acc = g if acc is None else jax.tree.map(jnp.add, acc, g)
          loss = loss + l
        holder[0] = update(st, jax.tree.map(lambda x: x / a.E, acc))
        return loss / a.E
      t0 = time.perf_counter()
      jax.block_until_ready(run())
      compile_s = time.perf_counter() - t0
      flops_xla = None
    ts = timed(run, a.warmup - 1, a.steps)
    med = statistics.median(ts)
    fl = analytic_flops(a, fo)
    work = fl["top"] + (fl["bottom"] if variant == "vmap+bottom" else 0)
    rows.append({"variant": variant, "s_per_step": med, "min": min(ts), "max": max(ts),
                 "episodes_per_s": a.E / med, "gflop": work / 1e9,
                 "gflops": work / med / 1e9, "compile_s": compile_s, "xla_flops": flops_xla})
    print(f"{variant:12s} {med:.3f} s/step [{min(ts):.3f}-{max(ts):.3f}] "
          f"{a.E / med:.2f} ep/s {work / med / 1e9:.1f} GFLOP/s (compile+1st {compile_s:.1f}s)",
          flush=True)
  results["jax"] = rows

  if a.peer_python:
    peer = {}
    for fo in (False, True):
      out = pathlib.Path("/tmp/peer_bench.json")
      cmd = [a.peer_python, str(PEER), "--variants", a.peer_variants, "--skip-fwd",
             "--skip-matmul", "--steps", str(a.steps), "--warmup", str(a.warmup),
             "--json-out", str(out)] + (["--first-order"] if fo else [])
      proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
      if proc.returncode:
        print(proc.stderr[-2000:])
        continue
      res = json.loads(out.read_text())
      for name, r in res["variants"].items():
        if "step" in r:
          peer[f"{name}{' FO' if fo else ''}"] = r["step"]["median"]
          print(f"peer {name}{' FO' if fo else ''}: {r['step']['median']:.3f} s/step", flush=True)
    results["peer"] = peer
  _table(results, a)
  if a.json_out:
    pathlib.Path(a.json_out).write_text(json.dumps(results, indent=1))
  return results


def _apply(opt, state, grads):
  import optax  # pylint: disable=import-outside-toplevel
  g = {"params": {k: grads["params"][k] for k in state["meta"]["params"]},
       "inner_lr": grads["inner_lr"]}
  updates, o = opt.update(g, state["opt"], state["meta"])
  return dict(state, meta=optax.apply_updates(state["meta"], updates), opt=o,
              step=state["step"] + 1)


def _table(results, a):
  ceiling = results["matmul_gflops"]
  peer = results.get("peer", {})
  so_peer = min((v for k, v in peer.items() if not k.endswith(" FO")), default=None)
  fo_peer = min((v for k, v in peer.items() if k.endswith(" FO")), default=None)
  print("\n| variant | s/step | episodes/s | GFLOP/step | GFLOP/s | % of matmul ceiling "
        "| peer s/step | speed-up vs peer |")
  print("|---|---|---|---|---|---|---|---|")
  for r in results["jax"]:
    ref = fo_peer if r["variant"] == "first_order" else so_peer
    ratio = f"{ref / r['s_per_step']:.2f}x" if ref else "n/a"
    print(f"| {r['variant']} | {r['s_per_step']:.3f} | {r['episodes_per_s']:.2f} | "
          f"{r['gflop']:.0f} | {r['gflops']:.1f} | {100 * r['gflops'] / ceiling:.0f}% | "
          f"{ref if ref else float('nan'):.3f} | {ratio} |")
  print(f"\nmatmul ceiling (2048^3 fp32, JAX): {ceiling:.1f} GFLOP/s; shape E={a.E} N={a.N} "
        f"K={a.K} Q={a.Q} Tq={a.Tq} Tt={a.Tt} inner_steps={a.inner_steps}")


if __name__ == "__main__":
  sys.exit(0 if main() else 1)
