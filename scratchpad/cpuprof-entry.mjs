// For samples whose leaf is in a bundled module matching LEAFRE, within [fromMs, toMs]: the stack's root-most
// frames (the event source that drove the work) and the first src/ frame below them, aggregated.
// node scratchpad/cpuprof-entry.mjs PROFILE BUNDLE LEAFRE [fromMs] [toMs]
import { bundleModules, loadProfile } from "./cpuprof-lib.mjs"
const [file, bundle, leafRe, fromArg, toArg] = process.argv.slice(2)
const moduleAt = bundleModules(bundle)
const { p, byId, parent } = loadProfile(file)
const mod = (n) => n.callFrame.url.endsWith("cli.mjs") ? moduleAt(n.callFrame.lineNumber).replace(/node_modules\/effect\/dist\/esm\//, "") : n.callFrame.url.split("/").pop()
const nm = (n) => `${n.callFrame.functionName || "(anon)"}@${mod(n)}:${n.callFrame.lineNumber + 1}`
const re = new RegExp(leafRe)
const from = Number(fromArg ?? 0) * 1000, to = Number(toArg ?? 1e12) * 1000
const agg = new Map()
let t = 0
p.samples.forEach((s, i) => {
  t += p.timeDeltas[i] ?? 0
  if (t < from || t > to) return
  const leaf = byId.get(s)
  if (!re.test(mod(leaf))) return
  const stack = []
  for (let c = s; c !== undefined; c = parent.get(c)) stack.push(byId.get(c))
  stack.reverse() // root first
  const roots = stack.slice(1, Number(process.env.DEPTH ?? 4)).map(nm).join(" > ")
  const firstSrc = stack.find((n) => mod(n).startsWith("src/"))
  const k = `${roots} | ${firstSrc ? nm(firstSrc) : "-"}`
  agg.set(k, (agg.get(k) ?? 0) + (p.timeDeltas[i] ?? 0))
})
for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`)
