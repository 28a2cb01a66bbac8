"""Datasets in the shared schema -> tool documents, views, query lists and episode pools.

Every dataset of the project (``mta_tools`` and the external benchmarks) is released by TFDS in
one schema (``datasets_tfds/schema.py``), so one loader serves all. ``load`` reads a built
dataset with ``tfds.data_source`` (no TensorFlow, no builder code); ``from_jsonl`` reads MTA-Tools'
committed JSONL directly (tests, the dataset card).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Sequence

import numpy as np

from mta_jax.episodes import ToolPool

KNOWN = ("mta_tools", "metatool", "api_bank", "toolalpaca", "apibench")
SPLITS = ("train", "validation", "test")


class DatasetNotFoundError(FileNotFoundError):
  """A dataset that is unknown or not yet built."""


class DatasetFormatError(ValueError):
  """A dataset file that does not parse or breaks the schema; the message names file:line."""


def check_name(name: str) -> None:
  """Raises ``DatasetNotFoundError`` (with a did-you-mean) unless ``name`` is in ``KNOWN``."""
  if name not in KNOWN:
    import difflib  # pylint: disable=import-outside-toplevel
    hint = difflib.get_close_matches(name, KNOWN, n=1)
    raise DatasetNotFoundError(f"unknown dataset {name!r}" + (
        f" (did you mean {hint[0]!r}?)" if hint else "") + f"; known: {', '.join(KNOWN)}")


@dataclasses.dataclass
class Tool:
  index: int
  name: str
  description: str
  parameters: dict
  group: str
  split: str
  source: str = ""  # the dataset it comes from, in a union of datasets (``union``)

  def document(self) -> str:
    """The tool's main document: name, description, parameters (what a model reads)."""
    name = self.name.replace("_", " ")
    params = self.parameters.get("properties", {}) if isinstance(self.parameters, dict) else {}
    text = f"{name}: {self.description}"
    if params:
      text += " Parameters: " + "; ".join(
          f"{k} ({v.get('description', v.get('type', ''))})".strip() for k, v in params.items())
    return text

  def views(self, max_views: int) -> list[str]:
    """Labelled documentation views for 0-shot adaptation: name, description, parameters."""
    params = self.parameters.get("properties", {}) if isinstance(self.parameters, dict) else {}
    views = [self.name.replace("_", " ").replace(".", " "), self.description]
    views += [f"{self.name.replace('_', ' ')} {k.replace('_', ' ')}: {v.get('description', '')}"
              for k, v in params.items()]
    return [v for v in views if v.strip()][:max_views]


@dataclasses.dataclass
class Query:
  id: str
  text: str
  tool: int
  split: str
  style: str = ""
  candidates: tuple[str, ...] = ()
  tags: tuple[str, ...] = ()

  @property
  def subset(self) -> str | None:
    """The test subset the query's tool belongs to (MTA-Tools 1.1.0 ``test_subsets``, e.g.
    ``antonym_or_variant``; tag ``test_subset:<name>``), None when the dataset names none."""
    for tag in self.tags:
      if tag.startswith("test_subset:"):
        return tag[len("test_subset:"):]
    return None


@dataclasses.dataclass
class ToolDataset:
  """Tools and queries of one dataset, with index helpers for episodes."""

  name: str
  tools: list[Tool]
  queries: list[Query]
  version: str = ""  # the release read (TFDS version, or metadata.json's), "" if unknown

  def __post_init__(self):
    self.tool_by_name = {t.name: t for t in self.tools}
    groups = sorted({t.group for t in self.tools})
    self.group_ids = {g: i for i, g in enumerate(groups)}

  def tool_indices(self, split: str | None = None) -> np.ndarray:
    return np.array([t.index for t in self.tools if split is None or t.split == split], np.int32)

  def query_indices(self, split: str | None = None) -> np.ndarray:
    return np.array([i for i, q in enumerate(self.queries) if split is None or q.split == split],
                    np.int32)

  def documents(self, n_views: int) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """All document texts, the row of each tool's main document, and each tool's view rows."""
    texts, main, views = [], [], []
    for t in self.tools:
      main.append(len(texts))
      texts.append(t.document())
      vs = t.views(n_views)
      views.append(np.arange(len(texts), len(texts) + len(vs), dtype=np.int32))
      texts.extend(vs)
    return texts, np.array(main, np.int32), views

  def pool(self, tools: Sequence[int], main_doc: np.ndarray, view_rows: list[np.ndarray],
           query_split: str | None = None) -> ToolPool:
    """An episode pool over ``tools`` (dataset indices) with their queries and views."""
    by_tool: dict[int, list[int]] = {int(t): [] for t in tools}
    for i, q in enumerate(self.queries):
      if q.tool in by_tool and (query_split is None or q.split == query_split):
        by_tool[q.tool].append(i)
    return ToolPool.build(
        doc=main_doc[list(tools)], group=[self.group_ids[self.tools[t].group] for t in tools],
        queries_by_tool=[np.array(by_tool[int(t)], np.int32) for t in tools],
        views_by_tool=[view_rows[t] for t in tools])


