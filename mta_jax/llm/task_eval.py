"""The LLM rows on the project's evaluator: the same tasks and episodes as the encoder rows.

``mta_jax.run_eval`` evaluates *tasks*: ``n_way`` candidate tools in a fixed order, scoring every
held-out query of its scored tools (each query against its gold tool and ``n_way - 1``
distractors of its group (SD) or of any group (CD)), 5 seeds. Here the LLM is one more score
function of that evaluator, so its numbers sit in the same table under the same protocol: the
tasks are drawn by ``run_eval.make_tasks`` with the same seeds, hence they are exactly the
encoder rows' tasks.

Every prompt of a task lists the same tools in the same order, so all its prompts share their
first tokens (chat header, tool list, up to the question). ``TaskSelector`` prefills that common
prefix once per task and runs only each question's suffix and the candidates' answer strings
(``LanguageModel.extend_shared_prefix``, ``score_after``, ``greedy_after``): the same numbers as
one uncached pass per prompt (tested), for a fraction of the tokens.

Read-outs per query: ``loglik`` (sum of the answer string's token log-probabilities: the score
the evaluator ranks by), ``loglik_mean`` (per token), and ``generate`` (greedy reply, last
bracketed name, as the paper scores; a reply naming no candidate is wrong).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import numpy as np

from mta_jax import run_eval
from mta_jax.data import ToolDataset
from mta_jax.llm import select
from mta_jax.llm.lm import (COARSE_ANSWER_BUCKETS, PREFIX_BUCKETS, SUFFIX_BUCKETS, LanguageModel,
                            bucket_for, pad_rows)

# params_for_task(tool_ids (N,), support rows (S,), support labels (S,)) -> model parameters.
TaskParams = Callable[[np.ndarray, np.ndarray, np.ndarray], dict]


def common_prefix_len(rows: Sequence[Sequence[int]]) -> int:
  """Length of the longest common prefix of token rows, leaving every row >= 1 own token."""
  first, n = rows[0], min(len(r) for r in rows) - 1
  for r in rows[1:]:
    k = 0
    while k < n and r[k] == first[k]:
      k += 1
    n = k
  return max(n, 0)


class TaskSelector:
  """Scores the queries of one task (one candidate list) with a shared, once-prefilled prefix."""

  def __init__(self, model: LanguageModel, ds: ToolDataset,
               cfg: select.PromptConfig = select.PromptConfig(), batch_size: int = 16,
               max_new: int = 24, generate: bool = True):
    self.model, self.ds, self.cfg = model, ds, cfg
    self.batch_size, self.max_new, self.generate = batch_size, max_new, generate
    self.params = None  # default parameters (None: the model's own)
    self._prefix_fn = jax.jit(lambda p, ids, n: model.prefill(p, ids, n, ids.shape[1])[0])
    self._batch_fn = jax.jit(self._batch, static_argnames=("max_new",))
    # (prefix, suffix, answer width, rows, generation length) of every compiled call
    self.shapes_seen: set[tuple[int, ...]] = set()
    self.tokens = {"prefix": 0, "suffix": 0, "full_prompts": 0}  # real tokens run / avoided

  def _batch(self, params, prefix_cache, prefix_len, suf_ids, suf_len, ans_ids, ans_len,
             max_new: int):
    m = self.model
    lpre, (b, ls), (n, c) = prefix_cache["k"].shape[2], suf_ids.shape, ans_ids.shape[1:]
    slots = lpre + ls + max(n * c, max_new)
    cache, first, visible, nxt = m.extend_shared_prefix(params, prefix_cache, prefix_len,
                                                        suf_ids, suf_len, slots)
    ll = m.score_after(params, cache, first, visible, nxt, ans_ids, ans_len)
    gen = m.greedy_after(params, cache, first, visible, nxt, max_new) if max_new else None
    return ll, gen

  def answer_width(self, answers: Sequence[Sequence[int]]) -> int:
    """The padded width of one task's answer strings: a coarse bucket of its longest, so that a
    benchmark with a few very long tool names (APIBench: up to 76 tokens) pays for them only in
    the tasks that list one, at the price of a few more compiled shapes."""
    return bucket_for(max(map(len, answers)), COARSE_ANSWER_BUCKETS)

  def batch_rows(self, n: int) -> int:
    """Rows of one call for ``n`` questions: the smallest power of two >= n, at most
    ``batch_size``. Tasks of sparse benchmarks hold one or two questions; padding them to the
    full batch multiplied the work (ToolAlpaca ran 16 rows for about 1 real one)."""
    return min(self.batch_size, 1 << max(n - 1, 0).bit_length())

  def score_task(self, tools: Sequence[int], rows: Sequence[int], params=None) -> dict:
    """Every query row against the candidate ``tools`` (in this order).

    Returns {"loglik", "loglik_mean"} (Q, N), "prompt_tokens" (Q,) and, when generating,
    "gen_pick" (Q,) (candidate index or -1) and "gen_text" (Q,).
    """
    if params is None:
      params = self.model.params if self.params is None else self.params
    tok = self.model.tokenizer
    toks = [select.episode_tokens(self.model, self.ds, int(r), tools, self.cfg) for r in rows]
    prompts, answers = [p for p, _ in toks], toks[0][1]
    n0 = common_prefix_len(prompts)
    lpre = bucket_for(max(n0, 1), PREFIX_BUCKETS)
    pre_ids, _ = pad_rows([prompts[0][:n0]], lpre, tok.pad_id)
    prefix = self._prefix_fn(params, pre_ids, np.array([max(n0, 1)], np.int32))
    suffixes = [p[n0:] for p in prompts]
    c = self.answer_width(answers)
    gen_len = select.generation_length(self.max_new, answers) if self.generate else 0
    q = len(rows)
    b = self.batch_rows(q)
    a_ids = np.full((b, len(answers), c), tok.pad_id, np.int32)
    a_len = np.ones((b, len(answers)), np.int32)
    for j, a in enumerate(answers):
      a_ids[:, j, :len(a)], a_len[:, j] = a, len(a)
    ll = np.zeros((q, len(answers)))
    pick = np.full((q,), -1, np.int64)
    texts = [""] * q
    names = [self.ds.tools[int(t)].name for t in tools]
    order = np.argsort([len(s) for s in suffixes], kind="stable")
    for start in range(0, q, b):
      idx = order[start:start + b]
      ls = bucket_for(max(len(suffixes[i]) for i in idx), SUFFIX_BUCKETS)
      s_ids, s_len = pad_rows([suffixes[i] for i in idx], ls, tok.pad_id, b)
      self.shapes_seen.add((lpre, ls, c, b, gen_len))
      out_ll, out_gen = self._batch_fn(params, prefix, np.int32(max(n0, 1)), s_ids, s_len,
                                       a_ids, a_len, max_new=gen_len)
      out_ll = np.asarray(out_ll, np.float64)
      for k, i in enumerate(idx):
        ll[i] = out_ll[k]
        if out_gen is not None:
          row = [int(t) for t in np.asarray(out_gen[k])]
          stops = [row.index(s) for s in tok.stop_ids if s in row]
          texts[i] = tok.decode(row[:min(stops, default=len(row))])
          pick[i] = select.parse_choice(texts[i], names)
    self.tokens["prefix"] += n0
    self.tokens["suffix"] += sum(map(len, suffixes))
    self.tokens["full_prompts"] += sum(map(len, prompts))
    out = {"loglik": ll, "loglik_mean": ll / a_len[0][None, :],
           "prompt_tokens": np.array([len(p) for p in prompts])}
    if self.generate:
      out.update(gen_pick=pick, gen_text=np.array(texts, dtype=object))
    return out

  def score_fn(self, params_for_task: TaskParams | None = None,
               log: list | None = None) -> run_eval.ScoreFn:
    """A ``run_eval`` score function: (E, Q, N) answer log-likelihoods for a batch of tasks.

    ``params_for_task`` adapts parameters per task from its labelled support (MTA-LoRA);
    ``log`` (a list) receives one dict per scored query: row, label, loglik_mean pick and
    generate pick (candidate columns), reply.
    """

    def score(b: dict) -> np.ndarray:
      e_n, q_n = b["query_rows"].shape
      n = b["tool_ids"].shape[1]
      out = np.zeros((e_n, q_n, n))
      for e in range(e_n):
        qrows = b["query_rows"][e]
        keep = qrows >= 0
        if not keep.any():
          continue  # a padding copy of a task
        tool_ids = b["tool_ids"][e]
        cols = np.flatnonzero(tool_ids >= 0)  # real candidates come first (run_eval pads last)
        params = None
        if params_for_task is not None:
          sup = b["support"]
          has = sup["w"][e] > 0
          params = params_for_task(tool_ids[cols], sup["idx"][e][has], sup["y"][e][has])
        res = self.score_task(tool_ids[cols], qrows[keep], params)
        s = np.full((int(keep.sum()), n), -np.inf)
        s[:, cols] = res["loglik"]
        out[e, keep] = s
        if log is not None:
          labels = b["query"]["y"][e][keep]
          mean_pick = cols[np.argmax(res["loglik_mean"], 1)]
          gen = res.get("gen_pick")
          for k, r in enumerate(qrows[keep]):
            entry = {"row": int(r), "label": int(labels[k]), "mean_pick": int(mean_pick[k]),
                     "prompt_tokens": int(res["prompt_tokens"][k])}
            if gen is not None:
              entry.update(gen_pick=int(cols[gen[k]]) if gen[k] >= 0 else -1,
                           reply=str(res["gen_text"][k]))
            log.append(entry)
      return out

    return score


def _ordinal(k: int) -> str:
  suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
  return f"{k}{suffix}"


def subset_split(ds: ToolDataset, split: run_eval.Split, max_queries: int = 0,
                 max_tools: int = 0, max_per_tool: int = 0) -> tuple[run_eval.Split, str]:
  """A deterministic subset of a split's scored queries, and a sentence saying which.

  ``max_tools`` keeps the first scored tools (dataset order), ``max_per_tool`` the first queries
  of each (smoke tests); ``max_queries`` keeps every k-th remaining query in dataset order, k the
  smallest stride that keeps at most that many. Distractors still come from the whole pool.
  """
  scored = split.scored_tools[:max_tools] if max_tools else split.scored_tools
  per_tool = {int(t): split.queries_by_tool[int(t)][:max_per_tool or None] for t in scored}
  rows = np.sort(np.concatenate(list(per_tool.values())))
  total = sum(len(split.queries_by_tool[t]) for t in per_tool)
  stride = max(1, math.ceil(len(rows) / max_queries)) if max_queries else 1
  kept = set(rows[::stride].tolist())
  by_tool = dict(split.queries_by_tool)
  by_tool.update({t: np.array([r for r in v if r in kept], np.int32)
                  for t, v in per_tool.items()})
  what = f"{len(kept)} of the {total} queries of {len(scored)} unseen tools of {ds.name}"
  if len(kept) == total:
    what += ": all"
  else:
    what += ": " + ", then ".join(
        ([f"the first {max_per_tool} of each tool"] if max_per_tool else [])
        + ([f"every {_ordinal(stride)} in dataset order"] if stride > 1 else []))
  return run_eval.Split(scored.astype(np.int32), split.pool_tools, by_tool), what


def scored_queries(split: run_eval.Split, k_shot: int) -> int:
  """How many questions one seed of ``run_eval.protocol`` scores: every query of each scored tool
  but its ``k_shot`` labelled ones."""
  return sum(max(len(split.queries_by_tool[int(t)]) - k_shot, 0) for t in split.scored_tools)


def _ticking(fn: run_eval.ScoreFn, bar) -> run_eval.ScoreFn:
  def score(b: dict) -> np.ndarray:
    out = fn(b)
    bar.update(int((b["query_rows"] >= 0).sum()))
    return out
  return score


def evaluate(selector: TaskSelector, ds: ToolDataset, split: run_eval.Split,
             modes: Sequence[str], shots: Sequence[str], seeds: Sequence[int], n_way: int,
             params_for_task: TaskParams | None = None, progress: bool = False,
             generate_seeds: Sequence[int] = (), neighbours=None) -> dict:
  """``run_eval.protocol`` for every mode x shot, one seed at a time (so that the generate
  read-out and the per-token mean can be scored on exactly the same episodes); results in
  ``run_eval.evaluate``'s layout plus "loglik_mean" and "generate" blocks.

  When ``selector.generate`` is on, ``generate_seeds`` limits greedy decoding (the costliest
  read-out) to those episode seeds (empty: every seed); the "generate" block says which.
  ``neighbours`` (``hard_tasks.neighbours_for``) enables the hard modes, on the encoder rows' tasks.
  """
  main_doc = np.zeros((len(ds.tools),), np.int32)  # the LLM reads text, not encoder rows
  view_rows = [np.zeros((0,), np.int32)] * len(ds.tools)
  out: dict = {}
  jobs = [(m, s, seed) for m in modes for s in shots for seed in seeds]
  # As run_eval.evaluate (tools left without queries by ``subset_split`` do not count).
  skipped = {(m, s): why for m, s, _ in jobs
             if (why := run_eval.skip_reason(ds, split, m, run_eval.SHOTS[s]))}
  bar = None
  if progress:  # one tick per scored question: a slow benchmark shows its rate and ETA
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
    bar = tqdm(total=sum(scored_queries(split, run_eval.SHOTS[s]) for m, s, _ in jobs
                         if (m, s) not in skipped), desc=f"llm {ds.name}", unit="question")
  per: dict = {}
  generate = selector.generate
  for mode, shot, seed in jobs:
    if (mode, shot) in skipped:
      out.setdefault(mode, {})[shot] = {"skipped": skipped[mode, shot]}
      continue
    spec = run_eval.EvalSpec(modes=(mode,), shots=(shot,), seeds=(seed,), n_way=n_way,
                             n_views=0, batch=1, full_pool=False)
    log: list = []
    selector.generate = generate and (not generate_seeds or seed in generate_seeds)
    fn = selector.score_fn(params_for_task if run_eval.SHOTS[shot] else None, log)
    if bar is not None:
      bar.set_postfix_str(f"{mode} {shot} seed {seed}")
      fn = _ticking(fn, bar)
    res = run_eval.protocol(fn, ds, split, mode, run_eval.SHOTS[shot], spec, main_doc,
                            view_rows, neighbours=neighbours)
    per.setdefault((mode, shot), []).append((seed, res, log))
  selector.generate = generate
  if bar is not None:
    bar.close()
  for (mode, shot), runs in per.items():
    accs = [r["mean"] for _, r, _ in runs]
    groups = sorted(runs[0][1]["per_group"])
    block = {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs,
             "n_queries": runs[0][1]["n_queries"],
             "per_group": {g: float(np.mean([r["per_group"][g] for _, r, _ in runs]))
                           for g in groups}}
    mean_acc = [float(np.mean([x["mean_pick"] == x["label"] for x in log])) for *_, log in runs]
    block["loglik_mean"] = {"mean": float(np.mean(mean_acc)), "std": float(np.std(mean_acc)),
                            "per_seed": mean_acc}
    gen_runs = [(seed, log) for seed, _, log in runs if log and "reply" in log[0]]
    if gen_runs:
      gen = [float(np.mean([x["gen_pick"] == x["label"] for x in log])) for _, log in gen_runs]
      block["generate"] = {
          "mean": float(np.mean(gen)), "std": float(np.std(gen)), "per_seed": gen,
          "seeds": [seed for seed, _ in gen_runs],
          "no_candidate_named": float(np.mean([x["gen_pick"] < 0 for _, log in gen_runs
                                               for x in log])),
          "examples": [x["reply"] for x in gen_runs[0][1][:5]]}
    block["prompt_tokens_mean"] = float(np.mean([x["prompt_tokens"] for *_, log in runs
                                                 for x in log]))
    out.setdefault(mode, {})[shot] = block
  return out
