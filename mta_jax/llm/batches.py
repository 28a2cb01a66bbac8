"""The LLM's training batches: prompts over candidate tools, each ending with the gold answer.

- LoRA SFT (``sft_batch``): a tool-selection prompt over ``n_way`` train-split tools (the gold
  tool and distractors from its domain (SD) or from all train tools (CD), drawn by the
  evaluator's own ``candidate_sets``) followed by the gold answer ``Use [name] tool``;
- MTA-LoRA (``episode_batch``): ``n_way`` train tools, ``k_shot`` support and ``q_query`` query
  questions a tool, every prompt listing the same ``n_way`` tools in the same order.
Both are packed (``pack``) into fixed-width arrays; the loss (``mta_jax.llm.learner``) is the
answer tokens' negative log-likelihood. Training itself is ``mta_jax.train`` (``config.learner =
"llm"``, set up by ``mta_jax.llm.trainer``).

A part of a batch (``take``: a slice of SFT's rows or of the episodes) makes every random draw
of the whole batch (cheap index arrays: the stream stays the whole batch's) but tokenizes and
packs only its own rows. The one thing its rows share with the others is the prompt width, the
bucket of the whole batch's longest example: ``longest`` maps the part's longest to the whole
batch's (a process of a multi-process run passes ``sharding.max_over_processes``), so the parts
of P processes, concatenated, are the whole batch bit for bit.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from mta_jax import episodes, per_query
from mta_jax.data import ToolDataset
from mta_jax.llm import select
from mta_jax.llm.lm import PROMPT_BUCKETS, LanguageModel, bucket_for

# Coarser than inference's answer buckets: tool answers are 6-14 tokens, and one width keeps a
# training run at one compile per prompt bucket (each compile of a gradient step costs seconds).
TRAIN_ANSWER_BUCKETS = (16, 32, 64)


def pack(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, batch: int | None = None,
         length: int | None = None, max_answer: int | None = None) -> dict:
  """(prompt ids, answer ids) pairs -> {"ids" (B, T), "prompt_len", "ans_len", "w"} numpy.

  T and the answer width default to the buckets of the longest pair; padding rows get w = 0.
  """
  n = batch or len(pairs)
  t = length or bucket_for(max(len(p) + len(a) for p, a in pairs), PROMPT_BUCKETS)
  c = max_answer or bucket_for(max(len(a) for _, a in pairs), TRAIN_ANSWER_BUCKETS)
  ids = np.full((n, t), pad_id, np.int32)
  plen = np.ones((n,), np.int32)
  alen = np.ones((n,), np.int32)
  w = np.zeros((n,), np.float32)
  for i, (p, a) in enumerate(pairs):
    if len(p) + len(a) > t or len(a) > c:
      raise ValueError(f"example {i} ({len(p)}+{len(a)} tokens) does not fit ({t}, {c})")
    ids[i, :len(p) + len(a)] = list(p) + list(a)
    plen[i], alen[i], w[i] = len(p), len(a), 1.0
  return {"ids": ids, "prompt_len": plen, "ans_len": alen, "w": w}


Longest = Callable[[int], int]  # a part's longest example (tokens) -> the whole batch's


def _width(pairs, longest: Longest | None) -> int:
  """The prompt width of a batch (part): the bucket of the whole batch's longest example."""
  n = max(len(p) + len(a) for p, a in pairs)
  return bucket_for(int(longest(n)) if longest is not None else n, PROMPT_BUCKETS)


def sft_batch(rng: np.random.Generator, model: LanguageModel, ds: ToolDataset, rows: np.ndarray,
              pool: np.ndarray, n_way: int, batch_size: int, pcfg: select.PromptConfig,
              take: slice = slice(None), longest: Longest | None = None) -> dict:
  """A random batch of SFT examples over the ``pool`` tools (SD or CD distractors at random);
  with ``take``, only those of its rows (``longest``: see the module's docstring)."""
  picked = rng.choice(rows, size=batch_size, replace=len(rows) < batch_size)
  mode = "sd" if rng.random() < 0.5 else "cd"
  cands, labels = per_query.candidate_sets(rng, ds, picked, mode, n_way, pool_tools=pool)
  pairs = []
  for r, c, y in zip(picked[take], cands[take], labels[take]):
    prompt, answers = select.episode_tokens(model, ds, r, c, pcfg)
    pairs.append((prompt, answers[y]))
  return pack(pairs, model.tokenizer.pad_id, length=_width(pairs, longest))


def answer_width(model: LanguageModel, ds: ToolDataset, tools) -> int:
  """One answer width (a ``TRAIN_ANSWER_BUCKETS`` bucket) for every batch over ``tools``, so a
  run compiles one program per prompt-length bucket."""
  answers = model.tokenizer.encode_batch([select.answer_text(ds.tools[int(t)].name)
                                          for t in tools])
  return bucket_for(max(map(len, answers)), TRAIN_ANSWER_BUCKETS)


def episode_pairs(model, ds, pcfg, tools, rows, labels):
  """Prompts listing ``tools`` for each query row, with the labelled tool's answer."""
  out = []
  for r, y in zip(rows, labels):
    prompt, answers = select.episode_tokens(model, ds, int(r), tools, pcfg)
    out.append((prompt, answers[int(y)]))
  return out


def episode_batch(rng, model: LanguageModel, ds: ToolDataset, pool: episodes.ToolPool,
                  pool_tools: np.ndarray, spec: episodes.EpisodeSpec, meta_batch: int,
                  pcfg: select.PromptConfig, max_answer: int, take: slice = slice(None),
                  longest: Longest | None = None) -> dict:
  """A meta-batch as packed arrays {"support", "query"} of shape (E, S, T); with ``take``, only
  those of its episodes (``longest``: see the module's docstring)."""
  idx = episodes.sample_episodes(rng, pool, spec, meta_batch)
  streams = {name: [] for name in ("support", "query")}
  for e in range(meta_batch)[take]:
    tools = pool_tools[idx["tool_ids"][e]]
    for name in streams:
      s = idx[name]
      pairs = episode_pairs(model, ds, pcfg, tools, s["idx"][e], s["y"][e])
      streams[name].append((pairs, s["w"][e]))
  t = _width([p for name in streams for pairs, _ in streams[name] for p in pairs], longest)
  out = {}
  for name, per_ep in streams.items():
    packed = [pack(pairs, model.tokenizer.pad_id, length=t, max_answer=max_answer)
              for pairs, _ in per_ep]
    for p, (_, w) in zip(packed, per_ep):
      p["w"] = p["w"] * w  # the sampler's weights mark padded (missing) questions
    out[name] = {k: np.stack([p[k] for p in packed]) for k in packed[0]}
  return out
