"""How smoothly the chat page renders a long reply: a browser bench.

    .venv/bin/python bench/render_bench.py [--tokens 20000] [--tokens-per-second 1000]

Starts chatsite with the fake model on a fresh SQLite database (as stream_load.py
--spawn does), signs in with headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright), and sends a long markdown document prefixed with `echo `, which the fake
model streams back four characters a token: headings, paragraphs with inline markup,
lists, tables, quotes and code blocks, the way a long answer looks.

It prints three figures:

- **per-frame render time**: how long each animation-frame callback of the page took
  while the reply streamed (the page renders a streaming reply in requestAnimationFrame,
  at most once a frame); p50, p95 and the worst. Target: p95 <= 16 ms, one frame at 60 Hz.
- **whole frame**: the main thread's time for each of those frames, from Chrome's trace:
  the callbacks and the style, layout, paint and commit that follow them in the frame.
- **on screen after the last delta**: from the moment the page received the reply's last
  delta (its network chunk was read) to the first frame painted after the reply's body
  stopped changing (the final render, with code highlighting and Copy buttons, included).
  Target: <= 200 ms.

Measurement is added from outside, by an init script (Playwright's, which the page's CSP
does not apply to): it times requestAnimationFrame callbacks, notes when a stream chunk
holding a delta is read, and watches the reply's body with a MutationObserver. The page's
own code is what the site serves.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import stream_load  # noqa: E402  (its server helpers: one copy of them)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "render-bench-password"
CHARS_PER_TOKEN = 4  # the fake model echoes four characters a token

INSTRUMENT = """
(() => {
  const bench = (window.__bench = {
    frames: [], deltaReads: 0, lastDeltaAt: null, lastChangeAt: null, paintedAt: null,
  });
  const raf = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (callback) =>
    raf((time) => {
      const start = performance.now();
      try {
        callback(time);
      } finally {
        if (bench.deltaReads) {
          bench.frames.push(performance.now() - start);
          console.timeStamp("page-frame"); // marks this frame in Chrome's trace
        }
      }
    });
  const read = ReadableStreamDefaultReader.prototype.read;
  ReadableStreamDefaultReader.prototype.read = function () {
    return read.call(this).then((result) => {
      if (typeof result.value === "string" && result.value.includes("event: delta")) {
        bench.deltaReads += 1;
        bench.lastDeltaAt = performance.now();
      }
      return result;
    });
  };
  const watch = () => {
    const list = document.getElementById("messages");
    if (!list) return setTimeout(watch, 10);
    new MutationObserver((records) => {
      const inReply = records.some((r) => r.target.closest?.(".message.assistant .body") ||
        r.target.parentElement?.closest(".message.assistant .body"));
      if (!inReply) return;
      const now = performance.now();
      bench.lastChangeAt = now;
      // The next frame is painted after its animation-frame callbacks; a task queued from
      // one runs after that paint.
      raf(() => setTimeout(() => {
        if (bench.lastChangeAt === now) bench.paintedAt = performance.now();
      }));
    }).observe(list, { subtree: true, childList: true, characterData: true });
  };
  watch();
})();
"""

SECTION = """## Part {n}: a closer look

