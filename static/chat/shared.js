// A shared conversation: the server sends each reply's text as text, and this renders it as
// markdown exactly as the chat page does (same parser, sanitiser and highlighting).
import { handleCodeCopies } from "./copy.js";
import { renderMarkdown } from "./markdown.js";

const messages = document.getElementById("messages");
for (const body of messages.querySelectorAll(".body.markdown")) {
  renderMarkdown(body, body.textContent, { final: true });
}
handleCodeCopies(messages);
