"""Tool specifications, queries and labelled examples from users: parsing and validation.

Three tool formats are accepted, also mixed within one list:
- OpenAI function calling: ``[{"type": "function", "function": {"name", "description",
  "parameters"}}]``;
- an MCP ``tools/list`` result: ``{"tools": [{"name", "description", "inputSchema"}]}`` (or the
  whole JSON-RPC response, ``{"result": {"tools": [...]}}``);
- a plain list of ``{"name", "description", "parameters"}``.

Every tool becomes a ``mta_jax.data.Tool``, so a user's tool is read by the model through exactly
the same document text (``Tool.document()``) and documentation views as the training tools.

Every problem raises ``InputError`` with one line that says what is wrong and where: the file and
line for files (``read_tools``, ``read_queries``, ``read_support``), the position in the list for
Python objects. ``write_jsonl_atomic`` never leaves a half-written output behind.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any, Iterable, Mapping, Sequence

from mta_jax.data import Tool


class InputError(ValueError):
  """A malformed tool spec, query or labelled example (the message says what and where)."""


# ---------------------------------------------------------------------------- tools

def _tool_entry(item: Any, where: str) -> tuple[Any, Any, Any]:
  """(name, description, parameters) of one entry in any of the three formats."""
  if not isinstance(item, Mapping):
    raise InputError(f"{where}: a tool must be a JSON object, got {type(item).__name__}")
  if item.get("type") == "function" and isinstance(item.get("function"), Mapping):
    item = item["function"]  # OpenAI function calling
  params = item.get("parameters", item.get("inputSchema", {}))  # plain / MCP
  return item.get("name"), item.get("description"), params


def _check_parameters(params: Any, where: str) -> dict:
  """JSON-schema parameters: an object whose ``properties`` (if any) map names to objects."""
  if params is None:
    return {}
  if not isinstance(params, Mapping):
    raise InputError(f"{where}: 'parameters' must be a JSON-schema object, got "
                     f"{type(params).__name__}")
  props = params.get("properties", {})
  if not isinstance(props, Mapping):
    raise InputError(f"{where}: 'parameters.properties' must be an object")
  for k, v in props.items():
    if not isinstance(v, Mapping):
      raise InputError(f"{where}: parameter {k!r} must be a JSON-schema object, got "
                       f"{type(v).__name__}")
  return dict(params)


def _tool_list(spec: Any, source: str) -> list:
  if isinstance(spec, Mapping):
    if isinstance(spec.get("result"), Mapping):  # a whole JSON-RPC response
      spec = spec["result"]
    if "tools" not in spec:
      raise InputError(f"{source}: expected a list of tools or an MCP tools/list result "
                       "{\"tools\": [...]}, got an object without 'tools'")
    spec = spec["tools"]
  if not isinstance(spec, (list, tuple)):
    raise InputError(f"{source}: expected a list of tools, got {type(spec).__name__}")
  return list(spec)


def parse_tools(spec: Any, source: str = "tools") -> list[Tool]:
  """Any accepted tool format (or a list of ``Tool``) -> validated ``Tool`` list, input order.

  Raises ``InputError`` for an entry without a name or description, bad parameters, duplicate
  names, or fewer than two tools (nothing to choose between).
  """
  tools: list[Tool] = []
  seen: dict[str, int] = {}
  for i, item in enumerate(_tool_list(spec, source)):
    if isinstance(item, Tool):
      name, desc, params = item.name, item.description, item.parameters
    else:
      name, desc, params = _tool_entry(item, f"{source}: tool #{i}")
    where = f"{source}: tool #{i}" + (f" ({name!r})" if isinstance(name, str) and name else "")
    if not isinstance(name, str) or not name.strip():
      raise InputError(f"{where} has no 'name' (a non-empty string is required)")
    if not isinstance(desc, str) or not desc.strip():
      raise InputError(f"{where} has no 'description' (a non-empty string is required)")
    tool = Tool(index=i, name=name, description=desc.strip(),
                parameters=_check_parameters(params, where), group="", split="")
    if name in seen:
      other = tools[seen[name]]
      how = ("the same spec twice" if spec_id(other) == spec_id(tool) else
             "two different specs of one name")
      raise InputError(f"{source}: duplicate tool name {name!r} (tools #{seen[name]} and #{i}): "
                       f"{how}; names must be unique within one tool list")
    seen[name] = i
    tools.append(tool)
  if len(tools) < 2:
    raise InputError(f"{source}: {len(tools)} tool(s) given; at least 2 are needed to choose "
                     "between")
  return tools


def spec_id(tool: Tool) -> str:
  """A tool's identity: its name, description and parameters (not its name alone)."""
  return hashlib.sha256(json.dumps([tool.name, tool.description, tool.parameters],
                                   sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ToolLists:
  """Parses per-query tool lists once per distinct list (requests often share a list)."""

  def __init__(self):
    self._memo: dict[Any, tuple[list[Tool], Any]] = {}

  def parse(self, spec: Any, source: str) -> list[Tool]:
    """``parse_tools(spec, source)``; an equal list (same JSON, or the same object) gives the
    same list object back, so callers can group queries by it."""
    try:
      key = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):  # e.g. a list of ``Tool``: the object is the key
      key = ("object", id(spec))
    if key in self._memo:
      return self._memo[key][0]
    tools = parse_tools(spec, source)
    self._memo[key] = (tools, spec)  # keeps ``spec`` alive, so its id stays its own
    return tools


# ---------------------------------------------------------------------------- chat messages

QUERY_FROM = ("last_user", "user_turns", "all")
DEFAULT_QUERY_FROM = "last_user"


def _message_text(message: Any, where: str) -> tuple[str, str]:
  """(role, text) of one chat message; ``content`` is a string, a list of parts
  (``{"type": "text", "text": ...}``; other parts are skipped) or null."""
  if not isinstance(message, Mapping):
    raise InputError(f"{where}: a message must be a JSON object, got {type(message).__name__}")
  role = message.get("role")
  if not isinstance(role, str) or not role:
    raise InputError(f"{where}: message without a 'role'")
  content = message.get("content")
  if content is None or isinstance(content, str):
    return role, (content or "").strip()
  if isinstance(content, (list, tuple)):
    parts = []
    for part in content:
      if isinstance(part, str):
        parts.append(part)
      elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
        parts.append(part["text"])
    return role, "\n".join(p.strip() for p in parts if p.strip())
  raise InputError(f"{where}: 'content' must be a string or a list of parts, got "
                   f"{type(content).__name__}")


def messages_text(messages: Any, where: str, query_from: str = DEFAULT_QUERY_FROM) -> str:
  """The text of a chat request that is encoded as the query.

  ``last_user``: the last user turn; ``user_turns``: every user turn, in order, one a line;
  ``all``: every turn's text (system, user, assistant, tool), in order, one a line.
  """
  if query_from not in QUERY_FROM:
    hint = difflib.get_close_matches(str(query_from), QUERY_FROM, n=1)
    raise InputError(f"query_from must be one of {', '.join(QUERY_FROM)}, got {query_from!r}" +
                     (f" (did you mean {hint[0]!r}?)" if hint else ""))
  if not isinstance(messages, (list, tuple)) or not messages:
    raise InputError(f"{where}: 'messages' must be a non-empty list of "
                     "{\"role\": ..., \"content\": ...} objects")
  turns = [_message_text(m, f"{where}: message #{i}") for i, m in enumerate(messages)]
  user = [t for r, t in turns if r == "user" and t]
  if query_from == "all":
    texts = [t for _, t in turns if t]
  elif query_from == "user_turns":
    texts = user
  else:
    texts = user[-1:]
  if not texts:
    raise InputError(f"{where}: 'messages' has no " +
                     ("text" if query_from == "all" else "user turn with text") +
                     f" (query_from={query_from})")
  return "\n".join(texts)


def query_text(query: Any, where: str, query_from: str = DEFAULT_QUERY_FROM) -> str:
  """A query as given to ``rank``: a string, ``{"messages": [...]}`` or a list of messages."""
  if isinstance(query, Mapping) and "messages" in query:
    return messages_text(query["messages"], where, query_from)
  if isinstance(query, (list, tuple)) and query and all(isinstance(m, Mapping) for m in query):
    return messages_text(query, where, query_from)
  return check_query(query, where)


# ---------------------------------------------------------------------------- queries, examples

def _unknown(name: Any, names: Mapping[str, int], where: str, what: str) -> InputError:
  hint = difflib.get_close_matches(str(name), list(names), n=1)
  return InputError(f"{where}: unknown tool {name!r} in {what}" +
                    (f" (did you mean {hint[0]!r}?)" if hint else ""))


def check_query(text: Any, where: str) -> str:
  """A query must be a non-empty string."""
  if not isinstance(text, str):
    raise InputError(f"{where}: 'query' must be a string, got {type(text).__name__}")
  if not text.strip():
    raise InputError(f"{where}: empty query")
  return text


def check_candidates(cands: Any, names: Mapping[str, int], where: str) -> list[int]:
  """Candidate names -> toolbox indices: known, distinct, at least two."""
  if isinstance(cands, str) or not isinstance(cands, (list, tuple)):
    raise InputError(f"{where}: 'candidates' must be a list of tool names")
  out = []
  for c in cands:
    if c not in names:
      raise _unknown(c, names, where, "candidates")
    out.append(names[c])
  if len(set(out)) != len(out):
    dup = next(c for c in cands if list(cands).count(c) > 1)
    raise InputError(f"{where}: tool {dup!r} is listed twice in candidates")
  if len(out) < 2:
    raise InputError(f"{where}: {len(out)} candidate(s); at least 2 are needed to choose between")
  return out


def candidate_rows(candidates: Any, n: int, names: Mapping[str, int]) -> list[list[int] | None]:
  """``rank``'s ``candidates`` -> per query, toolbox indices (None: the whole toolbox).

  None, one list of names for every query, or one entry per query (a list of names or None).
  """
  if candidates is None:
    return [None] * n
  if isinstance(candidates, str) or not isinstance(candidates, (list, tuple)):
    raise InputError("candidates must be a list of tool names or one such list per query")
  if not candidates or all(isinstance(c, str) for c in candidates):
    return [check_candidates(list(candidates), names, "candidates")] * n
  if len(candidates) != n:
    raise InputError(f"candidates has {len(candidates)} entries for {n} queries: give one "
                     "list of names for all queries or one entry per query")
  return [None if c is None else check_candidates(c, names, f"query #{i}")
          for i, c in enumerate(candidates)]


def check_example(example: Any, names: Mapping[str, int], where: str) -> tuple[str, int]:
  """A labelled example ``{"query", "tool"}`` (or a ``(query, tool)`` pair) -> (text, index)."""
  if isinstance(example, Mapping):
    missing = [k for k in ("query", "tool") if k not in example]
    if missing:
      raise InputError(f"{where}: labelled example without {' or '.join(map(repr, missing))}")
    text, tool = example.get("query"), example["tool"]
  elif isinstance(example, (list, tuple)) and len(example) == 2:
    text, tool = example
  else:
    raise InputError(f"{where}: a labelled example is {{\"query\": ..., \"tool\": ...}}")
  text = check_query(text, where)
  if tool not in names:
    raise _unknown(tool, names, where, "'tool'")
  return text, names[tool]


# ---------------------------------------------------------------------------- files

def _read_text(path: str | os.PathLike, what: str) -> str:
  p = pathlib.Path(path)
  if not p.is_file():
    raise InputError(f"{p}: {what} file does not exist")
  try:
    return p.read_text("utf-8-sig")  # a byte-order mark is not an error
  except UnicodeDecodeError as e:
    raise InputError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _json(text: str, where: str, line_offset: int = 0):
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise InputError(f"{where}:{e.lineno + line_offset}: invalid JSON: {e.msg} "
                     f"(column {e.colno})") from None


def read_tools(path: str | os.PathLike) -> list[Tool]:
  """A tools JSON file in any accepted format -> validated ``Tool`` list."""
  return parse_tools(_json(_read_text(path, "tools"), str(path)), str(path))


def _jsonl(path: str | os.PathLike, what: str) -> Iterable[tuple[int, dict]]:
  """(line number, object) of every non-blank line."""
  for n, line in enumerate(_read_text(path, what).splitlines(), 1):
    if not line.strip():
      continue
    obj = _json(line, str(path), line_offset=n - 1)
    if not isinstance(obj, dict):
      raise InputError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
    yield n, obj


@dataclasses.dataclass(frozen=True)
class QueryRow:
  """One line of a queries file: id, the text to encode, candidate names (None = every tool of
  the line's list), the line's own tools (None = the global ``--tools``)."""

  id: Any
  query: str
  candidates: tuple[str, ...] | None
  line: int
  tools: list[Tool] | None = None  # lines with equal lists share one list object


def read_queries(path: str | os.PathLike, names: Sequence[str] | None,
                 query_from: str = DEFAULT_QUERY_FROM) -> list[QueryRow]:
  """``{"id", "query" | "messages", "candidates"?, "tools"?}`` per line, validated.

  ``names``: the global toolbox (None: none given, so every line must bring ``tools``). A line's
  ``tools`` (any accepted format) replace the global toolbox for that line; ``candidates`` name
  tools of the line's own list when it has one. ``messages`` (OpenAI chat turns) become text as
  ``query_from`` says (see ``messages_text``). A missing ``id`` defaults to the line number.
  """
  index = None if names is None else {n: i for i, n in enumerate(names)}
  lists = ToolLists()
  rows = []
  for n, obj in _jsonl(path, "queries"):
    where = f"{path}:{n}"
    if "query" in obj and "messages" in obj:
      raise InputError(f"{where}: give 'query' or 'messages', not both")
    if "messages" in obj:
      text = messages_text(obj["messages"], where, query_from)
    elif "query" in obj:
      text = check_query(obj["query"], where)
    else:
      raise InputError(f"{where}: missing 'query' (or chat 'messages')")
    tools, line_index = None, index
    if "tools" in obj:
      tools = lists.parse(obj["tools"], f"{where}: 'tools'")  # one object per distinct list
      line_index = {t.name: i for i, t in enumerate(tools)}
    elif index is None:
      raise InputError(f"{where}: no 'tools' in this line and no global tool list (--tools) "
                       "given")
    cands = obj.get("candidates")
    if cands is not None:
      check_candidates(cands, line_index, where)
      cands = tuple(cands)
    rows.append(QueryRow(obj.get("id", n), text, cands, n, tools))
  if not rows:
    raise InputError(f"{path}: no queries")
  return rows


def read_support(path: str | os.PathLike, names: Sequence[str]) -> list[dict]:
  """``{"query", "tool"}`` per line, validated against the toolbox ``names``."""
  index = {n: i for i, n in enumerate(names)}
  out = []
  for n, obj in _jsonl(path, "support"):
    text, _ = check_example(obj, index, f"{path}:{n}")
    out.append({"query": text, "tool": obj["tool"]})
  return out


def check_output(path: str | os.PathLike) -> None:
  """An output path must be a file (new or existing) in an existing, writable folder."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise InputError(f"{path}: is a folder, not an output file")
  if not path.parent.is_dir():
    raise InputError(f"{path}: output folder {path.parent} does not exist")
  if not os.access(path.parent, os.W_OK):
    raise InputError(f"{path}: output folder {path.parent} is not writable")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Mapping]) -> int:
  """Writes one JSON object a line to a temporary file next to ``path``, then renames it.

  Whatever happens while ``rows`` is consumed, ``path`` holds either its previous content or the
  complete new file, and no temporary file is left behind. Returns the number of rows.
  """
  path = pathlib.Path(path)
  check_output(path)
  try:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  except OSError as e:
    raise InputError(f"{path}: cannot write there ({e.strerror})") from None
  n = 0
  try:
    # mkstemp makes the file private (0600); give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
  return n
