"""MetaTool (ToolE, Huang et al. 2023): 20,614 single-tool queries over 199 plugins, in our schema.

Raw files (HowieHwong/MetaTool at commit 35e81bb): ``all_clean_data.csv`` (Query,Tool),
``plugin_des.json`` (tool -> one-sentence description) and ``multi_tool_query_golden.json``
(two-tool queries: counted in the card, not converted).

MetaTool has no domains, so every tool is its own group (SD episodes do not exist here; CD and
full-pool rankings do). The 199 tools are split by tool, deterministically, into 129 train /
20 validation / 50 test: tools ordered by sha256("metatool/" + name), the first 129 are train,
the next 20 validation, the last 50 test. A query is in its gold tool's split, so the test
queries are of tools never seen in train.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pathlib

import tensorflow_datasets as tfds

from datasets_tfds import external_common as ec
from datasets_tfds import schema

COMMIT = "35e81bb7576826e980c80fed8f8c0a2b4a1e6fbb"
_RAW = f"https://raw.githubusercontent.com/HowieHwong/MetaTool/{COMMIT}/dataset"
URLS = {
    "all_clean_data.csv": f"{_RAW}/data/all_clean_data.csv",
    "plugin_des.json": f"{_RAW}/plugin_des.json",
    "multi_tool_query_golden.json": f"{_RAW}/data/multi_tool_query_golden.json",
}
SPLIT_SIZES = (("train", 129), ("validation", 20), ("test", 50))
SPLIT_SALT = "metatool/"


def tool_splits(names) -> dict[str, str]:
  """{tool: split}: tools ranked by sha256(SPLIT_SALT + name), cut at SPLIT_SIZES."""
  names = sorted(names)
  if len(names) != sum(n for _, n in SPLIT_SIZES):
    raise ValueError(f"expected {sum(n for _, n in SPLIT_SIZES)} tools, got {len(names)}")
  ranked = sorted(names, key=lambda n: hashlib.sha256((SPLIT_SALT + n).encode()).hexdigest())
  out, start = {}, 0
  for split, n in SPLIT_SIZES:
    out.update({name: split for name in ranked[start:start + n]})
    start += n
  return out


def convert(paths: dict[str, pathlib.Path]) -> ec.Conversion:
  report = ec.ConversionReport()
  descriptions = json.loads(paths["plugin_des.json"].read_text(encoding="utf-8"))
  multi = json.loads(paths["multi_tool_query_golden.json"].read_text(encoding="utf-8"))
  report.note("multi_tool_queries_not_converted", len(multi))

  split_of = tool_splits(descriptions)
  rank = {s: i for i, (s, _) in enumerate(SPLIT_SIZES)}
  # Train tools first, then validation, then test: reading the splits in that order gives the
  # tools in index order.
  order = sorted(descriptions, key=lambda n: (rank[split_of[n]], n))
  tools = [schema.tool_example(i, n, descriptions[n].strip(), {}, n, split_of[n])
           for i, n in enumerate(order)]
  index = {n: i for i, n in enumerate(order)}

  rows = []
  with open(paths["all_clean_data.csv"], newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    if reader.fieldnames != ["Query", "Tool"]:
      raise ec.RawFileError(f"all_clean_data.csv: unexpected header {reader.fieldnames}")
    for row_no, row in enumerate(reader):
      rows.append((row_no, reader.line_num, row))

  # Golds per query text, to tag repeated rows and queries that the file labels with 2+ tools.
  golds: dict[str, set] = {}
  for _, _, row in rows:
    golds.setdefault((row["Query"] or "").strip(), set()).add((row["Tool"] or "").strip())
  seen = set()
  qa = {s: [] for s, _ in SPLIT_SIZES}
  n_dup = n_multi = 0
  for row_no, line, row in rows:
    rid = f"metatool-{row_no:05d}"
    query, tool = (row["Query"] or "").strip(), (row["Tool"] or "").strip()
    if None in row:
      report.drop("malformed CSV row (extra fields)", rid)
      continue
    if not query:
      report.drop("empty query", rid)
      continue
    if tool not in index:
      report.drop("gold tool has no description in plugin_des.json", rid)
      continue
    tags = []
    if (query, tool) in seen:
      tags.append("duplicate")
      n_dup += 1
    seen.add((query, tool))
    if len(golds[query]) > 1:
      tags.append("multi_gold")
      n_multi += 1
    qa[split_of[tool]].append(schema.qa_example(
        rid, query, tool, index[tool], tool, source_id=f"all_clean_data.csv:{line}", tags=tags))
  report.note("rows_read", len(rows))
  report.note("tagged_duplicate", n_dup)
  report.note("tagged_multi_gold", n_multi)
  report.note("tools_per_split", {s: sum(t["split"] == s for t in tools) for s, _ in SPLIT_SIZES})
  return ec.Conversion(tools=tools, qa=qa, report=report)


class Builder(ec.ExternalBuilder):
  """MetaTool single-tool queries; tools split 129 / 20 / 50 by a hash of the name."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 199 tools, 20,614 queries, split by tool."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the MetaTool raw files, unchanged, in manual_dir: all_clean_data.csv,
  plugin_des.json, multi_tool_query_golden.json from https://github.com/HowieHwong/MetaTool
  at commit 35e81bb (dataset/data/ and dataset/). In this project:
  manual_dir=../shared/external_data/metatool. Without them the builder downloads the files from
  the pinned URLs and checks their sha256 (checksums.tsv).
  """
  URLS = URLS
  HOMEPAGE = "https://github.com/HowieHwong/MetaTool"
  LICENSE = "MIT"

  def _convert(self, paths):
    return convert(paths)