def union(parts: Sequence[ToolDataset]) -> ToolDataset:
  """Several datasets as one, to meta-train on all their training tools (more task diversity).

  Tools and queries are concatenated with their indices offset; each tool keeps its split, its
  ``source`` names its dataset (the lexical feature uses each dataset's own BM25 corpus), and
  its group is prefixed by the dataset (``mta_tools:App``), so same-domain episodes never mix
  datasets; a dataset without domains (every group one tool: MetaTool) is one group
  (``metatool``), so its episodes draw from all its tools. The name is the parts' names joined
  by ``+``. A tool name in two parts is an error (``DatasetFormatError``): the datasets must not
  share tools.
  """
  tools, queries, seen = [], [], {}
  for ds in parts:
    offset = len(tools)
    no_domains = len({t.group for t in ds.tools}) == len(ds.tools)
    for t in ds.tools:
      if t.name in seen:
        raise DatasetFormatError(f"union of datasets: tool {t.name!r} is in both {seen[t.name]} "
                                 f"and {ds.name}; the datasets must not share tools")
      seen[t.name] = ds.name
      group = ds.name if no_domains else f"{ds.name}:{t.group}"
      tools.append(dataclasses.replace(t, index=offset + t.index, group=group, source=ds.name))
    queries += [dataclasses.replace(q, tool=offset + q.tool) for q in ds.queries]
  return ToolDataset("+".join(ds.name for ds in parts), tools, queries)


def _text(v) -> str:
  return v.decode("utf-8") if isinstance(v, bytes) else str(v)


# The release read when none is asked for: each builder's ``VERSION`` (the MTA-Tools builder's
# test checks they agree). TFDS itself, without the builder's code imported, would read the *newest*
# version built in the folder, so a data dir holding MTA-Tools 1.0.0 and 1.1.0 would silently
# give 1.1.0 to a config that means the default.
DEFAULT_VERSIONS = {"mta_tools": "1.0.0"}


def default_version(name: str, root: pathlib.Path) -> str | None:
  """The version ``load`` reads for ``version=None``: the dataset's default release when it is
  built, else the one version built (None: let TFDS find it). Two or more built without the
  default is ambiguous: an error naming them."""
  built = sorted(p.name for p in (root / name / "tools").glob("*.*.*") if p.is_dir())
  pinned = DEFAULT_VERSIONS.get(name)
  if pinned in built:
    return pinned
  if len(built) <= 1:
    return None
  raise DatasetNotFoundError(
      f"dataset {name!r}: versions {', '.join(built)} are built in {root.absolute()} but not "
      f"the default {pinned}: name one (config.dataset_version / --mta_version)")


