"""Validates the released MTA-Tools JSONL: every problem as ``file:line: field: message``.

Rejects: invalid JSON, a missing field, duplicate tool names, an unknown gold tool (or a wrong
``tool_index`` / ``domain``), an argument the tool's schema lacks, an argument of the wrong
type, an enum violation, a required argument missing although the query states a value for
it, duplicate queries, wrong totals (155 tools, 9,377 pairs, 7 domains and their tool counts),
fewer than 40 pairs or 15 distinct phrasings for a tool, fewer than 30% indirect queries.

Usage: ``python datasets_tfds/mta_tools/validate.py [data_dir]``. Standard library only.
"""

from __future__ import annotations

import collections
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import check_sources as cs  # pylint: disable=wrong-import-position

TOOL_KEYS = ("index", "name", "domain", "group", "description", "parameters", "split")
QA_KEYS = ("id", "domain", "query", "tool", "tool_index", "arguments", "style", "template",
           "split")
STYLES = ("direct", "indirect", "colloquial", "long", "terse", "typo")
EXPECTED_TOOLS = {d: n for d, (_, n) in cs.DOMAIN_FILES.items()}
EXPECTED_PAIRS = 9377
MIN_PAIRS, MIN_PHRASINGS, MIN_INDIRECT = 40, 15, 0.30


class ValidationError(ValueError):
  """The released data breaks a rule; ``problems`` lists every ``file:line: field: message``."""

  def __init__(self, problems: list[str]):
    self.problems = problems
    more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
    super().__init__(f"{len(problems)} problem(s):\n" + "\n".join(problems[:20]) + more)


def _read_jsonl(path: pathlib.Path, problems: list[str]):
  rows = []
  for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
    if not line.strip():
      continue
    try:
      rows.append((n, json.loads(line)))
    except json.JSONDecodeError as e:
      problems.append(f"{path}:{n}: column {e.colno}: invalid JSON: {e.msg}")
  return rows


def _slot_pools(sources_dir: pathlib.Path | None) -> dict[str, dict[str, list[str]]]:
  """tool -> param -> surface texts of its slot pool (to find values a query states)."""
  if sources_dir is None or not sources_dir.exists():
    return {}
  common = cs.load_common()
  out = {}
  for fname, _ in cs.DOMAIN_FILES.values():
    path = sources_dir / fname
    if not path.exists():
      continue
    data = json.loads(path.read_text(encoding="utf-8"))
    pools = {**common, **data["pools"]}
    for t in data["tools"]:
      out[t["name"]] = {p: [cs.pool_entry(e)[0] for e in pools.get(pool, [])]
                        for p, pool in t.get("slots", {}).items()}
  return out


