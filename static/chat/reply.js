// One assistant reply as the page follows it: its text so far, its end, and a view to show it.
// The reply lives on the server as a run; this object can lose its connection, be stopped,
// or lose its view (the user opened another conversation) and still end consistently.
import { ApiError, request } from "./api.js";
import { readEvents } from "./sse.js";

const RECONNECTS = 5;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function seqOf(id) {
  const seq = Number(String(id).split(":").pop());
  return Number.isFinite(seq) ? seq : null;
}

export class Reply {
  constructor(conversationId, view) {
    this.conversationId = conversationId;
    this.view = view;
    this.messageId = null;
    this.userMessageId = null;
    this.model = null;
    this.loadingModel = false; // the server is still loading the model; the reply waits for it
    this.text = "";
    this.lastEventId = null;
    this.lastSeq = -1;
    this.status = "streaming";
    this.metrics = null; // the `done` event: ttft_ms, output_tokens, duration_ms
    this.error = null; // {code, message}
    this.rejected = null; // an ApiError when the server refused to start the reply at all
    this.stopping = false;
    this.stopError = null; // why the last stop request failed, shown to the user
    this.discarded = false;
    this.controller = new AbortController();
    this.onStart = null; // called once the server has stored the message and named the reply
  }

  get ended() {
    return this.status !== "streaming";
  }

  /** POST to `path` (send a message, regenerate a reply) and follow the reply it starts. */
  static post(conversationId, path, body, view) {
    const reply = new Reply(conversationId, view);
    reply.finished = reply.run((signal) => request(path, { method: "POST", body, signal }));
    return reply;
  }

  /** Follow a reply that is already being written, replaying it from its first event. */
  static reattach(conversationId, messageId, view) {
    const reply = new Reply(conversationId, view);
    reply.messageId = messageId;
    reply.finished = reply.run((signal) => reply.resume(signal));
    return reply;
  }

  /** Ask the server to stop; the rest of the log (a last delta, `done`) comes on the open stream. */
  stop() {
    if (this.ended || this.stopping) return Promise.resolve();
    this.stopping = true;
    this.stopError = null;
    this.show();
    // Before `start` there is no message id to stop yet: started() comes back here.
    return this.messageId ? this.sendStop() : Promise.resolve();
  }

  async sendStop() {
    try {
      await request(`/api/messages/${this.messageId}/stop`, { method: "POST" });
    } catch (error) {
      // The reply goes on: say so, and let the user try again.
      this.stopping = false;
      this.stopError = error.message || "The stop request failed.";
      this.show();
    }
  }

  /** The conversation was deleted: stop following the reply, quietly. */
  discard() {
    this.discarded = true;
    this.view = null;
    this.controller.abort();
  }

  // Reading the log after the last id we saw ends the page with exactly the stored text.
  resume(signal) {
    const headers = this.lastEventId ? { "Last-Event-ID": this.lastEventId } : {};
    return request(`/api/messages/${this.messageId}/stream`, { headers, signal });
  }

  async run(open) {
    let failures = 0;
    while (!this.ended) {
      const seen = this.lastSeq;
      try {
        await readEvents(await open(this.controller.signal), (event) => this.handle(event));
      } catch (error) {
        if (this.discarded) return this;
        // A refusal (4xx, or any error before the message exists) is final; 5xx may pass.
        const final = error instanceof ApiError && (error.status < 500 || !this.messageId);
        if (final) return this.refuse(error);
      }
      if (this.ended) break;
      // The stream ended early: count the failures in a row, not those of the whole reply.
      failures = this.lastSeq > seen ? 1 : failures + 1;
      if (!(await this.beforeReconnect(failures))) break;
      open = (signal) => this.resume(signal);
    }
    this.show();
    return this;
  }

  // Decide whether to read the stream again after it broke off; wait a little first.
  async beforeReconnect(failures) {
    if (this.messageId && failures <= RECONNECTS) {
      await sleep(250 * 2 ** failures);
      return true;
    }
    this.fail("connection_lost", "The connection to the server was lost.");
    return false;
  }

  handle({ event, id, data }) {
    const seq = id == null ? null : seqOf(id);
    if (seq != null && seq <= this.lastSeq) return; // already seen: never duplicate text
    if (seq != null) [this.lastSeq, this.lastEventId] = [seq, id];
    if (event === "start") this.started(data);
    else if (event === "delta") this.text += data.text;
    else if (event === "snapshot") this.text = data.text; // the log expired: the whole text
    else if (event === "done") [this.status, this.metrics] = [data.status, data];
    else if (event === "error") this.fail(data.code, data.message);
    this.show();
  }

  started(data) {
    this.messageId = data.message_id;
    this.userMessageId = data.user_message_id;
    this.model = data.model;
    this.loadingModel = Boolean(data.loading_model);
    if (this.stopping) this.sendStop();
    this.onStart?.(this);
  }

  refuse(error) {
    // Refused before `start`, the message was never stored (409, 400…): nothing to retry.
    if (!this.messageId) this.rejected = error;
    this.fail(error.code, error.message);
    this.show();
    return this;
  }

  fail(code, message) {
    this.status = "failed";
    this.error = { code, message };
  }

  show() {
    if (this.view) this.view.sync(this);
  }
}
