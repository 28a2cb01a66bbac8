"""Data synthesis: the hand-written sources -> the released ``data/tools.jsonl`` and ``data/qa.jsonl``.

Deterministic (fixed seeds derived from tool names, no global randomness): rerunning it on the
same sources gives byte-identical files, so the committed JSONL can be diffed and reviewed.

Stages (the paper's last two, after scenario definition, tool development and documentation,
which live in ``sources/``):
1. check the sources (``check_sources.py``);
2. allocate the 9,377 pairs over the 155 tools: 40 each, the rest in proportion to the tools'
   usage weights (largest remainder);
3. per tool, cycle through its templates in a seeded order and fill slots from the value pools,
   rejecting duplicates; a seeded 8% of pairs get realistic typing errors outside the slot values
   (style ``typo``), so the gold arguments stay exactly what the query says;
4. split tools, per domain, into train / validation / test (seen / validation / unseen tools).

Usage: ``python datasets_tfds/mta_tools/synthesize.py [--check]`` (``--check``: fail if the
committed files differ from what the sources produce).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import random
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import check_sources as cs  # pylint: disable=wrong-import-position

DATA_DIR = HERE / "data"
TOTAL_PAIRS = 9377
MIN_PAIRS = 40
TYPO_RATE = 0.08
TEST_FRACTION, VAL_FRACTION, MIN_TEST = 0.25, 0.10, 5
SPLIT_SEED = 20260128
MAX_TRIES = 200


def _seed(*parts) -> int:
  return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def load_sources() -> tuple[list[dict], dict]:
  """All domains (in the paper's order) with tools annotated by domain; and the common pools."""
  problems = cs.check_all()
  if problems:
    raise SystemExit("sources have problems:\n" + "\n".join(map(str, problems)))
  common = cs.load_common()
  domains = []
  for code, (fname, _) in cs.DOMAIN_FILES.items():
    data = json.loads((cs.SOURCES_DIR / fname).read_text(encoding="utf-8"))
    data["pools"] = {**common, **data["pools"]}
    domains.append(data)
  return domains, common


def allocate(weights: list[int], total: int = TOTAL_PAIRS, floor: int = MIN_PAIRS) -> list[int]:
  """floor pairs per tool plus the rest in proportion to weight (largest remainder, stable)."""
  rest = total - floor * len(weights)
  if rest < 0:
    raise ValueError(f"{total} pairs cannot give {floor} to each of {len(weights)} tools")
  quotas = [rest * w / sum(weights) for w in weights]
  counts = [int(q) for q in quotas]
  order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
  for i in order[:rest - sum(counts)]:
    counts[i] += 1
  return [floor + c for c in counts]


_KEYBOARD_NEIGHBOURS = dict(zip("qwertyuiopasdfghjklzxcvbnm", [
    "wa", "qes", "wrd", "etf", "ryg", "tuh", "yij", "uok", "ipl", "ol", "qsz", "awdx", "sefc",
    "drgv", "fthb", "gyjn", "hukm", "jil", "kop", "asx", "zdc", "xfv", "cgb", "vhn", "bjm", "nk"]))


def add_typos(template: str, rng: random.Random) -> str:
  """1-2 realistic typing errors in words of the template outside its {slots}."""
  pieces = re.split(r"(\{~?\w+\})", template)
  words = [(pi, m.start(), m.group()) for pi, piece in enumerate(pieces) if not piece.startswith("{")
           for m in re.finditer(r"[A-Za-z]{4,}", piece)]
  if not words:
    return template
  for pi, start, word in rng.sample(words, k=min(len(words), rng.choice((1, 1, 2)))):
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    if kind == "swap":
      new = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    elif kind == "drop":
      new = word[:i] + word[i + 1:]
    elif kind == "double":
      new = word[:i] + word[i] + word[i:]
    else:
      c = word[i].lower()
      new = word[:i] + rng.choice(_KEYBOARD_NEIGHBOURS.get(c, c)) + word[i + 1:]
    piece = pieces[pi]
    # Re-find the word: an earlier edit in the same piece may have shifted offsets.
    at = piece.find(word, max(0, start - 2))
    at = at if at >= 0 else piece.find(word)
    if at >= 0:
      pieces[pi] = piece[:at] + new + piece[at + len(word):]
  return "".join(pieces)


def fill(template: str, slots: dict, pools: dict, rng: random.Random) -> tuple[str, dict]:
  """Fills ``{param}`` and ``{~pool}`` slots; returns (query, gold arguments)."""
  args: dict = {}

  def sub(m):
    filler, name = m.group(1), m.group(2)
    text, value = cs.pool_entry(rng.choice(pools[name if filler else slots[name]]))
    if not filler:
      args[name] = value
    return text

  query = cs.SLOT_RE.sub(sub, template)
  query = re.sub(r"\s+", " ", query).strip()
  return query, args


def synthesize_tool(tool: dict, pools: dict, n_pairs: int, seen_queries: set) -> list[dict]:
  """``n_pairs`` distinct (query, arguments, style, template) records for one tool."""
  rng = random.Random(_seed("pairs", tool["name"]))
  templates = tool["templates"]
  order = list(range(len(templates)))
  rng.shuffle(order)
  out = []
  k = 0
  while len(out) < n_pairs:
    for attempt in range(MAX_TRIES):
      t_idx = order[(k + attempt) % len(order)]
      tpl = templates[t_idx]
      style = tpl["style"]
      text = tpl["text"]
      if rng.random() < TYPO_RATE:
        text, style = add_typos(text, rng), "typo"
      query, args = fill(text, tool.get("slots", {}), pools, rng)
      if query.lower() not in seen_queries:
        break
    else:
      raise SystemExit(f"tool {tool['name']}: cannot draw {n_pairs} distinct queries; add "
                       "templates or pool values")
    seen_queries.add(query.lower())
    out.append({"query": query, "arguments": args, "style": style, "template": t_idx})
    k += 1
  return out


def split_tools(domains: list[dict]) -> dict[str, str]:
  """Per domain: ~25% unseen (>= 5) test tools, ~10% validation, the rest train."""
  split = {}
  for d in domains:
    names = [t["name"] for t in d["tools"]]
    rng = random.Random(_seed("split", SPLIT_SEED, d["domain"]))
    n_test = max(MIN_TEST, round(TEST_FRACTION * len(names)))
    n_val = max(1, round(VAL_FRACTION * len(names)))
    # Draw until at least two sibling groups straddle train and test (the realistic hard case:
    # a new tool next to familiar ones) and no group is entirely unseen.
    for _ in range(1000):
      perm = rng.sample(names, len(names))
      test, val = set(perm[:n_test]), set(perm[n_test:n_test + n_val])
      groups: dict[str, set] = {}
      for t in d["tools"]:
        groups.setdefault(t["group"], set()).add(
            "test" if t["name"] in test else "validation" if t["name"] in val else "train")
      straddle = sum(1 for s in groups.values() if {"train", "test"} <= s)
      if straddle >= 2 and all("train" in s for s in groups.values()):
        break
    else:
      raise SystemExit(f"{d['domain']}: no split satisfies the sibling constraints")
    for n in names:
      split[n] = "test" if n in test else "validation" if n in val else "train"
  return split


def synthesize() -> tuple[list[dict], list[dict]]:
  domains, _ = load_sources()
  tools = [dict(t, domain=d["domain"]) for d in domains for t in d["tools"]]
  counts = allocate([t["weight"] for t in tools])
  split = split_tools(domains)
  pools_of = {d["domain"]: d["pools"] for d in domains}
  tool_rows, qa_rows, seen = [], [], set()
  for index, (tool, n) in enumerate(zip(tools, counts)):
    tool_rows.append({"index": index, "name": tool["name"], "domain": tool["domain"],
                      "group": tool["group"], "description": tool["description"],
                      "parameters": tool["parameters"], "split": split[tool["name"]]})
    for k, rec in enumerate(synthesize_tool(tool, pools_of[tool["domain"]], n, seen)):
      qa_rows.append({"id": f"{tool['name']}-{k:03d}", "domain": tool["domain"],
                      "query": rec["query"], "tool": tool["name"], "tool_index": index,
                      "arguments": rec["arguments"], "style": rec["style"],
                      "template": rec["template"], "split": split[tool["name"]]})
  return tool_rows, qa_rows


def dump_jsonl(rows: list[dict]) -> str:
  return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--check", action="store_true",
                  help="fail if the committed JSONL differs from a fresh synthesis")
  args = ap.parse_args(argv)
  tools, qa = synthesize()
  files = {DATA_DIR / "tools.jsonl": dump_jsonl(tools), DATA_DIR / "qa.jsonl": dump_jsonl(qa)}
  if args.check:
    stale = [str(p) for p, text in files.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    if stale:
      print("stale (rerun synthesize.py): " + ", ".join(stale))
      return 1
    print("released JSONL matches the sources")
    return 0
  DATA_DIR.mkdir(exist_ok=True)
  for path, text in files.items():
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
  print(f"wrote {len(tools)} tools and {len(qa)} pairs to {DATA_DIR}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
