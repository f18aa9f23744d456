// The messages of the open conversation: one view per message, re-rendered on its own
// (never the whole history), and a scroller that follows a growing reply.
import { icon, iconButton } from "./icons.js";
import { renderMarkdown } from "./markdown.js";

const ROLE_NAMES = { user: "You", assistant: "Assistant" };
const STATUS_NAMES = { stopped: "Stopped", failed: "Failed", streaming: "Writing…" };

function formatMs(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

/** "fake · 84 ms to first token · 23.4 tok/s" for a finished reply, or "" when unknown. */
export function formatStats({
  model,
  ttft_ms: ttft,
  output_tokens: tokens,
  duration_ms: duration,
}) {
  const parts = model ? [model] : [];
  if (ttft != null) parts.push(`${formatMs(ttft)} to first token`);
  const writing = (duration || 0) - (ttft || 0);
  if (tokens > 1 && writing > 0) parts.push(`${((tokens * 1000) / writing).toFixed(1)} tok/s`);
  return parts.join(" · ");
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function typingIndicator() {
  const typing = element("div", "typing");
  typing.append(element("span"), element("span"), element("span"));
  typing.append(element("span", "visually-hidden", "The assistant is writing"));
  return typing;
}

/** One message on the page. Assistant messages render markdown; user messages plain text. */
export class MessageView {
  constructor(message, handlers, onRender) {
    Object.assign(this, { role: message.role, handlers, onRender, pending: false });
    this.id = message.id ?? null;
    this.parentId = message.parent_id ?? null;
    this.siblings = message.siblings || (this.id == null ? [] : [this.id]);
    this.text = message.content || "";
    this.li = element("li", `message ${this.role}`);
    this.li.dataset.role = this.role;
    this.li.append(element("span", "visually-hidden", `${ROLE_NAMES[this.role]}:`));
    this.bubble = element("div", "bubble");
    this.body = element("div", this.role === "assistant" ? "body markdown" : "body plain");
    this.bubble.append(this.body);
    this.meta = element("div", "meta");
    this.li.append(this.bubble, this.meta);
    this.buildMeta();
    this.update(message);
  }

  buildMeta() {
    this.buildVersions();
    this.badge = element("span", "badge");
    this.stats = element("span", "stats");
    this.actions = element("span", "actions");
    this.buttons = {};
    const add = (name, iconName, label, onClick) => {
      this.buttons[name] = iconButton(iconName, label);
      this.buttons[name].addEventListener("click", onClick);
      this.actions.append(this.buttons[name]);
    };
    if (this.role === "assistant") {
      this.typing = typingIndicator();
      this.problem = element("div", "problem");
      this.problem.setAttribute("role", "alert");
      this.problemText = element("span");
      this.retry = element("button", "button small", "Retry");
      this.retry.type = "button";
      this.retry.addEventListener("click", () => this.handlers.regenerate(this));
      this.problem.append(icon("close"), this.problemText, this.retry);
      this.loadingNote = element("div", "loading-note", "Loading the model…");
      this.loadingNote.setAttribute("role", "status");
      this.bubble.append(this.typing, this.loadingNote, this.problem);
      add("copy", "copy", "Copy reply", () => this.handlers.copy(this.text, this.buttons.copy));
      add("regenerate", "refresh", "Regenerate reply", () => this.handlers.regenerate(this));
    } else {
      add("edit", "pencil", "Edit message", () => this.startEditing());
    }
    this.meta.append(this.versions, this.badge, this.stats, this.actions);
  }

  // ‹ n / m ›: the versions of this message (edits, regenerations), switched in place.
  buildVersions() {
    const what = this.role === "user" ? "message" : "reply";
    this.versions = element("span", "versions");
    this.versions.setAttribute("role", "group");
    this.prev = iconButton("prev", `Previous version of this ${what}`, "version-prev");
    this.next = iconButton("next", `Next version of this ${what}`, "version-next");
    this.position = element("span", "version-position");
    this.prev.addEventListener("click", () => this.showVersion(-1));
    this.next.addEventListener("click", () => this.showVersion(1));
    this.versions.append(this.prev, this.position, this.next);
  }

  showVersion(step) {
    const target = this.siblings[this.siblings.indexOf(this.id) + step];
    if (target != null) this.handlers.switchTo(this, target, step);
  }

  /** Show which version this is, and offer the others. */
  setSiblings(ids) {
    // A new version not stored yet counts as the last one.
    const others = ids.filter((id) => id != null && id !== this.id);
    this.siblings = this.id == null ? [...others, null] : ids.includes(this.id) ? ids : [this.id];
    const [index, count] = [this.siblings.indexOf(this.id), this.siblings.length];
    this.versions.hidden = count < 2;
    this.position.textContent = `${index + 1} / ${count}`;
    this.versions.setAttribute("aria-label", `Version ${index + 1} of ${count}`);
    this.prev.disabled = index <= 0;
    this.next.disabled = index < 0 || index >= count - 1;
  }

  setId(id) {
    const known = this.siblings.filter((sibling) => sibling != null && sibling !== this.id);
    this.id = id;
    this.li.dataset.id = id;
    this.setSiblings([...known, id]);
  }

  /** Take a stored message's fields (status, timings, error). */
  update({ id, content, status = "complete", error, parent_id, siblings, ...metrics }) {
    if (id != null) [this.id, this.li.dataset.id] = [id, id];
    if (parent_id !== undefined) this.parentId = parent_id;
    this.setSiblings(siblings || this.siblings);
    if (content != null) this.text = content;
    this.status = status;
    this.error = status === "failed" ? { message: error || "The reply failed." } : null;
    this.metrics = metrics;
    this.render();
  }

  /** Follow a Reply as it streams (Reply calls this on every event). */
  sync(reply) {
    if (reply.messageId != null && reply.messageId !== this.id) this.setId(reply.messageId);
    this.text = reply.text;
    this.status = reply.status;
    this.error = reply.error;
    this.metrics = { model: reply.model, ...reply.metrics };
    this.loadingModel = reply.loadingModel;
    this.stopping = reply.stopping && !reply.ended;
    this.stopError = reply.ended ? null : reply.stopError;
    this.scheduleRender();
  }

  // Deltas can come faster than the screen refreshes: render at most once a frame.
  scheduleRender() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const streaming = this.status === "streaming";
    this.li.dataset.status = this.status;
    if (this.role === "user") this.body.textContent = this.text;
    else this.renderReply(streaming);
    this.li.toggleAttribute("aria-busy", streaming);
    this.badge.textContent = this.stopping
      ? "Stopping…"
      : this.stopError
        ? `Could not stop: ${this.stopError}`
        : STATUS_NAMES[this.status] || "";
    this.badge.hidden = !this.badge.textContent;
    this.onRender(this);
  }

  renderReply(streaming) {
    renderMarkdown(this.body, this.text, { final: !streaming });
    this.typing.hidden = !(streaming && !this.text);
    this.loadingNote.hidden = !(streaming && !this.text && this.loadingModel);
    this.problem.hidden = !this.error;
    this.problemText.textContent = this.error ? this.error.message : "";
    this.stats.textContent = streaming ? "" : formatStats(this.metrics || {});
  }

  /** Show only the actions that make sense now (nothing streaming in this conversation). */
  setActions({ edit = false, regenerate = false, retry = false, copy = false }) {
    const show = { edit, regenerate, copy };
    for (const [name, button] of Object.entries(this.buttons)) button.hidden = !show[name];
    if (this.retry) this.retry.hidden = !retry;
  }

  startEditing() {
    const form = element("form", "edit-form");
    const box = element("textarea", "edit-box");
    box.value = this.text;
    box.setAttribute("aria-label", "Edit your message");
    const cancel = element("button", "button", "Cancel");
    cancel.type = "button";
    const save = element("button", "button primary", "Send");
    save.type = "submit";
    const row = element("div", "edit-buttons");
    row.append(cancel, save);
    form.append(box, row);
    const close = () => form.replaceWith(this.bubble);
    cancel.addEventListener("click", close);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (box.value.trim()) this.handlers.edit(this, box.value);
    });
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    this.bubble.replaceWith(form);
    box.focus();
  }
}

