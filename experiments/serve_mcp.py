r"""An MCP server (stdio) that tells an agent which of its tools fit a request.

    python experiments/serve_mcp.py [--tools=examples/toolbox/tools.json] \
        [--checkpoint=WORKDIR] [--top_k=5] [--query_from=last_user] [--strict] [--cache_dir=DIR]
        [--lexical=false]

Without ``--checkpoint`` the server ranks with the pretrained zero-shot hybrid (the encoder's
cosine plus the BM25 term, ``ToolSelector.pretrained``); ``--lexical=false`` with the encoder
alone. A checkpoint keeps the scorer it was trained with (``--lexical`` with it is an error).

Built on the official MCP Python SDK (``mcp``, pinned in requirements.txt). Two MCP tools:
- ``rank_tools(query | messages, top_k?, tools?, candidates?, query_from?)``: the ranking
  ``{"ranking": [{"name", "score"}], "warnings": [...]}`` of the server's toolbox, or of
  ``tools`` (OpenAI, MCP ``tools/list`` or plain specs) given with the call, for one request (a
  string or OpenAI chat ``messages``); the same ranking ``experiments/select_tools.py`` writes for
  the same inputs;
- ``set_tools(tools)``: replaces the server's toolbox (embedded once; the disk cache keeps the
  embeddings for the next start).

Bad arguments (an empty query, two tools of one name in one list, an unknown candidate, chat
messages without a user turn, ...) come back as MCP tool errors (``isError``) carrying the same
one-line message as the command line; the server keeps serving. A bad ``--tools`` file or
checkpoint stops the start with one line ``error: ...`` on stderr and exit status 1, before the
model loads. Nothing but the protocol is written to stdout.
"""

import sys
import threading
import warnings

from absl import app
from absl import flags
from absl import logging

QUERY_FROM = ("last_user", "user_turns", "all")  # = toolspec.QUERY_FROM (kept import-free)

FLAGS = flags.FLAGS
flags.DEFINE_string("tools", None, "Tool specs (JSON): the toolbox until set_tools replaces it.")
flags.DEFINE_string("checkpoint", None, "Training workdir; default: the zero-shot encoder.")
flags.DEFINE_string("which", "best", "Which checkpoint of --checkpoint: best or latest.")
flags.DEFINE_integer("top_k", 5, "Default tools per ranking.", lower_bound=1)
flags.DEFINE_enum("query_from", "last_user", QUERY_FROM, "Default for chat requests.")
flags.DEFINE_bool("strict", False, "Texts outside the encoder's vocabulary are an error.")
flags.DEFINE_string("cache_dir", "", "Disk cache of tool embeddings; default: the per-user "
                    "cache folder; 'none': no cache.")
flags.DEFINE_bool("lexical", True, "Without --checkpoint: add the BM25 term to the encoder's "
                  "cosine (the zero-shot hybrid, default); false: the encoder alone. Not with "
                  "--checkpoint (it keeps the scorer it was trained with).")


class Service:
  """The selector behind the two MCP tools, one call at a time; errors are ``InputError``."""

  def __init__(self, selector, top_k: int, query_from: str, strict: bool):
    self.selector, self.top_k, self.query_from, self.strict = selector, top_k, query_from, strict
    self.has_tools = False
    self._lock = threading.Lock()

  def _warned(self, fn):
    from mta_jax import windowing  # pylint: disable=import-outside-toplevel
    with self._lock, warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always", windowing.TextWarning)
      out = fn()
    out["warnings"] = [str(w.message) for w in caught
                       if issubclass(w.category, windowing.TextWarning)]
    return out

  def set_tools(self, tools) -> dict:
    def run():
      self.selector.set_tools(tools, strict=self.strict)
      self.has_tools = True
      return {"n_tools": len(self.selector.tool_names)}
    return self._warned(run)

  def rank_tools(self, query=None, messages=None, top_k=None, tools=None, candidates=None,
                 query_from=None) -> dict:
    from mta_jax import toolspec  # pylint: disable=import-outside-toplevel
    if (query is None) == (messages is None):
      raise toolspec.InputError("give 'query' (a string) or 'messages' (chat turns), not "
                                f"{'both' if query is not None else 'neither'}")
    if tools is None and not self.has_tools:
      raise toolspec.InputError("no tools: pass 'tools' with the call, call set_tools first, or "
                                "start the server with --tools")
    request = query if messages is None else {"messages": messages}
    k = self.top_k if top_k is None else top_k

    def run():
      (ranking,) = self.selector.rank(
          [request], None if candidates is None else [candidates], top_k=k,
          tools=None if tools is None else [tools], query_from=query_from or self.query_from,
          strict=self.strict)
      return {"ranking": [{"name": c.name, "score": round(c.score, 6)} for c in ranking]}
    return self._warned(run)


