"""Per-process sampling of the LLM learner's batches (``Setup.sample_rows``): process p of P
builds only rows [p*B/P, (p+1)*B/P) of step s's batch (SFT's prompts, or MTA-LoRA's episodes),
and the P parts, concatenated, are the single-process batch bit for bit.

The processes' one shared number, the prompt width (the bucket of the whole batch's longest
example; ``sharding.max_over_processes`` under ``jax.distributed``), is simulated here as the
collective computes it: every part's own longest first, then their maximum. The truncated
2-block SmolLM2 of the smoke configs and MTA-Tools' committed JSONL.
"""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest

from mta_jax import episodes, sharding
from mta_jax.llm import batches, select, trainer
from mta_jax.llm.lm import PROMPT_BUCKETS, bucket_for

ROOT = pathlib.Path(__file__).resolve().parents[1]
B = 4  # rows (SFT prompts or episodes) of a step: divides over 1, 2 and 4 processes
PCFG = select.PromptConfig(max_description_chars=40)  # the smoke configs' prompts


def _config(arg):
  spec = importlib.util.spec_from_file_location("llm_config", ROOT / "experiments/configs/llm.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def _parts(build, n_procs: int):
  """Every process's part of one step's batch, ``build(part, longest)`` per process, with the
  width every process agrees on; also each part's own longest example."""
  parts = [slice(p * B // n_procs, (p + 1) * B // n_procs) for p in range(n_procs)]
  own = []
  for part in parts:  # the collective's input: each process's longest
    build(part, lambda n: own.append(n) or n)
  return [build(part, lambda n: max(own)) for part in parts], own


def _concat(parts, axis: int):
  return jax.tree.map(lambda *xs: np.concatenate(xs, axis=axis), *parts)


def _assert_identical(a, b):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb, (ta, tb)
  for x, y in zip(la, lb):
    assert x.dtype == y.dtype and x.shape == y.shape, (x.dtype, x.shape, y.dtype, y.shape)
    np.testing.assert_array_equal(x, y)


def _train_pool(ds):
  tools = ds.tool_indices("train")
  _, main_doc, view_rows = ds.documents(1)
  return tools, ds.pool(tools, main_doc, view_rows, query_split="train")


def test_every_process_rows_concatenate_to_the_full_batch(llm_small, mta_ds):
  tools, pool = _train_pool(mta_ds)
  rows = np.array([r for r in mta_ds.query_indices("train") if mta_ds.queries[r].tool in set(tools)])
  spec = episodes.EpisodeSpec(n_way=2, k_shot=1, q_query=1, n_views=0, mode="sd")
  max_answer = batches.answer_width(llm_small, mta_ds, tools)
  widths_differ = False
  for step in range(3):
    rng = lambda: np.random.default_rng([0, step])  # pylint: disable=cell-var-from-loop
    sft = lambda part, longest: batches.sft_batch(rng(), llm_small, mta_ds, rows, tools, 2, B,
                                                  PCFG, take=part, longest=longest)
    epi = lambda part, longest: batches.episode_batch(rng(), llm_small, mta_ds, pool, tools, spec,
                                                      B, PCFG, max_answer, take=part,
                                                      longest=longest)
    for build in (sft, epi):
      full = build(slice(None), None)
      assert jax.tree.leaves(full)[0].shape[0] == B
      for n_procs in (1, 2, 4):
        parts, own = _parts(build, n_procs)
        assert all(jax.tree.leaves(p)[0].shape[0] == B // n_procs for p in parts)
        _assert_identical(_concat(parts, 0), full)
        width = full["ids"].shape[-1] if "ids" in full else full["query"]["ids"].shape[-1]
        widths_differ |= any(bucket_for(n, PROMPT_BUCKETS) != width for n in own)
  # The shared width matters: some part alone would have packed to a narrower bucket.
  assert widths_differ


@pytest.mark.parametrize("method", ["sft", "mta"])
def test_the_llm_trainer_samples_each_process_rows(method, tmp_path, monkeypatch):
  config = _config(f"{method},smoke")
  config.sft.batch_size = config.meta.meta_batch = B
  setup = trainer.setup(config, tmp_path)
  assert setup.sample_rows is not None  # train.train calls it on each process of a multi-host run
  rng = lambda: np.random.default_rng([config.seed, 7])
  full = setup.sample(rng())
  # One process: its rows are the whole batch (max_over_processes is the identity).
  _assert_identical(setup.sample_rows(rng(), slice(0, B)), full)
  axis = 0 if method == "mta" else 1  # episodes, or SFT's query rows
  for n_procs in (2, 4):
    widths = []
    monkeypatch.setattr(sharding, "max_over_processes", lambda n: widths.append(n) or n)
    parts = [slice(p * B // n_procs, (p + 1) * B // n_procs) for p in range(n_procs)]
    for part in parts:
      setup.sample_rows(rng(), part)
    monkeypatch.setattr(sharding, "max_over_processes", lambda n: max(widths))
    got = [setup.sample_rows(rng(), part) for part in parts]
    assert len(widths) == n_procs  # one collective a step and process
    _assert_identical(_concat(got, axis), full)
