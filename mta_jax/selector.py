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

Scores are cosine similarities between the adapted query and tool representations; with the
hybrid scorer (``ScorerConfig.lexical``) they are ``mix/dense * cos + mix/lex * lex``, ``lex``
the text's BM25 score against each tool's main document divided by its best over the toolbox
(``lexical.features(texts, [t.document() for t in toolbox])``; the BM25 index is built once per
toolbox and cached with it): the scorer's logits times its temperature. Every path adds it: the
ranking, the inner loop's view and example streams, windowed texts, per-query tool lists.

The pretrained selector is the zero-shot MiniLM encoder plus the BM25 term, weight 0.2 (the
"Hybrid (zero-shot)" row: it beats the dense encoder on MTA-Tools' validation tools, SD 90.31
vs 86.05); ``pretrained(lexical=False)`` is the dense encoder alone, whose scores are the
cosine similarities of ``TextEncoder.embed`` outputs. Given labelled examples, each tool becomes
the normalised mean of its document's and its examples' embeddings (a prototype), as in
ProtoNet. A checkpoint keeps the scorer it was trained with (``scorer.lexical`` of its config).

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
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mta_jax import bilevel
from mta_jax import embedding_cache
from mta_jax import params as P
from mta_jax import toolspec
from mta_jax import windowing
from mta_jax.selector_programs import adapt_program, plan_batches, score_program
from mta_jax.selector_requests import PerQueryRanking
from mta_jax.selector_text import TextEncoding
from mta_jax.selector_types import (Choice, SelectorConfig, Toolbox, check_meta, config_n_views,
                                    lexical_feature, lexical_index, mix_scores, round_up,
                                    top_choices)
from mta_jax.models import TextEncoder, tokenizer as tok_lib
from mta_jax.scorer import Scorer, ScorerConfig

InputError = toolspec.InputError


