"""What the four external benchmarks' builders share: raw files, conversion reports, the builder.

Raw files. Each builder names its raw files in ``URLS`` (local name -> raw URL at the pinned
upstream commit) and lists them in its ``checksums.tsv`` (TFDS format: url, size, sha256, local
name). :func:`fetch_raw_files` takes each file from ``manual_dir`` when it is there and otherwise
downloads it with ``dl_manager.download``; either way the sha256 must match, or the build stops
with a :class:`RawFileError` that names the file, the expected sha256 and what to do.

Conversion. A builder's ``convert(paths)`` is a pure function from raw files to
:class:`Conversion`: the tools, the QA examples by split, and a :class:`ConversionReport` that
counts every record that was not converted, by reason, with a few example ids. Nothing is dropped
without a count: the report is logged at build time and saved in the dataset's
``metadata.json``, from which the dataset cards quote it.

Also here: :func:`build` (array_record, no TensorFlow) and :func:`read_without_builder_code`
(``tfds.data_source`` in a fresh process that imports only tensorflow_datasets), used by the
builders' tests.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import pathlib
from typing import Any, Iterable

from absl import logging
import tensorflow_datasets as tfds

from datasets_tfds import schema

# <repo>/datasets_tfds/external_common.py -> <repo>/../shared/external_data.
DEFAULT_EXTERNAL_ROOT = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / (
    "external_data")
CHECKSUMS_FILENAME = "checksums.tsv"
_EXAMPLES_KEPT = 5


class RawFileError(RuntimeError):
  """A raw input file is missing, unreadable or not byte-identical to the pinned upstream file."""


@dataclasses.dataclass(frozen=True)
class RawFile:
  name: str  # path relative to manual_dir
  url: str  # raw URL at the pinned upstream commit
  size: int
  sha256: str


def sha256_of(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def read_checksums(path: pathlib.Path) -> dict[str, RawFile]:
  """``checksums.tsv`` (url, size, sha256, local name; '#' comments) -> {local name: RawFile}."""
  out = {}
  for line in path.read_text(encoding="utf-8").splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    url, size, sha, name = line.split("\t")
    out[name] = RawFile(name=name, url=url, size=int(size), sha256=sha)
  return out


def raw_files_for(builder_dir: pathlib.Path, urls: dict[str, str]) -> list[RawFile]:
  """The builder's raw files, checking that ``URLS`` and ``checksums.tsv`` agree."""
  sums = read_checksums(builder_dir / CHECKSUMS_FILENAME)
  files = []
  for name, url in urls.items():
    if name not in sums or sums[name].url != url:
      raise RawFileError(f"{builder_dir / CHECKSUMS_FILENAME} has no entry for {name!r} at {url}; "
                         "add its url, size, sha256 and name (computed from the upstream file).")
    files.append(sums[name])
  return files


def verify(path: pathlib.Path, raw: RawFile, origin: str) -> None:
  """Raises :class:`RawFileError` unless ``path`` has the expected sha256."""
  actual = sha256_of(path)
  if actual != raw.sha256:
    raise RawFileError(
        f"Raw file {raw.name!r} ({origin}: {path}) has sha256 {actual} ({path.stat().st_size} "
        f"bytes), but the builder expects sha256 {raw.sha256} ({raw.size} bytes), the upstream "
        f"file {raw.url}. It was altered or is another version. Restore the original bytes "
        f"(e.g. `curl -L -o {path} {raw.url}`), or remove it from manual_dir so that the builder "
        "downloads and checks it. Do not edit raw files: fix the conversion instead.")


def _manual_dir(dl_manager) -> pathlib.Path | None:
  try:
    return pathlib.Path(dl_manager.manual_dir)
  except (AssertionError, ValueError):  # not set, missing or empty
    return None


def fetch_raw_files(dl_manager, files: Iterable[RawFile]) -> dict[str, pathlib.Path]:
  """{local name: verified path}: from ``manual_dir`` where present, else downloaded."""
  manual = _manual_dir(dl_manager)
  out = {}
  for raw in files:
    local = manual / raw.name if manual is not None else None
    if local is not None and local.is_file():
      verify(local, raw, "from manual_dir")
      out[raw.name] = local
      continue
    try:
      path = pathlib.Path(dl_manager.download(raw.url))
    except Exception as e:  # pylint: disable=broad-except
      where = f"manual_dir ({manual})" if manual is not None else "manual_dir (not given)"
      raise RawFileError(
          f"Raw file {raw.name!r} is not in {where} and downloading it failed: {raw.url} "
          f"({type(e).__name__}: {e}). Expected sha256 {raw.sha256} ({raw.size} bytes). Put the "
          f"upstream file at <manual_dir>/{raw.name} (see the dataset card's Source section and "
          "MANUAL_DOWNLOAD_INSTRUCTIONS; in this project "
          "manual_dir=../shared/external_data/<folder>), or build where the URL is reachable."
      ) from e
    verify(path, raw, "downloaded")
    out[raw.name] = path
  return out


class ConversionReport:
  """Counts of records not converted (by reason, with example ids) and other conversion notes."""

  def __init__(self):
    self.dropped: collections.Counter = collections.Counter()
    self.examples: dict[str, list[str]] = collections.defaultdict(list)
    self.notes: dict[str, Any] = {}

  def drop(self, reason: str, record_id: str) -> None:
    self.dropped[reason] += 1
    if len(self.examples[reason]) < _EXAMPLES_KEPT:
      self.examples[reason].append(record_id)

  def note(self, key: str, value: Any) -> None:
    self.notes[key] = value

  def as_dict(self) -> dict:
    return {"dropped": dict(sorted(self.dropped.items())),
            "dropped_examples": {k: self.examples[k] for k in sorted(self.dropped)},
            "notes": self.notes}

  def log(self, name: str) -> None:
    for reason, n in sorted(self.dropped.items()):
      logging.warning("%s: %d records not converted: %s (e.g. %s)", name, n, reason,
                      ", ".join(self.examples[reason]))


