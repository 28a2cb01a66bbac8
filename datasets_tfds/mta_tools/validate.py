"""Validates the released MTA-Tools JSONL: every problem as ``file:line: field: message``.

Rejects: invalid JSON, a missing field, duplicate tool names, an unknown gold tool (or a wrong
``tool_index`` / ``domain``), an argument the tool's schema lacks, an argument of the wrong
type, an enum violation, a required argument missing although the query states a value for
it, duplicate queries, wrong totals (155 tools, 9,377 pairs, 7 domains and their tool counts),
fewer than 40 pairs or 15 distinct phrasings for a tool, fewer than 30% indirect queries.

Release 1.1.0 and later (``data/<version>/`` with its ``metadata.json``) must also pass the
rows of the 1.1 table that a program can check (``row_defects``, ``release_stats``): every gold
call valid against its tool's schema (every required argument present), no call mixing
Windows and POSIX paths, no impossible workout pace, every date argument derivable from the
query and the reference date (``dates.py``), every ``typo`` row different from its clean form
(``typo_of``) and every other row without one, no doubled articles ("my the", "a a"), one
reference date in every record, queries per realized template <= 1.5, distinct-3 >= 0.65 on the
seeded 5,000-query sample and BM25 top-1 among a domain's tools <= 45% (``ENFORCED``; the
5-way BM25 and encoder rows need numpy or the encoder and are measured by ``card.py``).

Usage: ``python datasets_tfds/mta_tools/validate.py [data_dir]`` (``data/1.1.0`` for the 1.1.0
release). Standard library only.
"""

from __future__ import annotations

import collections
import json
import math
import random
import re
import sys
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import check_sources as cs  # pylint: disable=wrong-import-position
import dates  # pylint: disable=wrong-import-position

TOOL_KEYS = ("index", "name", "domain", "group", "description", "parameters", "split")
QA_KEYS = ("id", "domain", "query", "tool", "tool_index", "arguments", "style", "template",
           "split")
QA_KEYS_1_1 = QA_KEYS + ("template_text", "typo_of", "reference_date")
STYLES = ("direct", "indirect", "colloquial", "long", "terse", "typo")
# Release 1.1.0's dataset-level targets (issue 21), checked on the whole release.
MAX_QUERIES_PER_TEMPLATE, MIN_DISTINCT_3, MAX_BM25_TOP1 = 1.5, 0.65, 0.45
DISTINCT_SAMPLE, SAMPLE_SEED = 5000, 0
# The dataset-level targets the release meets and the validator therefore enforces (distinct-3
# since the second authoring round of 1.1.0 brought it from 0.632 to 0.672).
ENFORCED = ("queries_per_template", "distinct_3", "bm25_top1_in_domain")
WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\|\\")
POSIX_PATH = re.compile(r"^(~|\.{1,2})?/|^~$")
DOUBLED_ARTICLE = re.compile(r"\b(a|an|the|my|your|our|their)\s+(a|an|the|my|your|our|their)\b",
                             re.IGNORECASE)
# Plausible pace (minutes per km) of a logged workout, by activity.
PACE_MIN_PER_KM = {"running": (2.8, 10), "walking": (7, 20), "cycling": (1, 6),
                   "swimming": (10, 45), "hiking": (8, 30), "rowing": (3, 9)}


