"""The one schema every tool-selection dataset of this project is released in.

Two configs per dataset:
- ``tools``: one example per tool: ``index`` (0..T-1, the tool's id inside the dataset),
  ``name``, ``description``, ``parameters`` (JSON-schema text, "{}" where the source has none),
  ``group`` (domain, API or hub: the pool of same-group distractors), ``split`` ("train",
  "validation", "test": which QA split the tool's queries are in).
- ``qa``: one example per query: ``id``, ``query``, ``tool`` (gold name), ``tool_index``,
  ``group``, ``arguments`` (gold arguments as JSON text, "{}" where unknown), ``candidates``
  (the source's own candidate tool names, empty where it has none), ``style`` (MTA-Tools'
  query style, "" elsewhere), ``source_id`` (where the record came from), ``tags`` (free labels,
  e.g. "GetUserToken" for API-Bank's login records).

A reader written for ``mta_tools`` reads every other dataset without special cases.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

TOOL_FIELDS = ("index", "name", "description", "parameters", "group", "split")
QA_FIELDS = ("id", "query", "tool", "tool_index", "group", "arguments", "candidates", "style",
             "source_id", "tags")
SPLITS = ("train", "validation", "test")


def tools_features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "index": tfds.features.Scalar(dtype=np.int32),
      "name": tfds.features.Text(),
      "description": tfds.features.Text(),
      "parameters": tfds.features.Text(),
      "group": tfds.features.Text(),
      "split": tfds.features.Text(),
  })


def qa_features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "id": tfds.features.Text(),
      "query": tfds.features.Text(),
      "tool": tfds.features.Text(),
      "tool_index": tfds.features.Scalar(dtype=np.int32),
      "group": tfds.features.Text(),
      "arguments": tfds.features.Text(),
      "candidates": tfds.features.Sequence(tfds.features.Text()),
      "style": tfds.features.Text(),
      "source_id": tfds.features.Text(),
      "tags": tfds.features.Sequence(tfds.features.Text()),
  })


def tool_example(index: int, name: str, description: str, parameters: Any, group: str,
                 split: str) -> dict:
  """A ``tools`` example; ``parameters`` may be a dict (dumped to sorted JSON) or JSON text."""
  if split not in SPLITS:
    raise ValueError(f"tool {name!r}: split must be one of {SPLITS}, got {split!r}")
  if not isinstance(parameters, str):
    parameters = json.dumps(parameters or {}, sort_keys=True, ensure_ascii=False)
  return {"index": index, "name": name, "description": description, "parameters": parameters,
          "group": group, "split": split}


def qa_example(id_: str, query: str, tool: str, tool_index: int, group: str,
               arguments: Any = None, candidates=(), style: str = "", source_id: str = "",
               tags=()) -> dict:
  """A ``qa`` example with every field of the shared schema."""
  if not isinstance(arguments, str):
    arguments = json.dumps(arguments or {}, sort_keys=True, ensure_ascii=False)
  return {"id": id_, "query": query, "tool": tool, "tool_index": tool_index, "group": group,
          "arguments": arguments, "candidates": list(candidates), "style": style,
          "source_id": source_id, "tags": list(tags)}


def builder_configs(version_notes: str = "") -> list[tfds.core.BuilderConfig]:
  """The two configs, ``qa`` and ``tools``."""
  return [
      tfds.core.BuilderConfig(name="qa", description="Query -> gold tool pairs."),
      tfds.core.BuilderConfig(name="tools", description="The tool documents."),
  ]
