r"""Rank tools for each query: the command-line face of ``mta_jax.ToolSelector``.

    python experiments/select_tools.py --tools=examples/toolbox/tools.json \
        --queries=examples/toolbox/queries.jsonl --output=/tmp/preds.jsonl \
        [--checkpoint=WORKDIR] [--support=examples/toolbox/support.jsonl] [--top_k=5] \
        [--lexical=false]
    python experiments/select_tools.py --queries=examples/agent_requests/requests.jsonl \
        --output=/tmp/preds.jsonl            # every line brings its own tools

A stable contract:
- ``--tools`` (optional when every query line has ``tools``): OpenAI function-calling list, MCP
  ``tools/list`` result, or plain list of ``{"name", "description", "parameters"}``;
- ``--queries``: JSONL, one request a line: ``{"id": ..., "query": ... | "messages": [...],
  "tools": [...]?, "candidates": [names]?}``. ``tools`` (any format above) replace ``--tools``
  for that line; tools are known by their spec, so two lines may give one name two different
  specs (inside one list a name must be unique). ``messages`` are OpenAI chat turns;
  ``--query_from`` says which turns are encoded. Without ``candidates`` every tool of the line's
  list is ranked;
- ``--support`` (optional): JSONL, labelled examples ``{"query": ..., "tool": name}`` of
  ``--tools`` to adapt on;
- ``--output``: JSONL, ``{"id": ..., "ranking": [{"name": ..., "score": ...}, ...]}`` per query,
  in input order, written to a temporary file and renamed, so an existing file is replaced only
  by a complete one;
- without ``--checkpoint``, the pretrained zero-shot hybrid ranks the tools: the encoder's
  cosine plus 0.2 times the query's BM25 score against each tool document, divided by its best
  over the toolbox (``ToolSelector.pretrained``; better than the encoder alone on MTA-Tools'
  validation tools); ``--lexical=false`` (or ``--nolexical``) ranks by the encoder's cosine
  alone. A checkpoint ranks with the scorer it was trained with (``scorer.lexical``), so
  ``--lexical`` with ``--checkpoint`` is an error;
- ``--cache_dir``: tool embeddings (and large toolboxes' documentation-only adaptation) are kept
  there; a second run over the same tools skips the encoder for them (``none``: no cache).

Texts longer than the encoder's 256-token window are embedded as overlapping windows, and texts
mostly outside its vocabulary (e.g. Chinese) are counted: one ``warning:`` line each on stderr
(``--strict`` makes the second an error).

Bad input (invalid JSON, a tool without a name or description, two tools of one name in one
list, an unknown or too short candidate list, an empty query, chat messages without a user
turn, an example naming an unknown tool, a missing or corrupt checkpoint) stops the command with
one line ``error: FILE:LINE: ...`` on stderr and exit status 1.
"""

import sys
import time
import warnings

from absl import app
from absl import flags
from absl import logging

QUERY_FROM = ("last_user", "user_turns", "all")  # = toolspec.QUERY_FROM (kept import-free)

FLAGS = flags.FLAGS
flags.DEFINE_string("tools", None, "Tool specs (JSON): OpenAI, MCP tools/list or plain list; "
                    "optional when every query line has its own 'tools'.")
flags.DEFINE_string("queries", None, "Queries (JSONL): {id, query | messages, tools?, "
                    "candidates?} per line.")
flags.DEFINE_string("output", None, "Predictions (JSONL): {id, ranking: [{name, score}]}.")
flags.DEFINE_string("checkpoint", None, "Training workdir; default: the zero-shot encoder.")
flags.DEFINE_string("support", None, "Labelled examples (JSONL): {query, tool} per line.")
flags.DEFINE_integer("top_k", 5, "Tools per ranking (fewer if a query has fewer candidates).",
                     lower_bound=1)
flags.DEFINE_string("which", "best", "Which checkpoint of --checkpoint: best or latest.")
flags.DEFINE_integer("progress_from", 256, "Show a progress bar from this many queries on.")
flags.DEFINE_enum("query_from", "last_user", QUERY_FROM,
                  "Chat requests ('messages'): the last user turn, every user turn, or every "
                  "turn (system and assistant too) is the query.")
