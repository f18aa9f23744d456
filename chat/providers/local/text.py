"""From token ids to the text deltas a user sees: whole characters, no stop sequences."""

from __future__ import annotations

from collections.abc import Iterable


class IncrementalDecoder:
    """Turns token ids into text deltas, never splitting a multi-byte character.

    Decodes a short window of recent tokens rather than the whole reply (which would be
    quadratic); the deltas join up to `tokenizer.decode(ids, skip_special_tokens=True)`.
    """

    def __init__(self, tokenizer, skip_ids: Iterable[int] = ()):
        self.tokenizer = tokenizer
        self.skip_ids = set(skip_ids)
        self.ids: list[int] = []
        self.prefix = 0  # window start: decoding from here gives the already-emitted tail...
        self.read = 0  # ...up to here; the text of tokens after `read` is not emitted yet

    def add(self, ids: Iterable[int]) -> str:
        """Take new token ids; return the text they complete ('' while a character is partial)."""
        self.ids.extend(i for i in ids if i not in self.skip_ids)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text still held back once the reply has ended, minus a truncated character."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        done = self._decode(self.prefix, self.read)
        text = self._decode(self.prefix, len(self.ids))
        if final:
            text = text.rstrip("\ufffd")  # the reply was cut off inside a character
        elif text.endswith("\ufffd") or len(text) <= len(done):
            return ""  # an incomplete UTF-8 sequence: its next bytes are still to come
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(done) :]

    def _decode(self, start: int, end: int) -> str:
        return self.tokenizer.decode(
            self.ids[start:end], skip_special_tokens=True, clean_up_tokenization_spaces=False
        )


class StopSequenceFilter:
    """Passes text through until a stop sequence appears, holding back possible beginnings."""

    def __init__(self, stop_sequences: Iterable[str]):
        self.stops = [s for s in stop_sequences if s]
        self.held = ""
        self.stopped = False

    def feed(self, text: str, final: bool = False) -> str:
        """Return the text safe to emit; `final` releases what was held back."""
        self.held += text
        hits = [i for i in (self.held.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            text, self.held = self.held[: min(hits)], ""
            return text
        keep = 0 if final else self._partial_match()
        text, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        return text

    def _partial_match(self) -> int:
        """Length of the longest tail of `held` that could begin a stop sequence."""
        return max(
            (n for s in self.stops for n in range(1, len(s)) if self.held.endswith(s[:n])),
            default=0,
        )
