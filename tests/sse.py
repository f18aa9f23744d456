"""A small Server-Sent Events reader for tests, over an httpx streaming response."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx


@dataclass
class SSE:
    id: str | None
    event: str
    data: dict


class EventStream:
    """Iterates the events of a text/event-stream response; remembers comments seen."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.comments: list[str] = []
        self._lines = response.iter_lines()

    def __iter__(self):
        return self

    def __next__(self) -> SSE:
        fields: dict[str, str] = {}
        for line in self._lines:
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            elif "event" in fields:
                return SSE(fields.get("id"), fields["event"], json.loads(fields["data"]))
        raise StopIteration

    def until(self, name: str) -> list[SSE]:
        """Read events up to and including the first named `name`."""
        seen = []
        for event in self:
            seen.append(event)
            if event.event == name:
                return seen
        raise AssertionError(f"the stream ended before a {name!r} event: {seen}")

    def all(self) -> list[SSE]:
        return list(self)

    def close(self):
        self.response.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def text_of(events: list[SSE]) -> str:
    """The joined text of the delta events."""
    return "".join(e.data["text"] for e in events if e.event == "delta")
