"""experiments/benchmarks/config_step.py reads each row's config as meta_train would."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module():
  spec = importlib.util.spec_from_file_location(
      "config_step", ROOT / "experiments" / "benchmarks" / "config_step.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_flagfile_overrides_and_variants_reach_the_config():
  cs = _module()
  # mta_hybrid_mix.flags sets scorer.adapt by a --config. override after its --config= token.
  assert cs.config_of("mta_hybrid_mix").scorer.adapt == "head+mix"
  assert cs.config_of("mta_hybrid").scorer.adapt == "head"
  assert cs.config_of("mta_hybrid").scorer.lexical
  # A variant is its base flagfile plus more overrides; the base is not changed by it.
  lora = cs.config_of("mta_top_lora8")
  assert (lora.scorer.adapt, lora.scorer.lora_rank) == ("lora+head", 8)
  assert cs.config_of("mta_top").scorer.adapt == "top+head"
  assert cs.config_of("mta_hybrid_steps5").meta.inner_steps == 5


def test_the_gpu_sized_capacity_rows_parse_to_what_their_comments_say():
  cs = _module()
  top, lora = cs.config_of("mta_hybrid_top"), cs.config_of("mta_hybrid_lora8")
  assert (top.scorer.n_top, top.scorer.adapt, top.scorer.lexical) == (1, "top+head", True)
  assert (lora.scorer.n_top, lora.scorer.adapt, lora.scorer.lora_rank) == (1, "lora+head", 8)
  assert lora.scorer.lexical
