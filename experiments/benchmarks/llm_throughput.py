"""Benchmark: SmolLM2-135M-Instruct throughput on real tool-selection episodes.

Episodes are MTA-Tools test queries with 5 SD candidates (the Base row's prompts, ~380 tokens).
For each batch size it times, after a warm-up call that compiles every shape (median of
``--repeats``):
- prefill: prompt tokens per second (real tokens; the padded count is shown too);
- candidate scoring: the 5 answers' log-likelihoods from the prefilled cache, in candidate
  scorings per second (one scoring = one candidate's full answer string);
- greedy decoding of ``--max_new`` tokens from the cache: generated tokens per second;
- the whole ``Selector`` episode (prefill + scoring + greedy decoding): episodes per second;
- then one evaluator task (5 candidates, ``--task_queries`` of their queries): queries per
  second with one full prompt per query (``Selector``) against the shared-prefix path the Base
  row uses (``TaskSelector``: the tool list prefilled once per task), with and without greedy
  decoding, timed in the same process;
- then ``--sparse_tasks`` tasks of one question each (ToolAlpaca's and APIBench's tasks mostly
  hold one or two): the shared-prefix path with the question padded to the full batch (as before
  2026-11-29) against padded to a power-of-two row count (``TaskSelector.batch_rows``).

    .venv/bin/python experiments/benchmarks/llm_throughput.py [--batch_sizes 1,4,8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from mta_jax import per_query
from mta_jax.llm import run, select, task_eval
from mta_jax.llm.lm import ANSWER_BUCKETS, PROMPT_BUCKETS, LanguageModel, bucket_for, pad_rows


def _median_time(fn, repeats: int) -> float:
  jax.block_until_ready(fn())  # compile
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    ts.append(time.perf_counter() - t0)
  return statistics.median(ts)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--batch_sizes", default="1,4,8")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--max_new", type=int, default=24)
  ap.add_argument("--task_queries", type=int, default=32)
  ap.add_argument("--task_batch", type=int, default=16)
  ap.add_argument("--sparse_tasks", type=int, default=8,
                  help="tasks of one question each for the row-bucket comparison")
  ap.add_argument("--skip_kernels", action="store_true", help="only the task comparisons")
  a = ap.parse_args(argv)
  ds = run.load_dataset("mta_tools", "")
  model = LanguageModel.pretrained()
  rows = ds.query_indices("test")[::97]
  cands, _ = per_query.candidate_sets(np.random.default_rng(0), ds, rows, "sd", 5)
  toks = [select.episode_tokens(model, ds, r, c, select.PromptConfig()) for r, c in zip(rows, cands)]
  pad = model.tokenizer.pad_id
  prefill = jax.jit(model.prefill, static_argnums=(3,))
  score = jax.jit(model.score_from_cache, static_argnums=(4,))
  greedy = jax.jit(model.greedy_from_cache, static_argnums=(4, 5))
  results = []
  for bs in ([] if a.skip_kernels else [int(b) for b in a.batch_sizes.split(",")]):
    chunk = toks[:bs]
    prompts = [p for p, _ in chunk]
    lp = bucket_for(max(map(len, prompts)), PROMPT_BUCKETS)
    c = bucket_for(max(len(x) for _, ans in chunk for x in ans), ANSWER_BUCKETS)
    p_ids, p_len = pad_rows(prompts, lp, pad, bs)
    a_ids = np.full((bs, 5, c), pad, np.int32)
    a_len = np.ones((bs, 5), np.int32)
    for i, (_, ans) in enumerate(chunk):
      for j, x in enumerate(ans):
        a_ids[i, j, :len(x)], a_len[i, j] = x, len(x)
    slots = lp + max(5 * c, a.max_new)
    t_pre = _median_time(lambda: prefill(model.params, p_ids, p_len, slots), a.repeats)
    cache, first = prefill(model.params, p_ids, p_len, slots)
    t_sc = _median_time(lambda: score(model.params, cache, first, p_len, lp, a_ids, a_len),
                        a.repeats)
    # Decode a fixed number of tokens: rows that stop early still run until all have stopped,
    # so time the real loop and count the tokens it produced.
    gen = np.asarray(greedy(model.params, cache, first, p_len, lp, a.max_new))
    t_gen = _median_time(lambda: greedy(model.params, cache, first, p_len, lp, a.max_new),
                         a.repeats)
    steps = int(max(((row != pad).sum() for row in gen), default=1))
    sel = select.Selector(model, ds, batch_size=bs, max_new=a.max_new)
    rs, cs = rows[:bs * 2], cands[:bs * 2]
    t_ep = _median_time(lambda: sel.run(rs, cs)["loglik"], a.repeats)
    row = dict(batch=bs, prompt_len=lp, real_tokens=int(p_len.sum()), answer_width=c,
               prefill_tok_s=float(p_len.sum() / t_pre), padded_tok_s=float(bs * lp / t_pre),
               scorings_s=float(bs * 5 / t_sc), decode_steps=steps,
               decode_tok_s=float(bs * steps / t_gen), episodes_s=float(len(rs) / t_ep))
    results.append(row)
    print(row, flush=True)
  print(f"\njax {jax.__version__}, {jax.default_backend()}, float32, median of {a.repeats}")
  print("| batch | prompt bucket | prompt tok/s (real) | prompt tok/s (padded) | candidate "
        "scorings/s | greedy tok/s | episodes/s (prefill+score+greedy) |\n"
        "|---|---|---|---|---|---|---|")
  for r in results:
    print(f"| {r['batch']} | {r['prompt_len']} | {r['prefill_tok_s']:.0f} | "
          f"{r['padded_tok_s']:.0f} | {r['scorings_s']:.1f} | {r['decode_tok_s']:.1f} | "
          f"{r['episodes_s']:.2f} |")
  task = _task_comparison(model, ds, a)
  sparse = _sparse_task_comparison(model, ds, a)
  return results, task, sparse


def _task_comparison(model, ds, a) -> list[dict]:
  """Queries/s on one evaluator task: a full prompt per query vs the shared prefix."""
  tools = ds.tool_indices("test")[:5]
  per_tool = -(-a.task_queries // len(tools))
  rows = np.concatenate([np.flatnonzero([q.tool == t for q in ds.queries])[:per_tool]
                         for t in tools])[:a.task_queries]
  cands = np.tile(tools, (len(rows), 1))
  out = []
  for gen in (False, True):
    sel = select.Selector(model, ds, batch_size=a.task_batch, max_new=a.max_new, generate=gen)
    ts = task_eval.TaskSelector(model, ds, batch_size=a.task_batch, max_new=a.max_new,
                                generate=gen)
    t_full = _median_time(lambda: sel.run(rows, cands)["loglik"], a.repeats)
    t_task = _median_time(lambda: ts.score_task(tools, rows)["loglik"], a.repeats)
    gap = float(np.abs(sel.run(rows, cands)["loglik"] - ts.score_task(tools, rows)["loglik"]).max())
    n = a.repeats + 2
    out.append(dict(generate=gen, queries=len(rows), full_q_s=len(rows) / t_full,
                    task_q_s=len(rows) / t_task, speedup=t_full / t_task,
                    prompt_tokens=ts.tokens["full_prompts"] // n,
                    run_tokens=(ts.tokens["prefix"] + ts.tokens["suffix"]) // n,
                    max_abs_loglik_diff=gap))
    print(out[-1], flush=True)
  print(f"\none task: 5 MTA-Tools test tools, {len(rows)} queries, batch {a.task_batch}")
  print("| greedy decoding | queries/s, full prompt per query | queries/s, shared prefix | "
        "speed-up | prompt tokens run (full -> shared) | max abs log-lik difference |\n"
        "|---|---|---|---|---|---|")
  for r in out:
    print(f"| {'yes' if r['generate'] else 'no'} | {r['full_q_s']:.2f} | {r['task_q_s']:.2f} | "
          f"{r['speedup']:.2f}x | {r['prompt_tokens']} -> {r['run_tokens']} | "
          f"{r['max_abs_loglik_diff']:.1e} |")
  return out


def _sparse_task_comparison(model, ds, a) -> list[dict]:
  """Queries/s on tasks holding one question: full-batch rows vs power-of-two row buckets."""
  tools = ds.tool_indices("test")
  tasks = [(tools[i:i + 5], np.flatnonzero([q.tool == tools[i] for q in ds.queries])[:1])
           for i in range(0, 5 * a.sparse_tasks, 5)]
  out = []
  for gen in (False, True):
    ts = task_eval.TaskSelector(model, ds, batch_size=a.task_batch, max_new=a.max_new,
                                generate=gen)
    every = lambda: [ts.score_task(t, r)["loglik"] for t, r in tasks]  # pylint: disable=cell-var-from-loop
    t_rows = _median_time(every, a.repeats)
    ll_rows = every()
    ts.batch_rows = lambda n: a.task_batch  # pylint: disable=cell-var-from-loop
    t_full = _median_time(every, a.repeats)
    gap = float(max(np.abs(x - y).max() for x, y in zip(ll_rows, every())))
    out.append(dict(generate=gen, tasks=len(tasks), full_q_s=len(tasks) / t_full,
                    rows_q_s=len(tasks) / t_rows, speedup=t_full / t_rows,
                    max_abs_loglik_diff=gap))
    print(out[-1], flush=True)
  print(f"\n{len(tasks)} tasks of 5 MTA-Tools test tools and 1 question each, batch {a.task_batch}")
  print("| greedy decoding | questions/s, padded to the batch | questions/s, row buckets | "
        "speed-up | max abs log-lik difference |\n|---|---|---|---|---|")
  for r in out:
    print(f"| {'yes' if r['generate'] else 'no'} | {r['full_q_s']:.2f} | {r['rows_q_s']:.2f} | "
          f"{r['speedup']:.2f}x | {r['max_abs_loglik_diff']:.1e} |")
  return out


if __name__ == "__main__":
  main()
