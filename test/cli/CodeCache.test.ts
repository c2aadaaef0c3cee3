/**
 * Loading the commands' CommonJS bundle with V8's code cache (src/cli/CodeCache.ts): a cache is used only for the
 * same source text, a rejected or foreign one costs a compile and nothing else, and writing falls back from the
 * bundle's directory to the user's cache directory. Then the built CLI (`dist/cli.mjs`, rebuilt by `npm test`):
 * a successful command leaves its cache beside the bundle, and the next run answers the same from it.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import * as CodeCache from "../../src/cli/CodeCache.ts"
import { cli } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { requireFixtures, torrentsDir } from "../support/fixtures.ts"

interface Exports {
  readonly add: (a: number, b: number) => number
  readonly dir: string
  readonly strict: boolean
  readonly version: string
}

const program = (version: string) =>
  `"use strict";const path = require("node:path");module.exports = { add: (a, b) => a + b, dir: path.basename(__dirname), ` +
  `strict: (function () { return this === undefined })(), version: ${JSON.stringify(version)} }\n`

// Each load runs a fresh copy of the bundle (another path): the same path and text again would come from V8's
// in-memory compilation cache of this process, which never consults the cache file.
let copies = 0
const setup = () => {
  const root = tempDir("codecache")
  let text = program("one")
  const fresh = (): string => {
    const dir = join(root, `lib${copies++}`)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "run.cjs"), text)
    return join(dir, "run.cjs")
  }
  const rewrite = (t: string) => {
    text = t
  }
  return { root, fresh, rewrite, dirs: [join(root, "beside"), join(root, "home")] }
}

describe("CodeCache", () => {
  it("compiles from source, writes the cache, then runs from it", () => {
    const { dirs, fresh } = setup()
    const file = fresh()
    const first = CodeCache.load<Exports>(file, "download", dirs)
    expect(first.fromCache).toBe(false)
    expect(first.exports.add(2, 3)).toBe(5)
    expect(first.exports.dir).toBe(basename(dirname(file))) // __dirname is the bundle's
    expect(first.exports.strict).toBe(true)
    expect(first.save()).toEqual({ _tag: "written", dir: dirs[0] })
    expect(first.save()).toEqual({ _tag: "cached" }) // once
    expect(readdirSync(dirs[0]!)).toEqual([first.name]) // no temporary file left

    const second = CodeCache.load<Exports>(fresh(), "download", dirs)
    expect(second.fromCache).toBe(true)
    expect(second.exports.add(20, 22)).toBe(42)
    expect(second.save()).toEqual({ _tag: "cached" })
    // Another command has its own cache.
    expect(CodeCache.load<Exports>(fresh(), "info", dirs).fromCache).toBe(false)
  })

  it("never uses the cache of other source text, even of the same length", () => {
    const { dirs, fresh, rewrite } = setup()
    const a = CodeCache.load<Exports>(fresh(), "download", dirs)
    a.save()
    rewrite(program("two")) // same length: V8's own check would accept the old cache
    const b = CodeCache.load<Exports>(fresh(), "download", dirs)
    expect(b.name).not.toBe(a.name)
    expect(b.fromCache).toBe(false)
    expect(b.exports.version).toBe("two")
  })

  it("text beyond ASCII is read as UTF-8 (the ASCII fast path decodes latin1), from source and from the cache", () => {
    const { dirs, fresh, rewrite } = setup()
    rewrite(program("naïve ✓ 𝄞"))
    const a = CodeCache.load<Exports>(fresh(), "info", dirs)
    expect(a.exports.version).toBe("naïve ✓ 𝄞")
    a.save()
    const b = CodeCache.load<Exports>(fresh(), "info", dirs)
    expect(b.fromCache).toBe(true)
    expect(b.exports.version).toBe("naïve ✓ 𝄞")
    // The name hashes the file's bytes: the same as hashing its text as UTF-8.
    expect(b.name).toBe(CodeCache.cacheName("info", program("naïve ✓ 𝄞")))
    expect(CodeCache.cacheName("info", Buffer.from(program("one")))).toBe(CodeCache.cacheName("info", program("one")))
  })

  it("a corrupt or truncated cache file is rejected: compiled from source, then written again", () => {
    const { dirs, fresh } = setup()
    const a = CodeCache.load<Exports>(fresh(), "seed", dirs)
    a.save()
    const path = join(dirs[0]!, a.name)
    const good = readFileSync(path)
    for (const bad of [Buffer.from("not a code cache"), good.subarray(0, good.length >> 1), Buffer.alloc(0)]) {
      writeFileSync(path, bad)
      const b = CodeCache.load<Exports>(fresh(), "seed", dirs)
      expect(b.fromCache).toBe(false)
      expect(b.exports.add(1, 1)).toBe(2)
      expect(b.save()._tag).toBe("written")
      expect(CodeCache.load<Exports>(fresh(), "seed", dirs).fromCache).toBe(true)
    }
  })

  it("falls back to the next directory when one cannot be written, and reads it from there", () => {
    const { dirs, fresh, root } = setup()
    writeFileSync(join(root, "beside"), "a file where the directory would be")
    const a = CodeCache.load<Exports>(fresh(), "verify", dirs)
    expect(a.save()).toEqual({ _tag: "written", dir: dirs[1] })
    expect(CodeCache.load<Exports>(fresh(), "verify", dirs).fromCache).toBe(true)

    rmSync(join(root, "home"), { recursive: true, force: true })
    writeFileSync(join(root, "home"), "also a file")
    const b = CodeCache.load<Exports>(fresh(), "create", dirs)
    const saved = b.save()
    expect(saved._tag).toBe("unwritable")
    if (saved._tag === "unwritable") expect(saved.errors).toHaveLength(2)
    expect(b.exports.add(1, 2)).toBe(3)
  })

  it("off: no directories, nothing read or written; an absolute path: that directory only", () => {
    const { fresh } = setup()
    const file = fresh()
    expect(CodeCache.defaultDirs(file, { EFFECT_TORRENT_CODE_CACHE: "off" })).toEqual([])
    expect(CodeCache.defaultDirs(file, { EFFECT_TORRENT_CODE_CACHE: "0" })).toEqual([])
    expect(CodeCache.defaultDirs(file, { EFFECT_TORRENT_CODE_CACHE: "/srv/cc" })).toEqual(["/srv/cc"])
    const a = CodeCache.load<Exports>(file, "info", [])
    expect(a.fromCache).toBe(false)
    expect(a.save()).toEqual({ _tag: "off" })
  })

  it("default directories: beside the bundle, then $XDG_CACHE_HOME (absolute only) or ~/.cache", () => {
    const dirs = CodeCache.defaultDirs("/opt/et/dist/cli/run.cjs", { XDG_CACHE_HOME: "/var/cache/u" })
    expect(dirs).toEqual(["/opt/et/dist/cli/code-cache", "/var/cache/u/effect-torrent/code-cache"])
    const relative = CodeCache.defaultDirs("/opt/et/dist/cli/run.cjs", { XDG_CACHE_HOME: "cache" })
    expect(relative[0]).toBe("/opt/et/dist/cli/code-cache")
    expect(relative[1]).toMatch(/\/\.cache\/effect-torrent\/code-cache$/)
  })

  it("names differ by command and by Node's flags", () => {
    const source = program("one")
    expect(CodeCache.cacheName("info", source, [])).not.toBe(CodeCache.cacheName("seed", source, []))
    expect(CodeCache.cacheName("info", source, [])).not.toBe(CodeCache.cacheName("info", source, ["--no-opt"]))
    expect(CodeCache.cacheName("../x", source, [])).toMatch(/^___x-[0-9a-f]{20}\.bin$/)
  })

  it("the built CLI: a successful command leaves its cache; the next run answers the same from it; a failed one leaves none", async () => {
    if (!requireFixtures("the built CLI's code cache")) return
    const cacheDir = join(tempDir("codecache-cli"), "cc")
    const env = { EFFECT_TORRENT_CODE_CACHE: cacheDir }
    const torrent = join(torrentsDir, "anacrolix-torrent", "bittorrent-v2-test.torrent")
    const first = await cli(["info", torrent], { env })
    expect(first.code, first.stderr).toBe(0)
    const written = readdirSync(cacheDir)
    expect(written).toHaveLength(1)
    expect(written[0]).toMatch(/^info-[0-9a-f]{20}\.bin$/)
    const second = await cli(["info", torrent], { env })
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout).toBe(first.stdout)
    expect(readdirSync(cacheDir)).toEqual(written)
    const failed = await cli(["info", join(cacheDir, "missing.torrent")], { env })
    expect(failed.code).not.toBe(0)
    expect(readdirSync(cacheDir)).toEqual(written)
  })
})
