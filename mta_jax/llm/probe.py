"""A position-bias probe for an LLM tool selector: trivially separable tasks, every ordering.

Five unrelated tools (weather, e-mail, music, translation, arithmetic) and two plain questions
for each, scored with the same prompt and read-out as the table (``task_eval.TaskSelector``)
under every cyclic rotation of the candidate list. A selector that reads the question gets
these right whatever the order; one that does not picks by position. The histogram of picked
positions shows which. A content-free question ("N/A") gives each ordering's prior; subtracting
it (contextual calibration, Zhao et al. 2021, arXiv:2102.09690) is reported beside the raw read-out.
"""

from __future__ import annotations

import numpy as np

from mta_jax.data import Query, Tool, ToolDataset
from mta_jax.llm import select, task_eval

# Authored for this probe: five tools no one would confuse, two questions each.
TOOLS = (
    ("get_weather_forecast", "Get the weather forecast for a city on a given day."),
    ("send_email", "Send an e-mail message to a recipient."),
    ("play_music", "Play a song, an album or a playlist on the speaker."),
    ("translate_text", "Translate a text from one language into another."),
    ("add_numbers", "Add a list of numbers and return their sum."),
)
QUESTIONS = (
    ("Will it rain in Lisbon tomorrow?", 0), ("What temperature is it going to be in Oslo today?", 0),
    ("Email Dana that the meeting moved to 3 pm.", 1), ("Send a note to my landlord about the leak.", 1),
    ("Put on some jazz.", 2), ("Play the new album by Radiohead.", 2),
    ("How do you say 'thank you' in Japanese?", 3), ("Translate 'where is the station' into German.", 3),
    ("What is 17 plus 25 plus 3?", 4), ("Sum up 120, 45 and 8 for me.", 4),
)
CONTENT_FREE = "N/A"


def dataset() -> ToolDataset:
  """The probe's tools and questions (the last query is the content-free one)."""
  tools = [Tool(i, n, d, {}, "probe", "test") for i, (n, d) in enumerate(TOOLS)]
  queries = [Query(f"p{i}", text, gold, "test") for i, (text, gold) in enumerate(QUESTIONS)]
  queries.append(Query("content_free", CONTENT_FREE, 0, "test"))
  return ToolDataset("position_probe", tools, queries)


def run(model, params=None, batch_size: int = 16) -> dict:
  """Accuracy and picked-position histograms, raw and calibrated, over every rotation."""
  ds = dataset()
  sel = task_eval.TaskSelector(model, ds, select.PromptConfig(), batch_size=batch_size,
                               generate=False)
  n, rows = len(TOOLS), list(range(len(ds.queries)))
  gold = np.array([g for _, g in QUESTIONS])
  out = {"orders": [], "raw": {"acc": [], "positions": np.zeros(n, int)},
         "calibrated": {"acc": [], "positions": np.zeros(n, int)}}
  for shift in range(n):
    order = np.roll(np.arange(n), -shift)
    ll = sel.score_task(order.tolist(), rows, params)["loglik"]
    out["orders"].append([TOOLS[t][0] for t in order])
    for name, s in (("raw", ll[:-1]), ("calibrated", ll[:-1] - ll[-1:])):
      pos = s.argmax(1)
      out[name]["acc"].append(float(np.mean(order[pos] == gold)))
      out[name]["positions"] += np.bincount(pos, minlength=n)
  for name in ("raw", "calibrated"):
    out[name]["mean_acc"] = float(np.mean(out[name]["acc"]))
    out[name]["positions"] = out[name]["positions"].tolist()
  return out
