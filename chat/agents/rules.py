"""The rules agent: plain-English todo requests, understood offline with no model.

It reads the user's message of this turn with a few patterns ("add buy milk",
"remind me to call mom tomorrow at 5pm #home", "pay rent every month on the 1st",
"what's on my list", "show pending tasks", "what's due today?", "what's overdue?",
"show my #work tasks", "high priority tasks", "mark 3 as done", "I finished buying
milk", "delete the milk task", "rename task 2 to ...", "move call mom to friday",
"reschedule #3 to tomorrow at 9am", "postpone buy milk until next monday") and
plans the tool calls one step at a time from the results stored so far: a task
named by its title is first looked up with `list_tasks`, then acted on by id.
Dates, times, priorities, tags and repetition are read by `phrases`, in the user's
time zone at the turn's time (`TurnContext`). Being a pure function of the history
and that context, a resumed turn picks up exactly where the failed one stopped.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .base import Step, ToolCall, TurnContext, tool_results
from .phrases import ListFilters, describe_due, extract, list_filters

# Longer messages are not todo commands; they are not parsed at all.
MAX_COMMAND_LENGTH = 1000

EXAMPLES = (
    "“add buy milk”, “remind me to call mom tomorrow at 5pm”, “what's due today?”, "
    "“show pending tasks”, “mark 3 as done”, “delete the milk task” or "
    "“rename task 2 to buy oat milk”"
)
HELP = f"I can manage your todo list. Try {EXAMPLES}."
NOT_UNDERSTOOD = f"Sorry, I didn't understand that. I can manage your todo list: try {EXAMPLES}."


@dataclass(frozen=True)
class TaskRef:
    """A task as the user named it: by id, or by (part of) its title."""

    task_id: int | None = None
    text: str = ""


@dataclass(frozen=True)
class Intent:
    # add, list, complete, reopen, delete, rename, reschedule, greet, help, thanks, unknown
    action: str
    title: str = ""
    status: str = "all"
    ref: TaskRef | None = None
    # add: the due_at, priority, tags and repeat the message gave, as tool arguments;
    # reschedule: the new due_at.
    details: dict = field(default_factory=dict)
    # list: what a question asked for ("what's due today?"), if more than a status.
    filters: ListFilters | None = None


def _patterns(*patterns):
    return [re.compile(p, re.IGNORECASE) for p in patterns]


LIST_NAME = r"(?:my\s+|the\s+)?(?:list|tasks|todos?|to-?do\s+list|todo\s+list)"
ADD = _patterns(
    rf"add\s+to\s+{LIST_NAME}\s*:?\s*(?P<title>.+)",
    r"(?:add|create|new)\s+(?:me\s+)?(?:a\s+|an\s+)?(?:new\s+)?(?:task|todo|to-do|item|reminder)?"
    r"\s*(?:to\s+|called\s+|named\s+|titled\s+|for\s+|:\s*|-\s*)?(?P<title>.+?)"
    rf"(?:\s+to\s+{LIST_NAME})?",
    r"make\s+(?:a\s+|an\s+)?(?:new\s+)?(?:task|todo|to-do|reminder)\s*(?:to\s+|called\s+|named\s+|"
    r"titled\s+|for\s+|:\s*)?(?P<title>.+)",
    r"remind\s+me\s+(?:to\s+)?(?P<title>.+)",
)
SOFT_ADD = _patterns(
    r"(?:don'?t\s+let\s+me\s+forget|don'?t\s+forget|i\s+(?:need|have|must|should|gotta)|"
    r"i've\s+got)\s+to\s+(?P<title>.+)",
)
RESCHEDULE = re.compile(
    r"(?:move|reschedule|re-schedule|postpone|push(?:\s+back)?|delay|defer|"
    r"(?:change|set|move)\s+the\s+(?:due\s+)?(?:date|deadline)\s+(?:of|for|on))\s+(?P<rest>.+)",
    re.IGNORECASE,
)
# Where the task ends and its new date begins: "call mom | to | friday".
WHEN = re.compile(r"\s+(?:back\s+)?(?:to|until|till|til|for)\s+", re.IGNORECASE)
RENAME = _patterns(
    r"(?:rename|retitle|change|update|edit)\s+(?P<ref>.+?)\s+(?:to|into)\s+(?P<title>.+)",
)
NOT_DONE = (
    r"(?:not\s+done|undone|not\s+completed?|incomplete|pending|open|not\s+finished|to\s*-?do)"
)
REOPEN = _patterns(
    rf"(?:mark|set|flag)\s+(?P<ref>.+?)\s+(?:as\s+)?{NOT_DONE}",
    r"(?:reopen|re-open|uncomplete|unmark|uncheck|undo)\s+(?P<ref>.+)",
)
DONE = r"(?:done|complete|completed|finished)"
COMPLETE = _patterns(
    rf"(?:mark|set|tick|check|flag)\s+(?:off\s+)?(?P<ref>.+?)\s+(?:as\s+)?{DONE}",
    r"(?:tick|check|cross)\s+off\s+(?P<ref>.+)",
    r"(?:complete|finish)\s+(?P<ref>.+)",
    r"(?:i(?:'ve|\s+have)?\s+)?(?:just\s+|already\s+)?(?:finished|completed|done\s+with|did)"
    r"\s+(?P<ref>.+)",
    rf"(?P<ref>.+?)\s+(?:is|are)\s+(?:now\s+)?{DONE}",
)
DELETE = _patterns(
    r"(?:delete|remove|drop|erase|cancel|scratch|trash|get\s+rid\s+of|forget(?:\s+about)?)"
    rf"\s+(?P<ref>.+?)(?:\s+from\s+{LIST_NAME})?",
)
LIST_ASK = re.compile(
    r"\b(?:show|list|display|view|see|get|give|tell|read|what|what's|whats|which|how\s+many|"
    r"do\s+i\s+have|any|my)\b",
    re.IGNORECASE,
)
LIST_WHAT = re.compile(
    r"\b(?:tasks?|list|todos?|to-?dos?|items?|left|pending|remaining|outstanding|agenda|"
    r"plate|done|finished|completed|next|to\s+do)\b",
    re.IGNORECASE,
)
LIST_SHORT = re.compile(rf"{LIST_NAME}|tasks|todo|to-?dos?", re.IGNORECASE)
PENDING_WORDS = re.compile(
    r"\b(?:pending|open|incomplete|unfinished|undone|remaining|left|outstanding|not\s+done|"
    r"not\s+finished|not\s+completed|to\s+do|next|active)\b",
    re.IGNORECASE,
)
COMPLETED_WORDS = re.compile(r"\b(?:completed|done|finished|checked\s+off)\b", re.IGNORECASE)
GREET = re.compile(
    r"(?:hi|hello|hey|yo|howdy|good\s+(?:morning|afternoon|evening))\b.*", re.IGNORECASE
)
HELP_ASK = re.compile(
    r"help|what\s+can\s+you\s+do|how\s+does\s+this\s+work|commands|\?", re.IGNORECASE
)
THANKS = re.compile(r"(?:thanks|thank\s+you|thx|cheers)\b.*", re.IGNORECASE)

POLITE_START = re.compile(
    r"^(?:(?:please|pls|ok(?:ay)?|so|hey|can\s+you|could\s+you|would\s+you|will\s+you)[\s,]+)+",
    re.IGNORECASE,
)
POLITE_END = re.compile(r"(?:[\s,]+(?:please|pls|for\s+me|thanks|thank\s+you))+$", re.IGNORECASE)
QUOTES = "\"'“”‘’`"


def clean(text):
    text = " ".join(text.split()).rstrip(".!?;, ")
    previous = None
    while previous != text:
        previous = text
        text = POLITE_START.sub("", text)
        text = POLITE_END.sub("", text).rstrip(".!?;, ")
    return text


def clean_title(title):
    return title.strip().rstrip(".!?;,").strip().strip(QUOTES).strip()


REF_ID = re.compile(
    r"(?:(?:the\s+)?(?:task|item|todo|to-do|number|no\.?)\s*)?(?:#|number\s+)?\s*(\d+)",
    re.IGNORECASE,
)
REF_LEAD = re.compile(r"^(?:the|my|that|this|a|an|task|item|todo|to-do)\s+", re.IGNORECASE)
REF_TAIL = re.compile(
    r"\s+(?:task|item|todo|to-do|one|title|name|'s\s+title|on\s+my\s+list)$", re.IGNORECASE
)
REF_OF = re.compile(r"^(?:the\s+)?(?:title|name)\s+of\s+", re.IGNORECASE)


def parse_ref(raw):
    text = clean_title(raw)
    found = REF_ID.fullmatch(text)
    if found:
        return TaskRef(task_id=int(found[1]))
    text = REF_OF.sub("", text)
    previous = None
    while previous != text:
        previous = text
        text = REF_TAIL.sub("", REF_LEAD.sub("", text)).strip().strip(QUOTES)
    found = REF_ID.fullmatch(text)
    if found:
        return TaskRef(task_id=int(found[1]))
    return TaskRef(text=text) if text else None


def _first(patterns, text):
    for pattern in patterns:
        found = pattern.fullmatch(text)
        if found:
            return found
    return None


def list_status(text):
    if PENDING_WORDS.search(text):
        return "pending"
    if COMPLETED_WORDS.search(text):
        return "completed"
    return "all"


# A message made only of list words and filters: "high priority tasks", "#work todos".
BARE_QUESTION = re.compile(
    r"(?:(?:show|list|me|my|all|the|tasks?|todos?|to-?dos?|items?|what's|whats|what|is|are|"
    r"due|overdue|late|upcoming|high|low|priority|urgent|important|today|tomorrow|this|"
    r"week|any|with|tagged|pending|open|#[\w-]+|,|and)\s*)+",
    re.IGNORECASE,
)


def adding(title, context):
    """An add intent for `title`, its dates, priority, tags and repetition read out."""
    rest, details = extract(clean_title(title), context)
    title = clean_title(rest)
    if not title:
        return Intent("unknown")
    return Intent("add", title=title, details=details.tool_arguments())


def rescheduling(rest, context):
    """A reschedule intent for "<task> to <when>", or None.

    The task's name may itself hold "to" ("talk to bob to friday"): the first split
    whose right side is nothing but a day and/or a time wins. The new due date is
    read as a new task's is (a day alone is due at 09:00 local time, or at 23:59
    once that has passed; a time alone is today's, or tomorrow's once passed).
    """
    for split in WHEN.finditer(rest):
        leftover, details = extract(rest[split.end() :], context)
        if clean_title(leftover) or not (details.said_day or details.said_time):
            continue
        if details.priority or details.tags or details.repeat:
            continue
        ref = parse_ref(rest[: split.start()])
        if ref:
            return Intent(
                "reschedule", ref=ref, details={"due_at": details.tool_arguments()["due_at"]}
            )
    return None


def parse(message, context=None) -> Intent:
    """What the user asks for, from their message and the turn's clock and zone."""
    context = context or TurnContext(now=datetime.now(UTC))
    if len(message) > MAX_COMMAND_LENGTH:
        return Intent("unknown")
    text = clean(message)
    if not text:
        return Intent("unknown")
    if found := _first(ADD, text):
        return adding(found["title"], context)
    if (found := RESCHEDULE.fullmatch(text)) and (intent := rescheduling(found["rest"], context)):
        return intent
    for action, patterns in (("rename", RENAME), ("reopen", REOPEN)):
        if found := _first(patterns, text):
            ref = parse_ref(found["ref"])
            title = clean_title(found["title"]) if action == "rename" else ""
            if ref and (title or action != "rename"):
                return Intent(action, ref=ref, title=title)
    filters = list_filters(text, context)
    if filters and (
        LIST_ASK.match(text) or message.rstrip().endswith("?") or BARE_QUESTION.fullmatch(text)
    ):
        return Intent("list", status=list_status(text), filters=filters)
    asks_for_list = bool(LIST_ASK.search(text) and LIST_WHAT.search(text))
    if LIST_SHORT.fullmatch(text) or (asks_for_list and LIST_ASK.match(text)):
        return Intent("list", status=list_status(text))
    for action, patterns in (("complete", COMPLETE), ("delete", DELETE)):
        if found := _first(patterns, text):
            ref = parse_ref(found["ref"])
            if ref:
                return Intent(action, ref=ref)
    if asks_for_list:
        return Intent("list", status=list_status(text))
    if found := _first(SOFT_ADD, text):
        return adding(found["title"], context)
    if THANKS.fullmatch(text):
        return Intent("thanks")
    if GREET.fullmatch(text):
        return Intent("greet")
    if HELP_ASK.fullmatch(text):
        return Intent("help")
    return Intent("unknown")


