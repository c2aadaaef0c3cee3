/**
 * A running torrent as a daemon drives it (`Torrent.start` over MemoryStorage against in-process seeders on
 * loopback): introspection (`peers`, `trackers`, `have`, `rates`), own limits changed at run time, live file
 * selection with completion either way, priorities, the streaming window with `whenVerified`, `reannounce`, and
 * limits shared by two torrents (a download bucket, a connection cap).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as PeerIdentity from "../../src/core/PeerIdentity.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as MemoryStorage from "../../src/storage/MemoryStorage.ts"
import * as ConnectionBudget from "../../src/torrent/ConnectionBudget.ts"
import * as FileSelection from "../../src/torrent/FileSelection.ts"
import * as RateLimit from "../../src/torrent/RateLimit.ts"
import * as Torrent from "../../src/torrent/Torrent.ts"
import type * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import { type AnnounceRequest, Tracker } from "../../src/tracker/Tracker.ts"
import { noTracker } from "../support/download.ts"
import { build, type Built, seed, type Seeder, type SeederOptions } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))
const startSeeder = (b: Built, o: SeederOptions = {}) =>
  Effect.promise(() => seed(b, o)).pipe(Effect.tap((s) => Effect.sync(() => seeders.push(s))))

const PIECE = 32768
/** 48 pieces of 32 KiB (1.5 MiB). */
const make = (name: string) => build({ name, single: true, files: [{ path: [name], length: 48 * PIECE }], pieceLength: PIECE })
const b = make("ctl.bin")

const memory = (built: Built) =>
  MemoryStorage.make({
    files: built.metainfo.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
    pieceLength: built.metainfo.pieceLength,
    pieceHashes: built.metainfo.pieces
  }).pipe(Effect.provide(Hasher.layerInline))

const peerConfig = { requestTimeout: 2_000, tickInterval: 100, connectTimeout: 2_000 }

/** Polls `f` every 20 ms until it holds (fails the test after `ms`). */
const until = (what: string, f: () => boolean, ms = 10_000) =>
  Effect.gen(function*() {
    for (let waited = 0; !f(); waited += 20) {
      if (waited > ms) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep("20 millis")
    }
  })

/** A gate for `unchokeWhen`. */
const gate = () => {
  let open!: () => void
  const promise = new Promise<void>((resolve) => open = resolve)
  return { promise, open: () => open() }
}

/** Collects the torrent's events from now on. */
const collect = (events: PubSub.PubSub<TorrentEvent.TorrentEvent>) =>
  Effect.gen(function*() {
    const out: Array<TorrentEvent.TorrentEvent> = []
    const q = yield* PubSub.subscribe(events)
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(q), (e) => Effect.sync(() => out.push(e)))))
    return out
  })

const verifiedOrder = (events: ReadonlyArray<TorrentEvent.TorrentEvent>) =>
  events.flatMap((e) => (e._tag === "PieceVerified" ? [e.index] : []))

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

const pieces = (on: ReadonlyArray<number>) => {
  const bf = Bitfield.make(b.metainfo.pieceCount)
  for (const i of on) Bitfield.set(bf, i)
  return bf
}