def row_defects(q: dict, tool: dict, reference_date: str | None) -> list[tuple[str, str, str]]:
  """The 1.1 row checks of one record: (kind, field, message) per defect. Kinds: ``schema``,
  ``mixed_paths``, ``pace``, ``date``, ``typo_label``, ``doubled_article``. Used by the
  validator (1.1.0+) and by ``card.py`` (to count the same defects in every release)."""
  out = []
  props = tool["parameters"].get("properties", {})
  args = q["arguments"]
  for name, value in args.items():
    if name not in props:
      out.append(("schema", f"arguments.{name}", f"not a parameter of {q['tool']!r}"))
    elif not cs.value_matches_type(value, props[name]):
      out.append(("schema", f"arguments.{name}", f"{value!r} is not valid for {props[name]}"))
  for name in tool["parameters"].get("required", []):
    if name not in args:
      out.append(("schema", f"arguments.{name}", "required argument missing"))
  strings = [v for v in args.values() if isinstance(v, str)]
  if any(WINDOWS_PATH.search(v) for v in strings) and any(POSIX_PATH.search(v) for v in strings):
    out.append(("mixed_paths", "arguments", "mixes Windows and POSIX paths: "
                f"{[v for v in strings if WINDOWS_PATH.search(v) or POSIX_PATH.search(v)]}"))
  if {"distance_km", "duration_minutes", "activity"} <= set(args) and args["distance_km"]:
    pace = args["duration_minutes"] / args["distance_km"]
    lo, hi = PACE_MIN_PER_KM.get(args["activity"], (0, math.inf))
    if not lo <= pace <= hi:
      out.append(("pace", "arguments", f"{args['activity']} at {pace:.1f} min/km is not "
                  f"plausible ({lo}-{hi})"))
  clean = q.get("typo_of") or q["query"]
  for name, value in args.items():
    if dates.is_date_value(value):
      past = "past" in props.get(name, {}).get("description", "").lower()
      if not dates.derivable(value, clean, reference_date, past):
        out.append(("date", f"arguments.{name}", f"{value} cannot be derived from the query "
                    f"and the reference date {reference_date}"))
  if q["style"] == "typo" and (not q.get("typo_of") or q["typo_of"] == q["query"]):
    out.append(("typo_label", "style", "a 'typo' row without a typo"))
  if q["style"] != "typo" and q.get("typo_of"):
    out.append(("typo_label", "typo_of", "a clean form on a row that is not 'typo'"))
  if DOUBLED_ARTICLE.search(clean) or DOUBLED_ARTICLE.search(q["query"]):
    out.append(("doubled_article", "query", f"doubled article "
                f"{DOUBLED_ARTICLE.search(clean + ' ' + q['query']).group()!r}"))
  return out


def trigrams(text: str) -> list[tuple[str, ...]]:
  words = re.findall(r"[a-z0-9']+", text.lower())
  return [tuple(words[i:i + 3]) for i in range(len(words) - 2)]


def distinct_3(queries: list[str], n: int = DISTINCT_SAMPLE, seed: int = SAMPLE_SEED) -> float:
  """Distinct word trigrams / all trigrams over a seeded sample of ``n`` queries."""
  sample = random.Random(seed).sample(queries, min(n, len(queries)))
  grams = [g for q in sample for g in trigrams(q)]
  return len(set(grams)) / max(len(grams), 1)


def queries_per_template(qa: list[dict]) -> float:
  """Pairs / distinct (tool, realized template) they come from; a release without paraphrase
  rules realizes each authored template as itself."""
  keys = {(q["tool"], q.get("template_text", q["template"])) for q in qa}
  return len(qa) / max(len(keys), 1)


def _tokens(text: str) -> list[str]:
  return re.findall(r"[a-z0-9]+", text.lower())


def tool_document(t: dict) -> str:
  """The tool's main document as every scorer reads it (= ``mta_jax.data.Tool.document``)."""
  props = t["parameters"].get("properties", {})
  props = {k: props[k] for k in sorted(props)}
  text = f"{t['name'].replace('_', ' ')}: {t['description']}"
  if props:
    text += " Parameters: " + "; ".join(
        f"{k} ({v.get('description', v.get('type', ''))})".strip() for k, v in props.items())
  return text


def bm25_top1_in_domain(tools: list[dict], qa: list[dict], k1: float = 1.5,
                        b: float = 0.75) -> float:
  """Top-1 accuracy of BM25 (index: the domain's tool documents; ties share the credit) for
  every query among all the tools of its domain (= ``mta_jax.bm25`` fitted per domain)."""
  credit = []
  for domain in sorted({t["domain"] for t in tools}):
    dt = [t for t in tools if t["domain"] == domain]
    docs = [collections.Counter(_tokens(tool_document(t))) for t in dt]
    lens = [sum(d.values()) for d in docs]
    avg = sum(lens) / len(lens)
    df = collections.Counter(w for d in docs for w in d)
    idf = {w: math.log1p((len(docs) - n + 0.5) / (n + 0.5)) for w, n in df.items()}
    pos = {t["name"]: i for i, t in enumerate(dt)}
    for q in qa:
      if q["tool"] not in pos:
        continue
      toks = _tokens(q["query"])
      scores = []
      for d, n in zip(docs, lens):
        norm = k1 * (1 - b + b * n / avg)
        scores.append(sum(idf[w] * d[w] * (k1 + 1) / (d[w] + norm) for w in toks if w in d))
      best = max(scores)
      tied = [i for i, x in enumerate(scores) if abs(x - best) <= 1e-12 * max(1.0, abs(best))]
      credit.append(1 / len(tied) if pos[q["tool"]] in tied else 0.0)
  return sum(credit) / max(len(credit), 1)


