"""Read Server-Sent Events, as a browser's EventSource would, for tests."""

import json
from dataclasses import dataclass


@dataclass
class Event:
    id: int
    name: str
    data: dict


def parse(text):
    """`(events, comments)` of a complete SSE body (str)."""
    events, comments = [], []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            assert name not in fields, f"field {name!r} twice in one event: {block!r}"
            fields[name] = value.removeprefix(" ")
        if fields:
            events.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events, comments


def read_events(lines, until=None):
    """Events from an iterator of byte lines (an open HTTP response), as they arrive.

    Stops after an event for which `until(event)` is true, or at the end.
    """
    block = []
    for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if line:
            block.append(line)
            continue
        events, _ = parse("\n".join(block) + "\n\n")
        block = []
        for event in events:
            yield event
            if until is not None and until(event):
                return
