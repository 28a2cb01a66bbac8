"""`make demo`: the main job on the embedded defaults.

For now: embed a handful of requests and tool descriptions with the pretrained encoder and
print, per request, the tools ranked by cosine similarity (the zero-shot "Base" selector).
"""

import time

import numpy as np

from mta_jax.models import TextEncoder

TOOLS = {
    "set_alarm": "Sets an alarm that rings at a clock time, optionally repeating on weekdays.",
    "start_timer": "Starts a countdown timer for a duration and alerts when it reaches zero.",
    "create_reminder": "Creates a reminder with a note that notifies you at a given date and time.",
    "kill_process": "Terminates a running process, selected by its PID or name.",
    "list_processes": "Lists running processes with their PID, CPU and memory use.",
    "share_spreadsheet": "Shares a spreadsheet with people by email with view or edit access.",
    "create_spreadsheet": "Creates a new, empty spreadsheet file with a title and columns.",
}
QUERIES = [
    "wake me up at 6:30 tomorrow",
    "let me know when 12 minutes are up, the pasta is boiling",
    "don't let me forget to call the dentist on Friday at 9",
    "chrome is frozen and eating all my RAM, make it stop",
    "what's hogging my CPU right now?",
    "give Priya edit access to the Q3 budget sheet",
]


def main() -> None:
  t0 = time.perf_counter()
  enc = TextEncoder.pretrained()
  names = list(TOOLS)
  tool_emb = enc.embed([f"{n.replace('_', ' ')}: {d}" for n, d in TOOLS.items()])
  query_emb = enc.embed(QUERIES)
  scores = query_emb @ tool_emb.T
  for q, row in zip(QUERIES, scores):
    order = np.argsort(-row)
    ranked = ", ".join(f"{names[i]} ({row[i]:.2f})" for i in order[:3])
    print(f"{q!r}\n    -> {ranked}")
  print(f"\nzero-shot MiniLM ranking of {len(QUERIES)} requests over {len(TOOLS)} tools "
        f"in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
  main()