flags.DEFINE_bool("strict", False, "Texts the encoder's vocabulary does not cover (over 20% "
                  "[UNK] or single-character pieces) are an error, not a warning.")
flags.DEFINE_string("cache_dir", "", "Disk cache of tool embeddings; default: the per-user "
                    "cache folder ($MTA_JAX_CACHE or ~/.cache/mta_jax); 'none': no cache.")
flags.DEFINE_bool("lexical", True, "Without --checkpoint: add the BM25 term to the encoder's "
                  "cosine (the zero-shot hybrid, default); false: the encoder alone. Not with "
                  "--checkpoint (it keeps the scorer it was trained with).")
flags.mark_flags_as_required(["queries", "output"])


def _warn(message) -> None:
  print(f"warning: {message}", file=sys.stderr, flush=True)


def text_stats(tokenizer, tools, tools_path, queries, queries_path, pool="mean"):
  """Every tool document (each distinct spec once) and query, labelled by file and line, through
  ``windowing.TextStats``: texts longer than the window, texts outside the vocabulary."""
  from mta_jax import toolspec, windowing  # pylint: disable=import-outside-toplevel
  labels, texts, seen = [], [], set()
  lists = [(f"{tools_path}: ", tools or [])] + [
      (f"{queries_path}:{q.line}: ", q.tools) for q in queries if q.tools]
  for prefix, tl in lists:
    for j, t in enumerate(tl):
      key = toolspec.spec_id(t)
      if key not in seen:
        seen.add(key)
        labels.append(f"{prefix}tool #{j} ({t.name!r})")
        texts.append(t.document())
  n_docs = len(texts)
  labels += [f"{queries_path}:{q.line}" for q in queries]
  texts += [q.query for q in queries]
  stats = windowing.TextStats(tokenizer, pool)
  measured = windowing.measure(tokenizer, tokenizer.encode_full(texts))
  for label, m in zip(labels, measured):
    stats.record(label, *m)
  return stats, set(labels[:n_docs]), (texts, measured)


