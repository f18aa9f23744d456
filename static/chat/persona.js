// The per-conversation system prompt ("persona"): a few presets, or any text of one's own.

export const PRESETS = [
  { id: "none", name: "None", prompt: "" },
  {
    id: "pirate",
    name: "Pirate captain",
    prompt:
      "You are a swashbuckling pirate captain. Answer every question helpfully and correctly, " +
      "but always speak like a pirate: arr, matey, and plenty of nautical metaphors.",
  },
  {
    id: "concise",
    name: "Concise expert",
    prompt:
      "You are a senior expert. Answer precisely and briefly. Prefer short lists and code " +
      "over prose; skip pleasantries and caveats unless they matter.",
  },
  {
    id: "teacher",
    name: "Patient teacher",
    prompt:
      "You are a patient teacher. Explain step by step with simple, concrete examples, " +
      "define any jargon, and end with one short question that checks understanding.",
  },
  {
    id: "editor",
    name: "Copy editor",
    prompt:
      "You are a meticulous copy editor. Improve the clarity, grammar and flow of the text " +
      "you are given, keep its meaning and voice, and list the main changes you made.",
  },
];

/** The name to show for a system prompt: its preset's, "Custom", or "None". */
export function personaName(prompt) {
  const preset = PRESETS.find((p) => p.prompt === (prompt || "").trim());
  return preset ? preset.name : "Custom";
}

/** The persona dialog: pick a preset or write a prompt; resolves with the prompt, or null. */
export class PersonaDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.preset = dialog.querySelector("#persona-preset");
    this.prompt = dialog.querySelector("#persona-prompt");
    for (const p of PRESETS) this.preset.append(new Option(p.name, p.id));
    this.preset.append(new Option("Custom", "custom"));
    this.preset.addEventListener("change", () => {
      const chosen = PRESETS.find((p) => p.id === this.preset.value);
      if (chosen) this.prompt.value = chosen.prompt;
      else this.prompt.focus();
    });
    this.prompt.addEventListener("input", () => this.matchPreset());
  }

  matchPreset() {
    const preset = PRESETS.find((p) => p.prompt === this.prompt.value.trim());
    this.preset.value = preset ? preset.id : "custom";
  }

  async choose(current) {
    this.prompt.value = current || "";
    this.matchPreset();
    this.dialog.returnValue = "";
    this.dialog.showModal();
    await new Promise((resolve) => this.dialog.addEventListener("close", resolve, { once: true }));
    return this.dialog.returnValue === "save" ? this.prompt.value.trim() : null;
  }
}
