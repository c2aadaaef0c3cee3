// For samples whose leaf is in bundled module matching LEAFRE, the nearest src/ frame above it (function@module):
// node scratchpad/cpuprof-owner.mjs PROFILE BUNDLE LEAFRE
import { bundleModules, loadProfile } from "./cpuprof-lib.mjs"
const [file, bundle, leafRe] = process.argv.slice(2)
const moduleAt = bundleModules(bundle)
const { p, byId, parent } = loadProfile(file)
const mod = (n) => n.callFrame.url.endsWith("cli.mjs") ? moduleAt(n.callFrame.lineNumber) : n.callFrame.url
const re = new RegExp(leafRe)
const agg = new Map()
p.samples.forEach((s, i) => {
  const leaf = byId.get(s)
  if (!re.test(mod(leaf))) return
  let k = "(none)"
  for (let c = parent.get(s); c !== undefined; c = parent.get(c)) {
    const n = byId.get(c); const m = mod(n)
    if (m.startsWith("src/")) { k = `${n.callFrame.functionName || "(anon)"}:${n.callFrame.lineNumber + 1}@${m}`; break }
  }
  agg.set(k, (agg.get(k) ?? 0) + (p.timeDeltas[i] ?? 0))
})
for (const [k, t] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`)
