/**
 * Several real seeders at once, all found through opentracker (no peer given to our client): aria2c,
 * transmission-cli and python3-libtorrent seeding the same multi-file torrent; a seeder SIGKILLed (by PID) half-way
 * while another finishes the job; a libtorrent seeder next to in-process hostile peers (corrupt blocks, a staller);
 * and a download stopped half-way and started again (only the missing pieces fetched). SHA-256 per file.
 *
 * Our client announces a port where nothing listens, so every session is one it dialled, at the listening address
 * the tracker gave for a seeder: `downloadedFrom()` then names each seeder by that address.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as PeerState from "../../src/peer/PeerState.ts"
import * as Client from "../../src/session/Client.ts"
import type * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import { tempDir } from "../support/download.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built, deadPort, seed } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"
import { stopAfterAll } from "../support/stopAfterAll.ts"

const keep = stopAfterAll()

const MB = 1_000_000

const payload = (name: string) =>
  build({
    name,
    pieceLength: 262144,
    files: [
      { path: ["a.bin"], length: 9 * MB + 12_345 },
      { path: ["sub", "b.bin"], length: 8 * MB - 777 },
      { path: ["sub", "c.bin"], length: 7 * MB + 1 },
      { path: ["z.txt"], length: 3 }
    ]
  })

const addressOf = (s: Real.RealSeeder) => `127.0.0.1:${s.port}`

/** Our client: trackers only, announcing a dead port (no inbound sessions). */
const client = (port: number) => Tracked.trackedClient({ listen: undefined, port })

/**
 * Each seeder's upload is capped: unthrottled, libtorrent alone sends the whole torrent in about a second, before the
 * others have unchoked us, and the half-way kill needs a download left to finish. 24 MB at 2.5–3 MB/s per seeder.
 */
const capped = (start: (b: Built, o: Real.SeederOptions) => Promise<Real.RealSeeder>, upLimit: number) => (b: Built) =>
  start(b, { upLimit })

const available = (...names: ReadonlyArray<"aria2c" | "libtorrent" | "transmission">) =>
  names.every((n) => Real.shouldRun(n)) && Opentracker.shouldRun("swarm of real seeders")

/** Starts a tracker for `pre`'s info-hash and the given seeders announcing to it; waits until it counts them all. */
const swarm = (pre: Built, seeders: ReadonlyArray<(b: Built) => Promise<Real.RealSeeder>>) =>
  Effect.gen(function*() {
    const tracker = keep(yield* Effect.promise(() => Opentracker.start([Tracked.hexOf(pre)])))
    const b = Tracked.withAnnounce(pre, tracker.httpUrl)
    const started = yield* Effect.promise(() => Promise.all(seeders.map((start) => start(b).then(keep))))
    yield* Effect.promise(() => Tracked.untilSeeders(tracker.port, b, seeders.length))
    return { b, seeders: started }
  })

describe.runIf(available("aria2c", "libtorrent", "transmission"))("three real seeders at once", () => {
  it.live("aria2c, transmission-cli and libtorrent seed the same torrent: it completes, from more than one of them", () =>
    Effect.gen(function*() {
      const { b, seeders } = yield* swarm(payload("three"), [
        capped(Real.aria2, 3 * MB),
        capped(Real.transmission, 3 * MB),
        capped(Real.libtorrent, 3 * MB)
      ])
      const port = yield* Effect.promise(deadPort)
      const dir = tempDir("three")
      const { events, from } = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(b.metainfo, { outputDir: dir })
        const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
        yield* d.done.pipe(Effect.timeoutFail({
          duration: "90 seconds",
          onTimeout: () => new Error(`timed out; from ${JSON.stringify(d.downloadedFrom())}`)
        }))
        return { events: Chunk.toReadonlyArray(yield* Fiber.join(collected)), from: d.downloadedFrom() }
      })).pipe(Effect.provide(client(port)))
      Tracked.expectIdentical(b, dir)
      Tracked.expectOnlyDataFiles(b, dir)
      const connected = new Set(events.flatMap((e) => (e._tag === "PeerConnected" ? [e.addr] : [])))
      console.log(`three seeders: ${JSON.stringify(from)}; aria2c, transmission, libtorrent: ${seeders.map(addressOf)}`)
      for (const s of seeders) expect(connected, s.log()).toContain(addressOf(s))
      // every one dialled over TCP from the tracker's answer (issue 19 item 5)
      expect(new Set(events.flatMap((e) => (e._tag === "PeerConnected" ? [`${e.transport} ${e.source}`] : []))))
        .toEqual(new Set(["tcp tracker"]))
      const contributors = seeders.filter((s) => (from.find((f) => f.address === addressOf(s))?.bytes ?? 0) > 0)
      expect(contributors.length, JSON.stringify(from)).toBeGreaterThanOrEqual(2)
      expect(from.reduce((n, f) => n + f.bytes, 0)).toBe(b.metainfo.totalLength)
      expect(events.some((e) => e._tag === "PeerBanned")).toBe(false)
    }), 150_000)
})

