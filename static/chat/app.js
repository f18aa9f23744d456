// The chat page: wires the sidebar, the thread, the composer and the replies together.
// Data reaches this script through data- attributes only; the page has no inline script.
import { describeError, json } from "./api.js";
import { copyText, handleCodeCopies } from "./copy.js";
import { fillIcons } from "./icons.js";
import { PersonaDialog, personaName } from "./persona.js";
import { Reply } from "./reply.js";
import { DEFAULTS, SettingsDialog, describeSettings } from "./settings.js";
import { ShareDialog } from "./share.js";
import { Sidebar, UNTITLED } from "./sidebar.js";
import { Scroller, Thread } from "./thread.js";

const $ = (id) => document.getElementById(id);
const els = {
  app: document.querySelector(".app"),
  title: $("chat-title"),
  model: $("model"),
  persona: $("persona-button"),
  personaName: $("persona-name"),
  settings: $("settings-button"),
  form: $("composer"),
  content: $("content"),
  send: $("send"),
  stop: $("stop"),
  banner: $("banner"),
  announcer: $("announcer"),
  menu: $("menu"),
  share: $("share-button"),
  backdrop: $("backdrop"),
};
const MODEL_KEY = "chatsite.model";

const state = {
  conversation: null, // the open conversation, or null for a new chat not yet created
  persona: "", // the system prompt chosen for a new chat before it exists
  settings: { ...DEFAULTS }, // the same, for its temperature and longest reply
  replies: new Map(), // conversation id -> the Reply being written there
  loading: 0, // bumped on every navigation, so a slow earlier load cannot win
  defaultModel: null,
};

const scroller = new Scroller($("thread"), $("jump"));
const thread = new Thread($("messages"), $("empty"), scroller, {
  copy: copyText,
  regenerate: (view) => regenerate(view).catch(showError),
  edit: (view, text) => send(text, { editOf: view }).catch(showError),
  switchTo: (view, id, step) => switchBranch(view, id, step).catch(showError),
});
const sidebar = new Sidebar(
  {
    list: $("conversations"),
    search: $("search"),
    empty: $("conversations-empty"),
    confirm: $("confirm-delete"),
  },
  { open: (id) => openConversation(id), renamed: onRenamed, deleted: onDeleted },
);
const personaDialog = new PersonaDialog($("persona-dialog"));
const settingsDialog = new SettingsDialog($("settings-dialog"));
const shareDialog = new ShareDialog($("share-dialog"));
// After a conversation's first reply the model writes its title in the background; the
// sidebar looks for it this often, this many times.
const TITLE_POLL_MS = 1000;
const TITLE_POLLS = 30;

// --- feedback -------------------------------------------------------------

function announce(text) {
  els.announcer.textContent = text;
}

function showError(error) {
  els.banner.querySelector("span").textContent = describeError(error);
  els.banner.hidden = false;
}

function setTitle(title) {
  els.title.textContent = title || UNTITLED;
  document.title = `${title || UNTITLED} · chatsite`;
}

// --- replies --------------------------------------------------------------

function currentReply() {
  return state.conversation ? state.replies.get(state.conversation.id) : undefined;
}

function updateBusy() {
  const reply = currentReply();
  els.send.hidden = Boolean(reply);
  els.stop.hidden = !reply;
  els.stop.disabled = Boolean(reply?.stopping);
  thread.updateActions(Boolean(reply));
  sidebar.setBusy([...state.replies.keys()]);
  els.share.disabled = !state.conversation;
}

function track(reply) {
  state.replies.set(reply.conversationId, reply);
  updateBusy();
  announce("The assistant is replying.");
  return reply.finished.then(() => replyEnded(reply));
}

async function replyEnded(reply) {
  if (reply.discarded) return;
  if (state.replies.get(reply.conversationId) === reply) state.replies.delete(reply.conversationId);
  updateBusy();
  const said = { complete: "The reply is complete.", stopped: "The reply was stopped." };
  announce(said[reply.status] || `The reply failed: ${reply.error?.message}`);
  await refreshSidebar();
  if (reply.status === "complete") watchTitle(reply.conversationId).catch(() => {});
}

