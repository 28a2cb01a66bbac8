"""TFDS builder for MTA-Tools, from the committed ``data/tools.jsonl`` and ``data/qa.jsonl``.

Configs: ``qa`` (splits train / validation / test = seen / validation / unseen tools) and
``tools`` (the 155 tool documents, one split ``train`` holding all, each with its ``split``).
Both use the project's shared schema (``datasets_tfds/schema.py``); for MTA-Tools ``group`` is
the domain and ``tags`` carries the sibling group as ``sibling:<group>``.
"""

from __future__ import annotations

import json
import pathlib

import tensorflow_datasets as tfds

from datasets_tfds import schema

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"


class Builder(tfds.core.GeneratorBasedBuilder):
  """MTA-Tools tool-selection dataset."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: 7 domains, 155 tools, 9,377 pairs."}
  BUILDER_CONFIGS = schema.builder_configs()

  def _info(self) -> tfds.core.DatasetInfo:
    features = schema.qa_features() if self.builder_config.name == "qa" else (
        schema.tools_features())
    return self.dataset_info_from_configs(
        features=features, disable_shuffling=True,
        homepage="https://arxiv.org/abs/2601.12680",
        supervised_keys=None)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The data ships with the builder.
    tools_path, qa_path = DATA_DIR / "tools.jsonl", DATA_DIR / "qa.jsonl"
    for p in (tools_path, qa_path):
      if not p.exists():
        raise FileNotFoundError(f"{p} is missing: run `python datasets_tfds/mta_tools/"
                                "synthesize.py` to produce it from the sources")
    tools = [json.loads(line) for line in tools_path.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    if self.builder_config.name == "tools":
      return {"train": self._generate_examples(tools=tools)}
    return {split: self._generate_examples(tools=tools, qa_path=qa_path, split=split)
            for split in schema.SPLITS}

  def _generate_examples(self, tools, qa_path=None, split=None):
    """Yields (key, example): tools by index, or the qa pairs of one split by id."""
    if qa_path is None:
      yield from self._generate_tools(tools)
    else:
      yield from self._generate_qa(qa_path, tools, split)

  def _generate_tools(self, tools):
    for t in tools:
      yield t["index"], schema.tool_example(t["index"], t["name"], t["description"],
                                            t["parameters"], t["domain"], t["split"])

  def _generate_qa(self, qa_path: pathlib.Path, tools, split: str):
    by_name = {t["name"]: t for t in tools}
    for line in qa_path.read_text(encoding="utf-8").splitlines():
      if not line.strip():
        continue
      q = json.loads(line)
      if q["split"] != split:
        continue
      tool = by_name[q["tool"]]
      yield q["id"], schema.qa_example(
          q["id"], q["query"], q["tool"], q["tool_index"], q["domain"], q["arguments"],
          style=q["style"], source_id=f"mta_tools/{q['id']}",
          tags=[f"sibling:{tool['group']}", f"template:{q['template']}"])
