"""MTA-Tools releases: config.dataset_version, the version a dataset was read at, clear errors."""

import pathlib

import pytest

from test_train import mta  # experiments/configs/mta.py, as the other tests import it
from mta_jax import data, run_config

DATA = pathlib.Path(__file__).resolve().parents[1] / "datasets_tfds" / "mta_tools" / "data"


def test_jsonl_releases_know_their_version_and_a_mismatch_is_named():
  assert run_config.load_dataset("mta_tools", str(DATA / "1.1.0"), "1.1.0").version == "1.1.0"
  assert run_config.load_dataset("mta_tools", str(DATA), "1.0.0").version == ""  # 1.0.0: no file
  with pytest.raises(run_config.ConfigError, match=r"dataset_version='1.1.0' but the JSONL "
                     r"folder .* holds MTA-Tools 1.0.0"):
    run_config.load_dataset("mta_tools", str(DATA), "1.1.0")


def test_a_release_that_is_not_built_says_how_to_build_it(tmp_path):
  for config in ("qa", "tools"):
    (tmp_path / "mta_tools" / config / "1.0.0").mkdir(parents=True)
  with pytest.raises(data.DatasetNotFoundError, match=r"version 1\.1\.0 is not built in .*: "
                     r"build it with `python -m datasets_tfds.build --data_dir=.* "
                     r"--datasets=mta_tools:1\.1\.0`"):
    run_config.load_dataset("mta_tools", str(tmp_path), "1.1.0")


def test_dataset_version_must_look_like_a_release():
  c = mta.get_config("sd")
  c.dataset_version = "1.1"
  with pytest.raises(run_config.ConfigError, match="dataset_version must be a release like"):
    run_config.validate(c)
  c.dataset_version = "1.1.0"
  run_config.validate(c)
