// Per-chat settings: the temperature and the longest reply, stored on the conversation.
// Empty fields mean the defaults (the model's temperature, the site's CHAT_MAX_NEW_TOKENS).

export const DEFAULTS = { temperature: null, max_tokens: null };

/** A short description for the settings button's tooltip. */
export function describeSettings({ temperature, max_tokens: maxTokens }) {
  const parts = [];
  if (temperature != null) parts.push(`temperature ${temperature}`);
  if (maxTokens != null) parts.push(`at most ${maxTokens} tokens`);
  return parts.length ? `Chat settings: ${parts.join(", ")}` : "Chat settings: defaults";
}

function numberOrNull(input) {
  return input.value.trim() === "" ? null : Number(input.value);
}

/** The settings dialog; resolves with {temperature, max_tokens}, or null when cancelled. */
export class SettingsDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.temperature = dialog.querySelector("#settings-temperature");
    this.maxTokens = dialog.querySelector("#settings-max-tokens");
  }

  async choose(current) {
    this.temperature.value = current.temperature ?? "";
    this.maxTokens.value = current.max_tokens ?? "";
    this.dialog.returnValue = "";
    this.dialog.showModal();
    await new Promise((resolve) => this.dialog.addEventListener("close", resolve, { once: true }));
    if (this.dialog.returnValue !== "save") return null;
    return { temperature: numberOrNull(this.temperature), max_tokens: numberOrNull(this.maxTokens) };
  }
}
