/**
 * The API over the real session (SessionLive over a test Client) and an in-process seeder on loopback: a torrent
 * added through the typed client downloads, its events arrive over SSE, a file is served with ranges, the metrics
 * count it, and it is removed with its data. The fake session's tests pin the HTTP contract; this one checks that
 * the real session's answers fit it (a value that does not match its Schema would be a 500).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Server from "../../src/api/Server.ts"
import * as SessionLive from "../../src/session/SessionLive.ts"
import { tempDir, testClient } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"
import { client, raw } from "./support.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const built = build({
  name: "api-live",
  pieceLength: 16384,
  files: [{ path: ["video.mp4"], length: 150_001 }, { path: ["notes.txt"], length: 999 }]
})

describe("the API over SessionLive", () => {
  it.scopedLive("add, events, list/get, a file with ranges, metrics, remove with data", () =>
    Effect.gen(function*() {
      const seeder = yield* Effect.promise(() => seed(built))
      seeders.push(seeder)
      const stateDir = tempDir("api-live-state")
      const downloadDir = tempDir("api-live-dl")
      // The server in a scope with the session it serves.
      const session = yield* Layer.build(SessionLive.layer({ stateDir, settings: { downloadDir } }).pipe(Layer.provide(testClient({ stateDir }))))
      const { port, url } = yield* Server.start({ port: 0, eventLoopLag: false }).pipe(Effect.provide(session))
      const remote = yield* client(url)

      const events = yield* remote.events.pipe(
        Stream.takeUntil((e) => e._tag === "Completed"),
        Stream.runCollect,
        Effect.fork
      )
      // the subscription starts when the stream does: give it a moment before anything happens
      yield* Effect.sleep("200 millis")
      const added = yield* remote.add({ _tag: "Metainfo", bytes: built.bytes }, { peers: [`127.0.0.1:${seeder.port}`] })
      expect(added).toMatchObject({ name: "api-live", duplicate: false })
      expect((yield* remote.add({ _tag: "Metainfo", bytes: built.bytes })).duplicate).toBe(true)

      const seen = Chunk.toReadonlyArray(yield* Fiber.join(events).pipe(Effect.timeout("30 seconds")))
      expect(seen.filter((e) => e._tag === "Added")).toMatchObject([{ torrent: { id: added.id, name: "api-live" } }])
      expect(seen.at(-1)).toEqual({ _tag: "Completed", id: added.id, infoHash: added.infoHash })

      const detail = yield* remote.get(added.infoHash)
      expect(detail.files.map((f) => [f.index, f.path, f.length])).toEqual([[0, "api-live/video.mp4", 150_001], [1, "api-live/notes.txt", 999]])
      expect((yield* remote.list).map((t) => [t.id, t.complete])).toEqual([[added.id, true]])
      expect((yield* remote.peers(added.id)).length).toBeGreaterThanOrEqual(0)
      expect(yield* remote.trackers(added.id)).toEqual([])
      expect((yield* remote.stats).torrents).toBe(1)

      const video = built.files[0]!
      const r = yield* raw(port, { path: `/api/torrents/${added.id}/files/0`, headers: { range: "bytes=100000-" } })
      expect([r.status, r.headers["content-type"], r.headers["content-range"]]).toEqual([206, "video/mp4", "bytes 100000-150000/150001"])
      expect(new Uint8Array(r.body)).toEqual(video.slice(100_000))
      expect(yield* remote.readFile(added.infoHash, 1)).toEqual(built.files[1]!)
      const suffix = yield* raw(port, { path: `/api/torrents/${added.id}/files/0`, headers: { range: "bytes=-10" } })
      expect(new Uint8Array(suffix.body)).toEqual(video.slice(-10))

      expect(yield* remote.metrics).toMatch(/effect_torrent_torrents\{state="(seeding|finished)"\} 1\n/)

      yield* remote.remove(added.id, { deleteData: true })
      expect(yield* remote.list).toEqual([])
      expect(Fs.existsSync(Path.join(downloadDir, "api-live", "video.mp4"))).toBe(false)
    }), { timeout: 60_000 })
})