STOP_WORDS = {
    "the", "a", "an", "my", "to", "of", "for", "and", "on", "in", "at", "with", "task",
    "item", "todo", "up", "some", "this", "that",
}  # fmt: skip


def stem(word):
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if suffix in ("ing", "ed") and len(word) >= 4 and word[-1] == word[-2]:
                if word[-1] not in "lsz":
                    word = word[:-1]
            return word
    return word


def words(text):
    return {stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_WORDS}


def normalized(text):
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def search_term(text):
    """One word to narrow `list_tasks` by: the longest word of the reference."""
    candidates = sorted(words(text), key=len, reverse=True)
    if not candidates:
        return ""
    term = candidates[0]
    return term[:-1] if len(term) > 4 and term[-1] in "ye" else term


def matching_tasks(text, tasks, *, prefer_completed):
    """The listed tasks `text` names: an exact title, else every title word-match."""
    exact = [t for t in tasks if normalized(t["title"]) == normalized(text)]
    wanted = words(text)
    candidates = exact or [
        t
        for t in tasks
        if wanted
        and (wanted <= words(t["title"]) or (words(t["title"]) and words(t["title"]) <= wanted))
    ]
    if not candidates:
        candidates = [t for t in tasks if text.lower() in t["title"].lower()]
    preferred = [t for t in candidates if t["completed"] == prefer_completed]
    return preferred or candidates


