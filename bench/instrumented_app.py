"""chatsite's ASGI application, with each delta stamped with when its text was generated.

stream_load.py --spawn serves this module instead of chatsite.asgi (unless
--no-instrument), so that it can measure the true emission-to-receipt delay: every
`delta` event gets an extra field, `"emitted": <time.monotonic()>`, the moment the
oldest token in that delta came out of the provider. Client and server run on one
machine and CLOCK_MONOTONIC is system-wide, so receipt - emitted is the delay through
the event log, the coalescing, Django and the ASGI server. Nothing else changes, and
nothing is edited: the stamping wraps three functions at import time.
"""

from __future__ import annotations

import time

from chatsite.asgi import application  # sets Django up; the names below need it

# isort: split
from chat import events
from chat.runs.run import Run

__all__ = ["application"]

_plain_delta_data = events.delta_data
_plain_on_text = getattr(Run, "_on_text", None)
_plain_flush = getattr(Run, "_flush", None)
_flushing_since: list[float | None] = [None]  # the run being flushed: its oldest token's time


def delta_data(text: str) -> dict:
    emitted = _flushing_since[0]
    return {**_plain_delta_data(text), "emitted": emitted or time.monotonic()}


def on_text(run: Run, text: str) -> None:
    if not getattr(run, "_pending", None):
        run._bench_oldest = time.monotonic()
    _plain_on_text(run, text)


def flush(run: Run) -> None:
    _flushing_since[0] = getattr(run, "_bench_oldest", None)
    try:
        _plain_flush(run)
    finally:
        _flushing_since[0] = None


events.delta_data = delta_data
if _plain_on_text and _plain_flush:  # else each delta is stamped when it is logged
    Run._on_text = on_text
    Run._flush = flush
