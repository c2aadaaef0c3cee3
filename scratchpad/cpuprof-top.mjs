// Summarises a .cpuprofile: self time per function (top N) and inclusive time of functions matching a regex.
// node scratchpad/cpuprof-top.mjs FILE [N] [inclusive-regex]
import { loadProfile } from "./cpuprof-lib.mjs"
const [file, nArg, incl] = process.argv.slice(2)
const { p, byId, parent } = loadProfile(file)
const dt = new Map()
p.samples.forEach((s, i) => dt.set(s, (dt.get(s) ?? 0) + (p.timeDeltas[i] ?? 0)))
const name = (n) => `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber + 1}`
const self = new Map()
let total = 0
for (const [id, t] of dt) { const k = name(byId.get(id)); self.set(k, (self.get(k) ?? 0) + t); total += t }
console.log(`total ${(total / 1000).toFixed(0)} ms`)
for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg ?? 40))) console.log(`${(t / 1000).toFixed(0).padStart(7)} ms  ${k}`)
if (incl) {
  const re = new RegExp(incl)
  const inc = new Map()
  for (const [id, t] of dt) {
    const seen = new Set()
    for (let c = id; c !== undefined; c = parent.get(c)) {
      const k = name(byId.get(c)); if (re.test(k) && !seen.has(k)) { seen.add(k); inc.set(k, (inc.get(k) ?? 0) + t) }
    }
  }
  console.log("inclusive:")
  for (const [k, t] of [...inc].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${(t / 1000).toFixed(0).padStart(7)} ms  ${k}`)
}
