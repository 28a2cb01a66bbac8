"""evaluate.py's row names: runs that differ by a lever of the ablation never share a row."""

import sys

from mta_jax.scorer import ScorerConfig
from test_train import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
import evaluate  # pylint: disable=wrong-import-position


def test_each_lever_names_its_row_and_plain_rows_keep_their_names():
  plain = {"dataset": "mta_tools", "episodes": {"hard_fraction": 0.0}}
  names = {
      evaluate._lever_suffix(ScorerConfig(adapt="head"), plain),  # pylint: disable=protected-access
      evaluate._lever_suffix(ScorerConfig(adapt="head", lexical=True), plain),
      evaluate._lever_suffix(ScorerConfig(adapt="head+mix", lexical=True), plain),
      evaluate._lever_suffix(ScorerConfig(adapt="head", lexical=True),
                             {**plain, "episodes": {"hard_fraction": 0.5}}),
      evaluate._lever_suffix(ScorerConfig(adapt="head", lexical=True),
                             {**plain, "dataset": "mta_tools+metatool"}),
  }
  assert names == {"", " (hybrid)", " (hybrid, adapted mix)", " (hybrid, hard negatives)",
                   " (hybrid, trained on mta_tools+metatool)"}
  # Inner rates other than the algorithm's default name the row; the default does not.
  assert evaluate._lever_suffix(ScorerConfig(adapt="head", lexical=True), {  # pylint: disable=protected-access
      **plain, "meta": {"algorithm": "maml", "learn_inner_lr": "fixed"}}) == (
          " (hybrid, fixed inner rates)")
  assert evaluate._lever_suffix(ScorerConfig(adapt="head", lexical=True), {  # pylint: disable=protected-access
      **plain, "meta": {"algorithm": "fomaml", "learn_inner_lr": "per_tensor"}}) == (
          " (hybrid, per-tensor inner rates)")
  assert evaluate._lever_suffix(ScorerConfig(), {  # pylint: disable=protected-access
      **plain, "meta": {"algorithm": "maml", "learn_inner_lr": "per_tensor"}}) == ""
  # Old runs' configs (no hard_fraction, no union) are plain rows.
  assert evaluate._lever_suffix(ScorerConfig(), {"dataset": "mta_tools"}) == ""
