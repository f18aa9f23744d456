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
// highlighted again each time. The block still being written changes every frame, so it
// is not kept (it would only push the finished ones out).
const highlighted = new Map();
const HIGHLIGHT_CACHE = 100;

function highlight(code, language, guess, keep) {
  const key = `${language}\u0000${guess}\u0000${code}`;
  if (highlighted.has(key)) return highlighted.get(key);
  let html;
  if (language && hljs.getLanguage(language)) {
    html = hljs.highlight(code, { language, ignoreIllegals: true }).value;
  } else if (guess && code.length < 20000) {
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

// Replace only the top-level blocks that changed, so a streaming reply keeps its earlier
// paragraphs (and any text the reader selected in them) while its last one grows.
function morph(element, fragment) {
  const next = [...fragment.childNodes];
  const current = [...element.childNodes];
  next.forEach((node, i) => {
    const old = current[i];
    if (!old) element.append(node);
    else if (!old.isEqualNode(node)) old.replaceWith(node);
  });
  for (const extra of current.slice(next.length)) extra.remove();
}

/** Render `text` as sanitised markdown into `element`; `final` once the reply is done. */
export function renderMarkdown(element, text, { final = true } = {}) {
  const parser = final ? finalParser : liveParser;
  const fragment = DOMPurify.sanitize(parser.parse(text), PURIFY);
  if (final) decorateCodeBlocks(fragment);
  morph(element, fragment);
}