describe("Torrent while running: introspection and control", () => {
  it.live("peers(): who it is, choke and interest both ways, progress, bytes and rates; setLimits at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const g = gate()
      const s = yield* startSeeder(b, { unchokeWhen: g.promise })
      const storage = yield* memory(b)
      const events = yield* Torrent.makeEvents()
      const seen = yield* collect(events)
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }],
        peerConfig,
        events,
        progressInterval: "200 millis"
      })
      yield* until("a connected peer", () => t.peers().length === 1 && t.peers()[0]!.interested)
      const p = t.peers()[0]!
      expect(p).toMatchObject({
        address: `127.0.0.1:${s.port}`,
        encryption: "none",
        incoming: false,
        downloadRate: 0,
        uploadRate: 0,
        downloaded: 0,
        uploaded: 0,
        progress: 1,
        choked: true,
        chokingUs: true,
        interested: true,
        interestedInUs: false
      })
      expect(typeof p.client).toBe("string")
      // A limit set while running holds the download to it.
      yield* t.setLimits({ down: 64 * 1024 })
      expect(t.limits()).toEqual({ up: 0, down: 65536 })
      g.open()
      // rates(): those of the latest Progress event (200 ms here, so often 0 between the limit's bursts)
      let bestRate = 0
      for (let i = 0; i < 60; i++) {
        yield* Effect.sleep("50 millis")
        bestRate = Math.max(bestRate, t.rates().downRate)
      }
      const limited = t.peers()[0]!
      expect(limited.chokingUs).toBe(false)
      expect(limited.downloaded).toBeGreaterThan(0)
      expect(limited.downloadRate).toBeGreaterThan(20_000)
      expect(limited.downloadRate).toBeLessThan(200_000) // 64 KiB/s and the first burst, over at most 5 s
      expect(t.stats().downloaded).toBeLessThan(65536 + 65536 * 3.5 + 256 * 1024)
      expect(bestRate).toBeGreaterThan(0)
      expect(seen.some((e) => e._tag === "Progress" && e.downRate > 0)).toBe(true)
      expect(Bitfield.count(t.have())).toBeGreaterThan(0)
      expect(Bitfield.count(t.have())).toBeLessThan(b.metainfo.pieceCount)
      // Lifted: it finishes at once.
      yield* t.setLimits({ down: 0 })
      yield* t.done.pipe(Effect.timeout("10 seconds"))
      expect(Bitfield.count(t.have())).toBe(b.metainfo.pieceCount)
      expect(Buffer.compare(storage.contents(0)!, Buffer.from(b.files[0]!))).toBe(0)
      expect(t.trackers()).toEqual([]) // the built torrent has no trackers
    })).pipe(Effect.provide(noTracker)))

  it.live("setWanted: complete on a selection, more selected downloads again; Completed each time, done once", () =>
    Effect.scoped(Effect.gen(function*() {
      const s = yield* startSeeder(b)
      const storage = yield* memory(b)
      const events = yield* Torrent.makeEvents()
      const seen = yield* collect(events)
      const first = pieces(range(0, 7))
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }],
        peerConfig,
        events,
        wanted: first,
        seed: true
      })
      yield* t.done.pipe(Effect.timeout("10 seconds"))
      expect([...Bitfield.indices(t.have())]).toEqual(range(0, 7))
      expect(t.stats()).toMatchObject({ bytesLeft: 0, total: 8 * PIECE })
      expect(seen.filter((e) => e._tag === "Completed")).toHaveLength(1)
      expect(t.peers()[0]?.interested).toBe(false)
      // Everything now: downloads the rest, completes again.
      yield* t.setWanted(Bitfield.full(b.metainfo.pieceCount))
      expect(t.stats().total).toBe(48 * PIECE)
      yield* until("the second completion", () => seen.filter((e) => e._tag === "Completed").length === 2)
      yield* until("every event", () => verifiedOrder(seen).length === 48, 2_000)
      expect(Bitfield.count(t.have())).toBe(b.metainfo.pieceCount)
      expect(Buffer.compare(storage.contents(0)!, Buffer.from(b.files[0]!))).toBe(0)
      expect(verifiedOrder(seen).slice(0, 8).sort((x, y) => x - y)).toEqual(range(0, 7))
      yield* Effect.flip(t.setWanted(Bitfield.full(3))).pipe(
        Effect.map((e) => expect(e.reason).toBe("invalid-selection"))
      )
    })).pipe(Effect.provide(noTracker)))

  it.live("setWanted: deselecting what is left completes the torrent at once; outstanding requests are dropped", () =>
    Effect.scoped(Effect.gen(function*() {
      const s = yield* startSeeder(b, { stall: true }) // unchokes, never answers: requests stay outstanding
      const storage = yield* memory(b)
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }],
        peerConfig: { ...peerConfig, requestTimeout: 60_000 },
        seed: true
      })
      yield* until("unchoked", () => t.peers()[0]?.chokingUs === false)
      yield* t.setWanted(Bitfield.make(b.metainfo.pieceCount))
      yield* t.done.pipe(Effect.timeout("2 seconds"))
      expect(t.stats()).toMatchObject({ bytesLeft: 0, total: 0 })
      expect(t.peers()[0]?.interested).toBe(false)
    })).pipe(Effect.provide(noTracker)))

  it.live("setWanted with recheck: a file selected later gets its part of a straddling piece, fetched again", () =>
    Effect.scoped(Effect.gen(function*() {
      // a.bin ends inside piece 1, which b.bin starts: with only a.bin wanted, storage drops b.bin's part of it.
      const two = build({
        name: "two",
        pieceLength: PIECE,
        files: [{ path: ["a.bin"], length: PIECE + 1000 }, { path: ["b.bin"], length: 3 * PIECE }]
      })
      const s = yield* startSeeder(two)
      const files = [true, false]
      const storage = yield* MemoryStorage.make({
        files: two.metainfo.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
        pieceLength: PIECE,
        pieceHashes: two.metainfo.pieces,
        wanted: (f) => files[f] === true
      }).pipe(Effect.provide(Hasher.layerInline))
      const events = yield* Torrent.makeEvents()
      const seen = yield* collect(events)
      const t = yield* Torrent.start({
        metainfo: two.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }],
        peerConfig,
        events,
        wanted: FileSelection.wantedPieces(storage.layout, files),
        seed: true
      })
      yield* t.done.pipe(Effect.timeout("10 seconds"))
      expect([...Bitfield.indices(t.have())]).toEqual([0, 1])
      // b.bin too now: piece 1 is re-hashed from storage, fails (b.bin's part was never stored) and is fetched again.
      const before = [...files]
      files[1] = true
      yield* t.setWanted(FileSelection.wantedPieces(storage.layout, files), {
        recheck: FileSelection.newlyWanted(storage.layout, before, files)
      })
      yield* until("the second completion", () => seen.filter((e) => e._tag === "Completed").length === 2)
      expect(Bitfield.count(t.have())).toBe(two.metainfo.pieceCount)
      expect(Buffer.compare(storage.contents(0)!, Buffer.from(two.files[0]!))).toBe(0)
      expect(Buffer.compare(storage.contents(1)!, Buffer.from(two.files[1]!))).toBe(0)
      yield* until("every event", () => verifiedOrder(seen).length === 2 + 4, 2_000)
      expect(verifiedOrder(seen).slice(2).sort()).toEqual([1, 2, 3, 4])
    })).pipe(Effect.provide(noTracker)))

  it.live("prioritize: the window's pieces come first, in order; whenVerified wakes for one of them", () =>
    Effect.scoped(Effect.gen(function*() {
      const g = gate()
      const s = yield* startSeeder(b, { unchokeWhen: g.promise })
      const storage = yield* memory(b)
      const events = yield* Torrent.makeEvents()
      const seen = yield* collect(events)
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }],
        peerConfig,
        events,
        finishConcurrency: 1
      })
      yield* t.prioritize(30, 33)
      const waiting = yield* Effect.fork(t.whenVerified(33))
      yield* until("a connected peer", () => t.peers().length === 1)
      expect(waiting.unsafePoll()).toBeNull()
      g.open()
      yield* Fiber.join(waiting).pipe(Effect.timeout("10 seconds"))
      expect(Bitfield.has(t.have(), 33)).toBe(true)
      yield* t.done.pipe(Effect.timeout("10 seconds"))
      yield* until("every event", () => verifiedOrder(seen).length === 48, 2_000)
      expect(verifiedOrder(seen).slice(0, 4)).toEqual([30, 31, 32, 33])
      yield* t.whenVerified(0) // already: at once
      const bad = yield* Effect.flip(t.whenVerified(48))
      expect(bad.reason).toBe("invalid-selection")
    })).pipe(Effect.provide(noTracker)))

  it.live("setPriorities: high pieces first, low ones last", () =>
    Effect.scoped(Effect.gen(function*() {
      const g = gate()
      const s = yield* startSeeder(b, { unchokeWhen: g.promise })
      const storage = yield* memory(b)
      const events = yield* Torrent.makeEvents()
      const seen = yield* collect(events)
      const t = yield* Torrent.start({
        metainfo: b.metainfo,
        storage,
        peerId: PeerIdentity.generate(),
        peers: [{ host: "127.0.0.1", port: s.port }],
        peerConfig,
        events,
        finishConcurrency: 1
      })
      const levels = range(0, 47).map((i) => (i < 4 ? "low" : i >= 44 ? "high" : "normal") as "low" | "normal" | "high")
      yield* t.setPriorities(levels)
      yield* until("a connected peer", () => t.peers().length === 1)
      g.open()
      yield* t.done.pipe(Effect.timeout("10 seconds"))
      yield* until("every event", () => verifiedOrder(seen).length === 48, 2_000)
      const order = verifiedOrder(seen)
      expect(order.slice(0, 4).sort((x, y) => x - y)).toEqual([44, 45, 46, 47])
      expect(order.slice(-4).sort((x, y) => x - y)).toEqual([0, 1, 2, 3])
      expect((yield* Effect.flip(t.setPriorities(["high"]))).reason).toBe("invalid-selection")
    })).pipe(Effect.provide(noTracker)))

  it.live("whenVerified fails with `stopped` when the torrent's scope closes first", () =>
    Effect.gen(function*() {
      const storage = yield* memory(b)
      const waiting = yield* Effect.scoped(Effect.gen(function*() {
        const t = yield* Torrent.start({ metainfo: b.metainfo, storage, peerId: PeerIdentity.generate() })
        const f = yield* Effect.forkDaemon(t.whenVerified(5))
        yield* Effect.sleep("50 millis")
        return f
      }))
      const exit = yield* Fiber.await(waiting)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error.reason).toBe("stopped")
    }).pipe(Effect.provide(noTracker)))

  it.live("trackers(): each tracker's state from the announces; reannounce asks again now", () =>
    Effect.scoped(Effect.gen(function*() {
      const s = yield* startSeeder(b)
      const calls: Array<AnnounceRequest["event"]> = []
      const tracker = Layer.succeed(
        Tracker,
        Tracker.of({
          announce: (_url, req) =>
            Effect.sync(() => {
              calls.push(req.event)
              return { interval: 1800, complete: 1, incomplete: 2, peers: [{ ip: "127.0.0.1", port: s.port }] }
            }),
          scrape: () => Effect.succeed(new Map())
        })
      )
      const url = "http://tracker.test/announce"
      yield* Effect.gen(function*() {
        const storage = yield* memory(b)
        const t = yield* Torrent.start({
          metainfo: { ...b.metainfo, trackers: [[url], ["http://backup.test/announce"]] },
          storage,
          peerId: PeerIdentity.generate(),
          peerConfig,
          seed: true
        })
        yield* t.done.pipe(Effect.timeout("10 seconds"))
        const [main, backup] = t.trackers()
        expect(main).toMatchObject({ url, tier: 0, status: "working", seeders: 1, leechers: 2, peers: 1, message: "" })
        expect(main!.nextAnnounceAt! - main!.lastAnnounceAt!).toBeGreaterThanOrEqual(1_800_000)
        expect(main!.nextAnnounceAt! - main!.lastAnnounceAt!).toBeLessThan(1_801_000)
        expect(backup).toMatchObject({ tier: 1, status: "idle", lastAnnounceAt: null })
        const before = calls.length
        yield* t.reannounce()
        yield* until("a second announce", () => calls.length > before, 2_000)
      }).pipe(Effect.provide(tracker))
    })))
})

