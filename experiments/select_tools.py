r"""Rank a toolbox's tools for each query: the command-line face of ``mta_jax.ToolSelector``.

    python experiments/select_tools.py --tools=examples/toolbox/tools.json \
        --queries=examples/toolbox/queries.jsonl --output=/tmp/preds.jsonl \
        [--checkpoint=WORKDIR] [--support=examples/toolbox/support.jsonl] [--top_k=5]

A stable contract:
- ``--tools``: OpenAI function-calling list, MCP ``tools/list`` result, or plain list of
  ``{"name", "description", "parameters"}``;
- ``--queries``: JSONL, ``{"id": ..., "query": ..., "candidates": [names]?}`` per line; without
  ``candidates`` the whole toolbox is ranked;
- ``--support`` (optional): JSONL, labelled examples ``{"query": ..., "tool": name}`` to adapt on;
- ``--output``: JSONL, ``{"id": ..., "ranking": [{"name": ..., "score": ...}, ...]}`` per query,
  in input order, written to a temporary file and renamed, so an existing file is replaced only
  by a complete one;
- without ``--checkpoint``, the pretrained zero-shot encoder ranks the tools.

Bad input (invalid JSON, a tool without a name or description, duplicate names, an unknown or
too short candidate list, an empty query, an example naming an unknown tool, a missing or corrupt
checkpoint) stops the command with one line ``error: FILE:LINE: ...`` on stderr and exit status 1.
"""

import os
import pathlib
import sys
import time

from absl import app
from absl import flags
from absl import logging

_ROOT = pathlib.Path(__file__).resolve().parents[1]

FLAGS = flags.FLAGS
flags.DEFINE_string("tools", None, "Tool specs (JSON): OpenAI, MCP tools/list or plain list.")
flags.DEFINE_string("queries", None, "Queries (JSONL): {id, query, candidates?} per line.")
flags.DEFINE_string("output", None, "Predictions (JSONL): {id, ranking: [{name, score}]}.")
flags.DEFINE_string("checkpoint", None, "Training workdir; default: the zero-shot encoder.")
flags.DEFINE_string("support", None, "Labelled examples (JSONL): {query, tool} per line.")
flags.DEFINE_integer("top_k", 5, "Tools per ranking (fewer if a query has fewer candidates).",
                     lower_bound=1)
flags.DEFINE_string("which", "best", "Which checkpoint of --checkpoint: best or latest.")
flags.DEFINE_integer("progress_from", 256, "Show a progress bar from this many queries on.")
flags.mark_flags_as_required(["tools", "queries", "output"])


def select(tools_path, queries_path, output_path, checkpoint=None, support_path=None,
           top_k=5, which="best", progress_from=256) -> str:
  """Reads, validates, ranks and writes; returns the summary line. Raises on bad input."""
  from mta_jax import toolspec  # pylint: disable=import-outside-toplevel
  from mta_jax.selector import ToolSelector  # pylint: disable=import-outside-toplevel
  t0 = time.perf_counter()
  # Every input is validated before the model loads: bad input fails in a second.
  tools = toolspec.read_tools(tools_path)
  names = [t.name for t in tools]
  queries = toolspec.read_queries(queries_path, names)
  support = toolspec.read_support(support_path, names) if support_path else []
  toolspec.check_output(output_path)
  if checkpoint:
    selector = ToolSelector.load(checkpoint, which=which)
  else:
    selector = ToolSelector.pretrained()
  selector.set_tools(tools, warmup=False)
  selector.adapt(support)
  ranked = selector.rank([q.query for q in queries], [q.candidates for q in queries],
                         top_k=top_k, progress=len(queries) >= progress_from)
  rows = ({"id": q.id, "ranking": [{"name": c.name, "score": round(c.score, 6)} for c in r]}
          for q, r in zip(queries, ranked))
  toolspec.write_jsonl_atomic(output_path, rows)
  secs = time.perf_counter() - t0
  model = f"checkpoint {checkpoint}" if checkpoint else "zero-shot encoder"
  return (f"ranked {len(queries)} queries over {len(tools)} tools "
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
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / ".jax_cache"))
  import jax  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  errors = _known_errors()
  try:
    summary = select(FLAGS.tools, FLAGS.queries, FLAGS.output, FLAGS.checkpoint, FLAGS.support,
                     FLAGS.top_k, FLAGS.which, FLAGS.progress_from)
  except errors as e:
    sys.exit(f"error: {e}")
  print(summary, flush=True)


if __name__ == "__main__":
  app.run(main)
