"""Benchmark: SmolLM2-135M-Instruct throughput on real tool-selection episodes.

Episodes are MTA-Tools test queries with 5 SD candidates (the Base row's prompts, ~380 tokens).
For each batch size it times, after a warm-up call that compiles every shape (median of
``--repeats``):
- prefill: prompt tokens per second (real tokens; the padded count is shown too);
- candidate scoring: the 5 answers' log-likelihoods from the prefilled cache, in candidate
  scorings per second (one scoring = one candidate's full answer string);
- greedy decoding of ``--max_new`` tokens from the cache: generated tokens per second;
- the whole ``Selector`` episode (prefill + scoring + greedy decoding): episodes per second.

    .venv/bin/python experiments/benchmarks/llm_throughput.py [--batch_sizes 1,4,8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from mta_jax import evaluation
from mta_jax.llm import run, select
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
  a = ap.parse_args(argv)
  ds = run.load_dataset("mta_tools", "")
  model = LanguageModel.pretrained()
  rows = ds.query_indices("test")[::97]
  cands, _ = evaluation.candidate_sets(np.random.default_rng(0), ds, rows, "sd", 5)
  toks = [select.episode_tokens(model, ds, r, c, select.PromptConfig()) for r, c in zip(rows, cands)]
  pad = model.tokenizer.pad_id
  prefill = jax.jit(model.prefill, static_argnums=(3,))
  score = jax.jit(model.score_from_cache, static_argnums=(4,))
  greedy = jax.jit(model.greedy_from_cache, static_argnums=(4, 5))
  results = []
  for bs in [int(b) for b in a.batch_sizes.split(",")]:
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
  return results


if __name__ == "__main__":
  main()
