// A text/event-stream reader over fetch(): unlike EventSource it can POST, send headers
// and be aborted, so one reader serves both sending and reattaching.

function parseFrame(frame) {
  const fields = { event: "message", data: [], id: null };
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments are keepalives
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") fields.data.push(value);
    else if (name === "event" || name === "id") fields[name] = value;
  }
  if (!fields.data.length) return null;
  return { event: fields.event, id: fields.id, data: JSON.parse(fields.data.join("\n")) };
}

/** Call onEvent({event, id, data}) for each event of `response`, until its body ends. */
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value; // the server ends lines with \n only
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parseFrame(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event) onEvent(event);
    }
  }
}
