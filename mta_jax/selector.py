"""``ToolSelector``: rank anyone's tools for a request, with test-time adaptation.

    selector = ToolSelector.pretrained()          # or ToolSelector.load("workdirs/mta_sd")
    selector.set_tools(json.load(open("tools.json")))   # OpenAI, MCP or plain tool specs
    selector.rank(["wake me up at 6:30"], top_k=3)      # [[Choice(name, score), ...]]

How the work is split so that a single request is fast:
- ``set_tools`` runs the frozen lower encoder layers over the tools' documents once, runs the
  meta-learned inner loop (``bilevel.adapt``) on the tools' documentation views (the 0-shot
  setting: no labelled queries needed), and caches the adapted parameters and the tools'
  representations, per toolbox (an LRU keyed by the documents' text);
- ``adapt(examples)`` re-runs the inner loop on the views plus labelled examples; ``adapt([])``
  returns to the cached documentation-only adaptation;
- ``rank`` only encodes the queries: one jitted function (whole encoder, adapted top, query head,
  cosine against the cached tool matrix) over length-sorted batches padded to fixed
  (batch, length) buckets, so it compiles once per bucket; ``set_tools`` warms the
  single-query buckets up.

Scores are cosine similarities between the adapted query and tool representations. The
pretrained selector is the zero-shot MiniLM encoder: its scores are the cosine similarities of
``TextEncoder.embed`` outputs; given labelled examples, each tool becomes the normalised mean of
its document's and its examples' embeddings (a prototype), as in ProtoNet.

Candidates restrict a query's ranking to some tools of the toolbox; the adaptation is the
toolbox's (one inner loop per toolbox, not one per candidate set).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import pathlib
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mta_jax import bilevel
from mta_jax import params as P
from mta_jax import toolspec
from mta_jax.selector_programs import adapt_program, hidden_program, plan_batches, score_program
from mta_jax.models import TextEncoder, tokenizer as tok_lib
from mta_jax.scorer import Scorer, ScorerConfig

InputError = toolspec.InputError


@dataclasses.dataclass(frozen=True)
class SelectorConfig:
  """Inference-time settings (not learned)."""

  n_views: int = 4  # documentation views per tool for the documentation-only adaptation
  batch_size: int = 32  # queries per jitted call (64 pads more: sorted chunks span more lengths)
  batch_buckets: tuple[int, ...] = (1, 4, 8, 16, 32)  # padded batch sizes; the last = batch_size
  # Fine buckets: queries are short (MTA-Tools: median 19 tokens), tool documents 100-160
  # tokens; the tokenizer's 16/32/64/128/256 would pad queries ~35% and documents ~60% more.
  length_buckets: tuple[int, ...] = (12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 96, 112, 128, 160,
                                     192, 256)
  # Single-query shapes set_tools compiles (86% of MTA-Tools queries); others compile on first use.
  warmup_lengths: tuple[int, ...] = (12, 16, 20, 24, 28, 32)
  tool_multiple: int = 64  # tool matrices padded to a multiple: one compile per size class
  short_text: int = 32  # adaptation texts up to this many tokens go in their own stream
  cache_size: int = 4  # toolboxes whose adaptation stays cached

  def validate(self) -> None:
    if self.batch_buckets[-1] != self.batch_size or list(self.batch_buckets) != sorted(
        self.batch_buckets):
      raise ValueError(f"batch_buckets {self.batch_buckets} must be increasing and end at "
                       f"batch_size={self.batch_size}")
    if self.length_buckets[-1] != tok_lib.MAX_LENGTH:
      raise ValueError(f"length_buckets must end at {tok_lib.MAX_LENGTH}")
    if self.n_views < 0 or self.cache_size < 1:
      raise ValueError("n_views must be >= 0 and cache_size >= 1")


class Choice(NamedTuple):
  """One ranked tool: its name and score (cosine similarity)."""

  name: str
  score: float


@dataclasses.dataclass
class _Toolbox:
  """A toolbox's cached state: names, lower hidden states of the documents, adaptation."""

  names: list[str]
  index: dict[str, int]
  docs: dict  # {"h": (T, L, H), "m": (T, L)} lower hidden states of the main documents
  view_texts: list[str]
  view_labels: list[int]
  docs_only: tuple[P.Params, jax.Array]  # adapted params, padded (Tp, H) tool matrix


