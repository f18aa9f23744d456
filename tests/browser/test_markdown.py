"""Incremental markdown: a reply rendered as it streams ends exactly as a whole render."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

DOCS = [
    "# Title\n\nA paragraph with **bold**, `code` and a [link](https://example.com).\n\n"
    "1. one\n2. two\n\n3. three, the list goes on\n\n- a\n- b\n\n  still b\n\n"
    "Para\nSetext heading\n---\n\nText\n\n> quote\ncontinued lazily\n\n> another quote\n",
    "```python\ndef f(x):\n    return x * 2\n```\n\nAfter the code.\n\n```\nno language\n"
    "print('guess me')\n```\n\n~~~js\nlet open = 'fence never closed'\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nAfter the table.\n\n    indented code\n\n"
    "    more indented code\n\nA paragraph.\n",
    "See [the docs][docs] and [more][m].\n\nMiddle paragraph.\n\n"
    "[docs]: https://example.com/docs\n[m]: https://example.com/more 'More'\n\nEnd.\n",
    "<div>raw html shown as text</div>\n\n<script>alert(1)</script>\n\nText <b>inline</b>.\n\n"
    "***\n\n- [ ] task\n- [x] done\n\n10. ten\n11. eleven\n",
    "Line one\r\nline two\r\n\r\n1) paren list\r\n2) second\r\n\r\n* star\r\n\r\n+ plus\r\n",
    "x" * 50 + "\n\n" + "Paragraph number {}.\n\n" * 30,
]

STREAM_AND_COMPARE = """async ([docs, seeds]) => {
  const { renderMarkdown } = await import("/static/chat/markdown.js");
  const problems = [];
  const render = (text, final) => {
    const element = document.createElement("div");
    renderMarkdown(element, text, { final });
    return element.innerHTML;
  };
  for (const [d, doc] of docs.entries()) {
    for (const seed of seeds) {
      const live = document.createElement("div");
      let [random, at, wrongWhileStreaming] = [seed, 0, 0];
      while (at < doc.length) {
        random = (random * 1103515245 + 12345) % 2147483648;
        at = seed === 0 ? at + 1 : Math.min(doc.length, at + 1 + (random % 17));
        renderMarkdown(live, doc.slice(0, at), { final: false });
        if (live.innerHTML !== render(doc.slice(0, at), false)) wrongWhileStreaming += 1;
      }
      renderMarkdown(live, doc, { final: true });
      const final = live.innerHTML === render(doc, true);
      if (!final || wrongWhileStreaming) problems.push({ d, seed, final, wrongWhileStreaming });
    }
  }
  return problems;
}"""


def test_it_renders_a_streamed_reply_exactly_as_a_whole_render(chat):
    docs = [doc.replace("{}", "7") for doc in DOCS]
    # Seed 0 streams one character at a time; the others in chunks of 1 to 17.
    assert chat.evaluate(STREAM_AND_COMPARE, [docs, [0, 1, 7, 42, 1234]]) == []


# Blocks at every edge where margins meet: lists ending in a nested list or a loose item,
# quotes starting with a heading or ending with a list, code, a table, a rule.
LAYOUT_DOC = (
    "Intro paragraph.\n\n## A heading\n\n- one\n- two\n  - nested\n  - nested last\n\n"
    "Between.\n\n1. loose\n\n2. items\n\n   with a second paragraph\n\n"
    "> ### A quote's heading\n>\n> its text\n>\n> - and a list\n> - to end it\n\n"
    "- ## A list's heading\n- item\n\n```python\nx = 1\n```\n\n| a | b |\n|---|---|\n"
    "| 1 | 2 |\n\n***\n\n> plain quote\n\nThe last paragraph.\n"
)

LAYOUT_WHILE_STREAMING_AND_DONE = """async (doc) => {
  const { renderMarkdown } = await import("/static/chat/markdown.js");
  const li = document.createElement("li");
  li.className = "message assistant";
  li.innerHTML = '<div class="bubble"><div class="body markdown"></div></div>';
  document.getElementById("messages").append(li);
  document.getElementById("empty").hidden = true;
  const body = li.querySelector(".markdown");
  renderMarkdown(body, doc, { final: true });
  const frame = () => new Promise((done) => requestAnimationFrame(() => setTimeout(done)));
  const boxes = async (contained) => {
    body.toggleAttribute("data-contained", contained);
    for (let i = 0; i < 3; i++) await frame(); // content-visibility settles in a frame
    const origin = body.getBoundingClientRect();
    return [body, ...body.querySelectorAll("*")].map((node) => {
      const box = node.getBoundingClientRect();
      return [node.tagName, box.top - origin.top, box.left - origin.left, box.width, box.height]
        .map((v) => (typeof v === "number" ? Math.round(v * 2) / 2 : v)).join(" ");
    });
  };
  const streaming = await boxes(true);
  const skipping = getComputedStyle(body.children[1]).contentVisibility;
  const done = await boxes(false);
  const moved = done.flatMap((box, i) => (box === streaming[i] ? [] : [[streaming[i], box]]));
  return { skipping, moved };
}"""


def test_it_lays_a_reply_out_the_same_while_streaming_and_once_done(chat):
    # While it streams, the reply's blocks are contained (site.css); in view, they must
    # look as they do without. (Out of view, they are skipped: that is the point.)
    chat.set_viewport_size({"width": 1280, "height": 3000})
    layout = chat.evaluate(LAYOUT_WHILE_STREAMING_AND_DONE, LAYOUT_DOC)
    assert layout == {"skipping": "auto", "moved": []}


# Notes whether the streaming reply's blocks were ever contained (skipped out of view).
RECORD_CONTAINED = """() => {
  window.sawContained = false;
  const list = document.getElementById("messages");
  new MutationObserver(() => {
    const block = list.querySelector(".message.assistant .markdown > :nth-child(2)");
    if (block && getComputedStyle(block).contentVisibility === "auto") window.sawContained = true;
  }).observe(list, { subtree: true, childList: true, attributes: true });
}"""

ALL_LAID_OUT = """() => [...document.querySelectorAll(".message.assistant .markdown > *")]
  .every((block) => getComputedStyle(block).contentVisibility === "visible")"""


def test_a_finished_reply_is_laid_out_in_full(chat):
    # Blocks skipped out of view while the reply streamed would keep a guessed height, and
    # scrolling back up through them would jump; once it is done, none is skipped.
    chat.evaluate(RECORD_CONTAINED)
    box = chat.get_by_label("Message", exact=True)
    box.fill("echo " + "".join(f"Paragraph {n}.\n\n" for n in range(12)))
    box.press("Enter")
    reply = chat.locator(".message.assistant").last
    expect(reply).to_have_attribute("data-status", "complete")
    assert chat.evaluate("() => window.sawContained")
    chat.wait_for_function(ALL_LAID_OUT)