def quoted(title):
    return f"“{title}”"


def task_notes(task, context):
    """What a task has besides its title, in words: "due tomorrow at 5:00 PM", "high
    priority", "#home", "repeats weekly"."""
    notes = []
    if task.get("due_at"):
        due_at = datetime.fromisoformat(task["due_at"])
        notes.append(f"due {describe_due(due_at, context)}")
    if task.get("priority") and task["priority"] != "normal":
        notes.append(f"{task['priority']} priority")
    if task.get("tags"):
        notes.append(" ".join(f"#{tag}" for tag in task["tags"]))
    if task.get("repeat"):
        notes.append(f"repeats {task['repeat']}")
    return notes


def task_line(task, *, show_state, context):
    notes = task_notes(task, context)
    if show_state and task["completed"]:
        notes.append("done")
    return f"- #{task['id']} {task['title']}" + (f" ({', '.join(notes)})" if notes else "")


def reply_list(result, context, filters=None):
    tasks, status = result["tasks"], result.get("status", "all")
    if filters is not None:
        if not tasks:
            return filters.empty
        lines = [task_line(t, show_state=status == "all", context=context) for t in tasks]
        if result.get("truncated"):
            lines.append(f"...and more (showing the first {len(tasks)}).")
        return "\n".join([filters.heading, *lines])
    if not tasks:
        return {
            "pending": "Nothing pending: you're all caught up!",
            "completed": "You haven't completed any tasks yet.",
        }.get(status, "Your list is empty. Add something with “add buy milk”.")
    heading = {
        "pending": "Here are your pending tasks:",
        "completed": "Here are your completed tasks:",
    }.get(status, "Here's your list:")
    lines = [task_line(t, show_state=status == "all", context=context) for t in tasks]
    if result.get("truncated"):
        lines.append(f"...and more (showing the newest {len(tasks)}).")
    return "\n".join([heading, *lines])