describe.runIf(available("aria2c", "libtorrent"))("a real seeder that disappears half-way", () => {
  it.live("SIGKILLed once 40% of the pieces are verified: the other seeder finishes the job, byte-identical", () =>
    Effect.gen(function*() {
      const { b, seeders } = yield* swarm(payload("killed"), [capped(Real.aria2, 2.5 * MB), capped(Real.libtorrent, 2.5 * MB)])
      const n = b.metainfo.pieceCount
      const port = yield* Effect.promise(deadPort)
      const dir = tempDir("killed")
      const outcome = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(b.metainfo, { outputDir: dir })
        let verified = 0
        let kill: { victim: Real.RealSeeder; at: number; before: ReadonlyArray<{ address: string; bytes: number }> } |
          undefined
        const seen: Array<TorrentEvent.TorrentEvent> = []
        const watcher = yield* Effect.forkScoped(Stream.runForEach(d.events, (e) =>
          Effect.sync(() => {
            seen.push(e)
            if (e._tag !== "PieceVerified") return
            verified++
            if (kill !== undefined || verified < Math.ceil(0.4 * n)) return
            // The seeder that gave the most so far (so its loss matters), killed without warning.
            const before = d.downloadedFrom()
            const victim = seeders.find((s) => before[0]?.address === addressOf(s)) ?? seeders[0]!
            process.kill(victim.pid, "SIGKILL")
            kill = { victim, at: verified, before }
          })))
        yield* d.done.pipe(Effect.timeoutFail({
          duration: "90 seconds",
          onTimeout: () => new Error(`timed out after ${verified}/${n} pieces; from ${JSON.stringify(d.downloadedFrom())}`)
        }))
        yield* Fiber.join(watcher)
        return { kill, after: d.downloadedFrom(), seen }
      })).pipe(Effect.provide(client(port)))
      Tracked.expectIdentical(b, dir)
      Tracked.expectOnlyDataFiles(b, dir)
      const kill = outcome.kill
      expect(kill).toBeDefined()
      if (kill === undefined) return
      expect(kill.at).toBeLessThan(n) // killed half-way, not after the end
      const bytes = (list: ReadonlyArray<{ address: string; bytes: number }>, s: Real.RealSeeder) =>
        list.find((f) => f.address === addressOf(s))?.bytes ?? 0
      const rescuer = seeders.find((s) => s !== kill.victim)!
      console.log(`killed ${addressOf(kill.victim)} at ${kill.at}/${n} pieces: before ${JSON.stringify(kill.before)}, ` +
        `after ${JSON.stringify(outcome.after)}`)
      expect(bytes(kill.before, kill.victim)).toBeGreaterThan(0)
      // From the dead seeder at most what it had sent before it died (our requests in flight, then in our socket
      // buffer: the pipeline bound), the rest from the other.
      const inFlight = PeerState.defaults.maxPipeline * 16384
      expect(bytes(outcome.after, kill.victim)).toBeLessThanOrEqual(bytes(kill.before, kill.victim) + inFlight)
      expect(bytes(outcome.after, rescuer)).toBeGreaterThan(bytes(kill.before, rescuer))
      expect(outcome.after.reduce((s, f) => s + f.bytes, 0)).toBe(b.metainfo.totalLength)
      expect(outcome.seen.some((e) => e._tag === "PeerDisconnected" && e.addr === addressOf(kill.victim))).toBe(true)
    }), 150_000)
})

