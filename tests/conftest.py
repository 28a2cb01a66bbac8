"""Shared test set-up: JAX's persistent compilation cache and float64 availability."""

import os
import pathlib

# The cache folder is git-ignored; it cuts repeat compiles of the same programs ~10x.
_ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=wrong-import-position

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


@pytest.fixture(scope="session")
def text_encoder():
  """The pretrained encoder, loaded once per test session."""
  from mta_jax.models import TextEncoder  # pylint: disable=import-outside-toplevel
  return TextEncoder.pretrained()


@pytest.fixture(scope="session")
def llm_small():
  """SmolLM2's real weights truncated to 2 blocks: cheap, same shapes per block as the full model."""
  from mta_jax.llm.lm import LanguageModel  # pylint: disable=import-outside-toplevel
  return LanguageModel.pretrained(num_layers=2)


@pytest.fixture(scope="session")
def mta_ds():
  """MTA-Tools from its committed JSONL (no TFDS build needed)."""
  from mta_jax.llm import run  # pylint: disable=import-outside-toplevel
  return run.load_dataset("mta_tools", "")
