"""Benchmark: ToolSelector speed with the 155 MTA-Tools tools cached.

For each selector kind:
- ``set_tools``: first call (documents through the encoder, documentation-only adaptation,
  single-query warm-up) and a repeat call (the per-toolbox cache);
- batched: ``rank`` over 1,000 MTA-Tools queries (every 9th), queries/s;
- single query: ``rank`` of one query at a time over 200 queries, p50 and p95 latency, with the
  cached documentation-only adaptation (no support examples), top-5 over all 155 tools.
Every timing is repeated ``--repeats`` times after a warm-up pass that compiles every bucket;
the medians over repeats are reported.

Kinds: ``zero_shot`` (the pretrained selector, no adaptation: the hybrid, cosine + the BM25
term, its default); ``zero_shot_dense`` (``pretrained(lexical=False)``: the encoder alone);
``mta`` (the CPU training default:
head adapted on frozen sentence embeddings, MAML 3 inner steps); ``mta_top`` (the top layer and
the head adapted). ``mta`` kinds use freshly initialised meta-parameters: a trained checkpoint of
the same config does the same work (``--checkpoint`` benchmarks one).

Real agents' inputs (issue 19), ``--real`` (the zero-shot selector, its hybrid default; add
``--kinds=``):
- ``per_query``: 1,000 requests (MTA-Tools queries), each with its own list of 2-40 tools drawn
  from a pool of 1,550 distinct generated specs (10 variants of each MTA-Tools tool: the same
  name with another description, or another name; the gold tool's variant is in the list).
  The first pass embeds every document and compiles; then requests/s over repeated passes on a
  fresh selector sharing only the compiled programs and, for the documents, the disk cache
  (``warm``), and with every document already in memory (``hot``);
- ``catalogue``: 4,030 tools (26 generated variants of each MTA-Tools tool): ``set_tools`` on an
  empty disk cache (cold), then on a fresh selector over the same cache (warm), the whole
  command line's second run (process start, model load, cached set-up, one query), and the p50
  of single queries after set-up;
- ``mcp``: ``rank_tools`` round trips through ``experiments/serve_mcp.py`` over stdio with the
  official client (``examples/mcp_client.py``), 155 tools, p50/p95 of 200 single queries.

    .venv/bin/python experiments/benchmarks/selector.py [--repeats 5] [--kinds zero_shot,mta]
    .venv/bin/python experiments/benchmarks/selector.py --real --kinds= --repeats 5
    .venv/bin/python experiments/benchmarks/selector.py --kinds= --hybrid_overhead --repeats 3

``--hybrid_overhead``: the zero-shot hybrid against the dense encoder query by query,
interleaved (one then the other on each query, then each batched pass), so both see the same
machine load: what the BM25 term costs on a shared machine where separate runs differ by more.
"""

from __future__ import annotations

# Named selector.py, not select.py (as issue 7 suggested): a script's folder comes first on
# sys.path, and a select.py there shadows the standard library's ``select`` (which subprocess,
# and so JAX, imports) for every benchmark in this folder.
import argparse
import os
import subprocess
import sys
import json
import pathlib
import statistics
import tempfile
import time

import jax
import numpy as np

from mta_jax import bilevel, data
from mta_jax.models import TextEncoder
from mta_jax.scorer import Scorer, ScorerConfig
from mta_jax.selector import ToolSelector, plan_batches

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "datasets_tfds" / "mta_tools" / "data"
KINDS = {
    "mta": (ScorerConfig(n_top=0, adapt="head"),
            bilevel.MetaConfig(inner_steps=3, inner_lr=0.05, learn_inner_lr="per_tensor")),
    "mta_top": (ScorerConfig(n_top=1, adapt="top+head"),
                bilevel.MetaConfig(inner_steps=3, inner_lr=0.05, learn_inner_lr="per_tensor")),
}