describe.runIf(available("libtorrent"))("a real seeder next to hostile peers, and resume", () => {
  it.live("libtorrent (through opentracker) beside an in-process peer sending corrupt blocks and one that stalls", () =>
    Effect.gen(function*() {
      const { b, seeders } = yield* swarm(payload("hostile"), [capped(Real.libtorrent, 3 * MB)])
      const liar = keep(yield* Effect.promise(() => seed(b, { corrupt: true })))
      const staller = keep(yield* Effect.promise(() => seed(b, { stall: true })))
      const hostile = [liar, staller].map((s) => ({ host: "127.0.0.1", port: s.port }))
      const port = yield* Effect.promise(deadPort)
      const dir = tempDir("hostile")
      const { events, from } = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(b.metainfo, { outputDir: dir, peers: hostile })
        const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
        yield* d.done.pipe(Effect.timeoutFail({ duration: "90 seconds", onTimeout: () => new Error("timed out") }))
        return { events: Chunk.toReadonlyArray(yield* Fiber.join(collected)), from: d.downloadedFrom() }
      })).pipe(Effect.provide(client(port)))
      Tracked.expectIdentical(b, dir)
      // The liar's pieces failed their hash check, were fetched again, and it was banned; nobody else was.
      expect(liar.served()).toBeGreaterThan(0)
      expect(events.some((e) => e._tag === "PieceFailed")).toBe(true)
      const banned = events.flatMap((e) => (e._tag === "PeerBanned" ? [e.addr] : []))
      expect(banned).toEqual([`127.0.0.1:${liar.port}`])
      // The staller never answered; its requests moved to the others. The real seeder gave the good data.
      expect(staller.served()).toBe(0)
      expect(from.find((f) => f.address === addressOf(seeders[0]!))?.bytes ?? 0).toBeGreaterThan(0)
    }), 120_000)

  it.live("stopped half-way, started again: only the missing pieces are fetched from the real seeder", () =>
    Effect.gen(function*() {
      const { b } = yield* swarm(payload("resume"), [capped(Real.libtorrent, 4 * MB)])
      const n = b.metainfo.pieceCount
      const port = yield* Effect.promise(deadPort)
      const dir = tempDir("resume")
      const stateDir = tempDir("resume-state")
      const layer = Tracked.trackedClient({ listen: undefined, port, stateDir })
      // First run: leave (closing the scope, as Ctrl-C does) once half of the pieces are verified.
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(b.metainfo, { outputDir: dir })
        let verified = 0
        yield* Stream.runForEach(
          d.events.pipe(Stream.takeWhile(() => verified < n / 2)),
          (e) => Effect.sync(() => e._tag === "PieceVerified" && verified++)
        ).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("no progress") }))
        return verified
      })).pipe(Effect.provide(layer))
      expect(first).toBeGreaterThanOrEqual(n / 2)
      expect(first).toBeLessThan(n)
      // Second run: the record vouches for what the first verified; exactly the rest is fetched.
      const second = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(b.metainfo, { outputDir: dir })
        const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
        yield* d.done.pipe(Effect.timeoutFail({ duration: "90 seconds", onTimeout: () => new Error("timed out") }))
        return { events: Chunk.toReadonlyArray(yield* Fiber.join(collected)), from: d.downloadedFrom() }
      })).pipe(Effect.provide(layer))
      Tracked.expectIdentical(b, dir)
      const started = second.events.find((e) => e._tag === "Started")
      expect(started?._tag === "Started" && started.have).toBeGreaterThanOrEqual(first)
      const left = started?._tag === "Started" ? started.bytesLeft : -1
      expect(left).toBeLessThan(b.metainfo.totalLength)
      expect(second.from.reduce((s, f) => s + f.bytes, 0)).toBe(left)
      expect(second.events.filter((e) => e._tag === "PieceVerified").length).toBe(n - (started?._tag === "Started" ? started.have : 0))
    }), 120_000)
})