def _round_up(n: int, m: int) -> int:
  return max(m, -(-n // m) * m)


def _check_meta(scorer: Scorer, meta: dict) -> None:
  """Raises ``ValueError`` naming the mismatch if ``meta`` is not this scorer's parameters."""
  want = jax.eval_shape(scorer.init, jax.random.key(0))
  have = meta.get("params", {})
  missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
  shape = [k for k in want if k in have and tuple(have[k].shape) != tuple(want[k].shape)]
  if missing or extra or shape:
    raise ValueError(f"parameters do not match the scorer config {scorer.cfg}: missing "
                     f"{missing[:3]}, unexpected {extra[:3]}, wrong shape {shape[:3]}")


def _config_n_views(config: Any, default: int) -> int:
  """The training config's number of documentation views per tool, where it says."""
  try:
    return int(config["episodes"]["n_views"])
  except (KeyError, TypeError, ValueError):
    return default


class ToolSelector:
  """Ranks a toolbox's tools for queries; see the module docstring."""

  def __init__(self, encoder: TextEncoder, scorer: Scorer, meta_cfg: bilevel.MetaConfig,
               meta: dict, cfg: SelectorConfig = SelectorConfig()):
    cfg.validate()
    _check_meta(scorer, meta)
    self.encoder, self.scorer, self.meta_cfg, self.cfg = encoder, scorer, meta_cfg, cfg
    self._meta = jax.tree.map(jnp.asarray, {"params": dict(meta["params"]),
                                            "inner_lr": dict(meta.get("inner_lr", {}))})
    self._score = score_program(encoder, scorer)
    self._adapt = adapt_program(encoder, scorer, meta_cfg)
    self._cache: collections.OrderedDict[str, _Toolbox] = collections.OrderedDict()
    self._warm: set[tuple[int, int, int]] = set()
    self._box: _Toolbox | None = None
    self._state: tuple[P.Params, jax.Array] | None = None

  # -------------------------------------------------------------------------- construction

  @classmethod
  def from_meta(cls, scorer_cfg: ScorerConfig, meta_cfg: bilevel.MetaConfig, meta: dict,
                cfg: SelectorConfig | None = None,
                encoder: TextEncoder | None = None) -> "ToolSelector":
    """A selector from meta-parameters ``{"params": flat dict of all scorer params,
    "inner_lr": dict}`` on the pretrained encoder (pass ``encoder`` to share one)."""
    encoder = encoder or TextEncoder.pretrained()
    return cls(encoder, Scorer(scorer_cfg, encoder.model), meta_cfg, meta,
               cfg or SelectorConfig())

  @classmethod
  def pretrained(cls, cfg: SelectorConfig | None = None,
                 encoder: TextEncoder | None = None) -> "ToolSelector":
    """The zero-shot encoder (the paper's "Base"): no training, no documentation views."""
    cfg = dataclasses.replace(cfg or SelectorConfig(), n_views=0)
    return cls.from_meta(ScorerConfig(n_top=0, adapt="none", head=False),
                         bilevel.MetaConfig(algorithm="protonet", inner_steps=0),
                         {"params": {}, "inner_lr": {}}, cfg, encoder)

  @classmethod
  def load(cls, checkpoint_dir: str, which: str = "best", cfg: SelectorConfig | None = None,
           encoder: TextEncoder | None = None) -> "ToolSelector":
    """A meta-trained selector from a training workdir (``checkpointing.CheckpointError`` if
    it holds no intact checkpoint or one that does not fit its config)."""
    from mta_jax import checkpointing  # pylint: disable=import-outside-toplevel
    if not pathlib.Path(checkpoint_dir).is_dir():
      raise checkpointing.CheckpointError(f"{checkpoint_dir}: checkpoint folder does not exist")
    bundle = checkpointing.restore_for_inference(checkpoint_dir, which=which)
    cfg = cfg or SelectorConfig(n_views=_config_n_views(bundle.config, SelectorConfig.n_views))
    try:
      return cls.from_meta(bundle.scorer_cfg, bundle.meta_cfg, bundle.meta, cfg, encoder)
    except ValueError as e:
      raise checkpointing.CheckpointError(f"{checkpoint_dir}: {e}") from None

  # -------------------------------------------------------------------------- toolbox

  @property
  def tool_names(self) -> list[str]:
    return list(self._require_box().names)

  def _require_box(self) -> _Toolbox:
    if self._box is None:
      raise InputError("no tools: call set_tools(tools) first")
    return self._box

  def _lower(self, texts: Sequence[str], count: int) -> dict:
    """The scorer's inputs for ``texts``: hidden states after the frozen lower layers, rows
    padded to ``count`` with copies of row 0 (real text keeps inner-loop gradients finite;
    those rows get weight 0).

    Texts run in length-sorted, bucketed batches; each row is then zero-padded to the longest
    (positions past a text's mask are never read). With ``n_top == 0`` the scorer only
    mean-pools, so a text is stored as its sentence embedding, one "token" with mask 1, as
    ``features`` stores it for training: the same embedding at a fraction of the memory.
    """
    tok, n_lower = self.encoder.tokenizer, self.scorer.n_lower
    pooled = n_lower == self.encoder.cfg.num_layers
    ids = tok.encode(list(texts))
    lengths = np.array([len(r) for r in ids])
    width = 1 if pooled else tok_lib.bucket_for(int(lengths.max()), self.cfg.length_buckets)
    h = np.zeros((count, width, self.encoder.cfg.hidden_size), np.float32)
    m = np.zeros((count, width), np.int32)
    program = hidden_program(self.encoder, n_lower)
    pending = []
    for rows, b, length in plan_batches(lengths, self.cfg):
      batch = tok.pad([ids[i] for i in rows] + [[]] * (b - len(rows)), length)
      pending.append((rows, batch.mask, program(self.encoder.params, batch.ids, batch.mask)))
    if len(texts) >= 1024:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      pending = tqdm(pending, desc="encode tools", unit="batch", leave=False)
    for rows, mask, out in pending:
      out = np.asarray(out)[:len(rows)]
      if pooled:
        h[rows, 0], m[rows, 0] = out, 1
      else:
        h[rows, :out.shape[1]], m[rows, :out.shape[1]] = out, mask[:len(rows)]
    h[len(texts):], m[len(texts):] = h[0], m[0]
    return {"h": jnp.asarray(h), "m": jnp.asarray(m)}

  def _streams(self, texts: list[str], labels: list[int]) -> dict:
    """Labelled texts -> the episode's two labelled streams, split by length.

    ``bilevel.streams_loss`` and ``bilevel.prototypes`` treat the ``support`` and ``views``
    streams alike (one weighted sum over both), so putting short texts in one and long texts in
    the other changes nothing but the padding.
    """
    hidden = self.encoder.cfg.hidden_size
    lengths = np.array([len(r) for r in self.encoder.tokenizer.encode(texts)], np.int64)
    short = lengths <= self.cfg.short_text
    out = {}
    for name, group in (("support", np.flatnonzero(short)), ("views", np.flatnonzero(~short))):
      if len(group) == 0:
        out[name] = {"h": jnp.zeros((0, 16, hidden)), "m": jnp.zeros((0, 16), jnp.int32),
                     "y": jnp.zeros((0,), jnp.int32), "w": jnp.zeros((0,), jnp.float32)}
        continue
      count = _round_up(len(group), 16)  # fewer distinct shapes across adapt() calls
      s = self._lower([texts[i] for i in group], count)
      y = np.zeros(count, np.int32)
      y[:len(group)] = np.asarray(labels)[group]
      s["y"], s["w"] = jnp.asarray(y), jnp.asarray(np.arange(count) < len(group), jnp.float32)
      out[name] = s
    return out

  def _adapted(self, docs: dict, texts: list[str], labels: list[int]):
    params, reprs = self._adapt(self._meta, {"tools": docs, **self._streams(texts, labels)})
    n = reprs.shape[0]
    tool_mat = jnp.pad(reprs, ((0, _round_up(n, self.cfg.tool_multiple) - n), (0, 0)))
    return params, tool_mat

  def set_tools(self, tools: Any, warmup: bool = True) -> "ToolSelector":
    """Sets the toolbox (any accepted format, see ``toolspec``), adapting on documentation.

    The documentation-only adaptation is cached per toolbox, so setting a toolbox again is
    free. ``warmup`` compiles the single-query shapes now rather than on the first ``rank``.
    """
    parsed = toolspec.parse_tools(tools)
    docs = [t.document() for t in parsed]
    views = [t.views(self.cfg.n_views) if self.cfg.n_views else [] for t in parsed]
    key = hashlib.sha256(json.dumps([docs, views]).encode()).hexdigest()
    box = self._cache.pop(key, None)
    if box is None:
      docs_hidden = self._lower(docs, len(docs))
      texts = [v for vs in views for v in vs]
      labels = [i for i, vs in enumerate(views) for _ in vs]
      box = _Toolbox([t.name for t in parsed], {t.name: i for i, t in enumerate(parsed)},
                     docs_hidden, texts, labels, self._adapted(docs_hidden, texts, labels))
    self._cache[key] = box
    while len(self._cache) > self.cfg.cache_size:
      self._cache.popitem(last=False)
    self._box, self._state = box, box.docs_only
    if warmup:
      for length in self.cfg.warmup_lengths:
        self._warmup(1, length)
    return self

  def adapt(self, examples: Sequence[Any] | None = None) -> "ToolSelector":
    """Runs the inner loop on the documentation views plus labelled ``examples``
    (``{"query": ..., "tool": name}`` dicts or ``(query, name)`` pairs); none: documentation
    only (the cached adaptation)."""
    box = self._require_box()
    if not examples:
      self._state = box.docs_only
      return self
    parsed = [toolspec.check_example(e, box.index, f"example #{i}")
              for i, e in enumerate(examples)]
    texts = box.view_texts + [t for t, _ in parsed]
    labels = box.view_labels + [y for _, y in parsed]
    self._state = self._adapted(box.docs, texts, labels)
    return self

  # -------------------------------------------------------------------------- ranking

  def _warmup(self, batch: int, length: int) -> None:
    tool_mat = self._state[1]
    key = (batch, length, tool_mat.shape[0])
    if key not in self._warm:
      ids = np.zeros((batch, length), np.int32)
      jax.block_until_ready(self._score(self.encoder.params, self._state[0], ids, ids, tool_mat))
      self._warm.add(key)

  def scores(self, queries: Sequence[str], progress: bool = False) -> np.ndarray:
    """(len(queries), n_tools) float32 cosine scores against the whole toolbox."""
    box = self._require_box()
    params, tool_mat = self._state
    cfg, tok = self.cfg, self.encoder.tokenizer
    ids = tok.encode(list(queries))
    lengths = np.array([len(r) for r in ids])
    # Dispatch every batch first (JAX runs them asynchronously), then collect: tokenising and
    # padding the next batch overlaps with the previous batch's compute.
    pending = []
    for rows, b, length in plan_batches(lengths, cfg):
      batch = tok.pad([ids[i] for i in rows] + [[]] * (b - len(rows)), length)
      pending.append((rows, self._score(self.encoder.params, params, batch.ids, batch.mask,
                                        tool_mat)))
      self._warm.add((b, length, tool_mat.shape[0]))
    if progress:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      pending = tqdm(pending, desc="rank", unit="batch", leave=False)
    out = np.empty((len(ids), len(box.names)), np.float32)
    for rows, s in pending:
      out[rows] = np.asarray(s)[:len(rows), :len(box.names)]
    return out

  def rank(self, queries: str | Sequence[str], candidates: Sequence | None = None,
           top_k: int | None = 5, progress: bool = False) -> list[list[Choice]]:
    """Per query, the ``top_k`` best tools (None: all), best first, as ``Choice(name, score)``.

    ``candidates``: None (the whole toolbox), one list of names for every query, or one entry
    per query (a list of names, or None). A single query string is ranked as ``[query]``.
    """
    box = self._require_box()
    if isinstance(queries, str):
      queries = [queries]
    queries = [toolspec.check_query(q, f"query #{i}") for i, q in enumerate(queries)]
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
      raise InputError(f"top_k must be a positive integer or None, got {top_k!r}")
    cands = toolspec.candidate_rows(candidates, len(queries), box.index)
    scores = self.scores(queries, progress=progress)
    names = box.names
    if all(c is None for c in cands):  # the common case, vectorised
      k = len(names) if top_k is None else min(top_k, len(names))
      order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
      top = np.take_along_axis(scores, order, 1)
      return [[Choice(names[j], float(s)) for j, s in zip(o, t)] for o, t in zip(order, top)]
    out = []
    for row, idx in zip(scores, cands):
      idx = np.arange(len(names)) if idx is None else np.asarray(idx)
      s = row[idx]
      order = np.argsort(-s, kind="stable")[:top_k]
      out.append([Choice(names[idx[j]], float(s[j])) for j in order])
    return out
