// Parses every ```mermaid block of the Markdown files given on the command line
// with Mermaid's own parser. No browser: jsdom stands in for the DOM that
// Mermaid's label sanitiser (DOMPurify) reads when it loads. Prints one JSON line
// per diagram: {"file", "line", "ok", "type" | "error"}; exits 1 if any fails.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const { window } = new JSDOM("<!DOCTYPE html><html><body></body></html>");
globalThis.window = window;
globalThis.document = window.document;
for (const name of ["Element", "HTMLElement", "Node", "DOMParser", "DocumentFragment", "MutationObserver"]) {
  globalThis[name] ??= window[name];
}

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

function* diagrams(path) {
  const lines = readFileSync(path, "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "```mermaid") continue;
    const start = i + 1;
    const body = [];
    for (i = start; i < lines.length && lines[i].trim() !== "```"; i++) body.push(lines[i]);
    if (i === lines.length) throw new Error(`${path}:${start}: a mermaid block is never closed`);
    yield { line: start, text: body.join("\n") };
  }
}

let failed = false;
for (const path of process.argv.slice(2)) {
  for (const { line, text } of diagrams(path)) {
    try {
      const parsed = await mermaid.parse(text);
      console.log(JSON.stringify({ file: path, line, ok: true, type: parsed.diagramType }));
    } catch (error) {
      failed = true;
      console.log(JSON.stringify({ file: path, line, ok: false, error: String(error.message ?? error).split("\n").slice(0, 4).join(" ") }));
    }
  }
}
process.exit(failed ? 1 : 0);
