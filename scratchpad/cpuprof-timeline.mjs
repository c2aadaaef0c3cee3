// Self time per time window, split by category (idle, effect runtime, src modules, native/other):
// node scratchpad/cpuprof-timeline.mjs PROFILE BUNDLE [windowMs]
import { readFileSync } from "node:fs"
const [file, bundle, wArg] = process.argv.slice(2)
const win = Number(wArg ?? 500) * 1000
const lines = readFileSync(bundle, "utf8").split("\n")
const starts = []
lines.forEach((l, i) => { const m = /^\/\/ ((?:node_modules|src)\/\S+)$/.exec(l); if (m) starts.push([i, m[1]]) })
const moduleAt = (line) => { let lo = 0, hi = starts.length - 1, best = "(prelude)"; while (lo <= hi) { const mid = (lo + hi) >> 1; if (starts[mid][0] <= line) { best = starts[mid][1]; lo = mid + 1 } else hi = mid - 1 } return best }
const p = JSON.parse(readFileSync(file, "utf8"))
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const cat = (n) => {
  const cf = n.callFrame
  if (cf.functionName === "(idle)") return "idle"
  if (cf.url.endsWith("cli.mjs")) { const m = moduleAt(cf.lineNumber); return m.startsWith("src/") ? "src" : m.includes("effect") ? "effect" : "lib" }
  if (cf.functionName === "(garbage collector)") return "gc"
  return "native"
}
const rows = new Map()
let t = 0
p.samples.forEach((s, i) => {
  t += p.timeDeltas[i] ?? 0
  const w = Math.floor(t / win)
  const r = rows.get(w) ?? {}
  const c = cat(byId.get(s))
  r[c] = (r[c] ?? 0) + (p.timeDeltas[i] ?? 0)
  rows.set(w, r)
})
const cats = ["idle", "src", "effect", "lib", "gc", "native"]
console.log("window ms  " + cats.map((c) => c.padStart(7)).join(""))
for (const [w, r] of [...rows].sort((a, b) => a[0] - b[0]))
  console.log(`${String(w * win / 1000).padStart(9)}  ` + cats.map((c) => ((r[c] ?? 0) / 1000).toFixed(0).padStart(7)).join(""))
