/** `Client.download`'s typed refusals and the magnet `so` mapping (downloads themselves: test/torrent/). */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Magnet from "../../src/metainfo/Magnet.ts"
import * as Client from "../../src/session/Client.ts"
import { tempDir, testClient } from "../support/download.ts"
import { build } from "../support/seeder.ts"

const b = build({ name: "c", pieceLength: 16384, files: [{ path: ["x"], length: 10 }, { path: ["y"], length: 20 }] })

describe("Client.download", () => {
  it.scopedLive("a magnet link nobody serves fails with no-peers once its timeout passes", () =>
    Effect.gen(function*() {
      const magnet = { infoHashes: { v1: b.metainfo.infoHash }, trackers: [], webSeeds: [], peers: [] }
      const d = yield* Client.download(magnet, { outputDir: tempDir("magnet"), noPeersTimeout: "1 second" })
      const e = yield* Effect.flip(d.done)
      expect(e.reason).toBe("no-peers")
      expect((yield* Effect.flip(d.metainfo)).reason).toBe("no-peers")
    }).pipe(Effect.provide(testClient())))

  it.scoped("a v2-only magnet link fails with a clear error", () =>
    Effect.gen(function*() {
      const magnet = { infoHashes: { v2: new Uint8Array(32) as never }, trackers: [], webSeeds: [], peers: [] }
      const e = yield* Effect.flip(Client.download(magnet, { outputDir: tempDir("magnet2") }))
      expect(e.message).toContain("v2-only")
    }).pipe(Effect.provide(testClient())))

  it.scoped("a selection naming no file fails with invalid-selection", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Client.download(b.metainfo, { outputDir: tempDir("sel"), only: [7] }))
      expect(e.reason).toBe("invalid-selection")
    }).pipe(Effect.provide(testClient())))

  it("maps magnet so= ranges to file numbers", () => {
    const hex = Buffer.from(b.metainfo.infoHash).toString("hex")
    const m = Magnet.parse(`magnet:?xt=urn:btih:${hex}&so=0,2-4`)
    expect(Either.isRight(m)).toBe(true)
    if (Either.isRight(m)) expect(Client.selectOnlyOf(m.right)).toEqual([0, 2, 3, 4])
  })
})
