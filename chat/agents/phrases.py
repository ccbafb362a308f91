"""What a todo message says besides its title: when, how urgent, which tags, how often.

Read in the user's time zone from the turn's clock (`TurnContext`), by a small set
of patterns over `dateutil.relativedelta` arithmetic. dateparser (1.5.0) was tried
first and left out: it read "on the 1st" as the 2nd of January of the next year,
kept the clock time for date-only phrases ("tomorrow" at the current hour), and
finds no date inside a sentence without its slower `search_dates`.

What is understood (case-insensitive, anywhere in the message):

- days: "today", "tonight", "tomorrow", "monday" … "sunday" with or without
  "on", "this", "next" or "by" (the first such day after today), "next week",
  "next month", "in 3 days", "in 2 weeks", "in a month", "on the 1st" (the next
  1st: this month's if it is still to come); hours: "in 2 hours", "in 30 minutes";
- times: "at 5pm", "5:30 pm", "at 17:00", "at noon", "at midnight"; a time with no
  day is today's, or tomorrow's once it has passed;
- a day with no time is due at 09:00 local time, or at 23:59 when that has already
  passed (a task said "today" in the afternoon is not overdue at once); "tonight"
  is 20:00;
- priority: "urgent", "asap", "important", "high priority" → high; "low
  priority", "not urgent" → low;
- tags: "#home" (a tag needs a letter: "#3" stays a task number);
- repetition: "every day" / "daily", "every week" / "weekly", "every month" /
  "monthly", "every monday" (weekly, from the next Monday). A repeating task with
  no day said is due today.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from dateutil.relativedelta import relativedelta

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY = (
    r"(?P<weekday>mon(?:day)?|tue(?:s|sday)?|wed(?:nesday)?|thu(?:rs|rsday)?|fri(?:day)?|"
    r"sat(?:urday)?|sun(?:day)?)"
)
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10}  # fmt: skip
COUNT = r"(?P<count>\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten)"

DEFAULT_TIME = time(9, 0)
END_OF_DAY = time(23, 59)
TONIGHT = time(20, 0)

LEAD = r"(?:(?:due|by|on|for|at|this|next|coming)\s+)*"


def _re(pattern):
    return re.compile(pattern, re.IGNORECASE)


TIME_PATTERNS = [
    _re(
        r"\b(?:at\s+)?(?P<hour>1[0-2]|0?[1-9])(?::(?P<minute>[0-5]\d))?\s*(?P<ampm>[ap])\.?m\.?(?!\w)"
    ),
    _re(r"\bat\s+(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)\b"),
    _re(r"\b(?:at\s+)?(?P<word>noon|midday|midnight)\b"),
]
REPEAT_PATTERNS = [
    (_re(r"\b(?:every\s*day|each\s+day|daily)\b"), "daily"),
    (_re(rf"\b(?:every|each)\s+{WEEKDAY}\b"), "weekly"),
    (_re(r"\b(?:every\s+week|each\s+week|weekly)\b"), "weekly"),
    (_re(r"\b(?:every\s+month|each\s+month|monthly)\b"), "monthly"),
]
PRIORITY_PATTERNS = [
    (_re(r"\(?\b(?:low[\s-]+priority|priority\s*:?\s*low|not\s+urgent)\b\)?"), "low"),
    (_re(r"\(?\b(?:normal[\s-]+priority|priority\s*:?\s*normal)\b\)?"), "normal"),
    (
        _re(r"\(?\b(?:high[\s-]+priority|priority\s*:?\s*high|top\s+priority|urgent(?:ly)?|"
            r"asap|important)\b\)?!*"),
        "high",
    ),
]  # fmt: skip
TAG = _re(r"(?<![\w#])#(?P<tag>(?=[a-z0-9_-]*[a-z])[a-z0-9_-]{1,32})(?![\w-])")
DAY_PATTERNS = [
    ("in", _re(rf"\bin\s+{COUNT}\s+(?P<unit>min(?:ute)?s?|h(?:ou)?rs?|days?|weeks?|months?)\b")),
    ("today", _re(rf"\b{LEAD}(?P<word>today|tonight|tomorrow|tmrw|tomorow)\b")),
    ("nextunit", _re(r"\b(?:by\s+|due\s+)?next\s+(?P<unit>week|month)\b")),
    ("dom", _re(r"\b(?:(?:due|by|on)\s+)*the\s+(?P<day>[1-9]|[12]\d|3[01])(?:st|nd|rd|th)\b")),
    ("weekday", _re(rf"\b{LEAD}{WEEKDAY}\b")),
]


@dataclass(frozen=True)
class Details:
    """What a message says about a task besides its title."""

    due_at: datetime | None = None
    priority: str | None = None
    tags: tuple[str, ...] = ()
    repeat: str | None = None
    said_day: bool = False
    said_time: bool = False
    found: list = field(default_factory=list, compare=False)

    def tool_arguments(self):
        """The add_task / update_task arguments these details give."""
        arguments = {}
        if self.due_at is not None:
            arguments["due_at"] = self.due_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if self.priority:
            arguments["priority"] = self.priority
        if self.tags:
            arguments["tags"] = list(self.tags)
        if self.repeat:
            arguments["repeat"] = self.repeat
        return arguments


def weekday_number(name):
    return next(i for i, day in enumerate(WEEKDAYS) if day.startswith(name.lower()[:3]))


def _cut(text, match):
    return f"{text[: match.start()]} {text[match.end() :]}"


def next_weekday(today, weekday, *, include_today=False):
    """The first `weekday` after `today` (or `today` itself with `include_today`)."""
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and not include_today:
        ahead = 7
    return today + timedelta(days=ahead)


def next_day_of_month(today, day):
    """The next date (from today on) whose day of the month is `day`."""
    month = today.replace(day=1)
    for _ in range(13):
        candidate = month + relativedelta(day=day)
        if candidate.day == day and candidate >= today:
            return candidate
        month += relativedelta(months=1)
    return None


def _count(raw):
    return int(raw) if raw.isdigit() else NUMBERS[raw.lower()]


def extract(text, context):
    """`text` without the date, time, priority, tag and repetition phrases, and the
    `Details` they say, read at `context.now` in `context.zone`."""
    local_now = context.local_now
    today = local_now.date()
    day, clock, exact, repeat, priority, tags = None, None, None, None, None, []

    for pattern, value in REPEAT_PATTERNS:
        if found := pattern.search(text):
            repeat = value
            if "weekday" in pattern.groupindex and found["weekday"]:
                day = next_weekday(today, weekday_number(found["weekday"]), include_today=True)
            text = _cut(text, found)
            break
    while found := TAG.search(text):
        if found["tag"].lower() not in tags:
            tags.append(found["tag"].lower())
        text = _cut(text, found)
    for pattern, value in PRIORITY_PATTERNS:
        if found := pattern.search(text):
            priority = value
            text = _cut(text, found)
            break
    for pattern in TIME_PATTERNS:
        if found := pattern.search(text):
            clock = _clock(found)
            text = _cut(text, found)
            break
    for kind, pattern in DAY_PATTERNS:
        if day is not None:
            break
        if not (found := pattern.search(text)):
            continue
        if kind == "in":
            count, unit = _count(found["count"]), found["unit"].lower()
            if unit.startswith(("m", "h")) and not unit.startswith("mo"):
                minutes = count if unit.startswith("m") else count * 60
                exact = (local_now + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
            elif unit.startswith("mo"):
                day = today + relativedelta(months=count)
            else:
                day = today + timedelta(days=count * (7 if unit.startswith("w") else 1))
        elif kind == "today":
            word = found["word"].lower()
            day = today if word in ("today", "tonight") else today + timedelta(days=1)
            if word == "tonight" and clock is None:
                clock = TONIGHT
        elif kind == "nextunit":
            unit = found["unit"].lower()
            day = today + (timedelta(days=7) if unit == "week" else relativedelta(months=1))
        elif kind == "dom":
            day = next_day_of_month(today, int(found["day"]))
        else:
            day = next_weekday(today, weekday_number(found["weekday"]))
        if day is not None or exact is not None:
            text = _cut(text, found)
        if exact is not None:
            break

    due_at = exact
    if due_at is None and (day is not None or clock is not None or repeat):
        due_at = _due(local_now, day, clock)
    details = Details(
        due_at=None if due_at is None else due_at.astimezone(UTC),
        priority=priority,
        tags=tuple(tags),
        repeat=repeat,
        said_day=day is not None or exact is not None,
        said_time=clock is not None or exact is not None,
    )
    return tidy(text), details


def _clock(found):
    groups = found.groupdict()
    if groups.get("word"):
        return time(0, 0) if groups["word"].lower() == "midnight" else time(12, 0)
    hour, minute = int(groups["hour"]), int(groups.get("minute") or 0)
    if groups.get("ampm"):
        hour = hour % 12 + (12 if groups["ampm"].lower() == "p" else 0)
    return time(hour, minute)


def _due(local_now, day, clock):
    """The local instant for a day and/or a clock time (see the module docstring)."""
    zone = local_now.tzinfo
    if day is None:
        day = local_now.date()
        if clock is not None and _at(day, clock, zone) <= local_now:
            day += timedelta(days=1)
    if clock is None:
        clock = DEFAULT_TIME if _at(day, DEFAULT_TIME, zone) > local_now else END_OF_DAY
    return _at(day, clock, zone)


def _at(day, clock, zone):
    return datetime.combine(day, clock, tzinfo=zone)


EDGE_WORDS = r"and|with|due|by|on|at|for|it'?s|is|from|starting"
LEFTOVER_EDGE = _re(
    r"^(?:[\s,;:\-–—]|and\b|with\b|to\b)+"
    rf"|(?:[\s,;:\-–—(]|\b(?:{EDGE_WORDS})\b)+$"
)


def tidy(text):
    """Text with the phrases cut out, without the words left dangling at its ends."""
    text = " ".join(text.split())
    text = re.sub(r"\(\s*\)", "", text)
    previous = None
    while previous != text:
        previous = text
        text = LEFTOVER_EDGE.sub("", text).strip()
    return " ".join(text.split())


# --- questions ----------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    """What a question about the list asks for, as list_tasks arguments."""

    arguments: dict
    heading: str
    empty: str


DUE_WORDS = [
    ("overdue", _re(r"\b(?:overdue|late|past\s+due|missed)\b")),
    ("today", _re(r"\b(?:due\s+)?today\b")),
    ("tomorrow", _re(r"\b(?:due\s+)?tomorrow\b")),
    ("week", _re(r"\b(?:due\s+)?(?:this|the)\s+week\b")),
    ("due", _re(r"\b(?:due|upcoming|coming\s+up|deadlines?)\b")),
]
QUESTION_PRIORITY = [
    ("high", _re(r"\b(?:high[\s-]+priority|urgent|important|top\s+priority)\b")),
    ("low", _re(r"\blow[\s-]+priority\b")),
]


def list_filters(text, context):
    """The filters a list question asks for ("what's due today?", "what's overdue?",
    "show my #work tasks", "high priority tasks"), or None if it asks for none."""
    local_now = context.local_now
    midnight = datetime.combine(local_now.date(), time(0, 0), tzinfo=context.zone)
    arguments, described = {}, []
    heading, empty = "Here are your {what} tasks:", "You have no {what} tasks."
    for kind, pattern in DUE_WORDS:
        if pattern.search(text):
            arguments.update(status="pending", order="due")
            if kind == "overdue":
                arguments["due_before"] = _iso(context.now)
                heading, empty = "Here's what's overdue:", "Nothing is overdue. Nice!"
            elif kind in ("today", "tomorrow", "week"):
                start = midnight + timedelta(days=1 if kind == "tomorrow" else 0)
                end = start + timedelta(days=7 if kind == "week" else 1)
                arguments.update(due_after=_iso(start), due_before=_iso(end))
                span = {"today": "today", "tomorrow": "tomorrow", "week": "this week"}[kind]
                heading, empty = f"Here's what's due {span}:", f"Nothing is due {span}."
            else:
                heading, empty = "Here's what's coming up, soonest first:", "Nothing is due."
            break
    for value, pattern in QUESTION_PRIORITY:
        if pattern.search(text):
            arguments["priority"] = value
            described.append(f"{value} priority")
            break
    tags = []
    for found in TAG.finditer(text):
        if found["tag"].lower() not in tags:
            tags.append(found["tag"].lower())
    if tags:
        arguments["tags"] = tags
        described.append(" ".join(f"#{tag}" for tag in tags))
    if not arguments:
        return None
    if described and "due_before" not in arguments and "order" not in arguments:
        what = " ".join(described)
        heading, empty = heading.format(what=what), empty.format(what=what)
    elif described:
        heading = heading.rstrip(":") + f" ({', '.join(described)}):"
        empty = empty.rstrip(".") + f" ({', '.join(described)})."
    return ListFilters(arguments=arguments, heading=heading, empty=empty)


def _iso(value):
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def describe_due(due_at, context):
    """A due date as the user reads it: "Fri Mar 6, 5:00 PM" in their zone."""
    local = due_at.astimezone(context.zone)
    clock = local.strftime("%I:%M %p").lstrip("0")
    today = context.local_now.date()
    if local.date() == today:
        day = "today"
    elif local.date() == today + timedelta(days=1):
        day = "tomorrow"
    else:
        day = f"{local:%a %b} {local.day}"
    return f"{day} at {clock}"
