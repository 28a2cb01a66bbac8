"""The lexical feature of the hybrid scorer: BM25 of a text against every tool's main document.

The hybrid scorer (``ScorerConfig.lexical``) adds to each (text, tool) logit a lexical term, the
BM25 score (``mta_jax.bm25``, k1 = 1.5, b = 0.75) of the text against the tool's main document
(``Tool.document()``: name, description, parameters). The corpus (idf, average length) is every
tool of the dataset, as for the BM25 row of the results table: tool documentation is what a
model may read at test time; no query of any split enters it.

Raw BM25 grows with the number of query words, so the feature is the score divided by the
text's best score over the whole corpus: a value in [0, 1] whose scale does not depend on the
query's length nor on which candidates an episode or a protocol happens to hold (dividing a row
by one positive number changes no ranking: lexical-only scoring ranks exactly as the BM25 row).

Texts are the dataset's queries (support and query streams) and its documentation views (the
0-shot adaptation data), so ``gather`` can index the feature like the hidden-state caches:

    lex = lexical.for_dataset(ds, n_views=4)          # the layout of ds.documents(4)
    lex["q_lex"][query_row, lex["doc_col"][doc_row]]  # a query against the tool of doc_row
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mta_jax import bm25

ARRAYS = ("q_lex", "d_lex", "doc_col")


def normalise(scores: np.ndarray) -> np.ndarray:
  """Each row divided by its maximum (rows without a matching word stay 0), as float32."""
  top = scores.max(axis=1, keepdims=True) if scores.shape[1] else np.zeros((len(scores), 1))
  return (scores / np.maximum(top, 1e-12)).astype(np.float32)


def features(texts: Sequence[str], tool_documents: Sequence[str]) -> np.ndarray:
  """(n_texts, n_tools) normalised BM25 of every text against every tool document (the corpus).

  Equals ``normalise(bm25.BM25(tool_documents).score_matrix(texts))``.
  """
  return normalise(bm25.BM25(tool_documents).score_matrix(list(texts)))


def _blocks(text_lists: Sequence[Sequence[str]], tool_documents: Sequence[str],
            sources) -> list[np.ndarray]:
  """``features`` of each list of texts with one corpus per source: the columns of each source's
  tools are that corpus's normalised scores (a union of datasets keeps each dataset's own
  statistics); each corpus is indexed once for every list."""
  sources = np.asarray(sources if sources is not None else [""] * len(tool_documents))
  outs = [np.zeros((len(texts), len(tool_documents)), np.float32) for texts in text_lists]
  for s in dict.fromkeys(sources.tolist()):
    cols = np.flatnonzero(sources == s)
    index = bm25.BM25([tool_documents[c] for c in cols])
    for out, texts in zip(outs, text_lists):
      out[:, cols] = normalise(index.score_matrix(list(texts)))
  return outs


def arrays(query_texts: Sequence[str], doc_texts: Sequence[str],
           tool_documents: Sequence[str], main_doc: np.ndarray,
           view_rows: Sequence[np.ndarray], sources: Sequence[str] | None = None) -> dict:
  """The arrays ``episodes.gather`` reads for the lexical feature (``sources``: each tool's
  dataset in a union of datasets, each with its own corpus; None: one corpus).

  - ``q_lex`` (n_queries, n_tools): every query against every tool;
  - ``d_lex`` (n_docs, n_tools): every document text (main documents and views, the rows of the
    document cache) against every tool;
  - ``doc_col`` (n_docs,): the tool (column) a document row belongs to, so an episode's tools,
    given as document rows, find their columns.
  """
  n_tools = len(tool_documents)
  if len(main_doc) != n_tools or len(view_rows) != n_tools:
    raise ValueError(f"lexical.arrays: {n_tools} tool documents but {len(main_doc)} main rows "
                     f"and {len(view_rows)} view lists")
  doc_col = np.zeros(len(doc_texts), np.int32)
  for t in range(n_tools):
    doc_col[main_doc[t]] = t
    doc_col[np.asarray(view_rows[t], np.int64)] = t
  q_lex, d_lex = _blocks([query_texts, doc_texts], tool_documents, sources)
  return {"q_lex": q_lex, "d_lex": d_lex, "doc_col": doc_col}


def for_dataset(ds, n_views: int) -> dict:
  """``arrays`` for a ``ToolDataset`` with the document layout of ``ds.documents(n_views)``."""
  doc_texts, main_doc, view_rows = ds.documents(n_views)
  return arrays([q.text for q in ds.queries], doc_texts, [t.document() for t in ds.tools],
                main_doc, view_rows, [t.source for t in ds.tools])
