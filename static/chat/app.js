// The chat page: wires the sidebar, the thread, the composer and the replies together.
// Data reaches this script through data- attributes only; the page has no inline script.
import { describeError, json } from "./api.js";
import { copyText, handleCodeCopies } from "./copy.js";
import { fillIcons } from "./icons.js";
import { PersonaDialog, personaName } from "./persona.js";
import { Reply } from "./reply.js";
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
  replies: new Map(), // conversation id -> the Reply being written there
  loading: 0, // bumped on every navigation, so a slow earlier load cannot win
  defaultModel: null,
};

const scroller = new Scroller($("thread"), $("jump"));
const thread = new Thread($("messages"), $("empty"), scroller, {
  copy: copyText,
  retry: () => resend(thread.last("user")?.text),
  regenerate: () => resend(thread.last("user")?.text),
  edit: (_view, text) => resend(text),
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

async function send(text, { replaceLast = false } = {}) {
  if (currentReply()) return;
  els.banner.hidden = true;
  const conversation = state.conversation || (await createConversation());
  if (replaceLast) thread.dropLastTurn();
  const userView = thread.add({ role: "user", content: text });
  const view = thread.add({ role: "assistant", content: "", status: "streaming" });
  scroller.toBottom();
  const body = {
    content: text,
    model: els.model.value,
    ...(replaceLast && { replace_last: true }),
  };
  const reply = Reply.send(conversation.id, body, view);
  reply.onStart = () => {
    userView.li.dataset.id = reply.userMessageId;
    refreshSidebar();
  };
  await track(reply);
  if (reply.rejected) await undoSend(reply, text, replaceLast);
}

// The server refused the message (409 while another tab writes, 400…): nothing was stored.
async function undoSend(reply, text, replaceLast) {
  showError(reply.rejected);
  if (!replaceLast && !els.content.value) els.content.value = text;
  if (state.conversation?.id === reply.conversationId)
    await openConversation(reply.conversationId, { push: false });
}

function resend(text) {
  if (text) send(text, { replaceLast: true });
}

// --- conversations ----------------------------------------------------------

async function createConversation() {
  const body = { model: els.model.value, system_prompt: state.persona };
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

function show(conversation) {
  for (const reply of state.replies.values()) reply.view = null; // keep following, off screen
  state.conversation = conversation;
  setTitle(conversation.title);
  selectModel(conversation.model);
  showPersona(conversation.system_prompt);
  thread.clear();
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
  Object.assign(state, { conversation: null, persona: "" });
  if (push && location.pathname !== "/") history.pushState({}, "", "/");
  setTitle("");
  thread.clear();
  showPersona("");
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
