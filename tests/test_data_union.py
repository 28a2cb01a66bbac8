"""data.union: several datasets as one training set (issue 18, task diversity)."""

import dataclasses

import numpy as np
import pytest

from mta_jax import data, run_config


def _tiny(name, groups, splits):
  tools = [data.Tool(i, f"{name}_tool_{i}", f"does thing {i} of {name}", {}, g, s)
           for i, (g, s) in enumerate(zip(groups, splits))]
  queries = [data.Query(f"{name}-{i}-{j}", f"query {j} for {name} {i}", i, t.split)
             for i, t in enumerate(tools) for j in range(2)]
  return data.ToolDataset(name, tools, queries)


def test_union_offsets_indices_keeps_splits_and_prefixes_groups():
  a = _tiny("a", ["x", "x", "y"], ["train", "test", "train"])
  b = _tiny("b", ["p", "q"], ["train", "validation"])  # every group one tool: no domains
  u = data.union([a, b])
  assert u.name == "a+b" and len(u.tools) == 5 and len(u.queries) == 10
  assert [t.index for t in u.tools] == list(range(5))
  assert [t.group for t in u.tools] == ["a:x", "a:x", "a:y", "b", "b"]
  assert [t.source for t in u.tools] == ["a", "a", "a", "b", "b"]
  np.testing.assert_array_equal(u.tool_indices("train"), [0, 2, 3])
  for q in u.queries:  # every query still points at its own tool
    assert u.tools[q.tool].name.split("_")[0] == q.id.split("-")[0]
  # Texts are unchanged (the encoder and BM25 read the same documents).
  assert u.tools[3].document() == b.tools[0].document()


def test_union_refuses_datasets_that_share_a_tool():
  a = _tiny("a", ["x"], ["train"])
  b = dataclasses.replace(_tiny("b", ["x"], ["train"]))
  b.tools[0] = dataclasses.replace(b.tools[0], name="a_tool_0")
  with pytest.raises(data.DatasetFormatError, match="'a_tool_0' is in both a and b"):
    data.union([a, b])


def test_config_loads_a_union_by_plus(tmp_path, monkeypatch):
  parts = {"mta_tools": _tiny("mta_tools", ["x"] * 2, ["train"] * 2),
           "metatool": _tiny("metatool", ["m1", "m2"], ["train", "test"])}
  monkeypatch.setattr(data, "load", lambda name, data_dir, version=None: parts[name])
  u = run_config.load_dataset("mta_tools+metatool", str(tmp_path))
  assert u.name == "mta_tools+metatool" and len(u.tools) == 4