def validate(data_dir: pathlib.Path = HERE / "data",
             sources_dir: pathlib.Path | None = cs.SOURCES_DIR, check_totals: bool = True) -> dict:
  """Raises ``ValidationError`` listing every problem; returns summary statistics otherwise."""
  problems: list[str] = []
  tools_path, qa_path = data_dir / "tools.jsonl", data_dir / "qa.jsonl"
  for p in (tools_path, qa_path):
    if not p.exists():
      raise ValidationError([f"{p}:0: file: missing (run synthesize.py)"])
  tools = {}
  for n, t in _read_jsonl(tools_path, problems):
    missing = [k for k in TOOL_KEYS if k not in t]
    if missing:
      problems.append(f"{tools_path}:{n}: {missing[0]}: missing field")
      continue
    if t["name"] in tools:
      problems.append(f"{tools_path}:{n}: name: duplicate tool name {t['name']!r}")
      continue
    if t["index"] != len(tools):
      problems.append(f"{tools_path}:{n}: index: expected {len(tools)}, got {t['index']}")
    tools[t["name"]] = t
  pools = _slot_pools(sources_dir)
  seen_queries: dict[str, int] = {}
  per_tool = collections.Counter()
  phrasings = collections.defaultdict(set)
  styles = collections.Counter()
  qa_rows = _read_jsonl(qa_path, problems)
  for n, q in qa_rows:
    where = f"{qa_path}:{n}"
    missing = [k for k in QA_KEYS if k not in q]
    if missing:
      problems.append(f"{where}: {missing[0]}: missing field")
      continue
    tool = tools.get(q["tool"])
    if tool is None:
      problems.append(f"{where}: tool: unknown gold tool {q['tool']!r}")
      continue
    if q["tool_index"] != tool["index"]:
      problems.append(f"{where}: tool_index: {q['tool_index']} but {q['tool']!r} is {tool['index']}")
    if q["domain"] != tool["domain"] or q["split"] != tool["split"]:
      problems.append(f"{where}: domain/split: do not match the tool's "
                      f"({tool['domain']}, {tool['split']})")
    if q["style"] not in STYLES:
      problems.append(f"{where}: style: {q['style']!r} is not one of {STYLES}")
    if not q["query"].strip():
      problems.append(f"{where}: query: empty")
    key = " ".join(q["query"].lower().split())
    if key in seen_queries:
      problems.append(f"{where}: query: duplicate of line {seen_queries[key]}")
    seen_queries.setdefault(key, n)
    props = tool["parameters"].get("properties", {})
    args = q["arguments"]
    if not isinstance(args, dict):
      problems.append(f"{where}: arguments: must be an object")
      continue
    for name, value in args.items():
      if name not in props:
        problems.append(f"{where}: arguments.{name}: not a parameter of {q['tool']!r}")
      elif not cs.value_matches_type(value, {k: v for k, v in props[name].items() if k != "enum"}):
        problems.append(f"{where}: arguments.{name}: {value!r} is not of type {props[name]['type']}")
      elif "enum" in props[name] and value not in props[name]["enum"]:
        problems.append(f"{where}: arguments.{name}: {value!r} is not in enum {props[name]['enum']}")
    for name in tool["parameters"].get("required", []):
      if name in args:
        continue
      stated = [t for t in pools.get(q["tool"], {}).get(name, [])
                if len(t) >= 3 and t.lower() in q["query"].lower()]
      if stated:
        problems.append(f"{where}: arguments.{name}: required argument missing although the "
                        f"query states {stated[0]!r}")
    per_tool[q["tool"]] += 1
    phrasings[q["tool"]].add(q["template"])
    styles[q["style"]] += 1
  if check_totals:
    domains = collections.Counter(t["domain"] for t in tools.values())
    if dict(domains) != EXPECTED_TOOLS:
      problems.append(f"{tools_path}:0: domain: tool counts {dict(domains)} != {EXPECTED_TOOLS}")
    if len(qa_rows) != EXPECTED_PAIRS:
      problems.append(f"{qa_path}:0: total: {len(qa_rows)} pairs, expected {EXPECTED_PAIRS}")
    for name in tools:
      if per_tool[name] < MIN_PAIRS:
        problems.append(f"{qa_path}:0: tool {name}: {per_tool[name]} pairs < {MIN_PAIRS}")
      if len(phrasings[name]) < MIN_PHRASINGS:
        problems.append(f"{qa_path}:0: tool {name}: {len(phrasings[name])} phrasings < "
                        f"{MIN_PHRASINGS}")
    total = sum(styles.values())
    if total and styles["indirect"] / total < MIN_INDIRECT:
      problems.append(f"{qa_path}:0: style: {styles['indirect'] / total:.1%} indirect < "
                      f"{MIN_INDIRECT:.0%}")
  if problems:
    raise ValidationError(problems)
  return {"tools": len(tools), "pairs": len(qa_rows), "styles": dict(styles),
          "min_pairs": min(per_tool.values(), default=0),
          "min_phrasings": min((len(v) for v in phrasings.values()), default=0)}


def main(argv: list[str]) -> int:
  data_dir = pathlib.Path(argv[1]) if len(argv) > 1 else HERE / "data"
  try:
    stats = validate(data_dir)
  except ValidationError as e:
    print("\n".join(e.problems))
    return 1
  print(f"OK: {stats}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
