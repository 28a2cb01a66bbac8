"""TFDS builder for MTA-Tools, from the committed ``data/tools.jsonl`` and ``data/qa.jsonl``.

Configs: ``qa`` (splits train / validation / test = seen / validation / unseen tools) and
``tools`` (the 155 tool documents, one split ``train`` holding all, each with its ``split``).
Both use the project's shared schema (``datasets_tfds/schema.py``); for MTA-Tools ``group`` is
the domain and ``tags`` carries the sibling group as ``sibling:<group>``.

Versions: 1.0.0 (the default, from ``data/``) and 1.1.0 (from ``data/1.1.0/``; select it with
``mta_tools/qa:1.1.0`` or ``Builder(config="qa", version="1.1.0")``). A 1.1.0 record's tags
also carry ``reference_date:<YYYY-MM-DD>`` and, for a test tool, ``test_subset:<name>``
(``antonym_or_variant`` of a training tool, or ``other``); the dataset's metadata
(``metadata.json`` next to the records) holds the reference date and both tool lists.
"""

from __future__ import annotations

import json
import pathlib

import tensorflow_datasets as tfds

from datasets_tfds import schema

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"


class Builder(tfds.core.GeneratorBasedBuilder):
  """MTA-Tools tool-selection dataset."""

  # 1.0.0 stays the default while every result of the project is for it; 1.1.0 is built on
  # request (version="1.1.0" or "mta_tools/qa:1.1.0").
  VERSION = tfds.core.Version("1.0.0")
  SUPPORTED_VERSIONS = [tfds.core.Version("1.1.0")]
  RELEASE_NOTES = {
      "1.0.0": "First release: 7 domains, 155 tools, 9,377 pairs.",
      "1.1.0": ("Same 155 tools, 7 domains, split and 9,377 pairs per tool count; queries "
                "regenerated. Slot values that must agree are drawn together (one OS per file "
                "call, plausible workout pace, meeting lengths and times, Linux service "
                "names); every date argument is an ISO date derivable from the query and one "
                "reference date (2026-03-02, in every record); every gold call valid against "
                "its schema (convert_currency's amount is optional, a parcel pickup always has "
                "its date); typo rows always differ from their clean form (typo_of), no "
                "doubled articles; seeded paraphrase rules and rewritten sibling "
                "descriptions against keyword shortcuts; 1,255 newly authored templates "
                "(28.4 a tool, mostly indirect requests that name the goal, not the action's "
                "keywords); test tools that are antonyms or variants of a training tool listed "
                "in the metadata."),
  }
  BUILDER_CONFIGS = schema.builder_configs()

  def _release_dir(self) -> pathlib.Path:
    version = str(self.version)
    return DATA_DIR if version == "1.0.0" else DATA_DIR / version

  def _info(self) -> tfds.core.DatasetInfo:
    features = schema.qa_features() if self.builder_config.name == "qa" else (
        schema.tools_features())
    meta_path = self._release_dir() / "metadata.json"
    metadata = None
    if str(self.version) != "1.0.0" and meta_path.exists():
      metadata = tfds.core.MetadataDict(json.loads(meta_path.read_text(encoding="utf-8")))
    return self.dataset_info_from_configs(
        features=features, disable_shuffling=True,
        homepage="https://arxiv.org/abs/2601.12680",
        supervised_keys=None, metadata=metadata)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The data ships with the builder.
    release = self._release_dir()
    tools_path, qa_path = release / "tools.jsonl", release / "qa.jsonl"
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
    subset_of = {}
    meta_path = qa_path.parent / "metadata.json"
    if str(self.version) != "1.0.0" and meta_path.exists():
      meta = json.loads(meta_path.read_text(encoding="utf-8"))
      subset_of = {n: s for s, names in meta["test_subsets"].items() for n in names}
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
          tags=[f"sibling:{tool['group']}", f"template:{q['template']}"] + (
              [f"reference_date:{q['reference_date']}"] if "reference_date" in q else []) + (
                  [f"test_subset:{subset_of[q['tool']]}"] if q["tool"] in subset_of else []))
