/**
 * `Torrent.start` directly, over MemoryStorage: the no-peers rule under TestClock, disk errors, backpressure
 * (pause/resume reading around a tiny hash/write budget), and what a resume check reports.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as PeerIdentity from "../../src/core/PeerIdentity.ts"
import * as Tcp from "../../src/net/Tcp.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as MemoryStorage from "../../src/storage/MemoryStorage.ts"
import { StorageError } from "../../src/storage/Storage.ts"
import * as Torrent from "../../src/torrent/Torrent.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import { memoryConnection } from "../peer/support.ts"
import { noTracker } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const b = build({ name: "rt.bin", single: true, files: [{ path: ["rt.bin"], length: 300_001 }], pieceLength: 32768 })

const memory = MemoryStorage.make({
  files: b.metainfo.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
  pieceLength: b.metainfo.pieceLength,
  pieceHashes: b.metainfo.pieces
}).pipe(Effect.provide(Hasher.layerInline))

const startSeeder = Effect.promise(() => seed(b)).pipe(Effect.tap((s) => Effect.sync(() => seeders.push(s))))

/**
 * A `dial` for `Torrent.start` that records when it was called (on the TestClock): the first `connections` dials give
 * an in-memory peer that completes its handshake and hangs up at once; every later dial is refused.
 */
const flakyPeer = (connections: number) => {
  const dials: Array<number> = []
  const dial = (address: Tcp.Address) =>
    Effect.gen(function*() {
      dials.push(yield* Clock.currentTimeMillis)
      if (dials.length > connections) {
        return yield* Effect.fail(
          new Tcp.TcpError({ reason: "connect-failed", address: `${address.host}:${address.port}`, cause: "refused" })
        )
      }
      const conn = yield* memoryConnection()
      const theirs = Handshake.encode({
        reserved: Handshake.reserved({}),
        infoHash: b.metainfo.infoHash,
        peerId: PeerIdentity.generate()
      })
      return {
        ...conn,
        onData: (h: (chunk: Uint8Array) => void) => {
          conn.onData(h)
          conn.feed(theirs)
          conn.end()
        }
      }
    })
  return { dials, dial }
}

/** Advances the TestClock `seconds`, in steps of at most `step` seconds. */
const advance = (seconds: number, step = 1) => Effect.repeatN(TestClock.adjust(`${step} seconds`), seconds / step - 1)

describe("Torrent.start", () => {
  it.scoped("fails with no-peers after noPeersTimeout without peers or answering trackers (TestClock)", () =>
    Effect.gen(function*() {
      const storage = yield* memory
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        noPeersTimeout: "60 seconds"
      })
      const fiber = yield* Effect.fork(t.done.pipe(Effect.flip))
      yield* TestClock.adjust("59 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      const e = yield* Fiber.join(fiber)
      expect(e.reason).toBe("no-peers")
    }).pipe(Effect.provide(noTracker)))

  it.scoped("a peer that connected once is retried forever, at most 60 s apart, and no-peers never fires (TestClock)", () =>
    Effect.gen(function*() {
      const storage = yield* memory
      const peer = flakyPeer(1)
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: 6881 }],
        noPeersTimeout: "60 seconds",
        dial: peer.dial
      })
      const fiber = yield* Effect.fork(t.done.pipe(Effect.flip))
      yield* advance(12 * 60, 10)
      expect(fiber.unsafePoll()).toBeNull()
      const gaps = peer.dials.slice(1).map((at, i) => at - peer.dials[i]!)
      // 1 s doubling after the connection ended, then every 60 s: 1, 2, 4, 8, 16, 32, 60, 60, ...
      expect(gaps.slice(0, 8)).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000])
      expect(Math.max(...gaps)).toBe(60000)
      expect(peer.dials.length).toBeGreaterThanOrEqual(14) // 7 within 183 s, then one a minute
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(noTracker)))

  it.scoped("a peer that never connected is given up after the reconnect schedule; then no-peers (TestClock)", () =>
    Effect.gen(function*() {
      const storage = yield* memory
      const peer = flakyPeer(0)
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: 6881 }],
        noPeersTimeout: "60 seconds",
        dial: peer.dial
      })
      const fiber = yield* Effect.fork(t.done.pipe(Effect.flip))
      yield* advance(59)
      expect(fiber.unsafePoll()).toBeNull()
      yield* advance(2)
      expect((yield* Fiber.join(fiber)).reason).toBe("no-peers")
      // The first dial and five retries 1, 2, 4, 8, 16 s apart.
      expect(peer.dials.slice(1).map((at, i) => at - peer.dials[i]!)).toEqual([1000, 2000, 4000, 8000, 16000])
    }).pipe(Effect.provide(noTracker)))

  it.live("fails with a clear no-space error when the disk is full (data stays resumable)", () =>
    Effect.scoped(Effect.gen(function*() {
      const s = yield* startSeeder
      const mem = yield* memory
      const storage = {
        ...mem,
        writePiece: () =>
          Effect.fail(new StorageError({ reason: "no-space", path: "/out/rt.bin", detail: "no space left on device" }))
      }
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }]
      })
      const e = yield* Effect.flip(t.done)
      expect(e.reason).toBe("no-space")
      expect(e.message).toBe("disk full: /out/rt.bin: no space left on device")
    })).pipe(Effect.provide(noTracker)))

  it.live("completes with a tiny hash/write budget (sessions pause and resume reading)", () =>
    Effect.scoped(Effect.gen(function*() {
      const s1 = yield* startSeeder
      const s2 = yield* startSeeder
      const storage = yield* memory
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s1.port }, { host: "127.0.0.1", port: s2.port }],
        backlogBudget: 1
      })
      yield* t.done
      expect(Buffer.compare(storage.contents(0)!, Buffer.from(b.files[0]!))).toBe(0)
      expect(t.stats().bytesLeft).toBe(0)
      expect(t.stats().downloaded).toBeGreaterThanOrEqual(b.payload.length)
    })).pipe(Effect.provide(noTracker)))

  it.live("completes at once when storage already holds every piece", () =>
    Effect.scoped(Effect.gen(function*() {
      const storage = yield* memory
      for (let i = 0; i < b.metainfo.pieceCount; i++) {
        yield* storage.writePiece(i, b.payload.slice(i * 32768, (i + 1) * 32768))
      }
      const t = yield* Torrent.start({ metainfo: b.metainfo, storage, peerId: PeerIdentity.generate() })
      yield* t.done
      expect(t.stats().have).toBe(b.metainfo.pieceCount)
    })).pipe(Effect.provide(noTracker)))
})
