r"""Compares two eval.json files number by number: are two runs identical to the digit?

    python experiments/diff_evals.py --a=workdirs/before/mta_sd_s0/eval.json \
        --b=workdirs/after/mta_sd_s0/eval.json [--datasets=mta_tools,toolalpaca]

Every number under ``results`` (per dataset, protocol, shot, seed, group; timings excluded) is
compared exactly; prints the first differences and a count, exits 1 if any differ. Used to show a
refactor changed no result (issue 17: MTA and SFT seed 0 before and after).
"""

import json
import sys

from absl import app, flags

import _cli  # experiments/_cli.py: bad input -> one line on stderr, exit status 1

_A = flags.DEFINE_string("a", None, "First eval.json.")
_B = flags.DEFINE_string("b", None, "Second eval.json.")
_DATASETS = flags.DEFINE_list("datasets", None, "Datasets to compare (default: those in both).")
flags.mark_flags_as_required(["a", "b"])


def flatten(node, prefix: str = "") -> dict:
  """{"/path/[i]": leaf} of a JSON tree."""
  if isinstance(node, dict):
    return {k: v for key, child in node.items() for k, v in flatten(child, f"{prefix}/{key}").items()}
  if isinstance(node, list):
    return {k: v for i, child in enumerate(node) for k, v in flatten(child, f"{prefix}[{i}]").items()}
  return {prefix: node}


def diff(a: dict, b: dict, datasets=None) -> tuple[int, list[str]]:
  """(numbers compared, differences) between two eval.json ``results``."""
  names = datasets or sorted(set(a) & set(b))
  n, out = 0, []
  for name in names:
    fa, fb = flatten(a.get(name, {})), flatten(b.get(name, {}))
    for key in sorted(set(fa) | set(fb)):
      if "seconds" in key:
        continue
      n += 1
      if fa.get(key) != fb.get(key):
        out.append(f"{name}{key}: {fa.get(key)} != {fb.get(key)}")
  return n, out


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  with open(_A.value, encoding="utf-8") as fa, open(_B.value, encoding="utf-8") as fb:
    a, b = json.load(fa)["results"], json.load(fb)["results"]
  n, diffs = diff(a, b, _DATASETS.value)
  for line in diffs[:20]:
    print(line)
  print(f"{n} numbers compared, {len(diffs)} differ")
  sys.exit(1 if diffs else 0)


if __name__ == "__main__":
  _cli.run(main, "diff_evals")
