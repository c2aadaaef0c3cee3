/**
 * The resume store's failures as the torrent meets them. First the one that is not logged and carried on from: EBADF (a descriptor of ours closed under
 * us, i.e. a descriptor number closed twice somewhere in the process: ResumeStore.ts). `Torrent.start` over
 * MemoryStorage with a store that reports it, on load and on a save during the download: the torrent stops with a
 * typed TorrentError instead of logging a warning and finishing. Then a save on exit that outlives its 5 s bound: cut
 * and said in a warning (the bound could not cut anything in the uninterruptible finalizer, so closing the torrent
 * waited forever for a hung save; and a timeout was dropped by `Effect.ignore`).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as PeerIdentity from "../../src/core/PeerIdentity.ts"
import * as AtomicFile from "../../src/storage/AtomicFile.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as MemoryStorage from "../../src/storage/MemoryStorage.ts"
import * as ResumeRecord from "../../src/storage/ResumeRecord.ts"
import type * as ResumeStore from "../../src/storage/ResumeStore.ts"
import * as Torrent from "../../src/torrent/Torrent.ts"
import { noTracker } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const b = build({ name: "rd.bin", single: true, files: [{ path: ["rd.bin"], length: 300_001 }], pieceLength: 32768 })

const memory = MemoryStorage.make({
  files: b.metainfo.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
  pieceLength: b.metainfo.pieceLength,
  pieceHashes: b.metainfo.pieces
}).pipe(Effect.provide(Hasher.layerInline))

const path = "/state/rd.resume"
const ebadf = new ResumeRecord.ResumeError({
  reason: "write",
  path,
  detail: "close: EBADF",
  cause: new AtomicFile.AtomicWriteError({
    path,
    step: "close",
    code: "EBADF",
    cause: Object.assign(new Error("EBADF: bad file descriptor, close"), { code: "EBADF" })
  })
})

const none: ResumeStore.Loaded = { trusted: Bitfield.make(b.metainfo.pieceCount), status: "none", changed: [] }

describe("Torrent and its resume store failing", () => {
  it.live("on load: the torrent fails with a storage error naming the descriptor", () =>
    Effect.scoped(Effect.gen(function*() {
      const storage = yield* memory
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        resume: { path, load: Effect.fail(ebadf), save: () => Effect.void }
      })
      const e = yield* Effect.flip(t.done)
      expect(e.reason).toBe("storage")
      expect(e.message).toContain("descriptor")
    })).pipe(Effect.provide(noTracker)))

  it.live("on a save during the download: the torrent stops instead of finishing with a warning", () =>
    Effect.scoped(Effect.gen(function*() {
      const s = yield* Effect.promise(() => seed(b))
      seeders.push(s)
      const mem = yield* memory
      // Pieces after the first few are written slowly, so a save comes while the download is still running.
      const storage = {
        ...mem,
        writePiece: (index: number, data: Uint8Array) =>
          index < 3 ? mem.writePiece(index, data) : Effect.zipRight(Effect.sleep("300 millis"), mem.writePiece(index, data))
      }
      let saves = 0
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }],
        resume: {
          path,
          load: Effect.succeed(none),
          save: () => Effect.suspend(() => (saves++, Effect.fail(ebadf)))
        },
        resumeSave: { interval: "10 millis" }
      })
      const e = yield* Effect.flip(t.done)
      expect(saves).toBeGreaterThan(0)
      expect(e.reason).toBe("storage")
      expect(e.message).toContain("descriptor")
    })).pipe(Effect.provide(noTracker)))

  it.scoped("a save on exit that does not finish within 5 s is cut and said in a warning (closing used to wait forever) (TestClock)", () => {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") lines.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    return Effect.gen(function*() {
      const storage = yield* memory
      const all = Bitfield.make(b.metainfo.pieceCount)
      for (let i = 0; i < b.metainfo.pieceCount; i++) Bitfield.set(all, i)
      const scope = yield* Scope.make()
      const t = yield* Scope.extend(
        Torrent.start({
          metainfo: b.metainfo,
          storage,
          peerId: PeerIdentity.generate(),
          have: all,
          resume: { path, load: Effect.succeed(none), save: () => Effect.never }
        }),
        scope
      )
      yield* t.done
      // A daemon: before the fix this close never ended, and the test must fail, not hang with it.
      const closing = yield* Effect.forkDaemon(Scope.close(scope, Exit.void))
      for (let i = 0; i < 20 && closing.unsafePoll() === null; i++) yield* TestClock.adjust("1 second")
      expect(closing.unsafePoll()).not.toBeNull()
      yield* Fiber.join(closing)
      expect(lines.filter((l) => l.includes("resume record not saved on exit"))).toHaveLength(1)
    }).pipe(Effect.provide(noTracker), Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })
})