// A conversation still titled by its first line may be getting a title from the model.
async function watchTitle(conversationId) {
  for (let poll = 0; poll < TITLE_POLLS; poll++) {
    const listed = sidebar.loaded.find((c) => c.id === conversationId);
    if (listed?.title_source !== "first_line") return;
    await new Promise((resolve) => setTimeout(resolve, TITLE_POLL_MS));
    await refreshSidebar();
  }
}

/** Follow a reply found streaming on load: the same Reply if this page already follows it. */
function follow(conversationId, messageId, view) {
  const known = state.replies.get(conversationId);
  if (known && known.messageId === messageId) {
    known.view = view;
    known.show();
    return;
  }
  track(Reply.reattach(conversationId, messageId, view));
}

/** Send a message after the branch shown, or as a new version of the question `editOf`. */
async function send(text, { editOf = null } = {}) {
  if (currentReply()) return;
  els.banner.hidden = true;
  const conversation = state.conversation || (await createConversation());
  // The message follows what this page shows, whatever another tab has switched to since.
  const parentId = editOf ? editOf.parentId : (thread.views.at(-1)?.id ?? null);
  const body = { content: text, model: els.model.value };
  if (editOf || parentId != null) body.parent_id = parentId;
  if (editOf) thread.dropFrom(editOf);
  const userView = thread.add({ role: "user", content: text, parent_id: parentId });
  if (editOf) userView.setSiblings(editOf.siblings);
  const view = thread.add({ role: "assistant", content: "", status: "streaming" });
  scroller.toBottom();
  const path = `/api/conversations/${conversation.id}/messages`;
  const reply = Reply.post(conversation.id, path, body, view);
  reply.onStart = () => {
    userView.setId(reply.userMessageId);
    view.parentId = reply.userMessageId;
    refreshSidebar();
  };
  await track(reply);
  if (reply.rejected) await undoSend(reply, editOf ? "" : text);
}

/** Ask for a new version of the reply `old`, beside it. */
async function regenerate(old) {
  if (currentReply() || !state.conversation) return;
  els.banner.hidden = true;
  thread.dropFrom(old);
  const view = thread.add({ role: "assistant", content: "", status: "streaming" });
  view.parentId = old.parentId;
  view.setSiblings(old.siblings);
  scroller.toBottom();
  const path = `/api/messages/${old.id}/regenerate`;
  const reply = Reply.post(state.conversation.id, path, { model: els.model.value }, view);
  await track(reply);
  if (reply.rejected) await undoSend(reply, "");
}

// The server refused (409 while another tab writes, 400…): nothing was stored.
async function undoSend(reply, text) {
  showError(reply.rejected);
  if (text && !els.content.value) els.content.value = text;
  if (state.conversation?.id === reply.conversationId)
    await openConversation(reply.conversationId, { push: false });
}

/** Show another version of `view`'s message, and the branch below it, in place. */
async function switchBranch(view, id, step) {
  const open = state.conversation;
  const index = thread.views.indexOf(view);
  const updated = await json(`/api/conversations/${open.id}`, {
    method: "PATCH",
    body: { current_message_id: id },
  });
  if (state.conversation !== open) return;
  const top = scroller.pane.scrollTop;
  show(updated, { keepScroll: true });
  scroller.pane.scrollTop = top;
  const now = thread.views[index];
  if (!now) return;
  const button = step < 0 && !now.prev.disabled ? now.prev : now.next.disabled ? now.prev : now.next;
  button.focus();
  announce(now.versions.getAttribute("aria-label") + " shown.");
}

// --- conversations ----------------------------------------------------------

async function createConversation() {
  const body = { model: els.model.value, system_prompt: state.persona, ...state.settings };
  const conversation = await json("/api/conversations", { method: "POST", body });
  state.conversation = { ...conversation, messages: [] };
  history.pushState({}, "", `/c/${conversation.id}/`);
  sidebar.setCurrent(conversation.id);
  return state.conversation;
}

