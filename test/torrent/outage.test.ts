/**
 * Network faults around a download, over real loopback sockets: every tracker down while known peers carry the
 * download, and every peer gone for a while (longer than the no-peers timeout) then back on the same port, which
 * the download picks up by itself, without a restart (LANDSCAPE.md §3.13).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Net from "node:net"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { readFile, tempDir, testClient } from "../support/download.ts"
import { build, deadPort, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))
const start = (...args: Parameters<typeof seed>) =>
  Effect.promise(() => seed(...args)).pipe(Effect.tap((s) => Effect.sync(() => seeders.push(s))))

const waitUntil = (what: string, f: () => boolean) =>
  Effect.sleep("20 millis").pipe(
    Effect.repeat({ until: f }),
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`gave up waiting for ${what}`) }),
    Effect.orDie
  )

/** Accepts connections on `port` and drops each at once (a peer that is down), counting them. */
const rejector = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly count: () => number; readonly server: Net.Server }>((resume) => {
      let count = 0
      const server = Net.createServer((s) => {
        count++
        s.destroy()
      })
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed({ count: () => count, server })))
    }),
    (r) => Effect.async<void>((resume) => void r.server.close(() => resume(Effect.void)))
  )

describe("outages", () => {
  it.live("every tracker down: the known peers carry the download", () =>
    Effect.gen(function*() {
      const [a, b, c] = [yield* Effect.promise(deadPort), yield* Effect.promise(deadPort), yield* Effect.promise(deadPort)]
      const http = [`http://127.0.0.1:${a}/announce`, `http://127.0.0.1:${b}/announce`]
      const built = build({
        name: "trackers-down.bin",
        single: true,
        files: [{ path: ["trackers-down.bin"], length: 400_001 }],
        pieceLength: 32768,
        announceList: [[http[0]!], [http[1]!], [`udp://127.0.0.1:${c}`]]
      })
      let release!: () => void
      const gate = new Promise<void>((resolve) => release = resolve)
      const honest = yield* start(built, { unchokeWhen: gate })
      const dir = tempDir("trackers-down")
      const failed = new Set<string>()
      const events = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(built.metainfo, { outputDir: dir, peers: [{ host: "127.0.0.1", port: honest.port }] })
        const collector = yield* Effect.forkScoped(
          d.events.pipe(
            Stream.tap((e) => Effect.sync(() => e._tag === "TrackerError" && failed.add(e.url))),
            Stream.runCollect
          )
        )
        // Both HTTP tiers refused before the honest peer serves anything: the download has only its known peer.
        yield* waitUntil("both HTTP trackers to fail", () => http.every((u) => failed.has(u)))
        release()
        yield* d.done
        return Chunk.toReadonlyArray(yield* Fiber.join(collector))
      }))
      expect(Buffer.compare(readFile(built, dir, 0), Buffer.from(built.files[0]!))).toBe(0)
      expect(events.at(-1)?._tag).toBe("Completed")
      expect(events.some((e) => e._tag === "TrackerWarning")).toBe(false)
    }).pipe(
      Effect.provide(
        Client.layerWith({ noPeersTimeout: "1 second", peerConfig: { tickInterval: 100 } }).pipe(
          Layer.provide(TrackerLive.layer()),
          Layer.provide(Hasher.layerInline)
        )
      )
    ))

  it.live("every peer gone for longer than the no-peers timeout, then back on the same port: resumes by itself", () =>
    Effect.gen(function*() {
      const built = build({
        name: "outage.bin",
        single: true,
        files: [{ path: ["outage.bin"], length: 2_000_003 }],
        pieceLength: 65536
      })
      const first = yield* start(built, { stopAfterBlocks: 20 })
      const port = first.port
      const dir = tempDir("outage")
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(built.metainfo, { outputDir: dir, peers: [{ host: "127.0.0.1", port }] })
        const collector = yield* Effect.forkScoped(Stream.runDrain(d.events))
        yield* waitUntil("the first seeder to stop after 20 blocks", () => first.served() >= 20)
        yield* Effect.promise(() => first.stop())
        expect(d.stats().bytesLeft).toBeGreaterThan(0)
        // The seeder is down: every redial is dropped at once, for many times the no-peers timeout.
        const down = yield* rejector(port)
        yield* waitUntil("ten redials while the peer is down", () => down.count() >= 10)
        yield* Effect.async<void>((resume) => void down.server.close(() => resume(Effect.void)))
        const back = yield* start(built, { port })
        yield* d.done
        yield* Fiber.join(collector)
        expect(back.served()).toBeGreaterThan(0)
        expect(first.served() + back.served()).toBeGreaterThanOrEqual(Math.ceil(2_000_003 / 16384))
      }))
      expect(Buffer.compare(readFile(built, dir, 0), Buffer.from(built.files[0]!))).toBe(0)
    }).pipe(
      Effect.provide(testClient({
        noPeersTimeout: "1 second",
        // Known peers: every 200 ms, forever (the default is 1 s doubling up to 60 s; TorrentRuntime.test.ts).
        reconnectKnown: Schedule.spaced("200 millis")
      }))
    ))
})