/** Keeps the newest text in view while the reader is at the bottom; lets go when they scroll up. */
export class Scroller {
  constructor(pane, jump) {
    Object.assign(this, { pane, jump, stick: true });
    pane.addEventListener("scroll", () => this.onScroll(), { passive: true });
    // A wheel turned upwards means "let me read": let go before the next frame snaps back.
    pane.addEventListener("wheel", (event) => event.deltaY < 0 && this.release(), {
      passive: true,
    });
    jump.addEventListener("click", () => this.toBottom());
    // A narrower window or an on-screen keyboard shrinks the pane: stay at the bottom.
    new ResizeObserver(() => this.stick && this.follow()).observe(pane);
  }

  nearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.pane;
    return scrollHeight - scrollTop - clientHeight < 48;
  }

  onScroll() {
    this.stick = this.nearBottom();
    this.jump.hidden = this.stick;
  }

  release() {
    if (this.pane.scrollHeight > this.pane.clientHeight) this.stick = false;
  }

  follow() {
    if (this.stick) this.pane.scrollTop = this.pane.scrollHeight;
    this.jump.hidden = this.stick || this.nearBottom();
  }

  toBottom() {
    this.stick = true;
    this.follow();
  }
}

/** The list of message views for the open conversation. */
export class Thread {
  constructor(list, empty, scroller, handlers) {
    Object.assign(this, { list, empty, scroller, handlers, views: [] });
  }

  clear({ keepScroll = false } = {}) {
    this.views = [];
    this.list.replaceChildren();
    this.empty.hidden = false;
    if (!keepScroll) this.scroller.toBottom();
  }

  add(message) {
    const view = new MessageView(message, this.handlers, () => this.scroller.follow());
    this.views.push(view);
    this.list.append(view.li);
    this.empty.hidden = true;
    return view;
  }

  last(role) {
    return this.views.findLast((view) => view.role === role) || null;
  }

  /** Remove `view` and everything after it: a new version of it takes its place. */
  dropFrom(view) {
    const index = this.views.indexOf(view);
    if (index < 0) return;
    for (const dropped of this.views.splice(index)) dropped.li.remove();
  }

  updateActions(busy) {
    for (const view of this.views) {
      const ended = view.status !== "streaming";
      const again = !busy && view.role === "assistant" && ended && view.id != null;
      view.setActions({
        edit: !busy && view.role === "user" && view.id != null,
        regenerate: again && view.status !== "failed", // a failed reply offers Retry instead
        retry: again,
        copy: view.role === "assistant" && ended && Boolean(view.text),
      });
    }
  }
}
