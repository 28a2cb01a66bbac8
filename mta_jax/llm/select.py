"""Tool selection with the LLM: the paper's prompt, answer scoring, and parsed generation.

The prompt lists the candidate tools with their descriptions, then the question, and asks for the
answer format ``Use [tool name] tool``. Two read-outs from one prefilled prompt:
- ``loglik``: the log-likelihood of each candidate's answer string ``Use [name] tool`` (all
  candidates scored in one batched extension of the shared prompt cache; no sampling, so
  deterministic), and its per-token mean ``loglik_mean``;
- ``generate``: greedy decoding, then the last bracketed name of the reply, matched exactly
  (after trimming and case folding) against the candidates' names, as the paper scores. A reply
  naming no candidate is wrong.

``Selector.run(rows, cands)`` takes the evaluator's candidate sets (``mta_jax.evaluation``) and
sorts the episodes by prompt length into fixed (batch, bucket) shapes, so the jitted function
compiles once per bucket.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import jax
import numpy as np

from mta_jax.data import ToolDataset
from mta_jax.llm.lm import (ANSWER_BUCKETS, COARSE_ANSWER_BUCKETS, PROMPT_BUCKETS, LanguageModel,
                            bucket_for, pad_rows)

_BRACKETED = re.compile(r"\[([^\[\]\n]+)\]")


@dataclasses.dataclass(frozen=True)
class PromptConfig:
  """How an episode becomes a chat prompt."""

  system: str = ""  # "" keeps the model's default system message
  max_description_chars: int = 0  # 0: full descriptions (smoke configs shorten them)
  parameters: bool = False  # also list each tool's parameter names


def answer_text(name: str) -> str:
  return f"Use [{name}] tool"


def tool_messages(query: str, tools: Sequence[tuple[str, str, Sequence[str]]],
                  cfg: PromptConfig) -> list[dict]:
  """Chat messages: the candidate tools (name, description, parameter names), then the question."""
  lines = []
  for i, (name, desc, params) in enumerate(tools):
    if cfg.max_description_chars and len(desc) > cfg.max_description_chars:
      desc = desc[:cfg.max_description_chars].rstrip() + "..."
    line = f"{i + 1}. [{name}]: {desc}"
    if cfg.parameters and params:
      line += f" Parameters: {', '.join(params)}."
    lines.append(line)
  user = ("You have access to the following tools:\n" + "\n".join(lines) +
          f"\n\nQuestion: {query}\n"
          "Which one tool should be used to answer the question? "
          "Reply in the format: Use [tool name] tool")
  msgs = [{"role": "user", "content": user}]
  return ([{"role": "system", "content": cfg.system}] if cfg.system else []) + msgs


def parse_choice(reply: str, names: Sequence[str]) -> int:
  """Index in ``names`` of the last bracketed name of ``reply`` (exact match), or -1."""
  found = _BRACKETED.findall(reply)
  if not found:
    return -1
  last = found[-1].strip().casefold()
  for i, n in enumerate(names):
    if n.strip().casefold() == last:
      return i
  return -1


def episode_tokens(model: LanguageModel, ds: ToolDataset, row: int, cands: Sequence[int],
                   cfg: PromptConfig) -> tuple[list[int], list[list[int]]]:
  """(prompt ids, answer ids per candidate) for query ``row`` over tool indices ``cands``."""
  tools = [ds.tools[int(t)] for t in cands if t >= 0]
  listed = [(t.name, t.description, list(t.parameters.get("properties", {})) if isinstance(
      t.parameters, dict) else []) for t in tools]
  tok = model.tokenizer
  prompt = tok.chat_ids(tool_messages(ds.queries[int(row)].text, listed, cfg))
  answers = tok.encode_batch([answer_text(t.name) for t in tools])
  return prompt, answers


def generation_length(max_new: int, answers: Sequence[Sequence[int]]) -> int:
  """Greedy decoding budget for candidates whose answer strings are ``answers``: ``max_new``, or
  a bucket of the longest answer when ``Use [name] tool`` alone is longer (APIBench names reach
  76 tokens), so that the reply can name every candidate."""
  longest = max(map(len, answers))
  return max_new if longest <= max_new else bucket_for(longest, COARSE_ANSWER_BUCKETS)


class Selector:
  """Scores candidate sets with a (possibly LoRA-adapted) ``LanguageModel``."""

  def __init__(self, model: LanguageModel, ds: ToolDataset, cfg: PromptConfig = PromptConfig(),
               batch_size: int = 4, max_new: int = 24, generate: bool = True):
    self.model, self.ds, self.cfg = model, ds, cfg
    self.batch_size, self.max_new, self.generate = batch_size, max_new, generate
    self.params = None  # default parameters for ``run`` (None: the model's own)
    self._fn = jax.jit(self._episodes, static_argnames=("max_new",))
    self.shapes_seen: set[tuple[int, int, int]] = set()  # (prompt, answer, generation) widths

  def _episodes(self, params, prompt_ids, prompt_len, ans_ids, ans_len, max_new: int):
    """One prefill shared by the candidates' log-likelihoods and (if max_new) greedy decoding."""
    m = self.model
    lp, (n, c) = prompt_ids.shape[1], ans_ids.shape[1:]
    cache, first = m.prefill(params, prompt_ids, prompt_len, lp + max(n * c, max_new))
    ll = m.score_from_cache(params, cache, first, prompt_len, lp, ans_ids, ans_len)
    gen = (m.greedy_from_cache(params, cache, first, prompt_len, lp, max_new) if max_new
           else None)
    return ll, gen

  def run(self, rows: Sequence[int], cands: np.ndarray, params=None, progress: bool = False
          ) -> dict:
    """Scores every episode: rows (M,) query rows, cands (M, N) tool indices (-1 = padding).

    Returns {"loglik", "loglik_mean"} (M, N) float64 (-inf on padding) and, when generating,
    "gen_pick" (M,) candidate column or -1, and "gen_text" (M,) replies; plus "prompt_tokens".
    """
    if params is None:
      params = self.model.params if self.params is None else self.params
    m, n = cands.shape
    toks = [episode_tokens(self.model, self.ds, r, c, self.cfg) for r, c in zip(rows, cands)]
    ll = np.full((m, n), -np.inf)
    ll_mean = np.full((m, n), -np.inf)
    pick = np.full((m,), -1, np.int64)
    texts = [""] * m
    order = np.argsort([len(p) for p, _ in toks], kind="stable")
    batches = range(0, m, self.batch_size)
    if progress:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      batches = tqdm(batches, desc="episodes", unit="batch", leave=False)
    pad = self.model.tokenizer.pad_id
    for start in batches:
      idx = order[start:start + self.batch_size]
      prompts = [toks[i][0] for i in idx]
      lp = bucket_for(max(map(len, prompts)), PROMPT_BUCKETS)
      c = bucket_for(max(len(a) for i in idx for a in toks[i][1]), ANSWER_BUCKETS)
      p_ids, p_len = pad_rows(prompts, lp, pad, self.batch_size)
      a_ids = np.full((self.batch_size, n, c), pad, np.int32)
      a_len = np.ones((self.batch_size, n), np.int32)
      for b, i in enumerate(idx):
        for j, a in enumerate(toks[i][1]):
          a_ids[b, j, :len(a)], a_len[b, j] = a, len(a)
      gen_len = (generation_length(self.max_new, [a for i in idx for a in toks[i][1]])
                 if self.generate else 0)
      self.shapes_seen.add((lp, c, gen_len))
      out_ll, out_gen = self._fn(params, p_ids, p_len, a_ids, a_len, max_new=gen_len)
      out_ll = np.asarray(out_ll, np.float64)
      for b, i in enumerate(idx):
        k = len(toks[i][1])
        ll[i, :k] = out_ll[b, :k]
        ll_mean[i, :k] = out_ll[b, :k] / a_len[b, :k]
        if out_gen is not None:
          row = [int(t) for t in np.asarray(out_gen[b])]
          stops = [row.index(s) for s in self.model.tokenizer.stop_ids if s in row]
          texts[i] = self.model.tokenizer.decode(row[:min(stops, default=len(row))])
          pick[i] = parse_choice(texts[i], [self.ds.tools[int(t)].name for t in cands[i][:k]])
    out = {"loglik": ll, "loglik_mean": ll_mean,
           "prompt_tokens": np.array([len(p) for p, _ in toks])}
    if self.generate:
      out.update(gen_pick=pick, gen_text=np.array(texts, dtype=object))
    return out