def reply_added(result, context):
    task = result["task"]
    notes = task_notes(task, context)
    said = f", {', '.join(notes)}" if notes else ""
    return f"Added {quoted(task['title'])} to your list (task #{task['id']}){said}."


def reply_completed(result, context):
    task = result["task"]
    if result.get("already_completed"):
        return f"{quoted(task['title'])} (#{task['id']}) was already done."
    done = f"Marked {quoted(task['title'])} (#{task['id']}) as done. Nice work!"
    if task.get("repeat"):
        done += f" It repeats {task['repeat']}, so the next one is on your list."
    return done


def reply_reopened(result, context):
    task = result["task"]
    return f"Marked {quoted(task['title'])} (#{task['id']}) as not done."


def reply_deleted(result, context):
    task = result["deleted"]
    return f"Deleted {quoted(task['title'])} (#{task['id']}) from your list."


def reply_renamed(result, context):
    task = result["task"]
    return f"Renamed task #{task['id']} to {quoted(task['title'])}."


def reply_rescheduled(result, context):
    task = result["task"]
    due = describe_due(datetime.fromisoformat(task["due_at"]), context)
    return f"Moved {quoted(task['title'])} (#{task['id']}) to {due}."


# How each action is done by id, answered, and offered when a title is ambiguous.
ACTIONS = {
    "complete": ("complete_task", reply_completed, "mark {id} as done", False),
    "reopen": ("update_task", reply_reopened, "reopen task {id}", True),
    "delete": ("delete_task", reply_deleted, "delete task {id}", False),
    "rename": ("update_task", reply_renamed, "rename task {id} to …", False),
    "reschedule": ("update_task", reply_rescheduled, "move task {id} to …", False),
}


