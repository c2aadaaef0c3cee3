/** `Client.download`'s typed refusals and the magnet `so` mapping (downloads themselves: test/torrent/). */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Magnet from "../../src/metainfo/Magnet.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import { type AnnounceRequest, Tracker } from "../../src/tracker/Tracker.ts"
import { TrackerError } from "../../src/tracker/TrackerError.ts"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { noTracker, tempDir, testClient } from "../support/download.ts"
import { build } from "../support/seeder.ts"

const b = build({ name: "c", pieceLength: 16384, files: [{ path: ["x"], length: 10 }, { path: ["y"], length: 20 }] })
const tracked = build({
  name: "t",
  single: true,
  files: [{ path: ["t.bin"], length: 40_000 }],
  pieceLength: 16384,
  announce: "http://tracker.invalid/announce"
})

describe("Client.download", () => {
  it.scopedLive("a magnet link nobody serves fails with no-peers once its timeout passes", () =>
    Effect.gen(function*() {
      const magnet = { infoHashes: { v1: b.metainfo.infoHash }, trackers: [], webSeeds: [], peers: [] }
      const d = yield* Client.download(magnet, { outputDir: tempDir("magnet"), noPeersTimeout: "1 second" })
      const e = yield* Effect.flip(d.done)
      expect(e.reason).toBe("no-peers")
      expect((yield* Effect.flip(d.metainfo)).reason).toBe("no-peers")
    }).pipe(Effect.provide(testClient())))

  it.scoped("a v2-only (btmh) magnet link is taken: its swarm is named by the truncated v2 hash", () =>
    Effect.gen(function*() {
      const v2 = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
      const magnet = { infoHashes: { v2: v2 as never }, trackers: [], webSeeds: [], peers: [] }
      const d = yield* Client.download(magnet, { outputDir: tempDir("magnet2") })
      expect([...d.infoHash]).toEqual([...v2.subarray(0, 20)])
    }).pipe(Effect.provide(testClient())))

  it.scoped("a selection naming no file fails with invalid-selection", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Client.download(b.metainfo, { outputDir: tempDir("sel"), only: [7] }))
      expect(e.reason).toBe("invalid-selection")
    }).pipe(Effect.provide(testClient())))

  it.scopedLive("announces tell trackers the client's encryption policy (prefer: supported, require: required)", () =>
    Effect.gen(function*() {
      const seen: Array<[string, AnnounceRequest["crypto"]]> = []
      for (const policy of ["prefer", "require", "off"] as const) {
        const tracker = Layer.succeed(Tracker, Tracker.of({
          announce: (url, req) =>
            Effect.suspend(() => {
              seen.push([policy, req.crypto])
              return Effect.fail(new TrackerError({ reason: "network", url, detail: "refused" }))
            }),
          scrape: (url) => Effect.fail(new TrackerError({ reason: "network", url, detail: "refused" }))
        }))
        const client = Client.layerWith({ encryption: policy, noPeersTimeout: "1 second" }).pipe(
          Layer.provide(tracker),
          Layer.provide(Hasher.layerInline)
        )
        yield* Effect.scoped(Effect.gen(function*() {
          const d = yield* Client.download(tracked.metainfo, { outputDir: tempDir("crypto") })
          yield* Effect.flip(d.done) // no peers: fails once the first announce has been refused
        })).pipe(Effect.provide(client))
      }
      // Every announce of a run carries the same value; each run announced at least once.
      const of = (policy: string) => [...new Set(seen.filter(([p]) => p === policy).map(([, c]) => c ?? "none"))]
      expect([of("prefer"), of("require"), of("off")]).toEqual([["supported"], ["required"], ["none"]])
    }))

  it.scoped("a download warms the hasher as it starts, before anything is hashed; seeding does not", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const recording = Layer.succeed(Hasher.Hasher, {
        sha1: (data) => Effect.zipRight(Effect.sync(() => calls.push("sha1")), Hasher.inline.sha1(data)),
        warm: Effect.sync(() => void calls.push("warm"))
      })
      const client = Client.layerWith({ noPeersTimeout: "1 hour" }).pipe(Layer.provide(noTracker), Layer.provide(recording))
      yield* Effect.scoped(Client.download(tracked.metainfo, { outputDir: tempDir("warm") })).pipe(Effect.provide(client))
      expect(calls).toEqual(["warm"])

      calls.length = 0
      const dir = tempDir("warm-seed")
      Fs.writeFileSync(Path.join(dir, tracked.metainfo.name), tracked.files[0]!)
      yield* Effect.scoped(Client.seed(tracked.metainfo, { dataDir: dir })).pipe(Effect.provide(client))
      expect(calls.length).toBeGreaterThan(0) // the data was checked
      expect(calls.every((c) => c === "sha1")).toBe(true)
    }))

  it("maps magnet so= ranges to file numbers", () => {
    const hex = Buffer.from(b.metainfo.infoHash).toString("hex")
    const m = Magnet.parse(`magnet:?xt=urn:btih:${hex}&so=0,2-4`)
    expect(Either.isRight(m)).toBe(true)
    if (Either.isRight(m)) expect(Client.selectOnlyOf(m.right)).toEqual([0, 2, 3, 4])
  })
})
