"""Builds the project's TFDS datasets as array_record (no TensorFlow needed).

    python -m datasets_tfds.build --data_dir=tfds_data [--datasets=mta_tools,metatool]
        [--manual_root=../shared/external_data]
    python -m datasets_tfds.build --data_dir=tfds_data_v1_1 --datasets=mta_tools:1.1.0

A ``name:version`` entry builds that version (default: the builder's ``VERSION``); build another
version of MTA-Tools into its own ``data_dir`` (a reader without our builder code reads the newest
version of a folder).

Another project then reads them with ``tfds.data_source("mta_tools/qa", data_dir=...)``.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys

import tensorflow_datasets as tfds

ALL = ("mta_tools", "metatool", "api_bank", "toolalpaca", "apibench")
EXTERNAL_FOLDERS = {"metatool": "metatool", "api_bank": "api_bank", "toolalpaca": "toolalpaca",
                    "apibench": "gorilla_apibench"}
DEFAULT_MANUAL_ROOT = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / (
    "external_data")


def build(name: str, data_dir: str, manual_root: pathlib.Path = DEFAULT_MANUAL_ROOT,
          configs=("qa", "tools"), version: str | None = None) -> list[tfds.core.DatasetBuilder]:
  """Builds every config of dataset ``name`` (at ``version``, default the builder's) into
  ``data_dir``; returns the builders."""
  module = importlib.import_module(f"datasets_tfds.{name}")
  builders = []
  for config in configs:
    builder = module.Builder(config=config, data_dir=data_dir, file_format="array_record",
                             **({"version": version} if version else {}))
    dl_config = None
    if name in EXTERNAL_FOLDERS:
      dl_config = tfds.download.DownloadConfig(
          manual_dir=str(manual_root / EXTERNAL_FOLDERS[name]))
    builder.download_and_prepare(download_config=dl_config)
    builders.append(builder)
  return builders


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--data_dir", required=True)
  ap.add_argument("--datasets", default=",".join(ALL))
  ap.add_argument("--manual_root", default=str(DEFAULT_MANUAL_ROOT))
  args = ap.parse_args()
  from datasets_tfds import external_common  # pylint: disable=import-outside-toplevel
  for entry in args.datasets.split(","):
    name, _, version = entry.partition(":")
    try:
      builders = build(name, str(pathlib.Path(args.data_dir).resolve()),
                       pathlib.Path(args.manual_root), version=version or None)
    except (external_common.RawFileError, ModuleNotFoundError, ValueError,
            AssertionError) as e:  # TFDS raises AssertionError for an unknown version
      # Expected user errors (altered or missing raw files, unknown names): one line, exit 1.
      sys.exit(f"build: error: {name}: {e}")
    for b in builders:
      print(f"{b.info.full_name}: " + ", ".join(
          f"{k}={v.num_examples}" for k, v in b.info.splits.items()))


if __name__ == "__main__":
  main()
