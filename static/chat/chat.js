// The chat page: conversations, messages, and a reply that streams in as it is written.
"use strict";

const app = document.querySelector(".app");
const els = {
  conversations: document.getElementById("conversations"),
  messages: document.getElementById("messages"),
  model: document.getElementById("model"),
  form: document.getElementById("composer"),
  content: document.getElementById("content"),
  send: document.getElementById("send"),
  stop: document.getElementById("stop"),
  newChat: document.getElementById("new-chat"),
};
let conversationId = app.dataset.conversationId ? Number(app.dataset.conversationId) : null;
let current = null; // {messageId, controller}

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", "X-CSRFToken": csrfToken() };
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (!response.ok && response.status !== 204) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  }
  return response;
}

function messageItem(role, text) {
  const li = document.createElement("li");
  li.className = role;
  const body = document.createElement("div");
  body.className = "content";
  body.textContent = text;
  const meta = document.createElement("div");
  meta.className = "meta";
  li.append(body, meta);
  els.messages.append(li);
  return li;
}

function showMeta(li, m) {
  const parts = [m.status];
  if (m.ttft_ms != null) parts.push(`first token ${m.ttft_ms} ms`);
  if (m.output_tokens && m.duration_ms) {
    parts.push(`${(m.output_tokens / (m.duration_ms / 1000)).toFixed(1)} tokens/s`);
  }
  li.querySelector(".meta").textContent = parts.join(" · ");
}

async function loadModels() {
  const { models } = await (await api("/api/models")).json();
  for (const m of models) {
    const option = new Option(`${m.id} (${m.provider})`, m.id, m.default, m.default);
    els.model.append(option);
  }
}

async function loadConversations() {
  const { conversations } = await (await api("/api/conversations")).json();
  els.conversations.replaceChildren(
    ...conversations.map((c) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/c/${c.id}/`;
      a.textContent = c.title || "New chat";
      if (c.id === conversationId) a.setAttribute("aria-current", "page");
      li.append(a);
      return li;
    }),
  );
}

async function loadConversation() {
  els.messages.replaceChildren();
  if (!conversationId) return;
  const conversation = await (await api(`/api/conversations/${conversationId}`)).json();
  els.model.value = conversation.model;
  for (const m of conversation.messages) {
    const li = messageItem(m.role, m.content);
    if (m.role === "assistant") showMeta(li, m);
    if (m.status === "streaming") follow(li, m.id);
  }
}

// Read a text/event-stream body, calling onEvent(name, data, id) for each event.
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = {};
      for (const line of frame.split("\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
      }
      if (fields.event) onEvent(fields.event, JSON.parse(fields.data), fields.id);
    }
  }
}

function render(li, response, controller) {
  const body = li.querySelector(".content");
  return readEvents(response, (name, data) => {
    if (name === "start") current = { messageId: data.message_id, controller };
    else if (name === "delta") body.textContent += data.text;
    else if (name === "done") showMeta(li, data);
    else if (name === "error") li.querySelector(".meta").textContent = `failed: ${data.message}`;
    els.messages.scrollTop = els.messages.scrollHeight;
  });
}

async function follow(li, messageId) {
  const controller = new AbortController();
  current = { messageId, controller };
  setBusy(true);
  li.querySelector(".content").textContent = "";
  try {
    const response = await fetch(`/api/messages/${messageId}/stream`, { signal: controller.signal });
    await render(li, response, controller);
  } catch (err) {
    if (err.name !== "AbortError") throw err;
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  if (!busy) current = null;
}

async function send(text) {
  if (!conversationId) {
    const body = JSON.stringify({ model: els.model.value });
    const conversation = await (await api("/api/conversations", { method: "POST", body })).json();
    conversationId = conversation.id;
    history.pushState({}, "", `/c/${conversationId}/`);
  }
  messageItem("user", text);
  const li = messageItem("assistant", "");
  const controller = new AbortController();
  setBusy(true);
  try {
    const body = JSON.stringify({ content: text, model: els.model.value });
    const response = await api(`/api/conversations/${conversationId}/messages`, {
      method: "POST",
      body,
      signal: controller.signal,
    });
    await render(li, response, controller);
  } catch (err) {
    if (err.name !== "AbortError") li.querySelector(".meta").textContent = err.message;
  } finally {
    setBusy(false);
    loadConversations();
  }
}

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = els.content.value;
  if (!text.trim() || current) return;
  els.content.value = "";
  send(text);
});
els.content.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    els.form.requestSubmit();
  }
});
els.stop.addEventListener("click", async () => {
  if (!current) return;
  await api(`/api/messages/${current.messageId}/stop`, { method: "POST" });
});
els.newChat.addEventListener("click", () => {
  window.location.href = "/";
});

loadModels().then(loadConversations).then(loadConversation);