def load(name: str, data_dir: str | pathlib.Path, version: str | None = None) -> ToolDataset:
  """Reads ``name``'s ``tools`` and ``qa`` configs from a TFDS ``data_dir`` (array_record).

  ``version`` (e.g. "1.1.0" for MTA-Tools 1.1) pins the dataset version; None reads the
  dataset's default release (``DEFAULT_VERSIONS``; MTA-Tools 1.0.0) even when newer ones are
  built beside it, or the one version built (``default_version``)."""
  check_name(name)
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(data_dir)
  if not (root / name / "qa").exists() or not (root / name / "tools").exists():
    raise DatasetNotFoundError(
        f"dataset {name!r} is not built in {root.absolute()}: build it with "
        f"`python -m datasets_tfds.build --data_dir={root} --datasets={name}` (or `make data`)")
  version = version or default_version(name, root)
  if version and not (root / name / "tools" / version).exists():
    raise DatasetNotFoundError(
        f"dataset {name!r} version {version} is not built in {root.absolute()}: build it with "
        f"`python -m datasets_tfds.build --data_dir={root} --datasets={name}:{version}`")
  at = f":{version}" if version else ""
  tools_src = tfds.data_source(f"{name}/tools{at}", data_dir=str(root))
  tools = []
  for split in tools_src:
    for ex in tools_src[split]:
      tools.append(Tool(int(ex["index"]), _text(ex["name"]), _text(ex["description"]),
                        json.loads(_text(ex["parameters"]) or "{}"), _text(ex["group"]),
                        _text(ex["split"])))
  tools.sort(key=lambda t: t.index)
  qa_src = tfds.data_source(f"{name}/qa{at}", data_dir=str(root))
  queries = []
  for split in SPLITS:
    if split not in qa_src:
      continue
    for ex in qa_src[split]:
      queries.append(Query(_text(ex["id"]), _text(ex["query"]), int(ex["tool_index"]), split,
                           _text(ex["style"]), tuple(_text(c) for c in ex["candidates"]),
                           tuple(_text(c) for c in ex["tags"])))
  version = str(next(iter(tools_src.values())).dataset_info.version) if tools_src else ""
  return ToolDataset(name, tools, queries, version)


def _read_jsonl(path: pathlib.Path, fields: tuple[str, ...]) -> list[dict]:
  """The records of a JSONL file; ``DatasetFormatError`` naming file:line on a bad record."""
  if not path.is_file():
    raise DatasetNotFoundError(f"{path} does not exist (a JSONL dataset folder holds tools.jsonl "
                               "and qa.jsonl)")
  out = []
  for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
    if not line.strip():
      continue
    try:
      rec = json.loads(line)
    except json.JSONDecodeError as e:
      raise DatasetFormatError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})"
                               ) from None
    missing = [f for f in fields if not isinstance(rec, dict) or f not in rec]
    if missing:
      raise DatasetFormatError(f"{path}:{n}: missing field(s) {', '.join(missing)}")
    out.append(rec)
  return out


def from_jsonl(data_dir: str | pathlib.Path) -> ToolDataset:
  """MTA-Tools from its released JSONL (``datasets_tfds/mta_tools/data``)."""
  root = pathlib.Path(data_dir)
  tools = _read_jsonl(root / "tools.jsonl",
                      ("index", "name", "description", "parameters", "domain", "split"))
  qa = _read_jsonl(root / "qa.jsonl", ("id", "query", "tool_index", "split", "style"))
  for n, t in enumerate(tools):
    if t["index"] != n:
      raise DatasetFormatError(f"{root / 'tools.jsonl'}: record {n + 1} has index "
                               f"{t['index']!r}; tool indices must be 0, 1, 2, ... in file order")
  for q in qa:
    if not isinstance(q["tool_index"], int) or not 0 <= q["tool_index"] < len(tools):
      raise DatasetFormatError(f"{root / 'qa.jsonl'}: query {q['id']!r} has tool_index "
                               f"{q['tool_index']!r}, but tools.jsonl has {len(tools)} tools")
  # Parameters as the TFDS schema stores them (keys sorted, datasets_tfds/schema.py), so a tool's
  # document is the same text whichever way the dataset is loaded.
  meta_path = root / "metadata.json"  # 1.1.0 and later name their version there; 1.0.0 has none
  meta = json.loads(meta_path.read_text("utf-8")) if meta_path.is_file() else {}
  version = meta.get("version", "")
  # Test subsets (1.1.0: antonyms/variants of a training tool and the rest) as the TFDS build
  # tags its test records, so both loaders give the same Query.subset.
  subset_of = {n: s for s, names in meta.get("test_subsets", {}).items() for n in names}
  tool_tags = [(f"test_subset:{subset_of[t['name']]}",) if t["name"] in subset_of else ()
               for t in tools]
  return ToolDataset(
      "mta_tools",
      [Tool(t["index"], t["name"], t["description"],
            json.loads(json.dumps(t["parameters"], sort_keys=True)), t["domain"], t["split"])
       for t in tools],
      [Query(q["id"], q["query"], q["tool_index"], q["split"], q["style"],
             tags=tool_tags[q["tool_index"]] if q["split"] == "test" else ()) for q in qa],
      version)
