// Share: a read-only link to the open conversation as it is now (POST), or none (DELETE).
import { json } from "./api.js";
import { copyText } from "./copy.js";

export class ShareDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.url = dialog.querySelector("#share-url");
    this.conversationId = null;
    this.url.addEventListener("focus", () => this.url.select());
    dialog.querySelector("#share-copy").addEventListener("click", (event) => {
      copyText(this.url.value, event.currentTarget);
    });
    dialog.querySelector("#share-revoke").addEventListener("click", () => this.revoke());
  }

  /** Make a new link to the conversation and show it; errors go to the caller. */
  async share(conversationId) {
    const link = await json(`/api/conversations/${conversationId}/share`, { method: "POST" });
    this.conversationId = conversationId;
    this.url.value = new URL(link.url, location.origin).href;
    this.dialog.showModal();
    this.url.focus();
  }

  async revoke() {
    await json(`/api/conversations/${this.conversationId}/share`, { method: "DELETE" });
    this.dialog.close();
  }
}
