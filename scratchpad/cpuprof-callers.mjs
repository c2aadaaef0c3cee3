// Callers chain (up to depth) of samples whose leaf matches a regex, aggregated: node scratchpad/cpuprof-callers.mjs FILE leafRegex [depth]
import { loadProfile } from "./cpuprof-lib.mjs"
const [file, leaf, depthArg] = process.argv.slice(2)
const { p, byId, parent } = loadProfile(file)
const name = (n) => `${n.callFrame.functionName || "(anon)"}:${n.callFrame.lineNumber + 1}`
const agg = new Map()
const re = new RegExp(leaf)
p.samples.forEach((s, i) => {
  const n = byId.get(s)
  if (!re.test(name(n))) return
  const chain = []
  for (let c = parent.get(s); c !== undefined && chain.length < Number(depthArg ?? 6); c = parent.get(c)) chain.push(name(byId.get(c)))
  const k = chain.join(" < ")
  agg.set(k, (agg.get(k) ?? 0) + (p.timeDeltas[i] ?? 0))
})
for (const [k, t] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`)
