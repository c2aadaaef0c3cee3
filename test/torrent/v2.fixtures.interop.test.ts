/**
 * The real v2-only and hybrid torrents of `../shared/fixtures` (those below 128 MiB that load), each given a random
 * payload with its names and layout kept and its hashes recomputed (`support/v2.ts` `regenerate`), seeded by
 * libtorrent 2.0.8 in seed mode (which hashes each piece, v1 and v2, the first time it sends it) and downloaded by us
 * verifying every piece: the bytes on disk equal. Alignment pads, empty files, symlinks, many files, single-file
 * hybrids: our reading of each torrent's layout is libtorrent's. A missing python3-libtorrent skips loudly outside CI.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { download, tempDir, testClient } from "../support/download.ts"
import { manifest, requireFixtures, torrentsDir } from "../support/fixtures.ts"
import * as Lt from "../support/libtorrentSeeder.ts"
import { regenerate } from "../support/v2.ts"

const stops: Array<() => Promise<void>> = []
afterAll(() => Promise.all(stops.map((s) => s())))

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const fixtures = requireFixtures("v2 fixtures downloaded from libtorrent")
  ? manifest().filter((e) =>
    e.accepted_by_libtorrent && (e.category === "v2-only" || e.category === "hybrid") && (e.total_size ?? Infinity) <= 128 * 1024 * 1024
  )
  : []

describe.runIf(Lt.shouldRun("v2 fixtures downloaded from libtorrent"))("real v2 and hybrid torrents, from libtorrent", () => {
  it("covers the small fixtures", () => {
    if (fixtures.length > 0) expect(fixtures.length).toBeGreaterThanOrEqual(10)
  })
  for (const entry of fixtures) {
    it.live(`${entry.file} (${entry.category}, ${entry.tags.join(", ") || "no tags"})`, () =>
      Effect.gen(function*() {
        const built = regenerate(new Uint8Array(Fs.readFileSync(Path.join(torrentsDir, entry.file))))
        if (Either.isLeft(built)) {
          // the two whose piece layers do not hash to their roots (V2.conformance.test.ts), refused on load
          expect(built.left, entry.file).toMatch(/piece layers\[[0-9a-f]{64}\]: the hashes do not hash up/)
          return
        }
        const b = built.right
        // libtorrent cannot write this one's second file: it names it like its own directory (unsafe-paths.test.ts)
        if (entry.file === "libtorrent/v2_invalid_filename2.torrent") return
        const seeder = yield* Effect.promise(() => Lt.startFor(b.bytes, b.payload))
        stops.push(seeder.stop)
        const dir = tempDir("v2-fixture")
        const r = yield* download(b, dir, [seeder.port]).pipe(Effect.provide(testClient()))
        expect(r.events.filter((e) => e._tag === "PieceFailed"), seeder.log()).toEqual([])
        b.metainfo.files.forEach((f, i) => {
          if (f.pad || f.attributes.symlink !== undefined) return
          expect(sha(Fs.readFileSync(Path.join(dir, ...f.path))), f.path.join("/")).toBe(sha(b.files[i]!))
        })
      }), 120_000)
  }
})
