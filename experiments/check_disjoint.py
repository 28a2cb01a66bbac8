r"""Are the training tools disjoint from every test split? (issue 18: task diversity)

    python experiments/check_disjoint.py --train=mta_tools+metatool --data_dir=tfds_data \
        [--test=mta_tools,metatool,api_bank,toolalpaca,apibench] [--out=overlap.md]

For the training tools of ``--train`` (one dataset or a union ``a+b``) and the tools scored at
test time in each ``--test`` dataset (its test split, or every tool of an external benchmark
without one), counts:
- tools with the same normalised name (lowercase letters and digits only);
- tools with the same normalised description;
- near duplicates: the largest word-set Jaccard similarity of name + description between a test
  tool and any training tool, above ``--near`` (0.6), listed for reading.
Exits 1 if any name or description is shared (a test tool seen in training). Datasets that are
not built are reported as such. Prints a Markdown table (and writes it to ``--out``).
"""

import pathlib
import re

from absl import app, flags

import _cli  # experiments/_cli.py: bad input -> one line on stderr, exit status 1

_TRAIN = flags.DEFINE_string("train", "mta_tools+metatool", "Training dataset (or a+b union).")
_TEST = flags.DEFINE_list("test", ["mta_tools", "metatool", "api_bank", "toolalpaca",
                                   "apibench"], "Datasets whose test tools are checked.")
_DATA_DIR = flags.DEFINE_string("data_dir", "tfds_data", "TFDS data dir.")
_NEAR = flags.DEFINE_float("near", 0.6, "Jaccard similarity listed as a near duplicate.")
_OUT = flags.DEFINE_string("out", None, "Also write the table to this file.")


def _norm(text: str) -> str:
  return re.sub(r"[^a-z0-9]", "", text.lower())


def _words(tool) -> frozenset:
  return frozenset(re.findall(r"[a-z0-9]+", f"{tool.name} {tool.description}".lower()))


def _scored_tools(ds):
  own = [t for t in ds.tools if t.split == "test"]
  return own or list(ds.tools)  # external benchmarks: every tool is unseen


def check(train_tools, test_tools, near: float) -> dict:
  """Shared names, shared descriptions and near duplicates (Jaccard >= ``near``)."""
  names = {_norm(t.name): t for t in train_tools}
  descs = {_norm(t.description): t for t in train_tools if _norm(t.description)}
  words = [(_words(t), t) for t in train_tools]
  same_name = [(t.name, names[_norm(t.name)].name) for t in test_tools if _norm(t.name) in names]
  same_desc = [(t.name, descs[_norm(t.description)].name) for t in test_tools
               if _norm(t.description) in descs]
  close = []
  for t in test_tools:
    w = _words(t)
    best, other = max(((len(w & v) / max(len(w | v), 1), u) for v, u in words),
                      key=lambda x: x[0])
    if best >= near:
      close.append((t.name, other.name, round(best, 2)))
  return {"same_name": same_name, "same_desc": same_desc, "near": close}


def main(argv):
  del argv
  from mta_jax import run_config  # pylint: disable=import-outside-toplevel
  train_ds = run_config.load_dataset(_TRAIN.value, _DATA_DIR.value)
  train_tools = [t for t in train_ds.tools if t.split == "train"]
  lines = [f"Training tools: {len(train_tools)} ({_TRAIN.value}, split train). Near: word-set "
           f"Jaccard of name + description >= {_NEAR.value}.", "",
           "| test dataset | test tools | same name | same description | near duplicates |",
           "|---|---|---|---|---|"]
  shared, notes = 0, []
  for name in _TEST.value:
    try:
      ds = run_config.load_dataset(name, _DATA_DIR.value)
    except FileNotFoundError as e:
      lines.append(f"| {name} | not built ({_cli.one_line(str(e))[:60]}...) | | | |")
      continue
    res = check(train_tools, _scored_tools(ds), _NEAR.value)
    shared += len(res["same_name"]) + len(res["same_desc"])
    lines.append(f"| {name} | {len(_scored_tools(ds))} | {len(res['same_name'])} | "
                 f"{len(res['same_desc'])} | {len(res['near'])} |")
    for kind in ("same_name", "same_desc", "near"):
      notes += [f"- {name}, {kind.replace('_', ' ')}: test `{a}` ~ train `{b}`"
                + (f" ({rest[0]})" if rest else "") for a, b, *rest in res[kind]]
  text = "\n".join(lines + ([""] + notes if notes else []))
  print(text)
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(text + "\n")
  if shared:
    raise SystemExit(f"{shared} test tools share a name or a description with a training tool")


if __name__ == "__main__":
  _cli.run(main, "check_disjoint")
