"""Incremental markdown: a reply rendered as it streams ends exactly as a whole render."""

import pytest

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
