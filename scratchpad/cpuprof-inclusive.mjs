// Inclusive time per function (fn@module:line) of samples within [fromMs, toMs], the frames matching FILTER:
// node scratchpad/cpuprof-inclusive.mjs PROFILE BUNDLE fromMs toMs [filterRe] [N]
import { bundleModules, loadProfile } from "./cpuprof-lib.mjs"
const [file, bundle, fromArg, toArg, filterArg, nArg] = process.argv.slice(2)
const moduleAt = bundleModules(bundle)
const { p, byId } = loadProfile(file)
const parent = new Map()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const filter = new RegExp(filterArg ?? ".")
const from = Number(fromArg) * 1000, to = Number(toArg) * 1000
const incl = new Map()
let t = 0, total = 0
p.samples.forEach((s, i) => {
  const d = p.timeDeltas[i] ?? 0
  t += d
  if (t < from || t > to) return
  total += d
  const seen = new Set()
  for (let id = s; id !== undefined; id = parent.get(id)) {
    const n = byId.get(id)
    const cf = n.callFrame
    const mod = cf.url.endsWith(bundle.split("/").pop()) ? moduleAt(cf.lineNumber) : cf.url.split("/").pop()
    const key = `${cf.functionName || "(anon)"}@${mod}:${cf.lineNumber + 1}`
    if (seen.has(key) || !filter.test(key)) continue
    seen.add(key)
    incl.set(key, (incl.get(key) ?? 0) + d)
  }
})
console.log(`window total ${(total / 1000).toFixed(0)} ms`)
for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg ?? 40))) console.log(`${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`)
