// The conversation list: newest first, searchable, with rename and delete on each entry.
import { json } from "./api.js";
import { iconButton } from "./icons.js";

const SEARCH_DELAY_MS = 200;
export const UNTITLED = "New chat";

export class Sidebar {
  constructor({ list, search, empty, confirm }, callbacks) {
    Object.assign(this, { list, search, empty, confirm, callbacks });
    this.currentId = null;
    this.renaming = false;
    this.busyIds = new Set();
    this.loaded = [];
    let timer;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.refresh(), SEARCH_DELAY_MS);
    });
  }

  /** Reload the list from the server, with the search box's query. */
  async refresh() {
    const query = this.search.value.trim();
    const path = query ? `/api/conversations?q=${encodeURIComponent(query)}` : "/api/conversations";
    const { conversations } = await json(path);
    if (query !== this.search.value.trim()) return; // a newer search is on its way
    this.loaded = conversations;
    this.render(query);
  }

  render(query = this.search.value.trim()) {
    if (this.renaming) return; // a refresh must not take the rename box away; it ends with one
    this.list.replaceChildren(...this.loaded.map((c) => this.item(c)));
    this.empty.textContent = query ? "No conversation matches." : "No conversations yet.";
    this.empty.hidden = this.loaded.length > 0;
  }

  item(conversation) {
    const li = document.createElement("li");
    li.className = "conversation";
    li.dataset.id = conversation.id;
    li.classList.toggle("busy", this.busyIds.has(conversation.id));
    const link = document.createElement("a");
    link.href = `/c/${conversation.id}/`;
    link.textContent = conversation.title || UNTITLED;
    if (conversation.id === this.currentId) link.setAttribute("aria-current", "page");
    link.addEventListener("click", (event) => {
      if (event.button || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      this.callbacks.open(conversation.id);
    });
    const name = link.textContent;
    const rename = iconButton("pencil", `Rename “${name}”`, "rename");
    rename.addEventListener("click", () => this.startRename(li, conversation));
    const remove = iconButton("trash", `Delete “${name}”`, "delete");
    remove.addEventListener("click", () => this.askDelete(conversation));
    const actions = document.createElement("span");
    actions.className = "conversation-actions";
    actions.append(rename, remove);
    li.append(link, actions);
    return li;
  }

  setCurrent(id) {
    this.currentId = id;
    for (const link of this.list.querySelectorAll("a")) {
      const current = Number(link.parentElement.dataset.id) === id;
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** Mark the conversations that have a reply being written. */
  setBusy(ids) {
    this.busyIds = new Set(ids);
    for (const li of this.list.children)
      li.classList.toggle("busy", this.busyIds.has(Number(li.dataset.id)));
  }

  startRename(li, conversation) {
    const input = document.createElement("input");
    input.className = "rename-box";
    input.value = conversation.title;
    input.maxLength = 200;
    input.setAttribute("aria-label", "New title");
    li.replaceChildren(input);
    this.renaming = true;
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      try {
        if (save && title && title !== conversation.title) await this.rename(conversation, title);
      } finally {
        this.renaming = false;
      }
      this.render();
      this.list.querySelector(`[data-id="${conversation.id}"] .rename`)?.focus();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") {
        event.stopPropagation(); // cancel the rename only, not the drawer around it
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  async rename(conversation, title) {
    const body = { title };
    const updated = await json(`/api/conversations/${conversation.id}`, { method: "PATCH", body });
    // The list may have been reloaded meanwhile: update the entry it holds now as well.
    const listed = this.loaded.find((c) => c.id === updated.id);
    for (const entry of new Set([conversation, listed]))
      if (entry) Object.assign(entry, { title: updated.title, title_source: updated.title_source });
    this.callbacks.renamed(updated);
  }

  async askDelete(conversation) {
    const dialog = this.confirm;
    dialog.querySelector("[data-title]").textContent = conversation.title || UNTITLED;
    dialog.returnValue = "";
    dialog.showModal();
    await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
    if (dialog.returnValue !== "delete") return;
    await json(`/api/conversations/${conversation.id}`, { method: "DELETE" });
    this.loaded = this.loaded.filter((c) => c.id !== conversation.id);
    this.render();
    this.callbacks.deleted(conversation.id);
  }
}
