/**
 * The import rule of ARCHITECTURE.md: a folder imports only from folders above it in the layer list, nothing
 * imports `cli/`, and no folder reaches into another folder's `internal/`.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const LAYERS = [
  "core",
  "bencode",
  "metainfo",
  "wire",
  "picker",
  "net",
  "tracker",
  "dht",
  "storage",
  "peer",
  "torrent",
  "session",
  "config",
  "api",
  "webui",
  "cli"
] as const

const srcDir = resolve(dirname(fileURLToPath(import.meta.url)), "../src")

const walk = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") ? [p] : []
  })

const specifiers = (source: string): Array<string> => {
  const out: Array<string> = []
  const re = /(?:^|\n)\s*(?:import|export)[^"'`;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g
  for (let m = re.exec(source); m !== null; m = re.exec(source)) out.push((m[1] ?? m[2])!)
  return out
}

const folderOf = (file: string): string => relative(srcDir, file).split("/")[0]!

describe("import rule (ARCHITECTURE.md)", () => {
  const files = walk(srcDir)

  it("knows every folder under src/", () => {
    const folders = new Set(files.map(folderOf).filter((f) => !f.endsWith(".ts")))
    for (const f of folders) expect(LAYERS as ReadonlyArray<string>).toContain(f)
  })

  it("every relative import points up the layer list, never into cli/ or another folder's internal/", () => {
    const violations: Array<string> = []
    for (const file of files) {
      const from = folderOf(file)
      const fromRank = from.endsWith(".ts") ? LAYERS.length : LAYERS.indexOf(from as (typeof LAYERS)[number])
      for (const spec of specifiers(readFileSync(file, "utf8"))) {
        if (!spec.startsWith(".")) continue
        const target = resolve(dirname(file), spec)
        const to = folderOf(target)
        const rel = relative(srcDir, file)
        if (to === from) continue
        const toRank = LAYERS.indexOf(to as (typeof LAYERS)[number])
        if (to === "cli") violations.push(`${rel} imports cli/ (${spec})`)
        else if (toRank < 0 || toRank > fromRank) violations.push(`${rel} imports ${to}/ (${spec})`)
        if (relative(srcDir, target).split("/").includes("internal")) violations.push(`${rel} imports internal ${spec}`)
      }
    }
    expect(violations).toEqual([])
  })

  it("src/ never imports the @effect/platform-node barrel or the bare effect barrel (startup cost)", () => {
    const bad = files.flatMap((file) =>
      specifiers(readFileSync(file, "utf8"))
        .filter((s) => s === "@effect/platform-node" || s === "effect" || s === "@effect/platform")
        .map((s) => `${relative(srcDir, file)}: ${s}`)
    )
    expect(bad).toEqual([])
  })
})