@dataclasses.dataclass
class Conversion:
  tools: list[dict]  # schema.tool_example dicts, index 0..T-1 in order
  qa: dict[str, list[dict]]  # split -> schema.qa_example dicts
  report: ConversionReport

  def check(self) -> None:
    """Internal consistency of the converted data (a failure is a bug in a converter)."""
    names = [t["name"] for t in self.tools]
    if len(set(names)) != len(names):
      raise ValueError("duplicate tool names")
    if [t["index"] for t in self.tools] != list(range(len(self.tools))):
      raise ValueError("tool indices must be 0..T-1 in order")
    by_name = {t["name"]: t for t in self.tools}
    ids = set()
    for split, examples in self.qa.items():
      for ex in examples:
        tool = by_name.get(ex["tool"])
        if tool is None or tool["index"] != ex["tool_index"] or tool["group"] != ex["group"]:
          raise ValueError(f"{ex['id']}: gold tool {ex['tool']!r} inconsistent with the tools")
        if tool["split"] != split:
          raise ValueError(f"{ex['id']}: in split {split} but its tool is in {tool['split']}")
        if any(c not in by_name for c in ex["candidates"]):
          raise ValueError(f"{ex['id']}: a candidate is not a tool")
        if ex["id"] in ids:
          raise ValueError(f"duplicate qa id {ex['id']}")
        ids.add(ex["id"])


class ExternalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the external benchmarks' builders: configs ``qa`` and ``tools`` of the schema.

  A subclass sets VERSION, RELEASE_NOTES, MANUAL_DOWNLOAD_INSTRUCTIONS, URLS, HOMEPAGE, LICENSE
  and implements ``_convert(paths) -> Conversion``. TFDS splits, as for ``mta_tools``: ``qa`` has
  the splits that hold queries (train / validation / test); ``tools`` has one split ``train``
  holding every tool in index order, each with its own ``split`` field.
  """

  BUILDER_CONFIGS = schema.builder_configs()
  URLS: dict[str, str] = {}
  HOMEPAGE = ""
  LICENSE = ""

  def _info(self) -> tfds.core.DatasetInfo:
    features = (schema.qa_features() if self.builder_config.name == "qa"
                else schema.tools_features())
    return self.dataset_info_from_configs(
        features=features, disable_shuffling=True, homepage=self.HOMEPAGE,
        license=self.LICENSE, metadata=tfds.core.MetadataDict())

  @classmethod
  def raw_files(cls) -> list[RawFile]:
    return raw_files_for(pathlib.Path(cls.code_path).parent, cls.URLS)

  def _convert(self, paths: dict[str, pathlib.Path]) -> Conversion:
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    paths = fetch_raw_files(dl_manager, self.raw_files())
    conv = self._convert(paths)
    conv.check()
    conv.report.log(self.name)
    self.info.metadata.update(conv.report.as_dict())
    self.info.metadata["raw_files"] = {r.name: r.sha256 for r in self.raw_files()}
    if self.builder_config.name == "qa":
      by_split = {s: [(ex["id"], ex) for ex in exs] for s, exs in conv.qa.items() if exs}
    else:
      by_split = {"train": [(f"{t['index']:06d}", t) for t in conv.tools]}
    return {split: self._generate_examples(items) for split, items in by_split.items()}

  def _generate_examples(self, items):
    yield from items


def build(builder_cls, data_dir, manual_dir, configs=("qa", "tools")) -> None:
  """Builds ``configs`` of ``builder_cls`` as array_record into ``data_dir`` (no TensorFlow)."""
  for config in configs:
    builder_cls(config=config, data_dir=str(data_dir)).download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))


# Run by read_without_builder_code in a fresh interpreter: it imports tensorflow_datasets only.
_READER = r"""
import json, sys
import tensorflow_datasets as tfds

def dec(x):
  if isinstance(x, bytes):
    return x.decode("utf-8")
  if hasattr(x, "tolist"):
    x = x.tolist()
  return [dec(v) for v in x] if isinstance(x, list) else x

name, data_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
for config in ("qa", "tools"):
  sources = tfds.data_source(f"{name}/{config}", data_dir=data_dir)
  out[config] = {split: {"n": len(src), "head": [{k: dec(v) for k, v in src[i].items()}
                                                 for i in range(min(n, len(src)))]}
                 for split, src in sources.items()}
out["our_modules_imported"] = sorted(m for m in sys.modules
                                     if m.split(".")[0] in ("datasets_tfds", "mta_jax"))
print(json.dumps(out))
"""


def read_without_builder_code(name: str, data_dir, n: int = 3, timeout: float = 120) -> dict:
  """Reads ``name``'s two configs with ``tfds.data_source`` in a separate Python process that
  imports only tensorflow_datasets (as another project would), from a neutral working directory.

  Returns {config: {split: {"n": size, "head": first n records}}, "our_modules_imported": [...]}.
  """
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  proc = subprocess.run([sys.executable, "-c", _READER, name, str(data_dir), str(n)],
                        cwd=str(data_dir), capture_output=True, text=True, timeout=timeout,
                        check=False)
  if proc.returncode:
    raise RuntimeError(f"reading {name} in a subprocess failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def read_metadata(data_dir: pathlib.Path, name: str, config: str) -> dict:
  """The conversion report saved with a built dataset (``metadata.json``), {} if absent."""
  base = pathlib.Path(data_dir) / name / config
  versions = sorted(base.glob("*/metadata.json")) if base.exists() else []
  return json.loads(versions[-1].read_text()) if versions else {}
