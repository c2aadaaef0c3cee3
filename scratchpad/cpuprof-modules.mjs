// Self time per bundled source module (esbuild's "// path" markers in an unminified bundle):
// node scratchpad/cpuprof-modules.mjs PROFILE BUNDLE
import { readFileSync } from "node:fs"
const [file, bundle] = process.argv.slice(2)
const lines = readFileSync(bundle, "utf8").split("\n")
const starts = []
lines.forEach((l, i) => { const m = /^\/\/ ((?:node_modules|src)\/\S+)$/.exec(l); if (m) starts.push([i, m[1]]) })
const moduleAt = (line) => { let lo = 0, hi = starts.length - 1, best = "(prelude)"; while (lo <= hi) { const mid = (lo + hi) >> 1; if (starts[mid][0] <= line) { best = starts[mid][1]; lo = mid + 1 } else hi = mid - 1 } return best }
const p = JSON.parse(readFileSync(file, "utf8"))
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const agg = new Map()
p.samples.forEach((s, i) => {
  const n = byId.get(s); const cf = n.callFrame
  let k
  if (cf.url.endsWith("cli.mjs")) k = moduleAt(cf.lineNumber).replace(/node_modules\/(\.pnpm\/)?/, "").replace(/\/dist\/esm\//, ":")
  else k = `${cf.functionName || "(anon)"} ${cf.url.split("/").pop()}`
  agg.set(k, (agg.get(k) ?? 0) + (p.timeDeltas[i] ?? 0))
})
for (const [k, t] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`)
