"""The dates a query can mean, resolved against one documented reference date ("today").

MTA-Tools 1.1.0 states one reference date (``REFERENCE_DATE``, a Monday; in the card and in
every record's ``reference_date``). Every date argument of a 1.1.0 gold call is an ISO date
(YYYY-MM-DD) that a reader can derive from the query and that date with these rules:

- ``today``, ``tomorrow``, ``the day after tomorrow``, ``yesterday``, ``the day before
  yesterday``, ``in N days``, ``N days ago``;
- ``this <weekday>`` / ``on <weekday>``: its first occurrence on or after today;
  ``next <weekday>``: that weekday in the following calendar week (Monday to Sunday);
  ``last <weekday>``: its most recent occurrence before today;
- ``the end of the month`` / ``the start of the year``: of today's month / year;
- a month and day (``March 3``, ``April 17th``, ``the 22nd of July``, ``5 December``) without a
  year: its next occurrence on or after today, or, for a parameter that looks back (its schema
  description says "past"), its most recent occurrence on or before today;
- a date with its year (``2026-12-05``, ``December 5, 2026``) means itself.

``resolve(query, reference, past)`` returns every date the query's expressions denote;
a date argument is *derivable* when it is among them. Standard library only.
"""

from __future__ import annotations

import datetime as dt
import re

REFERENCE_DATE = "2026-03-02"
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUM = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
        "nine": 9, "ten": 10, "a": 1}
_M = "(" + "|".join(MONTHS) + ")"
_D = r"(\d{1,2})(?:st|nd|rd|th)?"
_W = "(" + "|".join(WEEKDAYS) + ")"


def is_date_value(value) -> bool:
  return isinstance(value, str) and bool(ISO_RE.match(value))


def _month_day(year: int, month: int, day: int) -> dt.date | None:
  try:
    return dt.date(year, month, day)
  except ValueError:
    return None


def resolve(query: str, reference: str | None, past: bool = False) -> set[str]:
  """ISO dates the query's date expressions denote (only explicit ones without a reference)."""
  q = " ".join(query.lower().replace(",", " ").split())
  out: set[str] = set()
  for m in re.finditer(r"\b(\d{4})-(\d{2})-(\d{2})\b", q):
    d = _month_day(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if d:
      out.add(d.isoformat())
  for m in re.finditer(rf"\b{_M} {_D} (\d{{4}})\b", q):
    d = _month_day(int(m.group(3)), MONTHS.index(m.group(1)) + 1, int(m.group(2)))
    if d:
      out.add(d.isoformat())
  for m in re.finditer(rf"\b{_D} (?:of )?{_M} (\d{{4}})\b", q):
    d = _month_day(int(m.group(3)), MONTHS.index(m.group(2)) + 1, int(m.group(1)))
    if d:
      out.add(d.isoformat())
  if reference is None:
    return out
  today = dt.date.fromisoformat(reference)
  day = dt.timedelta(days=1)
  rel = {"the day after tomorrow": 2, "day after tomorrow": 2, "the day before yesterday": -2,
         "today": 0, "tonight": 0, "tomorrow": 1, "yesterday": -1}
  rest = q
  for phrase, k in rel.items():  # longest phrases first, then remove them
    if re.search(rf"\b{phrase}\b", rest):
      out.add((today + k * day).isoformat())
      rest = re.sub(rf"\b{phrase}\b", " ", rest)
  for m in re.finditer(r"\bin (\d+|one|two|three|four|five|six|seven|eight|nine|ten) days\b", q):
    n = int(m.group(1)) if m.group(1).isdigit() else _NUM[m.group(1)]
    out.add((today + n * day).isoformat())
  for m in re.finditer(r"\b(\d+|two|three|four|five|six|seven|eight|nine|ten) days ago\b", q):
    n = int(m.group(1)) if m.group(1).isdigit() else _NUM[m.group(1)]
    out.add((today - n * day).isoformat())
  for m in re.finditer(rf"\b(this|on|next|last|coming|by) {_W}\b", q):
    w = WEEKDAYS.index(m.group(2))
    ahead = (w - today.weekday()) % 7
    if m.group(1) in ("this", "on", "coming", "by"):
      out.add((today + ahead * day).isoformat())
    elif m.group(1) == "next":
      monday = today + (7 - today.weekday()) * day
      out.add((monday + w * day).isoformat())
    else:
      back = (today.weekday() - w) % 7 or 7
      out.add((today - back * day).isoformat())
  if re.search(r"\bend of (the|this) month\b", q):
    first_next = (today.replace(day=28) + 4 * day).replace(day=1)
    out.add((first_next - day).isoformat())
  if re.search(r"\b(start|beginning) of (the|this) year\b", q):
    out.add(today.replace(month=1, day=1).isoformat())
  if re.search(r"\bnew year's eve\b", q):
    out.add((dt.date(today.year - 1, 12, 31) if past else dt.date(today.year, 12, 31)).isoformat())
  pairs = [(MONTHS.index(m.group(1)) + 1, int(m.group(2)))
           for m in re.finditer(rf"\b{_M} {_D}\b(?! \d{{4}})", q)]
  pairs += [(MONTHS.index(m.group(2)) + 1, int(m.group(1)))
            for m in re.finditer(rf"\b{_D} (?:of )?{_M}\b(?! \d{{4}})", q)]
  for month, dd in pairs:
    for year in (today.year - 1, today.year, today.year + 1):
      d = _month_day(year, month, dd)
      if d is None:
        continue
      if past and today - dt.timedelta(days=365) < d <= today:
        out.add(d.isoformat())
      if not past and today <= d < today + dt.timedelta(days=365):
        out.add(d.isoformat())
  return out


def derivable(value: str, query: str, reference: str | None, past: bool = False) -> bool:
  """True when the ISO date ``value`` is among the dates ``query`` denotes."""
  return value in resolve(query, reference, past)