The **first** idea of part {n} is simple: keep the `finished` blocks and render only the
one still being written. A [reference](https://example.com/docs/{n}) explains *why* the
whole reply need not be parsed again on every frame, and ~~quadratic~~ linear work follows.

1. Parse the tail of the reply, not its whole text.
2. Sanitise only the **new** blocks; keep the rest as they are.
3. Put the final text through the same renderer, for an identical result.

- a bullet with `inline code` and a [link](https://example.org/{n})
- another bullet, longer, so that it wraps on a narrow screen and shows how lists flow
  - a nested bullet

> A quote from part {n}: the fastest work is the work not done again.

| step | cost before | cost after |
|------|-------------|------------|
| parse | O(n) per frame | O(block) |
| sanitise | O(n) per frame | O(block) |
| part | {n} | {n} |

```python
def part_{n}(values):
    \"\"\"Sum the squares of the even values.\"\"\"
    total = 0
    for value in values:
        if value % 2 == 0:
            total += value * value
    return total
```

"""


def document(tokens: int) -> str:
    """A markdown answer about `tokens` fake-model tokens long."""
    parts, length, n = [], 0, 1
    while length < tokens * CHARS_PER_TOKEN:
        parts.append(SECTION.format(n=n))
        length += len(parts[-1])
        n += 1
    return "".join(parts)[: tokens * CHARS_PER_TOKEN].rstrip() + "\n\nThat is all.\n"


def create_user(env: dict) -> None:
    code = (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user('bench', password='{PASSWORD}')"
    )
    stream_load.manage(env, "shell", "-c", code)


def server_env(args: argparse.Namespace, workdir: Path) -> dict:
    return os.environ | {
        "CHAT_FAKE_MODEL": "true",
        "CHAT_LOCAL_ENABLED": "false",
        "CHAT_DEFAULT_MODEL": "fake",
        "CHAT_FAKE_TOKENS_PER_SECOND": f"{args.tokens_per_second:g}",
        "CHAT_MAX_CONTENT_CHARS": str(args.tokens * CHARS_PER_TOKEN * 2),
        # Without these the reply would stop at the default 512 tokens.
        "CHAT_MAX_NEW_TOKENS": str(args.tokens + 100),
        "CHAT_USER_OUTPUT_TOKENS_PER_DAY": "0",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "SECRET_KEY": "render-bench-only",
    }


def percentile(values: list[float], fraction: float) -> float:
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, int(fraction * len(ranked)))]


# Chrome's trace categories for the whole frame: the main thread's frame (script, style,
# layout, paint, commit) and the animation-frame callbacks within it.
TRACE_CATEGORIES = ["benchmark", "devtools.timeline"]


def whole_frames(trace_path: Path) -> list[float]:
    """Main-thread durations (ms) of the frames that ran the page's animation-frame callbacks.

    A callback's own time leaves out the style, layout and paint that follow it in the
    same frame; Chrome's trace has the whole frame (ProxyMain::BeginMainFrame). The frames
    are those the instrumented callbacks marked (console.timeStamp), not the ones that only
    ran Playwright's polling or a CSS animation.
    """
    data = json.loads(trace_path.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    marks = [e for e in events if e["name"] == "TimeStamp"]
    if not marks:
        return []
    thread = (marks[0]["pid"], marks[0]["tid"])  # the page's renderer main thread
    starts = sorted(e["ts"] for e in marks if (e["pid"], e["tid"]) == thread)
    frames = []
    for e in events:
        if e["name"] != "ProxyMain::BeginMainFrame" or e.get("ph") != "X":
            continue
        if (e["pid"], e["tid"]) != thread:
            continue
        i = bisect.bisect_left(starts, e["ts"])
        if i < len(starts) and starts[i] <= e["ts"] + e["dur"]:
            frames.append(e["dur"] / 1000)
    return frames


def measure(url: str, text: str, timeout_s: float, trace_path: Path) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800})
        context.add_init_script(INSTRUMENT)
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("Username").fill("bench")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function("() => document.querySelectorAll('#model option').length > 0")
        box = page.get_by_label("Message", exact=True)
        # Typing 80,000 characters in would take long: set the value as a paste would.
        box.evaluate("(box, text) => { box.value = text; }", f"echo {text}")
        browser.start_tracing(page=page, path=str(trace_path), categories=TRACE_CATEGORIES)
        started = time.monotonic()
        box.press("Enter")
        reply = page.locator(".message.assistant").last
        reply.and_(page.locator('[data-status="complete"]')).wait_for(timeout=timeout_s * 1000)
        streamed = time.monotonic() - started
        page.wait_for_function(
            "() => window.__bench.paintedAt !== null && "
            "window.__bench.paintedAt >= window.__bench.lastChangeAt",
            timeout=10_000,
        )
        browser.stop_tracing()
        shown = reply.locator(".body").text_content()
        bench = page.evaluate("() => window.__bench")
        browser.close()
    return {
        "bench": bench,
        "streamed_s": streamed,
        "shown_chars": len(shown),
        "whole_frames": whole_frames(trace_path),
    }


def report(result: dict, tokens: int, text: str) -> None:
    bench = result["bench"]
    # The page shows the text, not the markdown: a reply cut short would show far less.
    if result["shown_chars"] < len(text) * 0.8:
        raise SystemExit(
            f"the reply was cut short: {result['shown_chars']} characters shown "
            f"for {len(text)} sent; the figures would not be those of {tokens} tokens"
        )
    frames = bench["frames"]
    on_screen = bench["paintedAt"] - bench["lastDeltaAt"]
    print(
        f"reply: {tokens} tokens ({len(text)} characters of markdown, "
        f"{result['shown_chars']} shown) streamed in {result['streamed_s']:.1f} s"
    )
    print(f"stream chunks with deltas read by the page: {bench['deltaReads']}")
    print(f"frames rendered while streaming: {len(frames)}")
    print(
        "per-frame render time: "
        f"p50 {statistics.median(frames):.1f} ms, "
        f"p95 {percentile(frames, 0.95):.1f} ms, max {max(frames):.1f} ms "
        "(target: p95 <= 16 ms)"
    )
    whole = result["whole_frames"]
    print(
        "whole frame on the main thread (callbacks, style, layout, paint, commit): "
        f"p50 {statistics.median(whole):.1f} ms, p95 {percentile(whole, 0.95):.1f} ms, "
        f"max {max(whole):.1f} ms over {len(whole)} frames"
    )
    print(f"on screen after the last delta: {on_screen:.0f} ms (target: <= 200 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--tokens-per-second", type=float, default=1000)
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the reply")
    args = parser.parse_args()
    text = document(args.tokens)
    with tempfile.TemporaryDirectory(prefix="render-bench-") as folder:
        workdir = Path(folder)
        env = server_env(args, workdir)
        stream_load.manage(env, "migrate", "-v0")
        create_user(env)
        port = stream_load.free_port()
        command = stream_load.server_command("uvicorn", port, "chatsite.asgi:application")
        with stream_load.serve("chatsite", command, env, port, workdir) as target:
            url = f"http://{target.host}:{target.port}"
            result = measure(url, text, args.timeout, workdir / "trace.json")
    report(result, args.tokens, text)


if __name__ == "__main__":
    main()
