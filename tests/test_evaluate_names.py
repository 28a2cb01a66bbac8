"""evaluate.py's row names (``run_config.lever_suffix``): runs that differ by a lever of the
ablation never share a row."""

from mta_jax import run_config
from mta_jax.scorer import ScorerConfig


def test_each_lever_names_its_row_and_plain_rows_keep_their_names():
  plain = {"dataset": "mta_tools", "episodes": {"hard_fraction": 0.0}}
  names = {
      run_config.lever_suffix(ScorerConfig(adapt="head"), plain),
      run_config.lever_suffix(ScorerConfig(adapt="head", lexical=True), plain),
      run_config.lever_suffix(ScorerConfig(adapt="head+mix", lexical=True), plain),
      run_config.lever_suffix(ScorerConfig(adapt="head", lexical=True),
                             {**plain, "episodes": {"hard_fraction": 0.5}}),
      run_config.lever_suffix(ScorerConfig(adapt="head", lexical=True),
                             {**plain, "dataset": "mta_tools+metatool"}),
  }
  assert names == {"", " (hybrid)", " (hybrid, adapted mix)", " (hybrid, hard negatives)",
                   " (hybrid, trained on mta_tools+metatool)"}
  # Inner rates other than the algorithm's default name the row; the default does not.
  assert run_config.lever_suffix(ScorerConfig(adapt="head", lexical=True), {
      **plain, "meta": {"algorithm": "maml", "learn_inner_lr": "fixed"}}) == (
          " (hybrid, fixed inner rates)")
  assert run_config.lever_suffix(ScorerConfig(adapt="head", lexical=True), {
      **plain, "meta": {"algorithm": "fomaml", "learn_inner_lr": "per_tensor"}}) == (
          " (hybrid, per-tensor inner rates)")
  assert run_config.lever_suffix(ScorerConfig(), {
      **plain, "meta": {"algorithm": "maml", "learn_inner_lr": "per_tensor"}}) == ""
  # Proto-MAML: the candidates' class vectors start as their embeddings and adapt too.
  assert run_config.lever_suffix(ScorerConfig(adapt="head", lexical=True, proto_head=True),
                                 plain) == " (hybrid, Proto-MAML init)"
  # Old runs' configs (no hard_fraction, no union) are plain rows.
  assert run_config.lever_suffix(ScorerConfig(), {"dataset": "mta_tools"}) == ""
