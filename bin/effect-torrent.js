#!/usr/bin/env node
// Launcher for the bundled CLI (dist/cli.mjs, built by `npm install` / `npm run build`).
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const bundle = fileURLToPath(new URL("../dist/cli.mjs", import.meta.url))
if (!existsSync(bundle)) {
  process.stderr.write("effect-torrent: the CLI is not built yet; run `npm install` (or `npm run build`) first\n")
  process.exit(1)
}
await import(bundle)
