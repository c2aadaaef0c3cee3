// Self time per bundled module within [fromMs, toMs]: node scratchpad/cpuprof-modwin.mjs PROFILE BUNDLE from to [N]
import { bundleModules, loadProfile } from "./cpuprof-lib.mjs"
const [file, bundle, fromArg, toArg, nArg] = process.argv.slice(2)
const moduleAt = bundleModules(bundle)
const { p, byId } = loadProfile(file)
const from = Number(fromArg) * 1000, to = Number(toArg) * 1000
const self = new Map()
let t = 0, total = 0
p.samples.forEach((s, i) => {
  t += p.timeDeltas[i] ?? 0
  if (t < from || t > to) return
  const d = p.timeDeltas[i] ?? 0
  total += d
  const cf = byId.get(s).callFrame
  const key = cf.url.endsWith(bundle.split("/").pop()) ? moduleAt(cf.lineNumber) : `${cf.functionName || "(anon)"} ${cf.url.split("/").pop()}`
  self.set(key, (self.get(key) ?? 0) + d)
})
console.log(`window ${fromArg}-${toArg} ms: ${(total / 1000).toFixed(0)} ms sampled`)
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg ?? 30))) console.log(`${(v / 1000).toFixed(1).padStart(7)} ms  ${k}`)