def make_selector(kind: str, encoder: TextEncoder, checkpoint: str = "") -> ToolSelector:
  if kind in ("zero_shot", "zero_shot_dense"):
    return ToolSelector.pretrained(encoder=encoder, lexical=kind == "zero_shot")
  if kind == "checkpoint":
    return ToolSelector.load(checkpoint, encoder=encoder)
  scfg, mcfg = KINDS[kind]
  meta = bilevel.init_meta(Scorer(scfg, encoder.model), mcfg, jax.random.key(0))
  return ToolSelector.from_meta(scfg, mcfg, meta, encoder=encoder)


def padded_flops(sel: ToolSelector, texts) -> float:
  """Matmul FLOPs of the encoder over the padded batches ``rank`` runs (to compare the achieved
  rate with the machine's ceiling, ~125-135 GFLOP/s for a BERT layer on a quiet 2-core CPU)."""
  c = sel.encoder.cfg
  lengths = np.array([len(r) for r in sel.encoder.tokenizer.encode(texts)])
  total = 0.0
  for _, b, t in plan_batches(lengths, sel.cfg):
    per_seq = 2 * t * (4 * c.hidden_size ** 2 + 2 * c.hidden_size * c.intermediate_size)
    total += b * c.num_layers * (per_seq + 4 * t * t * c.hidden_size)
  return total


