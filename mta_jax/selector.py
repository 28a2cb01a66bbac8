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

Real requests come with their own tools: ``rank(queries, tools=[list per query])`` ranks each
query against its own list (any format; None = the toolbox of ``set_tools``). Tools are known by
their spec, not their name: a document is embedded once however many lists hold it, each
distinct list is adapted once (the per-toolbox cache), and two lists may give one name two
different specs. A query may be a chat request (``{"messages": [...]}``, see
``toolspec.messages_text`` and ``SelectorConfig.query_from``).

Texts longer than the encoder's 256 tokens are embedded as overlapping windows and pooled
(``SelectorConfig.window_pool``); texts mostly outside the vocabulary are reported (a
``windowing.TextWarning``, or ``InputError`` with ``strict``). ``use_cache(folder)`` keeps tool
embeddings and large toolboxes' documentation-only adaptation on disk
(``embedding_cache.DiskCache``), so a second process skips the encoder for known tools.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mta_jax import bilevel
from mta_jax import embedding_cache
from mta_jax import params as P
from mta_jax import toolspec
from mta_jax import windowing
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
  # Long texts: windows of 256 tokens sharing this many; window embeddings pooled by
  # (mean or max; mean chosen on validation, see README "Long and foreign texts").
  window_overlap: int = 64
  window_pool: str = "mean"
  query_from: str = toolspec.DEFAULT_QUERY_FROM  # chat requests: which turns are the query
  coverage_threshold: float = windowing.COVERAGE_THRESHOLD  # [UNK] + single-letter share
  strict: bool = False  # poorly covered texts raise InputError instead of a warning
  disk_min_tools: int = 128  # toolboxes from this size keep their adaptation in the disk cache

  def validate(self) -> None:
    if self.batch_buckets[-1] != self.batch_size or list(self.batch_buckets) != sorted(
        self.batch_buckets):
      raise ValueError(f"batch_buckets {self.batch_buckets} must be increasing and end at "
                       f"batch_size={self.batch_size}")
    if self.length_buckets[-1] != tok_lib.MAX_LENGTH:
      raise ValueError(f"length_buckets must end at {tok_lib.MAX_LENGTH}")
    if self.n_views < 0 or self.cache_size < 1:
      raise ValueError("n_views must be >= 0 and cache_size >= 1")
    if self.window_pool not in windowing.POOLS:
      raise ValueError(f"window_pool must be one of {windowing.POOLS}, got {self.window_pool!r}")
    if not 0 <= self.window_overlap < tok_lib.MAX_LENGTH - 2:
      raise ValueError(f"window_overlap must be in [0, {tok_lib.MAX_LENGTH - 2})")
    if self.query_from not in toolspec.QUERY_FROM:
      raise ValueError(f"query_from must be one of {toolspec.QUERY_FROM}")


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
    self._query = windowing.query_program(encoder, scorer)
    self._memo: dict[str, np.ndarray] = {}  # text -> pooled embedding (pooled scorers)
    self._covered: dict[str, tuple[int, float]] = {}  # text -> windowing.measure
    self._disk: embedding_cache.DiskCache | None = None
    self._ns: dict[str, str] = {}
    self.last_stats: windowing.TextStats | None = None

  # -------------------------------------------------------------------------- construction

  @classmethod
  def from_meta(cls, scorer_cfg: ScorerConfig, meta_cfg: bilevel.MetaConfig, meta: dict,
                cfg: SelectorConfig | None = None,
                encoder: TextEncoder | None = None) -> "ToolSelector":
    """A selector from meta-parameters ``{"params": flat dict of all scorer params,
    "inner_lr": dict}`` on the config's backbone (pass ``encoder`` to share one)."""
    from mta_jax.models import registry  # pylint: disable=import-outside-toplevel
    encoder = encoder or registry.load(scorer_cfg.backbone)
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
    from mta_jax import checkpointing, inference  # pylint: disable=import-outside-toplevel
    if not pathlib.Path(checkpoint_dir).is_dir():
      raise checkpointing.CheckpointError(f"{checkpoint_dir}: checkpoint folder does not exist")
    bundle = inference.restore_for_inference(checkpoint_dir, which=which)
    cfg = cfg or SelectorConfig(n_views=_config_n_views(bundle.config, SelectorConfig.n_views))
    try:
      return cls.from_meta(bundle.scorer_cfg, bundle.meta_cfg, bundle.meta, cfg, encoder)
    except ValueError as e:
      raise checkpointing.CheckpointError(f"{checkpoint_dir}: {e}") from None

  # -------------------------------------------------------------------------- disk cache

  def use_cache(self, cache_dir: str | os.PathLike | None = "") -> "ToolSelector":
    """Keeps tool embeddings (pooled selectors) and the documentation-only adaptation of
    toolboxes of ``cfg.disk_min_tools`` tools or more in ``cache_dir`` (``""``: the per-user
    folder ``embedding_cache.default_dir()``; None: no disk cache). Keys hash the encoder's
    files, the checkpoint's parameters and configs, the window settings and the exact text."""
    if cache_dir is None:
      self._disk, self._ns = None, {}
      return self
    self._disk = embedding_cache.DiskCache(cache_dir or embedding_cache.default_dir())
    from mta_jax.models import weights  # pylint: disable=import-outside-toplevel
    folder = weights.minilm_dir()
    encoder_id = embedding_cache.digest(
        embedding_cache.file_digest(folder / "model.safetensors"),
        embedding_cache.file_digest(folder / "tokenizer.json"), str(self.encoder.cfg))
    windows = [tok_lib.MAX_LENGTH, self.cfg.window_overlap, self.cfg.window_pool]
    model_id = embedding_cache.digest(
        encoder_id, str(self.scorer.cfg), str(self.meta_cfg), self.cfg.n_views, windows,
        embedding_cache.params_digest(self._meta["params"]),
        embedding_cache.params_digest(self._meta["inner_lr"]))
    self._ns = {"emb": embedding_cache.digest("pooled-v1", encoder_id, windows),
                "adapted": model_id}
    return self

  # -------------------------------------------------------------------------- toolbox

  @property
  def tool_names(self) -> list[str]:
    return list(self._require_box().names)

  @property
  def pooled(self) -> bool:
    """Whether the scorer reads sentence embeddings (no encoder layer above the cache): then
    long tool documents are windowed and their embeddings cached; otherwise documents are
    token states for the adapted layers, cut to one window (said in a ``TextWarning``)."""
    return self.scorer.n_lower == self.encoder.cfg.num_layers

  def _require_box(self) -> _Toolbox:
    if self._box is None:
      raise InputError("no tools: call set_tools(tools) first")
    return self._box

  def _run_hidden(self, ids: Sequence[Sequence[int]], n_lower: int):
    """Yields (rows, mask, output) of ``hidden_program`` over length-sorted, bucketed batches of
    tokenised texts of at most 256 tokens (dispatched before the first is collected)."""
    tok = self.encoder.tokenizer
    lengths = np.array([len(r) for r in ids])
    program = hidden_program(self.encoder, n_lower)
    pending = []
    for rows, b, length in plan_batches(lengths, self.cfg):
      batch = tok.pad([ids[i] for i in rows] + [[]] * (b - len(rows)), length)
      pending.append((rows, batch.mask, program(self.encoder.params, batch.ids, batch.mask)))
    if len(ids) >= 1024:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      pending = tqdm(pending, desc="encode tools", unit="batch", leave=False)
    for rows, mask, out in pending:
      yield rows, mask, np.asarray(out)[:len(rows)]

  def _windows(self, ids: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[int]]:
    """Tokenised texts -> their windows (``tokenizer.windows``) and each window's text."""
    rows, owner = [], []
    for i, r in enumerate(ids):
      ws = tok_lib.windows(r, tok_lib.MAX_LENGTH, self.cfg.window_overlap)
      rows += ws
      owner += [i] * len(ws)
    return rows, owner

  def _embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
    """(N, H) unit sentence embeddings of tokenised texts (``encode_full``); a text longer than
    the encoder's window is the pooled embedding of its overlapping windows."""
    rows, owner = self._windows(ids)
    out = np.zeros((len(rows), self.encoder.cfg.hidden_size), np.float32)
    for r, _, o in self._run_hidden(rows, self.encoder.cfg.num_layers):
      out[r] = o
    if len(rows) == len(ids):
      return out
    return windowing.pool_rows(out, owner, len(ids), self.cfg.window_pool)

  def _pooled(self, texts: Sequence[str]) -> np.ndarray:
    """(N, H) sentence embeddings of ``texts``, each distinct text embedded once: from this
    process's memo, else the disk cache, else the encoder (then stored in both)."""
    out = np.empty((len(texts), self.encoder.cfg.hidden_size), np.float32)
    need: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
      v = self._memo.get(t)
      if v is None:
        need.setdefault(t, []).append(i)
      else:
        out[i] = v
    if not need:
      return out
    found = {}
    if self._disk is not None:
      found = self._disk.get_vectors(self._ns["emb"], need, self.encoder.cfg.hidden_size)
    rest = [t for t in need if t not in found]
    if rest:
      new = dict(zip(rest, self._embed_ids(self.encoder.tokenizer.encode_full(rest))))
      if self._disk is not None:
        self._disk.put_vectors(self._ns["emb"], new)
      found.update(new)
    if len(self._memo) > 1_000_000:
      self._memo.clear()
    for t, rows in need.items():
      out[rows] = self._memo[t] = found[t]
    return out

  def _lower(self, texts: Sequence[str], count: int) -> dict:
    """The scorer's inputs for ``texts``: hidden states after the frozen lower layers, rows
    padded to ``count`` with copies of row 0 (real text keeps inner-loop gradients finite;
    those rows get weight 0).

    With ``n_top == 0`` the scorer only mean-pools, so a text is stored as its sentence
    embedding, one "token" with mask 1, as ``features`` stores it for training: the same
    embedding at a fraction of the memory (``_pooled``: long texts windowed, cached). Otherwise
    texts run in length-sorted, bucketed batches; each row is then zero-padded to the longest
    (positions past a text's mask are never read); a text is cut at 256 tokens.
    """
    hidden = self.encoder.cfg.hidden_size
    if self.pooled:
      h = np.zeros((count, 1, hidden), np.float32)
      m = np.zeros((count, 1), np.int32)
      h[:len(texts), 0], m[:len(texts), 0] = self._pooled(texts), 1
    else:
      ids = self.encoder.tokenizer.encode(list(texts))
      lengths = np.array([len(r) for r in ids])
      width = tok_lib.bucket_for(int(lengths.max()), self.cfg.length_buckets)
      h = np.zeros((count, width, hidden), np.float32)
      m = np.zeros((count, width), np.int32)
      for rows, mask, out in self._run_hidden(ids, self.scorer.n_lower):
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

  def _adapted(self, docs: dict, texts: list[str], labels: list[int], n: int):
    params, reprs = self._adapt(self._meta, {"tools": docs, **self._streams(texts, labels)})
    reprs = reprs[:n]
    tool_mat = jnp.pad(reprs, ((0, _round_up(n, self.cfg.tool_multiple) - n), (0, 0)))
    return params, tool_mat

  def _doc_rows(self, n: int) -> int:
    """Rows of a toolbox's document matrix. Without an inner loop (ProtoNet's prototypes, SFT)
    each class representation depends on its own tool only, so extra classes (copies of row 0,
    dropped after) change nothing and a few sizes serve every toolbox; the inner loop's softmax
    would see them, so algorithms that adapt get exactly ``n``."""
    independent = not self.meta_cfg.algo.inner_loop or self.meta_cfg.inner_steps == 0
    return _round_up(n, 16) if independent else n

  def _box_for(self, parsed: Sequence[toolspec.Tool]) -> _Toolbox:
    """The cached toolbox of these tools, built (and adapted on documentation) if new."""
    docs = [t.document() for t in parsed]
    views = [t.views(self.cfg.n_views) if self.cfg.n_views else [] for t in parsed]
    key = hashlib.sha256(json.dumps([docs, views]).encode()).hexdigest()
    box = self._cache.pop(key, None)
    if box is None:
      docs_hidden = self._lower(docs, self._doc_rows(len(docs)))
      texts = [v for vs in views for v in vs]
      labels = [i for i, vs in enumerate(views) for _ in vs]
      box = _Toolbox([t.name for t in parsed], {t.name: i for i, t in enumerate(parsed)},
                     docs_hidden, texts, labels, self._docs_only(key, docs_hidden, texts, labels,
                                                                 len(docs)))
    self._cache[key] = box
    while len(self._cache) > self.cfg.cache_size:
      self._cache.popitem(last=False)
    return box

  def _docs_only(self, key: str, docs_hidden: dict, texts: list[str], labels: list[int],
                 n: int):
    """The documentation-only adaptation, from the disk cache for large toolboxes."""
    disk = self._disk if n >= self.cfg.disk_min_tools else None
    if disk is not None:
      dkey = embedding_cache.digest(self._ns["adapted"], key)
      got = disk.get_arrays("adapted", dkey)
      if got is not None and "__tool_mat__" in got:
        mat = got.pop("__tool_mat__")
        if mat.shape == (_round_up(n, self.cfg.tool_multiple), self.encoder.cfg.hidden_size):
          return {k: jnp.asarray(v) for k, v in got.items()}, jnp.asarray(mat)
    params, tool_mat = self._adapted(docs_hidden, texts, labels, n)
    if disk is not None:
      disk.put_arrays("adapted", dkey, {**{k: np.asarray(v) for k, v in params.items()},
                                        "__tool_mat__": np.asarray(tool_mat)})
    return params, tool_mat

  def remember_texts(self, texts: Sequence[str], measured: Sequence[tuple[int, float]]) -> None:
    """Takes ``windowing.measure`` results a caller has already (the command line measures
    every text before the model loads), so ``set_tools``/``rank`` do not tokenise them again."""
    self._covered.update(zip(texts, measured))

  def _check_texts(self, items: Sequence[tuple[str, str, bool]], strict: bool | None) -> None:
    """``(label, text, windowed?)`` items: warns once per call (``TextWarning``) about texts
    that are windowed, cut, or outside the vocabulary; raises ``InputError`` for the latter if
    ``strict``. Each distinct text is measured once per process."""
    tok = self.encoder.tokenizer
    if len(self._covered) > 1_000_000:
      self._covered.clear()
    new = list(dict.fromkeys(t for _, t, _ in items if t not in self._covered))
    if new:
      self._covered.update(zip(new, windowing.measure(tok, tok.encode_full(new))))
    stats = windowing.TextStats(tok, self.cfg.window_pool, self.cfg.coverage_threshold)
    for label, text, windowed in items:
      stats.record(label, *self._covered[text], windowed)
    self.last_stats = stats
    stats.emit(self.cfg.strict if strict is None else strict)

  def set_tools(self, tools: Any, warmup: bool = True, strict: bool | None = None
                ) -> "ToolSelector":
    """Sets the toolbox (any accepted format, see ``toolspec``), adapting on documentation.

    The documentation-only adaptation is cached per toolbox, so setting a toolbox again is
    free. ``warmup`` compiles the single-query shapes now rather than on the first ``rank``.
    ``strict`` (default ``cfg.strict``): documents outside the vocabulary raise ``InputError``.
    """
    parsed = toolspec.parse_tools(tools)
    self._check_texts([(f"tool #{i} ({t.name!r})", t.document(), self.pooled)
                       for i, t in enumerate(parsed)], strict)
    box = self._box_for(parsed)
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
    self._state = self._adapted(box.docs, texts, labels, len(box.names))
    return self

  # -------------------------------------------------------------------------- ranking

  def _warmup(self, batch: int, length: int) -> None:
    tool_mat = self._state[1]
    key = (batch, length, tool_mat.shape[0])
    if key not in self._warm:
      ids = np.zeros((batch, length), np.int32)
      jax.block_until_ready(self._score(self.encoder.params, self._state[0], ids, ids, tool_mat))
      self._warm.add(key)

  def _query_vectors(self, params: P.Params, ids: Sequence[Sequence[int]],
                     pooled: np.ndarray | None = None) -> np.ndarray:
    """(N, H) unit query representations under ``params`` for tokenised queries of any length
    (``encode_full``). Pooled scorers pool long queries' windows before the head (as tool
    documents); others run the adapted layers per window and pool the representations.
    ``pooled``: the queries' sentence embeddings, if already computed."""
    hidden = self.encoder.cfg.hidden_size
    if self.pooled:
      emb = self._embed_ids(ids) if pooled is None else pooled
      h, m, owner, n_rows = emb[:, None, :], np.ones((len(emb), 1), np.int32), None, len(emb)
    else:
      rows, owner = self._windows(ids)
      n_rows = len(rows)
    out = np.zeros((n_rows, hidden), np.float32)
    if self.pooled:
      for start in range(0, n_rows, self.cfg.batch_size):
        chunk = slice(start, min(start + self.cfg.batch_size, n_rows))
        b = tok_lib.bucket_for(chunk.stop - start, self.cfg.batch_buckets)
        hb = np.zeros((b, 1, hidden), np.float32)
        mb = np.zeros((b, 1), np.int32)
        hb[:chunk.stop - start], mb[:chunk.stop - start] = h[chunk], m[chunk]
        out[chunk] = np.asarray(self._query(params, hb, mb))[:chunk.stop - start]
      return out
    for r, mask, lower in self._run_hidden(rows, self.scorer.n_lower):
      b = tok_lib.bucket_for(len(r), self.cfg.batch_buckets)
      hb = np.zeros((b, *lower.shape[1:]), np.float32)
      mb = np.zeros((b, lower.shape[1]), np.int32)
      hb[:len(r)], mb[:len(r)] = lower, mask[:len(r)]
      out[r] = np.asarray(self._query(params, hb, mb))[:len(r)]
    if n_rows == len(ids):
      return out
    return windowing.pool_rows(out, owner, len(ids), self.cfg.window_pool)

  def scores(self, queries: Sequence[str], progress: bool = False) -> np.ndarray:
    """(len(queries), n_tools) float32 cosine scores against the whole toolbox."""
    box = self._require_box()
    params, tool_mat = self._state
    cfg, tok = self.cfg, self.encoder.tokenizer
    ids = tok.encode_full(list(queries))
    lengths = np.array([len(r) for r in ids])
    short = np.flatnonzero(lengths <= tok_lib.MAX_LENGTH)
    long = np.flatnonzero(lengths > tok_lib.MAX_LENGTH)
    # Dispatch every batch first (JAX runs them asynchronously), then collect: tokenising and
    # padding the next batch overlaps with the previous batch's compute.
    pending = []
    for rows, b, length in plan_batches(lengths[short], cfg):
      rows = short[rows]
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
    if len(long):  # windowed: their representations, then the same cosines
      q = self._query_vectors(params, [ids[i] for i in long])
      out[long] = q @ np.asarray(tool_mat)[:len(box.names)].T
    return out

  def query_texts(self, queries: Any, query_from: str | None = None) -> list[str]:
    """Strings, chat requests (``{"messages": [...]}`` or a list of messages) -> the texts
    encoded (``toolspec.query_text``; ``query_from`` default ``cfg.query_from``)."""
    if isinstance(queries, (str, dict)):
      queries = [queries]
    query_from = query_from or self.cfg.query_from
    return [toolspec.query_text(q, f"query #{i}", query_from) for i, q in enumerate(queries)]

  def rank(self, queries: Any, candidates: Sequence | None = None, top_k: int | None = 5,
           progress: bool = False, tools: Sequence | None = None,
           query_from: str | None = None, strict: bool | None = None) -> list[list[Choice]]:
    """Per query, the ``top_k`` best tools (None: all), best first, as ``Choice(name, score)``.

    ``queries``: strings or chat requests (``{"messages": [...]}``; ``query_from`` says which
    turns count, default ``cfg.query_from``); a single one is ranked as a list of one.
    ``tools``: None (every query against the toolbox of ``set_tools``), or one entry per query:
    its own tool list (any format) or None (the toolbox).
    ``candidates``: None (every tool), one list of names for every query, or one entry per
    query (a list of names of that query's tools, or None).
    ``strict`` (default ``cfg.strict``): texts outside the vocabulary raise ``InputError``.
    """
    queries = self.query_texts(queries, query_from)
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
      raise InputError(f"top_k must be a positive integer or None, got {top_k!r}")
    if tools is not None:
      return self._rank_own_tools(queries, tools, candidates, top_k, strict)
    box = self._require_box()
    cands = toolspec.candidate_rows(candidates, len(queries), box.index)
    self._check_texts([(f"query #{i}", q, True) for i, q in enumerate(queries)], strict)
    scores = self.scores(queries, progress=progress)
    names = box.names
    if all(c is None for c in cands):  # the common case, vectorised
      k = len(names) if top_k is None else min(top_k, len(names))
      order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
      top = np.take_along_axis(scores, order, 1)
      return [[Choice(names[j], float(s)) for j, s in zip(o, t)] for o, t in zip(order, top)]
    return [_top(row, names, idx, top_k) for row, idx in zip(scores, cands)]

  def _rank_own_tools(self, queries: list[str], tools: Sequence, candidates, top_k,
                      strict) -> list[list[Choice]]:
    """``rank`` with a tool list per query: queries are encoded once; each distinct list is a
    toolbox (documents embedded once per distinct text, adapted once per distinct list)."""
    n = len(queries)
    if isinstance(tools, (str, dict)) or not isinstance(tools, (list, tuple)) or len(tools) != n:
      raise InputError(f"tools must have one entry per query ({n}): a tool list, or None for "
                       "the toolbox of set_tools")
    lists = toolspec.ToolLists()
    parsed = [None if t is None else lists.parse(t, f"query #{i}: tools")
              for i, t in enumerate(tools)]
    if any(p is None for p in parsed):
      self._require_box()
    if candidates is None or (candidates and all(isinstance(c, str) for c in candidates)):
      candidates = [candidates] * n
    elif isinstance(candidates, str) or len(candidates) != n:
      raise InputError(f"candidates has {len(candidates)} entries for {n} queries: give one "
                       "list of names for all queries or one entry per query")
    names = [self._box.names if p is None else [t.name for t in p] for p in parsed]
    cands = [None if c is None else toolspec.check_candidates(
        c, {x: j for j, x in enumerate(nm)}, f"query #{i}")
             for i, (c, nm) in enumerate(zip(candidates, names))]
    items, seen = [], set()
    for i, p in enumerate(parsed):
      for j, t in enumerate(p or ()):
        key = toolspec.spec_id(t)
        if key not in seen:
          seen.add(key)
          items.append((f"query #{i}: tool #{j} ({t.name!r})", t.document(), self.pooled))
    self._check_texts(items + [(f"query #{i}", q, True) for i, q in enumerate(queries)], strict)
    ids = self.encoder.tokenizer.encode_full(queries)
    pooled = self._embed_ids(ids) if self.pooled else None
    groups: dict[int, tuple[Any, list[int]]] = {}
    by_list: dict[int, int] = {}
    for i, p in enumerate(parsed):
      gid = by_list.setdefault(id(p), len(by_list))  # ToolLists hands out one object per list
      groups.setdefault(gid, (p, []))[1].append(i)
    # Without an inner loop the adapted parameters are the meta-parameters whatever the list:
    # every query is then represented once, not once per list.
    shared = not self.meta_cfg.algo.inner_loop or self.meta_cfg.inner_steps == 0
    q_all = None
    out: list[list[Choice] | None] = [None] * n
    for p, rows in groups.values():
      if p is None:
        box, (params, tool_mat) = self._box, self._state
      else:
        box = self._box_for(p)
        params, tool_mat = box.docs_only
      if shared:
        if q_all is None:
          q_all = self._query_vectors(params, ids, pooled)
        q = q_all[rows]
      else:
        q = self._query_vectors(params, [ids[i] for i in rows],
                                None if pooled is None else pooled[rows])
      s = q @ np.asarray(tool_mat)[:len(box.names)].T
      for r, row in zip(rows, s):
        out[r] = _top(row, box.names, cands[r], top_k)
    return out


def _top(row: np.ndarray, names: Sequence[str], idx, top_k) -> list[Choice]:
  """The ``top_k`` best of ``row`` (restricted to indices ``idx``, None: all), best first."""
  idx = np.arange(len(names)) if idx is None else np.asarray(idx)
  s = row[idx]
  order = np.argsort(-s, kind="stable")[:top_k]
  return [Choice(names[idx[j]], float(s[j])) for j in order]
