// Self time of leaves in samples whose stack contains `with` and not `without`: node scratchpad/cpuprof-under.mjs FILE withRe [withoutRe]
import { loadProfile } from "./cpuprof-lib.mjs"
const [file, w, wo] = process.argv.slice(2)
const { p, byId, parent } = loadProfile(file)
const name = (n) => `${n.callFrame.functionName || "(anon)"}:${n.callFrame.lineNumber + 1}`
const re = new RegExp(w), nre = wo ? new RegExp(wo) : undefined
const agg = new Map(); let tot = 0
p.samples.forEach((s, i) => {
  const names = []
  for (let c = s; c !== undefined; c = parent.get(c)) names.push(name(byId.get(c)))
  if (!names.some((x) => re.test(x)) || (nre && names.some((x) => nre.test(x)))) return
  const t = p.timeDeltas[i] ?? 0; tot += t
  const k = names.slice(0, 3).join(" < ")
  agg.set(k, (agg.get(k) ?? 0) + t)
})
console.log(`total ${(tot / 1000).toFixed(0)} ms`)
for (const [k, t] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`)