def reply_failed(result, intent):
    if not isinstance(result, dict):
        return "Sorry, something went wrong with that task; please try again."
    if result.get("error") == "not_found" and intent.ref and intent.ref.task_id:
        return (
            f"I couldn't find task #{intent.ref.task_id} in your list. "
            "Say “show my tasks” to see your tasks and their numbers."
        )
    return f"I couldn't do that: {result.get('detail', 'unknown error')}"


class Plan:
    """The next step of one intent, given the turn's tool results so far."""

    def __init__(self, intent, results, context):
        self.intent = intent
        self.results = results
        self.context = context

    def call(self, name, arguments):
        return Step(tool_calls=(ToolCall(f"call_{len(self.results)}", name, arguments),))

    def answer(self, reply):
        result = self.results[-1][2]
        if not (isinstance(result, dict) and result.get("ok")):
            return Step(text=reply_failed(result, self.intent))
        return Step(text=reply(result, self.context))

    def step(self):
        intent = self.intent
        if intent.action == "add":
            if not self.results:
                return self.call("add_task", {"title": intent.title, **intent.details})
            return self.answer(reply_added)
        if intent.action == "list":
            filters = intent.filters
            if not self.results:
                arguments = {"status": intent.status, **(filters.arguments if filters else {})}
                return self.call("list_tasks", arguments)
            return self.answer(lambda result, context: reply_list(result, context, filters))
        if intent.action in ACTIONS:
            return self.act()
        return Step(
            text={
                "greet": f"Hi! {HELP}",
                "help": HELP,
                "thanks": "You're welcome! Anything else for your list?",
            }.get(intent.action, NOT_UNDERSTOOD)
        )

    def act(self):
        intent = self.intent
        tool, reply, example, prefer_completed = ACTIONS[intent.action]
        arguments = {
            "rename": {"title": intent.title},
            "reopen": {"completed": False},
            "reschedule": intent.details,
        }.get(intent.action, {})
        ref = intent.ref
        if ref.task_id is not None:
            if not self.results:
                return self.call(tool, {"task_id": ref.task_id, **arguments})
            return self.answer(reply)
        if not self.results:
            term = search_term(ref.text)
            return self.call("list_tasks", {"status": "all", **({"search": term} if term else {})})
        if len(self.results) > 1:
            return self.answer(reply)
        listing = self.results[0][2]
        if not (isinstance(listing, dict) and listing.get("ok")):
            return Step(text=reply_failed(listing, intent))
        found = matching_tasks(ref.text, listing["tasks"], prefer_completed=prefer_completed)
        if not found:
            return Step(
                text=f"I couldn't find a task matching {quoted(ref.text)}. "
                "Say “show my tasks” to see your list."
            )
        if len(found) > 1:
            options = ", ".join(f"#{t['id']} {t['title']}" for t in found[:5])
            return Step(
                text=f"More than one task matches {quoted(ref.text)}: {options}. "
                f"Which one? You can say “{example.format(id=found[0]['id'])}”."
            )
        return self.call(tool, {"task_id": found[0]["id"], **arguments})


def pieces(text, words=3):
    """`text` in pieces of a few words each (with their spaces), as a model streams."""
    tokens = re.findall(r"\s*\S+", text) or [text]
    tokens[-1] += text[len("".join(tokens)) :]
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


class RulesAgent:
    """Plans tool calls from the user's message with patterns; see the module docstring.

    Its reply is sent to `on_text` in pieces of a few words, so streams are
    exercised offline as a model's would be.
    """

    def next_step(self, *, history, tools, final, timeout, context, on_text=None):
        step = self._step(history, final, context)
        if on_text is not None and step.is_reply:
            for piece in pieces(step.text):
                on_text(piece)
        return step

    def _step(self, history, final, context):
        users = [i for i, m in enumerate(history) if m.role == "user"]
        if not users:
            return Step(text=HELP)
        here = users[-1]
        results = [
            entry for m in history[here + 1 :] if m.role == "tool" for entry in tool_results(m)
        ]
        step = Plan(parse(history[here].content, context), results, context).step()
        if final and not step.is_reply:
            return Step(text="Sorry, that needed more steps than I'm allowed; please try again.")
        return step
