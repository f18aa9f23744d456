#!/usr/bin/env bash
# Refresh the front-end libraries in static/vendor/ from npm, at the versions pinned here.
# Run it after changing a version, then commit static/vendor/. Nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

MARKED=18.2.1
DOMPURIFY=3.4.18
HIGHLIGHT=11.12.0 # @highlightjs/cdn-assets: highlight.js's own browser builds, on npm

command -v npm >/dev/null || { echo "vendor: npm (Node 18+) is needed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
  "marked@$MARKED" "dompurify@$DOMPURIFY" "@highlightjs/cdn-assets@$HIGHLIGHT" >/dev/null
modules=$tmp/node_modules

# Copy one file, dropping the source-map comment (the maps are not vendored, so a
# browser's developer tools would only ask for them and get a 404).
copy() {
  mkdir -p "$(dirname "$2")"
  sed '/^\/\/# sourceMappingURL=/d; s#/\*\# sourceMappingURL=[^*]*\*/##' "$1" >"$2"
}

out=static/vendor
rm -rf "$out"
# ES module builds, renamed .js so every server sends them as JavaScript.
copy "$modules/marked/lib/marked.esm.js" "$out/marked/marked.esm.js"
copy "$modules/marked/LICENSE" "$out/marked/LICENSE"
copy "$modules/dompurify/dist/purify.es.mjs" "$out/dompurify/purify.es.js"
copy "$modules/dompurify/LICENSE" "$out/dompurify/LICENSE"
copy "$modules/dompurify/LICENSE-MPL" "$out/dompurify/LICENSE-MPL"
# highlight.js: the build with its common languages, and a light and a dark theme.
hl=$modules/@highlightjs/cdn-assets
copy "$hl/es/highlight.min.js" "$out/highlight/highlight.min.js"
copy "$hl/styles/github.min.css" "$out/highlight/github.min.css"
copy "$hl/styles/github-dark.min.css" "$out/highlight/github-dark.min.css"
copy "$hl/LICENSE" "$out/highlight/LICENSE"

cat >"$out/README.md" <<EOF
# Vendored front-end libraries

Copied from npm by \`scripts/vendor.sh\`; do not edit by hand. Each folder holds
the library's licence.

| library | npm package | version | licence | files |
|---|---|---|---|---|
| marked | \`marked\` | $MARKED | MIT | \`marked/marked.esm.js\` |
| DOMPurify | \`dompurify\` | $DOMPURIFY | Apache-2.0 or MPL-2.0 | \`dompurify/purify.es.js\` |
| highlight.js | \`@highlightjs/cdn-assets\` | $HIGHLIGHT | BSD-3-Clause | \`highlight/highlight.min.js\` (common languages), \`github.min.css\`, \`github-dark.min.css\` |
EOF
du -sh "$out"/*
