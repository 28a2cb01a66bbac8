"""report.py --append: another report (the ablation's) as a section of RESULTS.md."""

import sys

from test_train import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
import report  # pylint: disable=wrong-import-position


def test_appended_report_moves_headings_down_and_keeps_its_plots_reachable(tmp_path):
  sub = tmp_path / "results" / "ablation"
  sub.mkdir(parents=True)
  (sub / "ABLATION.md").write_text("# Ablation\n\n| a |\n![p](plots/x.png) [doc](https://x.org/a)"
                                   "\n## Paired comparison: A vs B\n")
  text = report.appended(sub / "ABLATION.md", tmp_path / "RESULTS.md")
  assert text.splitlines()[0] == "## Ablation"
  assert "### Paired comparison: A vs B" in text
  assert "![p](results/ablation/plots/x.png)" in text
  assert "[doc](https://x.org/a)" in text  # absolute links untouched
