#!/usr/bin/env bash
# Copy the interop peers (Fedify, bovine) from ../shared/peers into .cache/peers and install them.
# Without Node.js this prints why and exits 0: the interop tests then skip (or fail in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
src="${FEDINET_PEERS_SRC:-../shared/peers}"
dest=".cache/peers"
if [ ! -d "$src" ]; then
  echo "peers: $src not found; interop tests will skip" >&2
  exit 0
fi
mkdir -p "$dest"
if [ ! -f "$dest/.copied" ] || [ "$src/fedify/package-lock.json" -nt "$dest/.copied" ]; then
  cp -r "$src/." "$dest/"
  chmod -R u+w "$dest"
  touch "$dest/.copied"
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  if [ ! -x "$dest/fedify/node_modules/.bin/node" ] && [ ! -d "$dest/fedify/node_modules/@fedify" ]; then
    (cd "$dest/fedify" && npm ci --no-audit --no-fund --loglevel=error)
  fi
else
  echo "peers: Node.js not found; Fedify interop tests will skip" >&2
fi
if [ ! -x "$dest/bovine/.venv/bin/python" ]; then
  python3 -m venv "$dest/bovine/.venv"
  "$dest/bovine/.venv/bin/pip" install --quiet -r "$dest/bovine/requirements.txt"
fi
