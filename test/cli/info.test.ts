/**
 * `effect-torrent info` as a user runs it: the built CLI bundle in a child process, over every shared fixture
 * and over bad input. Each run prints a result, or one line on stderr with exit code 1 (2 for usage errors) —
 * never a crash or a stack trace.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { cli, expectOneLineError } from "../support/cli.ts"
import { manifest, requireFixtures, torrentsDir } from "../support/fixtures.ts"

const run = (args: ReadonlyArray<string>) => cli(args, { timeout: 20_000 })

describe("effect-torrent info", () => {
  const tmp = mkdtempSync(join(tmpdir(), "et-info-"))

  it("prints name, hash, size, pieces, files and trackers of a torrent", async () => {
    if (!requireFixtures("info on a sample")) return
    const r = await run(["info", join(torrentsDir, "anacrolix-torrent/23516C72685E8DB0C8F15553382A927F185C4F01.torrent")])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("Z.Nation.S01E12.HDTV.x264-LOL[ettv]")
    expect(r.stdout).toContain("23516c72685e8db0c8f15553382a927f185c4f01")
    expect(r.stdout).toContain("529,171,764")
    expect(r.stdout).toContain("2,019 × 256 KiB")
    expect(r.stdout).toContain("z.nation.112.hdtv-lol.mp4")
    expect(r.stdout).toContain("udp://open.demonii.com:1337/announce")
  })

  it("--json prints one JSON object with the same facts", async () => {
    if (!requireFixtures("info --json")) return
    const r = await run(["info", "--json", join(torrentsDir, "anacrolix-torrent/23516C72685E8DB0C8F15553382A927F185C4F01.torrent")])
    expect(r.code).toBe(0)
    const j = JSON.parse(r.stdout) as Record<string, unknown>
    expect(j["infoHash"]).toBe("23516c72685e8db0c8f15553382a927f185c4f01")
    expect(j["totalSize"]).toBe(529171764)
    expect(j["pieceCount"]).toBe(2019)
    expect(j["pieceLength"]).toBe(262144)
    expect((j["files"] as Array<unknown>).length).toBe(4)
    expect((j["trackers"] as Array<Array<string>>)[0]).toEqual(["udp://open.demonii.com:1337/announce"])
  })

  it("reads magnet links", async () => {
    const r = await run([
      "info",
      "--json",
      "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=Cosmos+Laundromat&tr=udp%3A%2F%2Fexplodie.org%3A6969"
    ])
    expect(r.stderr).toBe("")
    const j = JSON.parse(r.stdout) as Record<string, unknown>
    expect(j["infoHash"]).toBe("c9e15763f722f23e98a29decdfae341b98d53056")
    expect(j["name"]).toBe("Cosmos Laundromat")
  })

  it("a missing file, a non-torrent file, and a bad magnet each give one line and exit 1", async () => {
    expectOneLineError(await run(["info", join(tmp, "nope.torrent")]), 1)
    const junk = join(tmp, "junk.torrent")
    writeFileSync(junk, "this is not bencode")
    expectOneLineError(await run(["info", junk]), 1)
    const notTorrent = join(tmp, "list.torrent")
    writeFileSync(notTorrent, "li1ei2ee")
    expectOneLineError(await run(["info", notTorrent]), 1)
    expectOneLineError(await run(["info", "magnet:?xt=urn:btih:zz"]), 1)
    expectOneLineError(await run(["info", tmp]), 1)
  })

  it("a usage error exits 2", async () => {
    const r = await run(["info", "--no-such-flag", "x"])
    expect(r.code).toBe(2)
    expect(r.stderr + r.stdout).not.toMatch(/\n\s+at /)
  })

  it("every shared fixture prints a result or a one-line error, never a crash", async () => {
    if (!requireFixtures("info over every fixture")) return
    const entries = manifest()
    expect(entries.length).toBeGreaterThan(100)
    const failures: Array<string> = []
    for (let i = 0; i < entries.length; i += 8) {
      const batch = entries.slice(i, i + 8)
      const runs = await Promise.all(batch.map((e) => run(["info", join(torrentsDir, e.file)])))
      runs.forEach((r, k) => {
        const file = batch[k]!.file
        const ok = r.code === 0 && r.stdout.length > 0 && r.stderr === ""
        const oneLine = r.code === 1 && /^effect-torrent: [^\n]+\n$/.test(r.stderr)
        if (!ok && !oneLine) failures.push(`${file}: exit ${r.code}: ${r.stderr.slice(0, 300)}`)
      })
    }
    expect(failures).toEqual([])
  }, 240_000)
})
