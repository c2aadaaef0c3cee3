// For samples whose leaf is in a bundled module matching LEAFRE, within [fromMs, toMs]: the stack's root-most
// frames (the event source that drove the work) and the first src/ frame below them, aggregated.
// node scratchpad/cpuprof-entry.mjs PROFILE BUNDLE LEAFRE [fromMs] [toMs]
import { readFileSync } from "node:fs"
const [file, bundle, leafRe, fromArg, toArg] = process.argv.slice(2)
const lines = readFileSync(bundle, "utf8").split("\n")
const starts = []
lines.forEach((l, i) => { const m = /^\/\/ ((?:node_modules|src)\/\S+)$/.exec(l); if (m) starts.push([i, m[1]]) })
const moduleAt = (line) => { let lo = 0, hi = starts.length - 1, best = "(prelude)"; while (lo <= hi) { const mid = (lo + hi) >> 1; if (starts[mid][0] <= line) { best = starts[mid][1]; lo = mid + 1 } else hi = mid - 1 } return best }
const p = JSON.parse(readFileSync(file, "utf8"))
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
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