async function openConversation(id, { push = true } = {}) {
  const ticket = ++state.loading;
  let conversation;
  try {
    conversation = await json(`/api/conversations/${id}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    showError(new Error("That conversation does not exist any more."));
    return newChat();
  }
  if (ticket !== state.loading) return;
  if (push) history.pushState({}, "", `/c/${id}/`);
  show(conversation);
}

function show(conversation, { keepScroll = false } = {}) {
  for (const reply of state.replies.values()) reply.view = null; // keep following, off screen
  state.conversation = conversation;
  showSettings(conversation);
  setTitle(conversation.title);
  selectModel(conversation.model);
  showPersona(conversation.system_prompt);
  thread.clear({ keepScroll });
  for (const message of conversation.messages) {
    if (message.role === "system") continue;
    if (message.status !== "streaming") {
      thread.add(message);
      continue;
    }
    // Its stored text may lag the stream by a second: the replay from the first event
    // rebuilds it exactly, so start it empty rather than show text that would jump back.
    follow(conversation.id, message.id, thread.add({ ...message, content: "" }));
  }
  sidebar.setCurrent(conversation.id);
  updateBusy();
  closeDrawer();
}

function newChat({ push = true } = {}) {
  state.loading += 1;
  for (const reply of state.replies.values()) reply.view = null;
  Object.assign(state, { conversation: null, persona: "", settings: { ...DEFAULTS } });
  if (push && location.pathname !== "/") history.pushState({}, "", "/");
  setTitle("");
  thread.clear();
  showPersona("");
  showSettings(state.settings);
  selectModel(preferredModel());
  sidebar.setCurrent(null);
  updateBusy();
  closeDrawer();
  els.content.focus();
}

async function refreshSidebar() {
  await sidebar.refresh();
  const open = sidebar.loaded.find((c) => c.id === state.conversation?.id);
  if (open) setTitle(open.title);
}

function onRenamed(conversation) {
  if (conversation.id === state.conversation?.id) setTitle(conversation.title);
}

function onDeleted(id) {
  state.replies.get(id)?.discard(); // the server stops it: no failure to report
  state.replies.delete(id);
  if (id === state.conversation?.id) newChat();
  updateBusy();
}

// A second tab, or this one after a while away: pick up replies started elsewhere.
async function resync() {
  const open = state.conversation;
  if (document.visibilityState !== "visible" || !open?.id || currentReply()) return;
  const fresh = await json(`/api/conversations/${open.id}`);
  const shown = thread.views.map((v) => `${v.li.dataset.id}:${v.status}:${v.text.length}`).join();
  const stored = fresh.messages.filter((m) => m.role !== "system");
  if (shown !== stored.map((m) => `${m.id}:${m.status}:${m.content.length}`).join()) {
    if (state.conversation === open && !currentReply()) show(fresh);
  }
}

// --- models and persona -----------------------------------------------------

async function loadModels() {
  const { models } = await json("/api/models");
  const groups = new Map();
  for (const m of models) {
    if (!groups.has(m.provider))
      groups.set(
        m.provider,
        Object.assign(document.createElement("optgroup"), { label: m.provider }),
      );
    groups.get(m.provider).append(new Option(m.id, m.id));
  }
  els.model.replaceChildren(...groups.values());
  state.defaultModel = (models.find((m) => m.default) || models[0])?.id;
}

function preferredModel() {
  const saved = localStorage.getItem(MODEL_KEY);
  const offered = [...els.model.options].some((o) => o.value === saved);
  return offered ? saved : state.defaultModel;
}

function selectModel(id) {
  if (id && ![...els.model.options].some((o) => o.value === id)) {
    els.model.append(new Option(`${id} (not offered)`, id));
  }
  els.model.value = id || state.defaultModel;
}

async function changeModel() {
  localStorage.setItem(MODEL_KEY, els.model.value);
  const open = state.conversation;
  if (open)
    await json(`/api/conversations/${open.id}`, {
      method: "PATCH",
      body: { model: els.model.value },
    });
}

function showPersona(prompt) {
  els.personaName.textContent = personaName(prompt);
  els.persona.title = prompt || "No system prompt";
  els.persona.classList.toggle("active", Boolean(prompt));
}

async function choosePersona() {
  const open = state.conversation;
  const prompt = await personaDialog.choose(open ? open.system_prompt : state.persona);
  if (prompt === null) return;
  if (open) {
    const updated = await json(`/api/conversations/${open.id}`, {
      method: "PATCH",
      body: { system_prompt: prompt },
    });
    open.system_prompt = updated.system_prompt;
  } else {
    state.persona = prompt;
  }
  showPersona(prompt);
}

function showSettings({ temperature = null, max_tokens: maxTokens = null }) {
  const chosen = { temperature, max_tokens: maxTokens };
  els.settings.title = describeSettings(chosen);
  els.settings.classList.toggle("active", temperature != null || maxTokens != null);
}

async function chooseSettings() {
  const open = state.conversation;
  const chosen = await settingsDialog.choose(open || state.settings);
  if (chosen === null) return;
  if (open) {
    const updated = await json(`/api/conversations/${open.id}`, { method: "PATCH", body: chosen });
    Object.assign(open, { temperature: updated.temperature, max_tokens: updated.max_tokens });
    showSettings(open);
  } else {
    state.settings = chosen;
    showSettings(chosen);
  }
}

// --- composer and layout ----------------------------------------------------

function autosize() {
  els.content.style.height = "auto"; // CSSOM, which the CSP allows (style attributes it would not)
  els.content.style.height = `${Math.min(els.content.scrollHeight, 240)}px`;
}

function submit(event) {
  event.preventDefault();
  const text = els.content.value;
  if (!text.trim() || currentReply()) return;
  els.content.value = "";
  autosize();
  send(text).catch(showError);
}

// On narrow screens the sidebar is a drawer over the chat; the chat is inert behind it.
const narrow = window.matchMedia("(max-width: 760px)");

function setDrawer(open) {
  els.app.classList.toggle("drawer-open", open);
  els.menu.setAttribute("aria-expanded", String(open));
  els.backdrop.hidden = !open;
  $("main").inert = open;
  if (open) $("search").focus();
}

function closeDrawer() {
  if (!els.app.classList.contains("drawer-open")) return;
  const hadFocus = $("sidebar").contains(document.activeElement);
  setDrawer(false);
  if (hadFocus && narrow.matches) els.menu.focus();
}

function bindEvents() {
  els.form.addEventListener("submit", submit);
  els.content.addEventListener("input", autosize);
  els.content.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.form.requestSubmit();
    }
  });
  els.stop.addEventListener("click", async () => {
    const stopped = currentReply()?.stop();
    updateBusy();
    await stopped;
    updateBusy(); // a stop that failed can be tried again
  });
  $("new-chat").addEventListener("click", () => newChat());
  els.model.addEventListener("change", () => changeModel().catch(showError));
  els.persona.addEventListener("click", () => choosePersona().catch(showError));
  els.settings.addEventListener("click", () => chooseSettings().catch(showError));
  els.share.addEventListener("click", () => {
    if (state.conversation) shareDialog.share(state.conversation.id).catch(showError);
  });
  els.banner.querySelector("button").addEventListener("click", () => (els.banner.hidden = true));
  els.menu.addEventListener("click", () => setDrawer(!els.app.classList.contains("drawer-open")));
  els.backdrop.addEventListener("click", closeDrawer);
  narrow.addEventListener("change", () => narrow.matches || closeDrawer());
  document.addEventListener("keydown", (event) => event.key === "Escape" && closeDrawer());
  window.addEventListener("popstate", () => route(false));
  // Back to this tab or window: show what other tabs did meanwhile.
  document.addEventListener("visibilitychange", () => resync().catch(() => {}));
  window.addEventListener("focus", () => resync().catch(() => {}));
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
  handleCodeCopies($("messages"));
}

function route(push) {
  const match = location.pathname.match(/^\/c\/(\d+)\/?$/);
  return match ? openConversation(Number(match[1]), { push }) : newChat({ push });
}

async function start() {
  fillIcons();
  bindEvents();
  await loadModels();
  sidebar.refresh().catch(showError);
  await route(false);
}

start().catch(showError);
