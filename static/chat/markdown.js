// Model output as markdown: parsed by marked, sanitised by DOMPurify, code highlighted by
// highlight.js. Nothing the model writes can run: raw HTML is shown as text, and whatever
// markdown produces still goes through DOMPurify (and the page's CSP) before the DOM.
import DOMPurify from "../vendor/dompurify/purify.es.js";
import hljs from "../vendor/highlight/highlight.min.js";
import { Marked } from "../vendor/marked/marked.esm.js";

const PURIFY = {
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "dialog"],
  FORBID_ATTR: ["style"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

// A streaming reply is re-rendered many times; its finished code blocks need not be
// highlighted again each time (nor once more when the reply is done: a block whose
// language is known is highlighted the same either way). The block still being written
// changes every frame, so it is not kept (it would only push the finished ones out).
const highlighted = new Map();
const HIGHLIGHT_CACHE = 200;

function highlight(code, language, guess, keep) {
  const known = Boolean(language && hljs.getLanguage(language));
  const how = known ? language : guess && code.length < 20000 ? "\u0001guess" : "\u0001plain";
  const key = `${how}\u0000${code}`;
  if (highlighted.has(key)) return highlighted.get(key);
  let html;
  if (known) {
    html = hljs.highlight(code, { language, ignoreIllegals: true }).value;
  } else if (how === "\u0001guess") {
    html = hljs.highlightAuto(code).value; // guessing is slow: only once a reply is done
  } else {
    html = escapeHtml(code);
  }
  if (!keep) return html;
  if (highlighted.size >= HIGHLIGHT_CACHE) highlighted.delete(highlighted.keys().next().value);
  highlighted.set(key, html);
  return html;
}

function makeParser(guess) {
  return new Marked({
    gfm: true,
    renderer: {
      // A model that writes <script> or <img onerror> means it as text: show it so.
      html: (token) => (token.block ? `<p>${escapeHtml(token.text)}</p>` : escapeHtml(token.text)),
      code({ text, lang, raw }) {
        const language = (lang || "").trim().split(/\s+/)[0].toLowerCase();
        const cls = language ? ` language-${escapeHtml(language)}` : "";
        const closed = /\n\s*(`{3,}|~{3,})\s*$/.test(raw); // its closing fence has arrived
        const html = highlight(text, language, guess, closed);
        return `<pre><code class="hljs${cls}">${html}</code></pre>\n`;
      },
    },
  });
}

const liveParser = makeParser(false);
const finalParser = makeParser(true);

// A finished code block gets a bar with its language and a Copy button (see copy.js).
function decorateCodeBlocks(fragment) {
  for (const pre of fragment.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    const language = [...(code?.classList || [])].find((c) => c.startsWith("language-"));
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const label = document.createElement("span");
    label.textContent = language ? language.slice("language-".length) : "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy-code";
    copy.textContent = "Copy";
    copy.setAttribute("aria-label", `Copy ${label.textContent} code`);
    bar.append(label, copy);
    const wrap = document.createElement("div");
    wrap.className = "code-block";
    pre.replaceWith(wrap);
    wrap.append(bar, pre);
  }
}


// --- incremental rendering ---------------------------------------------------
//
// A streaming reply grows at its end, so its top-level blocks (paragraphs, lists, code
// blocks, tables...) settle one after another: once a later block has begun (its first
// line written), nothing that follows can change an earlier one. Each frame re-parses and
// re-sanitises only the text from the first unsettled block on; settled blocks keep their
// DOM nodes (and whatever the reader selected in them). Two things reach back: a link
// definition ([x]: url) changes every [x] before it, so new definitions start over; and
// the final render parses the whole text once more, reusing a block's nodes only where
// its HTML is the same, so the finished reply is exactly what a whole re-render gives.

const states = new WeakMap(); // element -> what is rendered in it

/** A top-level block: its markdown, its HTML, the sanitised nodes shown for it. */
function block(parser, token, final) {
  const html = parser.parser([token]);
  return { raw: token.raw, token, html, nodes: null, final };
}

function nodesOf(block) {
  if (!block.nodes) {
    const fragment = DOMPurify.sanitize(block.html, PURIFY);
    if (block.final) decorateCodeBlocks(fragment);
    block.nodes = [...fragment.childNodes];
  }
  return block.nodes;
}

/** Blocks by their HTML, each list in order: a block's nodes can be shown only once. */
function pool(blocks) {
  const byHtml = new Map();
  for (const b of blocks) {
    if (!byHtml.has(b.html)) byHtml.set(b.html, []);
    byHtml.get(b.html).push(b);
  }
  return byHtml;
}

/** Add the link definitions among `tokens` to `links`; the first of a name wins. */
function definitions(tokens, links) {
  for (const token of tokens) {
    if (token.type === "def") links[token.tag] ??= { href: token.href, title: token.title };
    for (const inner of [token.tokens, token.items]) if (inner) definitions(inner, links);
  }
}

// The tail is parsed knowing the settled blocks' link definitions, and only theirs: one
// still being written must show as it changes.
function lex(parser, text, links) {
  const lexer = new parser.Lexer(parser.defaults);
  Object.assign(lexer.tokens.links, links);
  return lexer.lex(text);
}

/** How many of `tokens` can no longer change as more text is appended. */
function settledCount(tokens) {
  const lastBlock = (before) => {
    let i = before - 1;
    while (i >= 0 && tokens[i].type === "space") i--;
    return i;
  };
  let last = lastBlock(tokens.length);
  // While its first line is incomplete, the last block may yet turn out to continue the
  // one before it ("2" after a list becomes its next item with "2. "): keep both open.
  if (last > 0 && !tokens[last].raw.includes("\n")) last = lastBlock(last);
  return Math.max(last, 0);
}

/** Put `blocks`' nodes into `element` right after `anchor` (or first); drop what follows. */
function place(element, blocks, anchor) {
  let cursor = anchor ? anchor.nextSibling : element.firstChild;
  for (const b of blocks) {
    for (const node of nodesOf(b)) {
      if (node === cursor) cursor = cursor.nextSibling;
      else element.insertBefore(node, cursor);
    }
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

function freshState(element) {
  const state = { text: "", final: false, settled: [], settledLength: 0, anchor: null };
  Object.assign(state, { open: [], links: Object.create(null), linksKey: "{}" });
  states.set(element, state);
  return state;
}

function renderStreaming(element, text, state) {
  if (!state || state.final || !text.startsWith(state.text.slice(0, state.settledLength))) {
    state = freshState(element);
  }
  const tail = text.slice(state.settledLength);
  const tokens = lex(liveParser, tail, state.links);
  const linksKey = JSON.stringify(tokens.links);
  if (linksKey !== state.linksKey && state.settledLength > 0) {
    return renderStreaming(element, text, null); // a link definition changed: start over
  }
  Object.assign(state, { linksKey, text });
  const open = pool(state.open);
  const blocks = tokens.map((token) => {
    const fresh = block(liveParser, token, false);
    const same = open.get(fresh.html)?.shift();
    if (!same) return fresh;
    // The same HTML from a longer text ("para" then "para\n").
    Object.assign(same, { raw: fresh.raw, token: fresh.token });
    return same;
  });
  const settled = blocks.slice(0, settledCount(tokens));
  place(element, blocks, state.anchor);
  state.open = blocks.slice(settled.length);
  definitions(tokens.slice(0, settled.length), state.links);
  for (const b of settled) {
    state.settled.push(b);
    state.settledLength += b.raw.length;
    state.anchor = b.nodes.at(-1) || state.anchor;
  }
}

/** A live block as the final render shows it: code blocks get their bar (and a guess). */
function finished(b) {
  if (b.final) return b;
  if (!b.html.includes("<pre")) return Object.assign(b, { final: true });
  const fresh = block(finalParser, b.token, true);
  if (fresh.html !== b.html || !b.nodes) return fresh;
  // The same code, highlighted the same: add the code bar in place, don't re-parse.
  const fragment = document.createDocumentFragment();
  fragment.append(...b.nodes);
  decorateCodeBlocks(fragment);
  return Object.assign(b, { nodes: [...fragment.childNodes], final: true });
}

// The reply is done: settle the blocks still open, and show them as final at once.
function finishStreaming(element, text, state) {
  const tokens = lex(finalParser, text.slice(state.settledLength), state.links);
  if (JSON.stringify(tokens.links) !== state.linksKey) return false;
  const open = pool(state.open);
  const tail = tokens.map((token) => {
    const fresh = block(liveParser, token, false);
    const same = open.get(fresh.html)?.shift();
    return same ? Object.assign(same, { raw: fresh.raw, token }) : fresh;
  });
  const blocks = [...state.settled, ...tail].map(finished);
  place(element, blocks, null);
  Object.assign(freshState(element), { text, final: true, open: blocks });
  return true;
}

// The whole text parsed again; a block keeps its nodes where its HTML is the same.
function renderWhole(element, text, state) {
  const reusable = pool(state ? [...state.settled, ...state.open] : []);
  const blocks = finalParser.lexer(text).map((token) => {
    const fresh = block(finalParser, token, true);
    const old = reusable.get(fresh.html)?.shift();
    return old ? finished(Object.assign(old, { raw: fresh.raw, token })) : fresh;
  });
  place(element, blocks, null);
  Object.assign(freshState(element), { text, final: true, open: blocks });
}

const later = window.requestIdleCallback || ((work) => setTimeout(work, 50));

function renderFinal(element, text, state) {
  if (state?.final && state.text === text) return;
  const streamed = state && !state.final && text.startsWith(state.text.slice(0, state.settledLength));
  if (!streamed || !finishStreaming(element, text, state)) return renderWhole(element, text, state);
  // Shown at once from the streamed blocks; then, when the page is idle, checked against a
  // whole render (which keeps every node whose HTML is the same: normally all of them).
  later(() => {
    const shown = states.get(element);
    if (shown?.final && shown.text === text) renderWhole(element, text, shown);
  });
}

// While a reply streams, its blocks out of view skip layout and paint (site.css,
// .markdown[data-contained]). Lifting that lays the whole reply out again: it waits for
// the page to be idle rather than hold up the frame that shows the finished reply.
function contain(element, final) {
  const contained = element.hasAttribute("data-contained");
  if (!final && !contained) element.setAttribute("data-contained", "");
  if (final && contained) {
    later(() => states.get(element)?.final && element.removeAttribute("data-contained"), {
      timeout: 1000,
    });
  }
}

/** Render `text` as sanitised markdown into `element`; `final` once the reply is done.
 *
 * Called again and again on the same element as a reply streams in, it re-renders only
 * the block still being written.
 */
export function renderMarkdown(element, text, { final = true } = {}) {
  text = text.replace(/\r\n?/g, "\n"); // as marked does, so lengths match its blocks'
  const state = states.get(element);
  if (final) renderFinal(element, text, state);
  else renderStreaming(element, text, state);
  contain(element, final);
}
