/**
 * The torrent runtime end to end, in process: our sessions against tiny seeders built from our own wire codec over
 * real loopback TCP, FileStorage into a temp dir, byte-identical results.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Client from "../../src/session/Client.ts"
import type * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import { download, fileExists, readFile, tempDir, testClient } from "../support/download.ts"
import { adversary } from "../support/adversary.ts"
import { build, deadPort, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
const start = (...args: Parameters<typeof seed>) =>
  Effect.promise(() => seed(...args)).pipe(Effect.tap((s) => Effect.sync(() => seeders.push(s))))
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const single = build({
  name: "single.bin",
  single: true,
  files: [{ path: ["single.bin"], length: 700_001 }],
  pieceLength: 65536
})
const multi = build({
  name: "multi",
  pieceLength: 32768,
  files: [
    { path: ["a.bin"], length: 50_000 },
    { path: [".pad", "0"], length: 15_536, pad: true },
    { path: ["sub", "b.bin"], length: 1 },
    { path: ["empty.txt"], length: 0 },
    { path: ["sub", "c.bin"], length: 300_007 }
  ]
})

/** A reconnect backoff for tests that watch redials: every 100 ms, forever. */
const quickly = Schedule.spaced("100 millis")

const sameFiles = (b: typeof multi, dir: string) => {
  b.metainfo.files.forEach((f, i) => {
    if (f.pad) return
    expect(Buffer.compare(readFile(b, dir, i), Buffer.from(b.files[i]!))).toBe(0)
  })
}

