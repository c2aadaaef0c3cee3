/**
 * `effect-torrent trackers` as a user runs it: the built CLI against real trackers on 127.0.0.1 (the npm
 * `bittorrent-tracker` server over HTTP and UDP, opentracker), and over every shared fixture with the loopback-only
 * guard on, so a torrent's public trackers are refused before any DNS query or packet leaves the machine.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as BittorrentTracker from "../support/bittorrentTracker.ts"
import { cli } from "../support/cli.ts"
import { manifest, requireFixtures, torrentsDir } from "../support/fixtures.ts"
import * as Opentracker from "../support/opentracker.ts"

const run = (args: ReadonlyArray<string>) => cli(args)

/** A small single-file torrent announcing to the given tiers. */
const torrentWith = (dir: string, tiers: ReadonlyArray<ReadonlyArray<string>>): { path: string; infoHash: string } => {
  const info = { length: 40000, name: "payload.bin", "piece length": 16384, pieces: new Uint8Array(60).fill(7) }
  const raw = Bencode.encode({ announce: tiers[0]![0]!, "announce-list": tiers, info })
  const path = join(dir, `t${Math.random().toString(36).slice(2)}.torrent`)
  writeFileSync(path, raw)
  return { path, infoHash: Bytes.toHex(Bytes.sha1(Bencode.encode(info))) }
}

interface JsonLine {
  readonly url: string
  readonly tier: number
  readonly ok: boolean
  readonly seeders?: number
  readonly error?: { readonly reason: string; readonly message: string }
}

describe("effect-torrent trackers", () => {
  const tmp = mkdtempSync(join(tmpdir(), "et-trackers-"))
  let tracker: BittorrentTracker.BittorrentTracker

  beforeAll(async () => {
    tracker = await BittorrentTracker.start()
  })
  afterAll(async () => {
    await tracker.close()
  })

  it("announces to and scrapes every tracker (HTTP and UDP), one line each, errors included", async () => {
    const dead = "udp://127.0.0.1:9/announce" // discard port: nothing answers
    const t = torrentWith(tmp, [[tracker.httpUrl], [tracker.udp4Url, dead]])
    const r = await run(["trackers", "--timeout", "3", t.path])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split("\n")
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(/^tier 0 +http:\/\/127\.0\.0\.1:\d+\/announce +ok +seeders \d+ +leechers \d+/)
    expect(lines.some((l) => l.includes(tracker.udp4Url) && / ok /.test(l))).toBe(true)
    expect(lines.some((l) => l.includes(dead) && /error \((timeout|network)\)/.test(l))).toBe(true)
    expect(lines[3]).toBe("2 of 3 trackers answered")

    const j = await run(["trackers", "--json", "--timeout", "3", t.path])
    const arr = JSON.parse(j.stdout) as Array<JsonLine>
    expect(arr.map((x) => [x.tier, x.ok])).toEqual([[0, true], [1, true], [1, false]])
  }, 60_000)

  it("answers from opentracker too", async () => {
    if (!Opentracker.shouldRun("trackers CLI vs opentracker")) return
    const t = torrentWith(tmp, [["http://127.0.0.1:1/announce"]])
    const ot = await Opentracker.start([t.infoHash])
    try {
      const t2 = torrentWith(tmp, [[ot.httpUrl], [ot.udpUrl]])
      // a different torrent (different path) with the same info dict: same info-hash, now announcing to opentracker
      expect(t2.infoHash).toBe(t.infoHash)
      const r = await run(["trackers", "--json", "--timeout", "5", t2.path])
      const arr = JSON.parse(r.stdout) as Array<JsonLine>
      expect(arr.every((x) => x.ok)).toBe(true)
    } finally {
      await ot.stop()
    }
  }, 60_000)

  it("when no tracker answers: every line an error, exit 1, within the timeout", async () => {
    const t = torrentWith(tmp, [["udp://127.0.0.1:9/announce"], ["http://127.0.0.1:1/announce"]])
    const r = await run(["trackers", "--timeout", "2", t.path])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe("effect-torrent: no tracker answered\n")
    expect(r.stdout).toContain("0 of 2 trackers answered")
  }, 60_000)

  it("every fixture: one line per tracker or a one-line error, public trackers refused without traffic", async () => {
    if (!requireFixtures("trackers over every fixture")) return
    const entries = manifest().filter((e) => e.accepted_by_libtorrent && e.category !== "v2-only" && !e.tags.includes("trackerless"))
    const failures: Array<string> = []
    for (let i = 0; i < entries.length; i += 8) {
      const batch = entries.slice(i, i + 8)
      const runs = await Promise.all(batch.map((e) => run(["trackers", "--timeout", "2", join(torrentsDir, e.file)])))
      runs.forEach((r, k) => {
        const file = batch[k]!.file
        const oneLineError = /^effect-torrent: [^\n]+\n$/.test(r.stderr)
        if (r.code !== 1 || !oneLineError) failures.push(`${file}: exit ${r.code}: ${r.stderr.slice(0, 200)}`)
        else if (r.stdout !== "") {
          const lines = r.stdout.trim().split("\n")
          const bad = lines.slice(0, -1).filter((l) => !/^tier \d+ +\S+ +error \(\w[\w-]*\): /.test(l))
          if (bad.length > 0) failures.push(`${file}: ${bad[0]}`)
        }
      })
    }
    expect(failures).toEqual([])
  }, 240_000)
})