def bench(kind, encoder, tools, queries, singles, repeats, checkpoint=""):
  sel = make_selector(kind, encoder, checkpoint)
  t0 = time.perf_counter()
  sel.set_tools(tools)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  sel.set_tools(tools)
  cached = time.perf_counter() - t0
  sel.rank(queries)  # compile every batched bucket
  for q in singles:
    sel.rank(q)  # and every single-query bucket
  rates, p50s, p95s = [], [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    sel.rank(queries)
    rates.append(len(queries) / (time.perf_counter() - t0))
    lat = []
    for q in singles:
      t0 = time.perf_counter()
      sel.rank(q)
      lat.append(time.perf_counter() - t0)
    p50s.append(1e3 * float(np.percentile(lat, 50)))
    p95s.append(1e3 * float(np.percentile(lat, 95)))
  gflops = padded_flops(sel, queries) * statistics.median(rates) / len(queries) / 1e9
  row = {"kind": kind, "set_tools_s": first, "set_tools_cached_s": cached, "gflops": gflops,
         "queries_per_s": statistics.median(rates), "p50_ms": statistics.median(p50s),
         "p95_ms": statistics.median(p95s), "runs_queries_per_s": rates, "runs_p50_ms": p50s}
  print(f"{kind:10s} set_tools {first:6.2f} s (cached {cached * 1e3:.1f} ms)  batched "
        f"{row['queries_per_s']:6.1f} q/s ({gflops:.0f} GFLOP/s)  single p50 "
        f"{row['p50_ms']:5.1f} ms  p95 {row['p95_ms']:5.1f} ms   runs: "
        f"{', '.join(f'{r:.0f}' for r in rates)} q/s", flush=True)
  return row


def bench_hybrid_overhead(encoder, tools, queries, singles, repeats) -> dict:
  sels = {k: ToolSelector.pretrained(encoder=encoder, lexical=k == "hybrid").set_tools(tools)
          for k in ("hybrid", "dense")}
  for sel in sels.values():  # compile every bucket
    sel.rank(queries)
    for q in singles:
      sel.rank(q)
  lat, rates = {k: [] for k in sels}, {k: [] for k in sels}
  for _ in range(repeats):
    for q in singles:
      for k, sel in sels.items():
        t0 = time.perf_counter()
        sel.rank(q)
        lat[k].append(1e3 * (time.perf_counter() - t0))
    for k, sel in sels.items():
      t0 = time.perf_counter()
      sel.rank(queries)
      rates[k].append(len(queries) / (time.perf_counter() - t0))
  row = {k: {"p50_ms": float(np.percentile(lat[k], 50)), "p95_ms": float(np.percentile(lat[k], 95)),
             "queries_per_s": statistics.median(rates[k]), "runs_queries_per_s": rates[k]}
         for k in sels}
  row["paired_p50_diff_ms"] = float(np.median(np.subtract(lat["hybrid"], lat["dense"])))
  for k in sels:
    print(f"interleaved {k:6s}: single p50 {row[k]['p50_ms']:.2f} ms p95 {row[k]['p95_ms']:.2f} "
          f"ms, batched {row[k]['queries_per_s']:.0f} q/s", flush=True)
  print(f"hybrid - dense, same query: median {row['paired_p50_diff_ms']:.2f} ms", flush=True)
  return row


VARIANTS = ("for personal use", "used by the support team", "in the company workspace",
            "with audit logging", "through the partner API", "for the mobile app",
            "in the staging environment", "with rate limits of 10 calls a minute",
            "for European customers", "in read-only mode", "for administrators only",
            "with retries on failure", "through the legacy gateway")


def variants(tools: list[dict], n: int) -> list[dict]:
  """``n`` distinct specs per tool: even variants keep the name with another description (the
  same name, different specs), odd ones get another name."""
  out = []
  for k in range(n):
    for t in tools:
      name = t["name"] if k % 2 == 0 else f"{t['name']}_{k}"
      out.append({"name": name, "description": f"{t['description']} Variant {k}: "
                  f"{VARIANTS[k % len(VARIANTS)]}.", "parameters": t["parameters"]})
  return out


def bench_per_query(encoder, ds, repeats: int, cache_dir: str, n: int = 1000) -> dict:
  tools = [{"name": t.name, "description": t.description, "parameters": t.parameters}
           for t in ds.tools]
  pool = variants(tools, 10)  # 1,550 specs; variant k of tool i is pool[k * 155 + i]
  rng = np.random.default_rng(0)
  queries = ds.queries[::max(1, len(ds.queries) // n)][:n]
  texts, lists = [], []
  for q in queries:
    size = int(rng.integers(2, 41))
    gold = int(rng.integers(10)) * len(tools) + q.tool
    others = rng.choice(len(pool), size + 5, replace=False)
    chosen, names = [gold], {pool[gold]["name"]}
    for j in others:
      if len(chosen) == size:
        break
      if pool[j]["name"] not in names:  # one name once per list
        chosen.append(int(j))
        names.add(pool[j]["name"])
    rng.shuffle(chosen)
    texts.append(q.text)
    lists.append([pool[j] for j in chosen])
  distinct = len({json.dumps(t, sort_keys=True) for l in lists for t in l})
  sel = ToolSelector.pretrained(encoder=encoder).use_cache(cache_dir)
  t0 = time.perf_counter()
  sel.rank(texts, tools=lists, top_k=5)
  first = time.perf_counter() - t0
  warm, hot = [], []
  for _ in range(repeats):
    fresh = ToolSelector.pretrained(encoder=encoder).use_cache(cache_dir)
    t0 = time.perf_counter()
    fresh.rank(texts, tools=lists, top_k=5)
    warm.append(n / (time.perf_counter() - t0))
    t0 = time.perf_counter()
    fresh.rank(texts, tools=lists, top_k=5)
    hot.append(n / (time.perf_counter() - t0))
  row = {"requests": n, "distinct_specs": distinct, "first_s": first,
         "warm_rps": statistics.median(warm), "hot_rps": statistics.median(hot),
         "runs_warm_rps": warm, "runs_hot_rps": hot}
  print(f"per_query: {n} requests, lists of 2-40 over {distinct} distinct specs: first pass "
        f"{first:.1f} s; warm {row['warm_rps']:.0f} req/s, hot {row['hot_rps']:.0f} req/s "
        f"(runs: {', '.join(f'{r:.0f}' for r in warm)} / {', '.join(f'{r:.0f}' for r in hot)})",
        flush=True)
  return row


def bench_catalogue(encoder, ds, repeats: int, cache_dir: str, singles) -> dict:
  tools = [{"name": t.name, "description": t.description, "parameters": t.parameters}
           for t in ds.tools]
  catalogue = variants(tools, 26)
  for i, t in enumerate(catalogue):  # one list: every name once
    t["name"] = f"{t['name']}_{i // len(tools)}" if i >= len(tools) else t["name"]
  sel = ToolSelector.pretrained(encoder=encoder).use_cache(cache_dir)
  t0 = time.perf_counter()
  sel.set_tools(catalogue)
  cold = time.perf_counter() - t0
  warm = []
  for _ in range(repeats):
    fresh = ToolSelector.pretrained(encoder=encoder).use_cache(cache_dir)
    t0 = time.perf_counter()
    fresh.set_tools(catalogue)
    warm.append(time.perf_counter() - t0)
  for q in singles:
    fresh.rank(q)
  lat = []
  for _ in range(repeats):
    for q in singles:
      t0 = time.perf_counter()
      fresh.rank(q)
      lat.append(1e3 * (time.perf_counter() - t0))
  # The command line's second call: a new process, model load, cached set-up, one query.
  with tempfile.TemporaryDirectory() as tmp:
    tp, qp = pathlib.Path(tmp, "tools.json"), pathlib.Path(tmp, "q.jsonl")
    tp.write_text(json.dumps(catalogue))
    qp.write_text(json.dumps({"id": 1, "query": singles[0]}) + "\n")
    cli = []
    for _ in range(max(1, repeats // 2)):
      t0 = time.perf_counter()
      proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "select_tools.py"),
                             f"--tools={tp}", f"--queries={qp}", f"--output={tmp}/o.jsonl",
                             f"--cache_dir={cache_dir}"], capture_output=True, text=True,
                            check=False)
      cli.append(time.perf_counter() - t0)
      if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
  row = {"tools": len(catalogue), "cold_s": cold, "warm_s": statistics.median(warm),
         "cli_second_call_s": statistics.median(cli), "p50_ms": float(np.percentile(lat, 50)),
         "p95_ms": float(np.percentile(lat, 95)), "runs_warm_s": warm, "runs_cli_s": cli}
  print(f"catalogue: {len(catalogue)} tools: cold set_tools {cold:.1f} s, warm "
        f"{row['warm_s']:.2f} s (runs {', '.join(f'{w:.2f}' for w in warm)}), CLI second call "
        f"{row['cli_second_call_s']:.1f} s, single query p50 {row['p50_ms']:.1f} ms p95 "
        f"{row['p95_ms']:.1f} ms", flush=True)
  return row


def bench_mcp(ds, singles, cache_dir: str) -> dict:
  tools = [{"name": t.name, "description": t.description, "parameters": t.parameters}
           for t in ds.tools]
  with tempfile.TemporaryDirectory() as tmp:
    tp, cp = pathlib.Path(tmp, "tools.json"), pathlib.Path(tmp, "calls.json")
    tp.write_text(json.dumps(tools))
    calls = [{"tool": "rank_tools", "arguments": {"query": q}} for q in singles]
    cp.write_text(json.dumps(calls + calls))  # the first pass compiles the buckets
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "mcp_client.py"),
                           f"--calls={cp}", "--", f"--tools={tp}", f"--cache_dir={cache_dir}"],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
      raise RuntimeError(proc.stderr[-2000:])
  ms = [json.loads(l)["ms"] for l in proc.stdout.splitlines() if '"ms"' in l][len(calls):]
  row = {"tools": len(tools), "calls": len(ms), "p50_ms": float(np.percentile(ms, 50)),
         "p95_ms": float(np.percentile(ms, 95))}
  print(f"mcp: rank_tools over stdio, {len(tools)} tools, {len(ms)} calls: p50 "
        f"{row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms", flush=True)
  return row


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--kinds", default="zero_shot,zero_shot_dense,mta,mta_top")
  ap.add_argument("--checkpoint", default="", help="also benchmark this training workdir")
  ap.add_argument("--n_batched", type=int, default=1000)
  ap.add_argument("--n_single", type=int, default=200)
  ap.add_argument("--json_out", default="")
  ap.add_argument("--real", action="store_true", help="per-query lists, 4,000-tool catalogue "
                  "with the disk cache, MCP round trips (issue 19)")
  ap.add_argument("--hybrid_overhead", action="store_true", help="the zero-shot hybrid vs "
                  "the dense encoder, interleaved under the same load")
  ap.add_argument("--cache_dir", default="", help="disk cache for --real (default: a new "
                  "temporary folder, so the cold numbers are cold)")
  a = ap.parse_args(argv)
  ds = data.from_jsonl(DATA)
  tools = [{"name": t.name, "description": t.description, "parameters": t.parameters}
           for t in ds.tools]
  queries = [q.text for q in ds.queries[::9]][:a.n_batched]
  singles = [q.text for q in ds.queries[4::47]][:a.n_single]
  encoder = TextEncoder.pretrained()
  kinds = [k for k in a.kinds.split(",") if k] + (["checkpoint"] if a.checkpoint else [])
  rows = [bench(k, encoder, tools, queries, singles, a.repeats, a.checkpoint) for k in kinds]
  if a.hybrid_overhead:
    rows.append({"kind": "hybrid_overhead",
                 **bench_hybrid_overhead(encoder, tools, queries, singles, a.repeats)})
  real = {}
  if a.real:
    with tempfile.TemporaryDirectory() as tmp:
      cache = a.cache_dir or tmp
      real["per_query"] = bench_per_query(encoder, ds, a.repeats, os.path.join(cache, "pq"))
      real["catalogue"] = bench_catalogue(encoder, ds, a.repeats, os.path.join(cache, "cat"),
                                          singles[:50])
      real["mcp"] = bench_mcp(ds, singles, os.path.join(cache, "mcp"))
  load = os.getloadavg()
  print(f"\njax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f}/{load[1]:.1f}; {len(tools)} tools, {len(queries)} batched queries, "
        f"{len(singles)} single queries, median of {a.repeats} runs")
  print("| selector | set_tools (first) | set_tools (cached) | batched queries/s | encoder "
        "GFLOP/s | single p50 | single p95 |\n|---|---|---|---|---|---|---|")
  for r in rows:
    if r["kind"] == "hybrid_overhead":
      continue
    print(f"| {r['kind']} | {r['set_tools_s']:.2f} s | {r['set_tools_cached_s'] * 1e3:.1f} ms | "
          f"{r['queries_per_s']:.0f} | {r['gflops']:.0f} | {r['p50_ms']:.1f} ms | "
          f"{r['p95_ms']:.1f} ms |")
  if real:
    pq, cat, mcp = real["per_query"], real["catalogue"], real["mcp"]
    print("\n| real agents' inputs (zero-shot) | measured | target |\n|---|---|---|")
    print(f"| {pq['requests']} requests, own lists of 2-40 tools ({pq['distinct_specs']} distinct "
          f"specs) | first pass {pq['first_s']:.1f} s; warm {pq['warm_rps']:.0f} req/s; "
          f"documents in memory {pq['hot_rps']:.0f} req/s | >= 100 req/s after warm-up |")
    print(f"| {cat['tools']}-tool catalogue, set-up | cold {cat['cold_s']:.1f} s; warm (disk "
          f"cache) {cat['warm_s']:.2f} s; CLI second call, whole process "
          f"{cat['cli_second_call_s']:.1f} s | warm < 5 s |")
    print(f"| {cat['tools']}-tool catalogue, single query | p50 {cat['p50_ms']:.1f} ms, p95 "
          f"{cat['p95_ms']:.1f} ms | p50 < 20 ms |")
    print(f"| MCP rank_tools round trip, {mcp['tools']} tools | p50 {mcp['p50_ms']:.1f} ms, p95 "
          f"{mcp['p95_ms']:.1f} ms | p50 < 50 ms |")
  if a.json_out:
    pathlib.Path(a.json_out).write_text(json.dumps({"rows": rows, "real": real, "load": load},
                                                   indent=1))
  return rows


if __name__ == "__main__":
  main()
