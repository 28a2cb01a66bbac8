r"""Does an LLM selector read the question, or pick by position? (``mta_jax.llm.probe``)

    python experiments/llm_position_probe.py            # SmolLM2-135M-Instruct as packaged

Prints accuracy per rotation of the candidate list and how often each position was picked, for
the table's log-likelihood read-out and its content-free-calibrated version.
"""

import json
import pathlib

from absl import app, flags

_OUT = flags.DEFINE_string("out", None, "Also write the results as JSON here.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from mta_jax import runtime  # pylint: disable=import-outside-toplevel
  runtime.setup_jax()
  from mta_jax.llm import probe  # pylint: disable=import-outside-toplevel
  from mta_jax.llm.lm import LanguageModel  # pylint: disable=import-outside-toplevel
  res = probe.run(LanguageModel.pretrained())
  n = len(probe.TOOLS)
  print(f"{len(probe.QUESTIONS)} questions x {n} rotations of {n} unrelated candidate tools")
  print("| read-out | " + " | ".join(f"rotation {i}" for i in range(n)) + " | mean | picks by "
        "position 1..5 |")
  print("|---" * (n + 3) + "|")
  for name in ("raw", "calibrated"):
    r = res[name]
    print(f"| {name} | " + " | ".join(f"{100 * a:.0f}%" for a in r["acc"]) +
          f" | {100 * r['mean_acc']:.0f}% | {r['positions']} |")
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
  app.run(main)
