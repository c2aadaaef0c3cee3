#!/usr/bin/env node
// Launcher for the bundled CLI (dist/cli.mjs, built by `npm install`, `npm pack` or `node scripts/build.mjs`).
//
// On Linux it re-executes itself once with MALLOC_TRIM_THRESHOLD_=1073741824 when the variable is unset: glibc
// otherwise returns freed socket buffers to the kernel and pays for fresh pages again (THROUGHPUT.md rule 9; in
// bench/download.ts the default cost about 0.2 sys CPU s more per 256 MiB, docs/PERFORMANCE.md). glibc reads the
// variable only at process start, hence the re-exec. Set MALLOC_TRIM_THRESHOLD_ yourself (any value) to skip it.
// The parent only waits: SIGINT from a terminal reaches both (same process group), so the parent ignores it and
// lets the child shut down cleanly; SIGTERM and SIGHUP sent to the parent are forwarded. The child's exit code, or
// its signal, becomes the parent's. Only the commands that move data pay for the second start: `--help`, `info`,
// `create`, … run at once.
//
// The child also gets V8's young generation capped at 8 MiB per semi-space (`--max-semi-space-size=8`, unless Node's
// flags or NODE_OPTIONS already set it): it grew to 16 MiB while downloading, and the cap took peak RSS from 153–155 to
// 139–146 MiB with four seeders at the same CPU (docs/PERFORMANCE.md). The heap's size is fixed at start, hence here.
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const bundle = fileURLToPath(new URL("../dist/cli.mjs", import.meta.url))
if (!existsSync(bundle)) {
  process.stderr.write("effect-torrent: the CLI is not built yet; run `npm install` (or `npm run build`) first\n")
  process.exit(1)
}
const first = process.argv[2] ?? ""
const movesData = /^(download|seed|daemon|demo)$|\.torrent$|^magnet:/i.test(first)
if (process.platform === "linux" && process.env.MALLOC_TRIM_THRESHOLD_ === undefined && movesData) {
  const semiSpaceSet = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
    .some((a) => /^--max[-_]semi[-_]space[-_]size/.test(a))
  const flags = semiSpaceSet ? process.execArgv : [...process.execArgv, "--max-semi-space-size=8"]
  const child = spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, MALLOC_TRIM_THRESHOLD_: "1073741824" }
  })
  process.on("SIGINT", () => {})
  for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal))
  child.on("error", (e) => {
    process.stderr.write(`effect-torrent: cannot start: ${e.message}\n`)
    process.exit(1)
  })
  child.on("exit", (code, signal) => {
    if (signal !== null) {
      process.removeAllListeners(signal)
      process.kill(process.pid, signal)
    } else process.exit(code ?? 1)
  })
} else {
  await import(bundle)
}
