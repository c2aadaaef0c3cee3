/**
 * Interop with aria2c at the peer level: our session downloads a payload from a real aria2c seeder on 127.0.0.1;
 * and an aria2c leecher that completes sends its peers (our seeder, our leecher) `have all` after other messages
 * (aria2 1.36 `DefaultBtInteractive::checkHave` replaces a batch of haves by a bitfield, or by `have all` once it
 * is complete), which must be taken as an update of what it has, not as a protocol violation.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1 } from "../../src/core/InfoHash.ts"
import * as PeerSession from "../../src/peer/PeerSession.ts"
import * as Client from "../../src/session/Client.ts"
import * as Aria2Seeder from "../support/aria2Seeder.ts"
import { writeData } from "../support/data.ts"
import { tempDir } from "../support/download.ts"
import * as Opentracker from "../support/opentracker.ts"
import { freePort } from "../support/realSeeders.ts"
import { build } from "../support/seeder.ts"
import { hexOf, trackedClient, untilSeeders, withAnnounce } from "../support/tracked.ts"
import { TestTorrent } from "./support.ts"

const pieceLength = 256 * 1024
const payload = Uint8Array.from({ length: 9 * pieceLength + 7_777 }, (_, i) => ((i * 2654435761) >>> 13) & 0xff)

describe.runIf(Aria2Seeder.shouldRun("peer interop with aria2c"))("PeerSession interop", () => {
  it.scopedLive("downloads every piece byte-exact from an aria2c seeder", () =>
    Effect.gen(function*() {
      const seeder = yield* Effect.acquireRelease(
        Effect.promise(() => Aria2Seeder.start(payload, 18)),
        (s) => Effect.promise(() => s.stop())
      )
      const t = new TestTorrent({ payload, pieceLength, infoHash: Bytes.fromHex(seeder.infoHash) as InfoHashV1 })
      const complete = yield* Deferred.make<void>()
      t.onComplete = () => Deferred.unsafeDone(complete, Exit.void)
      const fiber = yield* Effect.fork(PeerSession.connect({ host: "127.0.0.1", port: seeder.port, handle: t }))
      const ended = Fiber.join(fiber).pipe(
        Effect.catchAll((e) => Effect.dieMessage(`session ended early: ${e.message}\n${seeder.log()}`))
      )
      yield* Deferred.await(complete).pipe(Effect.raceFirst(ended), Effect.timeout("20 seconds"))
      expect(t.hashFailures).toBe(0)
      expect(Bytes.equals(t.data, payload)).toBe(true)
      yield* Fiber.interrupt(fiber)
    }), 30_000)
})

describe.runIf(Aria2Seeder.shouldRun("aria2c leecher") && Opentracker.shouldRun("aria2c leecher"))("an aria2c leecher", () => {
  it.scopedLive(
    "its late have-all (in place of its last haves once it completes) is an update, not a protocol violation",
    () =>
      Effect.gen(function*() {
        // Our seeder and our (throttled) leecher announce to opentracker; then an aria2c leecher joins, gets both from
        // the tracker, finishes long before our leecher and tells its peers with haves, bitfields, then `have all`.
        const pre = build({
          name: "late-have-all",
          pieceLength: 65536,
          files: [{ path: ["a.bin"], length: 6_000_007 }, { path: ["b.bin"], length: 1_234 }]
        })
        const tracker = yield* Effect.acquireRelease(
          Effect.promise(() => Opentracker.start([hexOf(pre)])),
          (t) => Effect.promise(() => t.stop())
        )
        const b = withAnnounce(pre, tracker.httpUrl)
        const data = tempDir("late-seed")
        writeData(b, data)
        const ends: Array<string> = []
        const watch = (d: Client.Download) =>
          Effect.forkScoped(Stream.runForEach(d.subscribe, (e) =>
            Effect.sync(() => {
              if (e._tag === "PeerDisconnected" || e._tag === "PeerBanned") ends.push(`${e._tag} ${e.addr}: ${e.reason}`)
            })))
        const ports: Array<number> = []
        const seeder = yield* Layer.build(trackedClient())
        ports.push((yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(seeder)))!.address.port)
        yield* watch(yield* Client.seed(b.metainfo, { dataDir: data, trackers: true }).pipe(Effect.provide(seeder)))
        yield* Effect.promise(() => untilSeeders(tracker.port, b, 1))
        const leecher = yield* Layer.build(trackedClient({ downLimit: 1_000_000 }))
        ports.push((yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(leecher)))!.address.port)
        const dir = tempDir("late-out")
        const d = yield* Client.download(b.metainfo, { outputDir: dir }).pipe(Effect.provide(leecher))
        yield* watch(d)
        yield* Effect.promise(() => untilPeers(tracker.port, b, 2))
        const out = tempDir("late-aria2")
        const torrent = `${out}.torrent`
        Fs.writeFileSync(torrent, b.bytes)
        const log = `${out}.log`
        const port = yield* Effect.promise(() => freePort())
        yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn("aria2c", [
              `--dir=${out}`, "--seed-ratio=0.0", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
              "--enable-peer-exchange=false", "--summary-interval=0", "--file-allocation=none", `--listen-port=${port}`,
              "--interface=127.0.0.1", "-l", log, "--log-level=info", torrent
            ], { stdio: "ignore" })
          ),
          (c) => Effect.sync(() => c.exitCode === null && c.signalCode === null && c.pid !== undefined && process.kill(c.pid, "SIGKILL"))
        )
        yield* d.done.pipe(Effect.timeoutFail({ duration: "150 seconds", onTimeout: () => new Error(ends.join("\n")) }))
        // aria2c sent one of our clients `have all` after other messages (once it had all pieces) ...
        const lines = Fs.readFileSync(log, "utf8").split("\n")
        const lateHaveAll = ports.filter((p) => {
          const sent = lines.filter((l) => l.includes(`To: 127.0.0.1:${p} `))
          return sent.findIndex((l) => l.endsWith(" have all")) > 0
        })
        expect(lateHaveAll.length, lines.filter((l) => / have all$/.test(l)).join("\n")).toBeGreaterThan(0)
        // ... and no session ended as a protocol violation or a ban.
        expect(ends.filter((e) => /PeerBanned|protocol/.test(e))).toEqual([])
        for (const f of [out, torrent, log]) Fs.rmSync(f, { recursive: true, force: true })
      }),
    180_000 // a safety net: ~25 s here, more than 60 on a loaded machine
  )
})

/** Polls the tracker's scrape until it counts `n` peers (complete + incomplete) for `b` (bounded, 20 s). */
const untilPeers = async (port: number, b: ReturnType<typeof build>, n: number) => {
  const ih = hexOf(b).replace(/../g, "%$&")
  for (let i = 0; i < 200; i++) {
    const body = await fetch(`http://127.0.0.1:${port}/scrape?info_hash=${ih}`).then((r) => r.text(), () => "")
    const complete = Number(/8:completei(\d+)e/.exec(body)?.[1] ?? 0)
    const incomplete = Number(/10:incompletei(\d+)e/.exec(body)?.[1] ?? 0)
    if (complete + incomplete >= n) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`the tracker never counted ${n} peers`)
}
