// Self time per function within [fromMs, toMs] of a .cpuprofile: node scratchpad/cpuprof-window.mjs FILE from to [N]
import { loadProfile } from "./cpuprof-lib.mjs"
const [file, fromArg, toArg, nArg] = process.argv.slice(2)
const { p, byId } = loadProfile(file)
const name = (n) => `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber + 1}`
const from = Number(fromArg) * 1000, to = Number(toArg) * 1000
const self = new Map()
let t = 0, total = 0
p.samples.forEach((s, i) => {
  const d = p.timeDeltas[i] ?? 0
  t += d
  if (t < from || t > to) return
  const k = name(byId.get(s)); self.set(k, (self.get(k) ?? 0) + d); total += d
})
console.log(`window total ${(total / 1000).toFixed(0)} ms`)
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg ?? 40))) console.log(`${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`)