def release_version(data_dir: pathlib.Path) -> str:
  """1.0.0 for a folder without ``metadata.json`` (the first release), else its version."""
  meta = data_dir / "metadata.json"
  return json.loads(meta.read_text(encoding="utf-8"))["version"] if meta.exists() else "1.0.0"
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
  common = cs.load_common(sources_dir)
  out = {}
  for fname, _ in cs.DOMAIN_FILES.values():
    path = sources_dir / fname
    if not path.exists():
      continue
    data = json.loads(path.read_text(encoding="utf-8"))
    pools = {**common, **data["pools"]}
    for t in data["tools"]:
      out[t["name"]] = {p: [cs.pool_entry(e)[0] for e in cs.joint_field(pools, pool) or []]
                        for p, pool in t.get("slots", {}).items()}
  return out


def validate(data_dir: pathlib.Path = HERE / "data",
             sources_dir: pathlib.Path | None = cs.SOURCES_DIR, check_totals: bool = True) -> dict:
  """Raises ``ValidationError`` listing every problem; returns summary statistics otherwise.

  ``data_dir`` with a ``metadata.json`` is a 1.1.0+ release and gets the 1.1 checks too (its
  sources: ``sources/<version>/`` when ``sources_dir`` is the default)."""
  problems: list[str] = []
  version = release_version(data_dir)
  strict = version != "1.0.0"
  reference_date = None
  if strict:
    reference_date = json.loads((data_dir / "metadata.json").read_text("utf-8"))["reference_date"]
    if sources_dir == cs.SOURCES_DIR:
      sources_dir = cs.SOURCES_DIR / version
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
    missing = [k for k in (QA_KEYS_1_1 if strict else QA_KEYS) if k not in q]
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
    if strict:
      if q["reference_date"] != reference_date:
        problems.append(f"{where}: reference_date: {q['reference_date']!r}, but the release's is "
                        f"{reference_date!r}")
      problems += [f"{where}: {field}: {message}" for kind, field, message in
                   row_defects(q, tool, reference_date)
                   if kind != "schema" or "required argument missing" in message]
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
  stats = {}
  if strict and check_totals and not problems:
    stats = release_stats(list(tools.values()), [q for _, q in qa_rows])
  if stats and "queries_per_template" in ENFORCED:
    if stats["queries_per_template"] > MAX_QUERIES_PER_TEMPLATE:
      problems.append(f"{qa_path}:0: template: {stats['queries_per_template']:.2f} queries per "
                      f"realized template > {MAX_QUERIES_PER_TEMPLATE}")
  if stats and "distinct_3" in ENFORCED:
    if stats["distinct_3"] < MIN_DISTINCT_3:
      problems.append(f"{qa_path}:0: query: distinct-3 {stats['distinct_3']:.3f} < "
                      f"{MIN_DISTINCT_3} on the {DISTINCT_SAMPLE}-query sample")
  if stats and "bm25_top1_in_domain" in ENFORCED:
    if stats["bm25_top1_in_domain"] > MAX_BM25_TOP1:
      problems.append(f"{qa_path}:0: query: BM25 top-1 among the domain's tools "
                      f"{stats['bm25_top1_in_domain']:.1%} > {MAX_BM25_TOP1:.0%}")
  if problems:
    raise ValidationError(problems)
  return {"tools": len(tools), "pairs": len(qa_rows), "styles": dict(styles), **stats,
          "min_pairs": min(per_tool.values(), default=0),
          "min_phrasings": min((len(v) for v in phrasings.values()), default=0)}


def release_stats(tools: list[dict], qa: list[dict]) -> dict:
  """The dataset-level measures of the 1.1 table that need no encoder."""
  return {"queries_per_template": queries_per_template(qa),
          "distinct_3": distinct_3([q["query"] for q in qa]),
          "bm25_top1_in_domain": bm25_top1_in_domain(tools, qa)}


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
