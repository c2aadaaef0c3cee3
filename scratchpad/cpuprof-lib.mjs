// Shared by the scratchpad/cpuprof-*.mjs views: a .cpuprofile as nodes by id with parent links, and the source
// module of a line of an unminified esbuild bundle (its "// path" markers; scratchpad/prof-build.mjs makes one).
import { readFileSync } from "node:fs"

export const loadProfile = (file) => {
  const p = JSON.parse(readFileSync(file, "utf8"))
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  return { p, byId, parent }
}

export const bundleModules = (bundle) => {
  const starts = []
  readFileSync(bundle, "utf8").split("\n").forEach((l, i) => {
    const m = /^\/\/ (?:\.\.\/[^/]+\/)?((?:node_modules|src)\/\S+)$/.exec(l)
    if (m) starts.push([i, m[1]])
  })
  return (line) => {
    let lo = 0, hi = starts.length - 1, best = "(prelude)"
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (starts[mid][0] <= line) { best = starts[mid][1]; lo = mid + 1 } else hi = mid - 1
    }
    return best
  }
}