class ToolSelector(TextEncoding, PerQueryRanking):
  """Ranks a toolbox's tools for queries; see the module docstring."""

  def __init__(self, encoder: TextEncoder, scorer: Scorer, meta_cfg: bilevel.MetaConfig,
               meta: dict, cfg: SelectorConfig = SelectorConfig()):
    cfg.validate()
    check_meta(scorer, meta)
    self.encoder, self.scorer, self.meta_cfg, self.cfg = encoder, scorer, meta_cfg, cfg
    self._meta = jax.tree.map(jnp.asarray, {"params": dict(meta["params"]),
                                            "inner_lr": dict(meta.get("inner_lr", {}))})
    self._score = score_program(encoder, scorer)
    self._adapt = adapt_program(encoder, scorer, meta_cfg)
    self._cache: collections.OrderedDict[str, Toolbox] = collections.OrderedDict()
    self._warm: set[tuple[int, int, int]] = set()
    self._box: Toolbox | None = None
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
  def pretrained(cls, cfg: SelectorConfig | None = None, encoder: TextEncoder | None = None,
                 lexical: bool = True, lexical_weight: float | None = None) -> "ToolSelector":
    """The zero-shot selector: no training, no documentation views. By default the hybrid
    (``lexical``): cosine + ``lexical_weight`` (default ``ScorerConfig.lexical_weight``, 0.2,
    chosen on validation tools by ``make tune-hybrid``) times the BM25 feature, the
    "Hybrid (zero-shot)" row; ``lexical=False``: the dense encoder alone (the paper's "Base")."""
    cfg = dataclasses.replace(cfg or SelectorConfig(), n_views=0)
    weight = ScorerConfig.lexical_weight if lexical_weight is None else float(lexical_weight)
    params = ({"mix/dense": jnp.ones((), jnp.float32),
               "mix/lex": jnp.full((), weight, jnp.float32)} if lexical else {})
    return cls.from_meta(ScorerConfig(n_top=0, adapt="none", head=False, lexical=lexical,
                                      lexical_weight=weight),
                         bilevel.MetaConfig(algorithm="protonet", inner_steps=0),
                         {"params": params, "inner_lr": {}}, cfg, encoder)

  @classmethod
  def load(cls, checkpoint_dir: str, which: str = "best", cfg: SelectorConfig | None = None,
           encoder: TextEncoder | None = None) -> "ToolSelector":
    """A meta-trained selector from a training workdir (``checkpointing.CheckpointError`` if
    it holds no intact checkpoint or one that does not fit its config)."""
    from mta_jax import checkpointing, inference  # pylint: disable=import-outside-toplevel
    if not pathlib.Path(checkpoint_dir).is_dir():
      raise checkpointing.CheckpointError(f"{checkpoint_dir}: checkpoint folder does not exist")
    bundle = inference.restore_for_inference(checkpoint_dir, which=which)
    cfg = cfg or SelectorConfig(n_views=config_n_views(bundle.config, SelectorConfig.n_views))
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
    # The scorer config (``lexical``, ``lexical_weight``) and the parameters (``mix/``) are in
    # the adaptation's key: a dense selector's entries are never read by a hybrid one. Sentence
    # embeddings ("emb") are the encoder's alone, shared by both; the lexical feature is cheap
    # and never stored.
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

  def _require_box(self) -> Toolbox:
    if self._box is None:
      raise InputError("no tools: call set_tools(tools) first")
    return self._box

  def _streams(self, texts: list[str], labels: list[int], index, n_cols: int) -> dict:
    """Labelled texts -> the episode's two labelled streams, split by length; with the hybrid
    scorer (``index``: the toolbox's BM25) each stream carries ``lex`` (S, n_cols), its texts'
    feature against the ``n_cols`` document rows, as ``episodes.gather`` gives training.

    The encoder learner's ``loss`` and ``prototypes`` (``mta_jax.learner``) treat the ``support``
    and ``views`` streams alike (one weighted sum over both), so putting short texts in one and long texts in
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
        if index is not None:
          out[name]["lex"] = jnp.zeros((0, n_cols), jnp.float32)
        continue
      count = round_up(len(group), 16)  # fewer distinct shapes across adapt() calls
      s = self._lower([texts[i] for i in group], count)
      y = np.zeros(count, np.int32)
      y[:len(group)] = np.asarray(labels)[group]
      s["y"], s["w"] = jnp.asarray(y), jnp.asarray(np.arange(count) < len(group), jnp.float32)
      if index is not None:  # padding rows (weight 0) get 0
        lex = np.zeros((count, n_cols), np.float32)
        lex[:len(group)] = lexical_feature(index, [texts[i] for i in group], n_cols, "copy")
        s["lex"] = jnp.asarray(lex)
      out[name] = s
    return out

  def _adapted(self, docs: dict, texts: list[str], labels: list[int], n: int, index=None):
    streams = self._streams(texts, labels, index, docs["h"].shape[0])
    params, reprs = self._adapt(self._meta, {"tools": docs, **streams})
    reprs = reprs[:n]
    tool_mat = jnp.pad(reprs, ((0, round_up(n, self.cfg.tool_multiple) - n), (0, 0)))
    return params, tool_mat

  def _doc_rows(self, n: int) -> int:
    """Rows of a toolbox's document matrix. Without an inner loop (ProtoNet's prototypes, SFT)
    each class representation depends on its own tool only, so extra classes (copies of row 0,
    dropped after) change nothing and a few sizes serve every toolbox; the inner loop's softmax
    would see them, so algorithms that adapt get exactly ``n``."""
    independent = not self.meta_cfg.algo.inner_loop or self.meta_cfg.inner_steps == 0
    return round_up(n, 16) if independent else n

  def _box_for(self, parsed: Sequence[toolspec.Tool]) -> Toolbox:
    """The cached toolbox of these tools, built (and adapted on documentation) if new."""
    docs = [t.document() for t in parsed]
    views = [t.views(self.cfg.n_views) if self.cfg.n_views else [] for t in parsed]
    key = hashlib.sha256(json.dumps([docs, views]).encode()).hexdigest()
    box = self._cache.pop(key, None)
    if box is None:
      docs_hidden = self._lower(docs, self._doc_rows(len(docs)))
      texts = [v for vs in views for v in vs]
      labels = [i for i, vs in enumerate(views) for _ in vs]
      index = lexical_index(self.scorer, docs)
      box = Toolbox([t.name for t in parsed], {t.name: i for i, t in enumerate(parsed)},
                    docs_hidden, texts, labels,
                    self._docs_only(key, docs_hidden, texts, labels, len(docs), index), index)
    self._cache[key] = box
    while len(self._cache) > self.cfg.cache_size:
      self._cache.popitem(last=False)
    return box

  def _docs_only(self, key: str, docs_hidden: dict, texts: list[str], labels: list[int],
                 n: int, index):
    """The documentation-only adaptation, from the disk cache for large toolboxes."""
    disk = self._disk if n >= self.cfg.disk_min_tools else None
    if disk is not None:
      dkey = embedding_cache.digest(self._ns["adapted"], key)
      got = disk.get_arrays("adapted", dkey)
      if got is not None and "__tool_mat__" in got:
        mat = got.pop("__tool_mat__")
        if mat.shape == (round_up(n, self.cfg.tool_multiple), self.encoder.cfg.hidden_size):
          return {k: jnp.asarray(v) for k, v in got.items()}, jnp.asarray(mat)
    params, tool_mat = self._adapted(docs_hidden, texts, labels, n, index)
    if disk is not None:
      disk.put_arrays("adapted", dkey, {**{k: np.asarray(v) for k, v in params.items()},
                                        "__tool_mat__": np.asarray(tool_mat)})
    return params, tool_mat

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
    self._state = self._adapted(box.docs, texts, labels, len(box.names), box.lex_index)
    return self

  # -------------------------------------------------------------------------- ranking

  def _warmup(self, batch: int, length: int) -> None:
    tool_mat = self._state[1]
    key = (batch, length, tool_mat.shape[0])
    if key not in self._warm:
      ids = np.zeros((batch, length), np.int32)
      lex = np.zeros((batch, tool_mat.shape[0]), np.float32) if self.scorer.cfg.lexical else None
      jax.block_until_ready(self._score(self.encoder.params, self._state[0], ids, ids, tool_mat,
                                        lex))
      self._warm.add(key)

  def scores(self, queries: Sequence[str], progress: bool = False) -> np.ndarray:
    """(len(queries), n_tools) float32 scores against the whole toolbox: cosines, or the hybrid
    scorer's ``mix/dense * cos + mix/lex * lex`` (``selector_types.mix_scores``)."""
    box = self._require_box()
    params, tool_mat = self._state
    cfg, tok = self.cfg, self.encoder.tokenizer
    ids = tok.encode_full(list(queries))
    # The BM25 feature of every query (the whole text, windowed or not) against the toolbox,
    # zero beside the tool matrix's padding rows; each batch takes its rows.
    lex = (None if box.lex_index is None else
           lexical_feature(box.lex_index, queries, tool_mat.shape[0]))
    lengths = np.array([len(r) for r in ids])
    short = np.flatnonzero(lengths <= tok_lib.MAX_LENGTH)
    long = np.flatnonzero(lengths > tok_lib.MAX_LENGTH)
    # Dispatch every batch first (JAX runs them asynchronously), then collect: tokenising and
    # padding the next batch overlaps with the previous batch's compute.
    pending = []
    for rows, b, length in plan_batches(lengths[short], cfg):
      rows = short[rows]
      batch = tok.pad([ids[i] for i in rows] + [[]] * (b - len(rows)), length)
      lex_b = None
      if lex is not None:
        lex_b = np.zeros((b, tool_mat.shape[0]), np.float32)
        lex_b[:len(rows)] = lex[rows]
      pending.append((rows, self._score(self.encoder.params, params, batch.ids, batch.mask,
                                        tool_mat, lex_b)))
      self._warm.add((b, length, tool_mat.shape[0]))
    if progress:
      from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
      pending = tqdm(pending, desc="rank", unit="batch", leave=False)
    out = np.empty((len(ids), len(box.names)), np.float32)
    for rows, s in pending:
      out[rows] = np.asarray(s)[:len(rows), :len(box.names)]
    if len(long):  # windowed: their representations, then the same scores
      q = self._query_vectors(params, [ids[i] for i in long])
      n = len(box.names)
      out[long] = mix_scores(params, q @ np.asarray(tool_mat)[:n].T,
                             None if lex is None else lex[long, :n])
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
    return [top_choices(row, names, idx, top_k) for row, idx in zip(scores, cands)]
