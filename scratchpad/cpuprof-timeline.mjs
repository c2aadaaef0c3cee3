// Self time per time window, split by category (idle, effect runtime, src modules, native/other):
// node scratchpad/cpuprof-timeline.mjs PROFILE BUNDLE [windowMs]
import { bundleModules, loadProfile } from "./cpuprof-lib.mjs"
const [file, bundle, wArg] = process.argv.slice(2)
const win = Number(wArg ?? 500) * 1000
const moduleAt = bundleModules(bundle)
const { p, byId } = loadProfile(file)
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
