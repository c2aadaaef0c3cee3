// Deopts of a `--trace-deopt-verbose` log, with the bundle module and source line of each:
// node scratchpad/deopt-summary.mjs TRACE BUNDLE
import { readFileSync } from "node:fs"
import { bundleModules } from "./cpuprof-lib.mjs"
const [trace, bundle] = process.argv.slice(2)
const lines = readFileSync(bundle, "utf8").split("\n")
const moduleAt = bundleModules(bundle)
const t = readFileSync(trace, "utf8").split("\n")
const agg = new Map()
for (let i = 0; i < t.length; i++) {
  const m = /bailout \(kind: ([^,]*), reason: (.*?)\): begin\. deoptimizing \S+ <JSFunction ?(.*?) \(sfi/.exec(t[i])
  if (!m) continue
  const at = /deoptimize at <[^>]*cli\.mjs:(\d+):(\d+)>/.exec(t[i + 1] ?? "")
  const line = at ? Number(at[1]) : 0
  const k = `${m[3] || "(anon)"} | ${m[2]} | ${at ? `${moduleAt(line - 1)}:${line}:${at[2]}` : "?"} | ${at ? lines[line - 1].trim().slice(0, 100) : ""}`
  agg.set(k, (agg.get(k) ?? 0) + 1)
}
for (const [k, n] of [...agg].sort((a, b) => b[1] - a[1])) console.log(`${n}  ${k}`)
