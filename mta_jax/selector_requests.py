"""Ranking with a tool list per query (``ToolSelector.rank(queries, tools=[...])``): a mixin of
``mta_jax.selector.ToolSelector``, split out to keep each module small. Queries are encoded once;
each distinct list is a toolbox of the selector's cache (documents embedded once per distinct
text, adapted once per distinct list, and with the hybrid scorer its own BM25 corpus: a query's
lexical feature is against its own list); names may clash across lists, not inside one.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mta_jax import toolspec
from mta_jax.selector_types import Choice, lexical_feature, mix_scores, top_choices

InputError = toolspec.InputError


class PerQueryRanking:
  """``_rank_own_tools`` for ``ToolSelector`` (reads its encoder, toolbox cache and state)."""

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
      n_box = len(box.names)
      lex = (None if box.lex_index is None else
             lexical_feature(box.lex_index, [queries[r] for r in rows], n_box))
      s = mix_scores(params, q @ np.asarray(tool_mat)[:n_box].T, lex)
      for r, row in zip(rows, s):
        out[r] = top_choices(row, box.names, cands[r], top_k)
    return out