def select(tools_path, queries_path, output_path, checkpoint=None, support_path=None,
           top_k=5, which="best", progress_from=256, query_from="last_user", strict=False,
           cache_dir="", lexical=None) -> str:
  """Reads, validates, ranks and writes; returns the summary line. Raises on bad input.

  ``lexical``: the pretrained selector's BM25 term (None: the default, the hybrid); given with
  ``checkpoint`` it is an ``InputError``."""
  from mta_jax import toolspec, windowing  # pylint: disable=import-outside-toplevel
  from mta_jax.models import tokenizer as tok_lib, weights  # pylint: disable=import-outside-toplevel
  from mta_jax.selector import ToolSelector  # pylint: disable=import-outside-toplevel
  t0 = time.perf_counter()
  # Every input is validated before the model loads: bad input fails in a second.
  if checkpoint and lexical is not None:
    raise toolspec.InputError("--lexical applies to the pretrained selector only: a checkpoint "
                              "ranks with the scorer it was trained with (its scorer.lexical)")
  tools = toolspec.read_tools(tools_path) if tools_path else None
  names = None if tools is None else [t.name for t in tools]
  queries = toolspec.read_queries(queries_path, names, query_from)
  own = [q for q in queries if q.tools is not None]
  if support_path and tools is None:
    raise toolspec.InputError(f"--support={support_path}: labelled examples name tools of "
                              "--tools, and no --tools was given")
  if support_path and own:
    raise toolspec.InputError(
        f"{queries_path}:{own[0].line}: this line brings its own 'tools', but --support "
        f"examples adapt the --tools toolbox only; drop --support or the line's 'tools'")
  support = toolspec.read_support(support_path, names) if support_path else []
  toolspec.check_output(output_path)
  tokenizer = tok_lib.Tokenizer(weights.minilm_dir() / "tokenizer.json")
  stats, doc_labels, measured = text_stats(tokenizer, tools, tools_path, queries, queries_path)
  if strict and stats.foreign:
    raise toolspec.InputError(f"{stats.coverage_line()} (--strict)")
  if checkpoint:
    selector = ToolSelector.load(checkpoint, which=which)
  else:
    selector = ToolSelector.pretrained(lexical=lexical is not False)
  if cache_dir.lower() != "none":
    selector.use_cache(cache_dir)
  selector.remember_texts(*measured)
  # The stats above name files and lines; the selector's own (positional) warnings would repeat
  # them.
  warnings.filterwarnings("ignore", category=windowing.TextWarning)
  if not selector.pooled:  # documents are token states for the adapted layers: one window
    stats.long = [(l, n, l not in doc_labels) for l, n, _ in stats.long]
  for line in stats.lines():
    _warn(line)
  if tools is not None:
    selector.set_tools(tools, warmup=False)
    selector.adapt(support)
  per_query = [q.tools for q in queries] if own else None
  ranked = selector.rank([q.query for q in queries], [q.candidates for q in queries],
                         top_k=top_k, progress=len(queries) >= progress_from, tools=per_query)
  rows = ({"id": q.id, "ranking": [{"name": c.name, "score": round(c.score, 6)} for c in r]}
          for q, r in zip(queries, ranked))
  toolspec.write_jsonl_atomic(output_path, rows)
  secs = time.perf_counter() - t0
  model = (f"checkpoint {checkpoint}" if checkpoint else
           "zero-shot encoder + BM25" if selector.scorer.cfg.lexical else "zero-shot encoder")
  if not own:
    where = f"{len(tools)} tools"
  else:
    n_lists = len({id(q.tools) for q in own}) + (tools is not None)
    where = f"{len(doc_labels)} distinct tool specs in {n_lists} tool lists"
  return (f"ranked {len(queries)} queries over {where} "
          f"({len(support)} support examples, {model}) in {secs:.1f} s -> {output_path}")


def _known_errors() -> tuple:
  from mta_jax import toolspec  # pylint: disable=import-outside-toplevel
  from mta_jax.models import WeightsNotFoundError  # pylint: disable=import-outside-toplevel
  errors = (toolspec.InputError, WeightsNotFoundError)
  if FLAGS.checkpoint:
    try:
      from mta_jax import checkpointing  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      sys.exit(f"error: --checkpoint needs mta_jax.checkpointing, which does not import ({e})")
    errors += (checkpointing.CheckpointError,)
  return errors


def main(argv):
  # Orbax's async readers report a corrupt array a second time from a garbage-collected
  # coroutine ("Exception ignored in ..."), after the one-line CheckpointError has said it.
  sys.unraisablehook = lambda unraisable: None
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # JAX's backend probing (INFO) and Orbax's metadata read (WARNING) are noise here; errors are
  # reported as one line below.
  logging.set_verbosity(logging.ERROR)
  # Repeat runs reuse compiled programs (git-ignored cache, as `make` and the tests use).
  from mta_jax import runtime  # pylint: disable=import-outside-toplevel
  runtime.setup_jax()
  errors = _known_errors()
  from mta_jax import embedding_cache  # pylint: disable=import-outside-toplevel
  default_show = warnings.showwarning

  def show(message, category, *args, **kwargs):
    if issubclass(category, embedding_cache.CacheWarning):
      _warn(message)
    else:
      default_show(message, category, *args, **kwargs)

  warnings.showwarning = show
  try:
    summary = select(FLAGS.tools, FLAGS.queries, FLAGS.output, FLAGS.checkpoint, FLAGS.support,
                     FLAGS.top_k, FLAGS.which, FLAGS.progress_from, FLAGS.query_from,
                     FLAGS.strict, FLAGS.cache_dir,
                     FLAGS.lexical if FLAGS["lexical"].present else None)
  except errors as e:
    sys.exit(f"error: {e}")
  print(summary, flush=True)


if __name__ == "__main__":
  app.run(main)
