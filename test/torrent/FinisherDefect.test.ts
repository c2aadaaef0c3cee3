/**
 * A defect while a piece is verified (the hash worker died under it: Hasher.ts fails the job with a defect) must
 * stop the torrent with an error, not leave it downloading forever with nobody verifying pieces. `Torrent.start`
 * over MemoryStorage whose `verifyPiece` dies for one piece, against an in-process seeder.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as PeerIdentity from "../../src/core/PeerIdentity.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as MemoryStorage from "../../src/storage/MemoryStorage.ts"
import * as Torrent from "../../src/torrent/Torrent.ts"
import { noTracker } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const b = build({ name: "fd.bin", single: true, files: [{ path: ["fd.bin"], length: 300_001 }], pieceLength: 32768 })

describe("Torrent finishers", () => {
  it.live("a defect verifying a piece (hash worker died) fails the torrent instead of stalling it", () =>
    Effect.scoped(Effect.gen(function*() {
      const s = yield* Effect.promise(() => seed(b))
      seeders.push(s)
      const mem = yield* MemoryStorage.make({
        files: b.metainfo.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
        pieceLength: b.metainfo.pieceLength,
        pieceHashes: b.metainfo.pieces
      }).pipe(Effect.provide(Hasher.layerInline))
      const storage = {
        ...mem,
        verifyPiece: (index: number, data: Uint8Array) =>
          index === 2 ? Effect.die(new Error("hash worker exited with code 1")) : mem.verifyPiece(index, data)
      }
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }]
      })
      const exit = yield* t.done.pipe(Effect.timeout("5 seconds"), Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      const e = Exit.isFailure(exit) ? exit.cause : undefined
      expect(JSON.stringify(e)).toContain("hash worker exited with code 1")
    })).pipe(Effect.provide(noTracker)))
})
