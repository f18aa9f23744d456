// Small line icons, drawn here so no icon font or sprite has to be loaded.
const PATHS = {
  plus: "M12 5v14M5 12h14",
  menu: "M4 6h16M4 12h16M4 18h16",
  pencil: "M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4",
  trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  copy: "M9 9h11v11H9zM5 15H4V4h11v1",
  refresh: "M20 12a8 8 0 1 1-2.3-5.7M20 4v5h-5",
  send: "M12 19V5M5 12l7-7 7 7",
  stop: "M7 7h10v10H7z",
  down: "M12 5v14M5 12l7 7 7-7",
  search: "M11 18a7 7 0 1 1 0-14 7 7 0 0 1 0 14zM20 20l-4-4",
  check: "M5 12l5 5 9-9",
  close: "M6 6l12 12M18 6L6 18",
  persona: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 20c1-4 4-6 8-6s7 2 8 6",
  logout: "M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10",
  prev: "M15 5l-7 7 7 7",
  next: "M9 5l7 7-7 7",
  sliders: "M4 7h10M18 7h2M4 17h4M12 17h8M14 5v4M8 15v4",
  share: "M12 15V4M8 8l4-4 4 4M5 12v8h14v-8",
};

const SVG = "http://www.w3.org/2000/svg";

/** An <svg> icon, hidden from screen readers: its button carries the label. */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", `icon icon-${name}`);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name]);
  svg.append(path);
  return svg;
}

/** Fill every <span data-icon="name"> of the page's markup with its icon. */
export function fillIcons(root = document) {
  for (const slot of root.querySelectorAll("[data-icon]"))
    slot.replaceChildren(icon(slot.dataset.icon));
}

/** A button showing only an icon, labelled for assistive technology and with a tooltip. */
export function iconButton(name, label, className = "") {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `icon-button ${className}`.trim();
  button.setAttribute("aria-label", label);
  button.title = label;
  button.append(icon(name));
  return button;
}
