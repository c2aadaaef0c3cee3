// Self time per bundled source module (esbuild's "// path" markers in an unminified bundle):
// node scratchpad/cpuprof-modules.mjs PROFILE BUNDLE
import { bundleModules, loadProfile } from "./cpuprof-lib.mjs"
const [file, bundle] = process.argv.slice(2)
const moduleAt = bundleModules(bundle)
const { p, byId } = loadProfile(file)
const agg = new Map()
p.samples.forEach((s, i) => {
  const n = byId.get(s); const cf = n.callFrame
  let k
  if (cf.url.endsWith("cli.mjs")) k = moduleAt(cf.lineNumber).replace(/node_modules\/(\.pnpm\/)?/, "").replace(/\/dist\/esm\//, ":")
  else k = `${cf.functionName || "(anon)"} ${cf.url.split("/").pop()}`
  agg.set(k, (agg.get(k) ?? 0) + (p.timeDeltas[i] ?? 0))
})
for (const [k, t] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`)
