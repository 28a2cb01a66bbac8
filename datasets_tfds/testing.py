"""What the external builders' tests share: where the raw files are, one build per test module,
the built records, split counts, and the check that an altered raw file is named with its
expected sha256."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from datasets_tfds import external_common as ec

EXTERNAL = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "external_data"


def raw_dir(name: str) -> pathlib.Path:
  """The read-only raw files of one benchmark (``../shared/external_data/<name>``)."""
  return EXTERNAL / name


def needs(raw: pathlib.Path):
  """A module mark that skips, saying where it looked, when the raw files are absent."""
  return pytest.mark.skipif(not raw.is_dir(), reason=f"raw files not found at {raw}")


def build(tmp_path_factory, builder, raw: pathlib.Path) -> pathlib.Path:
  """Builds every config of ``builder`` from ``raw`` into a fresh folder; returns it."""
  out = tmp_path_factory.mktemp(f"tfds_{builder.name}")
  ec.build(builder, out, raw)
  return out


def records(data_dir: pathlib.Path, name: str) -> tuple[list, list]:
  """(qa test records, tools train records) read back with ``tfds.data_source``."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  qa = tfds.data_source(f"{name}/qa", data_dir=str(data_dir), split="test")
  tools = tfds.data_source(f"{name}/tools", data_dir=str(data_dir), split="train")
  return [qa[i] for i in range(len(qa))], [tools[i] for i in range(len(tools))]


def split_counts(builder, data_dir: pathlib.Path, config: str) -> dict[str, int]:
  """{split: number of examples} as the built dataset's info records them."""
  b = builder(config=config, data_dir=str(data_dir))
  return {s: v.num_examples for s, v in b.info.splits.items()}


def check_altered_raw_file(builder, urls, raw: pathlib.Path, tmp_path: pathlib.Path, name: str,
                           offset: int, configs: tuple[str, ...]) -> None:
  """Flips one bit of raw file ``name`` at ``offset`` in a copy of the raw files; the build
  must fail with an error naming the file and the sha256 it expects."""
  manual = tmp_path / "manual"
  manual.mkdir()
  for n in urls:
    shutil.copy(raw / n, manual / n)
  data = bytearray((manual / name).read_bytes())
  data[offset] ^= 1
  (manual / name).write_bytes(bytes(data))
  want = {r.name: r.sha256 for r in builder.raw_files()}[name]
  with pytest.raises(ec.RawFileError, match=rf"{name.replace('.', '[.]')}.*expects sha256 {want}"):
    ec.build(builder, tmp_path / "out", manual, configs=configs)