describe("limits shared by several torrents", () => {
  const other = make("ctl2.bin")

  it.live("a shared download bucket bounds two torrents together; lifting it finishes both", () =>
    Effect.scoped(Effect.gen(function*() {
      const s1 = yield* startSeeder(b)
      const s2 = yield* startSeeder(other)
      const shared = RateLimit.makeAdjustable(64 * 1024, { now: Date.now() })
      const start = (built: Built, port: number) =>
        Effect.flatMap(memory(built), (storage) =>
          Torrent.start({
            metainfo: built.metainfo,
            storage,
            peerId: PeerIdentity.generate(),
            peers: [{ host: "127.0.0.1", port }],
            peerConfig,
            sharedDown: shared
          }))
      const t1 = yield* start(b, s1.port)
      const t2 = yield* start(other, s2.port)
      const began = Date.now()
      yield* Effect.sleep("2 seconds")
      const elapsed = (Date.now() - began) / 1000
      const both = t1.stats().downloaded + t2.stats().downloaded
      // the burst, the rate, and what each torrent takes before it pauses (a chunk already read)
      expect(both).toBeLessThan(65536 + 65536 * (elapsed + 0.5) + 2 * 256 * 1024)
      expect(both).toBeGreaterThan(0)
      RateLimit.setRate(shared, 0, Date.now())
      yield* Effect.all([t1.done, t2.done], { concurrency: 2 }).pipe(Effect.timeout("10 seconds"))
    })).pipe(Effect.provide(noTracker)))

  it.live("a shared connection cap: two torrents with two seeders each never hold more than one connection", () =>
    Effect.scoped(Effect.gen(function*() {
      const seeds = [yield* startSeeder(b), yield* startSeeder(b), yield* startSeeder(other), yield* startSeeder(other)]
      const budget = ConnectionBudget.make(1)
      const start = (built: Built, ports: ReadonlyArray<number>) =>
        Effect.flatMap(memory(built), (storage) =>
          Torrent.start({
            metainfo: built.metainfo,
            storage,
            peerId: PeerIdentity.generate(),
            peers: ports.map((port) => ({ host: "127.0.0.1", port })),
            peerConfig,
            connections: budget
          }))
      const t1 = yield* start(b, [seeds[0]!.port, seeds[1]!.port])
      const t2 = yield* start(other, [seeds[2]!.port, seeds[3]!.port])
      const finished = yield* Deferred.make<void>()
      let most = 0
      yield* Effect.forkScoped(Effect.gen(function*() {
        for (;;) {
          most = Math.max(most, budget.inUse(), t1.peers().length + t2.peers().length)
          yield* Effect.sleep("5 millis")
        }
      }).pipe(Effect.raceFirst(Deferred.await(finished))))
      yield* Effect.all([t1.done, t2.done], { concurrency: 2 }).pipe(Effect.timeout("20 seconds"))
      yield* Deferred.succeed(finished, undefined)
      expect(most).toBe(1)
      yield* until("every slot back", () => budget.inUse() === 0, 2_000)
    })).pipe(Effect.provide(noTracker)))
})
