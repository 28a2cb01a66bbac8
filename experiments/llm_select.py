r"""Evaluates SmolLM2-135M-Instruct as a tool selector (Base, LoRA SFT or MTA-LoRA) on the paper's
evaluator's tasks (the encoder rows' episodes) and writes ``<workdir>/eval.json``, which
``experiments/report.py`` turns into a row of RESULTS.md.

    python experiments/llm_select.py --flagfile=experiments/flags/llm_base.flags
    python experiments/llm_select.py --config=experiments/configs/llm.py:base \
        --config.eval.max_queries=500 --workdir=workdirs/llm_base

Exit codes: 0 done, 1 an error with a one-line message (bad flag or config, missing data or
weights). A config override given twice (in the flagfile, then on the command line) takes its
last value, tuples included (``_cli.last_override_wins``).
"""

import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

import _cli  # experiments/_cli.py: bad input -> one line on stderr, exit status 1

# DEFINE_config_file expands --flagfile as it is defined: check the files exist first.
_cli.check_flagfiles("llm_select", sys.argv)
_CONFIG = config_flags.DEFINE_config_file("config", None, "A get_config(arg) file:arg.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where eval.json is written.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from mta_jax import runtime  # pylint: disable=import-outside-toplevel
  runtime.setup_jax()
  from mta_jax.llm import run  # pylint: disable=import-outside-toplevel
  command = "python " + " ".join([pathlib.Path(sys.argv[0]).as_posix()] + sys.argv[1:])
  # Missing data or weights raise types in _cli.USER_ERRORS: one line on stderr, exit status 1.
  summary = run.run(_CONFIG.value, _WORKDIR.value, command, commit=_cli.git_commit())
  for name, res in summary["results"].items():
    if "skipped" in res:
      print(f"{name}: skipped ({res['skipped']})")
      continue
    for mode in [m for m in ("sd", "cd") if m in res]:
      for shot, r in res[mode].items():
        if "skipped" in r:
          print(f"{name} {mode} {shot}: skipped ({r['skipped']})")
          continue
        line = (f"{name} {mode} {shot}: loglik {100 * r['mean']:.2f} ± {100 * r['std']:.2f}")
        if "generate" in r:
          line += (f", generate {100 * r['generate']['mean']:.2f} ± "
                   f"{100 * r['generate']['std']:.2f}")
        print(line)
    print(f"  ({res['evaluated_on']})")
  print(f"wrote {pathlib.Path(_WORKDIR.value) / 'eval.json'}")

if __name__ == "__main__":
  _cli.run(main, "llm_select", config_flags=("config",))