def build_server(service: Service):
  """The ``MCPServer`` with ``rank_tools`` and ``set_tools``; ``InputError`` -> tool errors."""
  from typing import Any  # pylint: disable=import-outside-toplevel
  from mcp.server.mcpserver import MCPServer  # pylint: disable=import-outside-toplevel
  from mcp.server.mcpserver.exceptions import ToolError  # pylint: disable=import-outside-toplevel
  from mta_jax import toolspec  # pylint: disable=import-outside-toplevel

  server = MCPServer("mta-tool-selector", instructions=(
      "Ranks tools for a request before they fill the context: call rank_tools with the "
      "request (query or chat messages) and, optionally, your own tool list."))

  def guarded(fn, *args, **kwargs):
    try:
      return fn(*args, **kwargs)
    except toolspec.InputError as e:
      # The selector names the request "query #0" (one request a call): say "query"/"tools".
      message = str(e)
      message = message[len("query #0: "):] if message.startswith("query #0: ") else message
      raise ToolError(message) from None

  @server.tool()
  def rank_tools(query: str | None = None, messages: list[dict[str, Any]] | None = None,
                 top_k: int | None = None,
                 tools: list[dict[str, Any]] | dict[str, Any] | None = None,
                 candidates: list[str] | None = None,
                 query_from: str | None = None) -> dict[str, Any]:
    """Ranks tools for one request, best first: the server's toolbox, or `tools` (OpenAI,
    MCP tools/list or plain specs) given here. `query` is the request text, or `messages` the
    OpenAI chat turns (`query_from`: last_user, user_turns or all). `candidates` restricts the
    ranking to these names. Returns {"ranking": [{"name", "score"}], "warnings": [...]}."""
    return guarded(service.rank_tools, query, messages, top_k, tools, candidates, query_from)

  @server.tool()
  def set_tools(tools: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """Replaces the server's toolbox (OpenAI, MCP tools/list or plain specs)."""
    return guarded(service.set_tools, tools)

  return server


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)
  # Repeat runs reuse compiled programs (git-ignored cache, as `make` and the tests use).
  from mta_jax import runtime  # pylint: disable=import-outside-toplevel
  runtime.setup_jax()
  from mta_jax import toolspec  # pylint: disable=import-outside-toplevel
  from mta_jax.models import WeightsNotFoundError  # pylint: disable=import-outside-toplevel
  from mta_jax.selector import ToolSelector  # pylint: disable=import-outside-toplevel
  errors = (toolspec.InputError, WeightsNotFoundError)
  if FLAGS.checkpoint:
    from mta_jax import checkpointing  # pylint: disable=import-outside-toplevel
    errors += (checkpointing.CheckpointError,)
  try:
    if FLAGS.checkpoint and FLAGS["lexical"].present:
      raise toolspec.InputError("--lexical applies to the pretrained selector only: a checkpoint "
                                "ranks with the scorer it was trained with (its scorer.lexical)")
    tools = toolspec.read_tools(FLAGS.tools) if FLAGS.tools else None  # before the model loads
    selector = (ToolSelector.load(FLAGS.checkpoint, which=FLAGS.which) if FLAGS.checkpoint
                else ToolSelector.pretrained(lexical=FLAGS.lexical))
    if FLAGS.cache_dir.lower() != "none":
      selector.use_cache(FLAGS.cache_dir)
    service = Service(selector, FLAGS.top_k, FLAGS.query_from, FLAGS.strict)
    if tools is not None:
      for line in service.set_tools(tools)["warnings"]:
        print(f"warning: {FLAGS.tools}: {line}", file=sys.stderr, flush=True)
  except errors as e:
    sys.exit(f"error: {e}")
  build_server(service).run("stdio")


if __name__ == "__main__":
  app.run(main)