describe("Torrent (in-process seeders)", () => {
  it.live("downloads a single-file torrent from two seeders, byte-identical", () =>
    Effect.gen(function*() {
      const a = yield* start(single)
      const b = yield* start(single)
      const dir = tempDir("single")
      const out = yield* download(single, dir, [a.port, b.port])
      sameFiles(single, dir)
      const tags = out.events.map((e) => e._tag)
      expect(tags[0]).toBe("Checking")
      expect(tags).toContain("Started")
      expect(tags.filter((t) => t === "PieceVerified").length).toBe(single.metainfo.pieceCount)
      expect(tags.at(-1)).toBe("Completed")
    }).pipe(Effect.provide(testClient())))

  it.live("downloads a multi-file torrent with pad files and odd sizes", () =>
    Effect.gen(function*() {
      const ports = [(yield* start(multi)).port, (yield* start(multi)).port, (yield* start(multi)).port]
      const dir = tempDir("multi")
      yield* download(multi, dir, ports)
      sameFiles(multi, dir)
      expect(fileExists(multi, dir, 1)).toBe(false) // the pad file is never created
    }).pipe(Effect.provide(testClient())))

  it.live("downloadedFrom: the bytes each peer supplied (two seeders with disjoint halves)", () =>
    Effect.gen(function*() {
      const n = single.metainfo.pieceCount
      const low = Array.from({ length: Math.floor(n / 2) }, (_, i) => i)
      const high = Array.from({ length: n - low.length }, (_, i) => low.length + i)
      const a = yield* start(single, { pieces: low })
      const b = yield* start(single, { pieces: high })
      const dir = tempDir("from")
      const from = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(single.metainfo, {
          outputDir: dir,
          peers: [{ host: "127.0.0.1", port: a.port }, { host: "127.0.0.1", port: b.port }],
          trackers: false
        })
        yield* d.done
        return d.downloadedFrom()
      }))
      sameFiles(single, dir)
      const bytesOf = (pieces: ReadonlyArray<number>) =>
        pieces.reduce((sum, i) => sum + Math.min(single.metainfo.pieceLength, single.payload.length - i * single.metainfo.pieceLength), 0)
      expect([...from].sort((x, y) => x.address.localeCompare(y.address))).toEqual(
        [{ address: `127.0.0.1:${a.port}`, bytes: bytesOf(low) }, { address: `127.0.0.1:${b.port}`, bytes: bytesOf(high) }]
          .sort((x, y) => x.address.localeCompare(y.address))
      )
      expect(from[0]!.bytes).toBeGreaterThanOrEqual(from[1]!.bytes) // most bytes first
    }).pipe(Effect.provide(testClient())))

  it.live("finishes from another seeder when one disappears half-way", () =>
    Effect.gen(function*() {
      const quitter = yield* start(single, { stopAfterBlocks: 20 })
      const rescue = yield* start(single)
      const dir = tempDir("quit")
      yield* download(single, dir, [quitter.port, rescue.port])
      sameFiles(single, dir)
      expect(quitter.served()).toBeLessThanOrEqual(20)
      expect(rescue.served()).toBeGreaterThan(0)
    }).pipe(Effect.provide(testClient())))

  it.live("rejects corrupt blocks, bans the liar and completes from the honest peer", () =>
    Effect.gen(function*() {
      // The honest seeder keeps us choked until the liar is banned, so every block comes from the liar at first:
      // its pieces fail with it as their only source, which bans it (`soleStrikesToBan`, 2) before anyone else
      // serves a byte. Should no ban come, the download gives up once far more pieces have failed than a ban needs.
      let release!: () => void
      const gate = new Promise<void>((resolve) => release = resolve)
      const liar = yield* start(single, { corrupt: true })
      const honest = yield* start(single, { unchokeWhen: gate })
      const liarAddr = `127.0.0.1:${liar.port}`
      const dir = tempDir("liar")
      const events: Array<TorrentEvent.TorrentEvent> = []
      let honestServedAtBan: number | undefined
      const outcome = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(single.metainfo, {
          outputDir: dir,
          peers: [{ host: "127.0.0.1", port: liar.port }, { host: "127.0.0.1", port: honest.port }],
          trackers: false
        })
        const noBan = yield* Deferred.make<void>()
        let failures = 0
        const collector = yield* Effect.forkScoped(Stream.runForEach(d.events, (e) =>
          Effect.sync(() => {
            events.push(e)
            if (e._tag === "PeerBanned" && honestServedAtBan === undefined) {
              honestServedAtBan = honest.served()
              release()
            }
            if (e._tag === "PieceFailed" && ++failures >= 4 * single.metainfo.pieceCount) {
              Deferred.unsafeDone(noBan, Exit.void)
            }
          })))
        return yield* Effect.raceFirst(
          d.done.pipe(Effect.zipRight(Fiber.join(collector)), Effect.as("completed" as const)),
          Deferred.await(noBan).pipe(Effect.as("pieces kept failing and nobody was banned" as const))
        )
      }))
      expect(outcome).toBe("completed")
      expect(liar.served()).toBeGreaterThanOrEqual(1)
      // Exactly one ban, of the liar; it came before the honest seeder had served anything.
      const banned = events.flatMap((e) => (e._tag === "PeerBanned" ? [e.addr] : []))
      expect(banned).toEqual([liarAddr])
      expect(honestServedAtBan).toBe(0)
      expect(honest.served()).toBeGreaterThan(0)
      // The ban took two failed pieces; every failed piece had the liar among its sources.
      const failed = events.flatMap((e) => (e._tag === "PieceFailed" ? [e] : []))
      expect(failed.length).toBeGreaterThanOrEqual(2)
      expect(failed.filter((e) => !e.peers.includes(liarAddr))).toEqual([])
      expect(events.at(-1)?._tag).toBe("Completed")
      sameFiles(single, dir)
    }).pipe(Effect.provide(testClient())))

  it.live("bans a peer whose pieces fail alone, never dials it again, and completes from an honest one", () =>
    Effect.gen(function*() {
      const liar = yield* start(single, { corrupt: true })
      // A control peer that hangs up after each handshake: redialled on the same (short) schedule as any peer whose
      // session ended. A redial of the liar would be scheduled when its session ended at the ban, so before the
      // control's next two; once those happened, the liar would have been dialled too.
      const control = yield* Effect.promise(() => adversary(single, { script: (peer) => peer.destroy() }))
      yield* Effect.addFinalizer(() => Effect.promise(() => control.stop()))
      const dir = tempDir("liar2")
      const seen: Array<TorrentEvent.TorrentEvent> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(single.metainfo, {
          outputDir: dir,
          peers: [{ host: "127.0.0.1", port: liar.port }, { host: "127.0.0.1", port: control.port }],
          trackers: false
        })
        yield* d.events.pipe(
          Stream.takeUntil((e) => e._tag === "PeerBanned"),
          Stream.runForEach((e) => Effect.sync(() => seen.push(e)))
        )
        const connections = liar.connections()
        const redials = control.connections()
        yield* Effect.sleep("10 millis").pipe(Effect.repeat({ until: () => control.connections() >= redials + 2 }))
        expect(liar.connections()).toBe(connections)
      }))
      const banned = seen.find((e) => e._tag === "PeerBanned")
      expect(banned?._tag === "PeerBanned" && banned.addr).toBe(`127.0.0.1:${liar.port}`)
      expect(seen.some((e) => e._tag === "PieceFailed")).toBe(true)
      const honest = yield* start(single)
      yield* download(single, dir, [liar.port, honest.port])
      sameFiles(single, dir)
    }).pipe(Effect.scoped, Effect.provide(testClient({ reconnect: quickly, reconnectKnown: quickly }))))

  it.live("moves a stalling peer's blocks elsewhere", () =>
    Effect.gen(function*() {
      const staller = yield* start(single, { stall: true })
      const honest = yield* start(single)
      const dir = tempDir("stall")
      yield* download(single, dir, [staller.port, honest.port])
      sameFiles(single, dir)
      expect(staller.served()).toBe(0)
    }).pipe(Effect.provide(testClient())))

  it.live("resumes: a second run fetches only the missing pieces", () =>
    Effect.gen(function*() {
      const big = build({
        name: "resume.bin",
        single: true,
        files: [{ path: ["resume.bin"], length: 2_000_003 }],
        pieceLength: 65536
      })
      const dir = tempDir("resume")
      const first = yield* start(big)
      let verified = 0
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(big.metainfo, {
          outputDir: dir,
          peers: [{ host: "127.0.0.1", port: first.port }],
          trackers: false
        })
        yield* d.events.pipe(
          Stream.takeWhile(() => verified < 10),
          Stream.runForEach((e) => Effect.sync(() => e._tag === "PieceVerified" && verified++))
        )
      }))
      expect(verified).toBeGreaterThanOrEqual(10)
      const second = yield* start(big)
      const out = yield* download(big, dir, [second.port])
      const started = out.events.find((e) => e._tag === "Started")
      const had = started?._tag === "Started" ? started.have : 0
      expect(had).toBeGreaterThanOrEqual(10)
      const blocksPerPiece = 4
      const totalBlocks = Math.ceil(big.payload.length / 16384)
      expect(second.served()).toBeLessThanOrEqual(totalBlocks - had * blocksPerPiece + blocksPerPiece)
      expect(Buffer.compare(readFile(big, dir, 0), Buffer.from(big.files[0]!))).toBe(0)
    }).pipe(Effect.provide(testClient())))

  it.live("--only: downloads and creates only the selected files", () =>
    Effect.gen(function*() {
      const s = yield* start(multi)
      const dir = tempDir("only")
      // info numbering leaves the pad out: 0 a.bin, 1 sub/b.bin, 2 empty.txt, 3 sub/c.bin
      yield* download(multi, dir, [s.port], { only: [3] })
      expect(Buffer.compare(readFile(multi, dir, 4), Buffer.from(multi.files[4]!))).toBe(0)
      expect(fileExists(multi, dir, 0)).toBe(false)
      expect(fileExists(multi, dir, 2)).toBe(false)
      expect(Fs.existsSync(dir)).toBe(true)
    }).pipe(Effect.provide(testClient())))

  it.live("fails with no-peers when nobody answers", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(deadPort)
      const r = yield* download(single, tempDir("nopeers"), [port]).pipe(Effect.flip)
      expect(r.reason).toBe("no-peers")
    }).pipe(Effect.provide(testClient({ noPeersTimeout: "1 second" }))))
})
