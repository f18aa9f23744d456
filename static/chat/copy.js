// Copy to the clipboard, with a fallback for pages not served over a secure origin.

async function writeText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

/** Copy `text` and say so on `button` for a moment. */
export async function copyText(text, button) {
  const [label, caption] = [button.getAttribute("aria-label"), button.textContent];
  const say = (words) => {
    button.setAttribute("aria-label", words);
    if (caption) button.textContent = words; // text buttons; icon buttons only change colour
  };
  try {
    await writeText(text);
    button.classList.add("copied");
    say("Copied");
  } catch {
    say("Copy failed");
  }
  setTimeout(() => {
    button.classList.remove("copied");
    button.setAttribute("aria-label", label);
    if (caption) button.textContent = caption;
  }, 1500);
}

/** Copy buttons on code blocks are made by markdown.js; one listener serves them all. */
export function handleCodeCopies(root) {
  root.addEventListener("click", (event) => {
    const button = event.target.closest(".copy-code");
    if (!button) return;
    const code = button.closest(".code-block")?.querySelector("code");
    if (code) copyText(code.textContent, button);
  });
}
