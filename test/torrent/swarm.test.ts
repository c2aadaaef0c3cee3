/**
 * A swarm of our own clients on 127.0.0.1: one effect-torrent seeder and four effect-torrent leechers, in process,
 * each a separate `Client` (its own peer id and listening socket), meeting through the npm `bittorrent-tracker`
 * server started in process. The seeder's upload is throttled (`upLimit`), so the four copies cannot come from it
 * alone in the time the test takes: the leechers must trade pieces. Leechers keep serving after completion
 * (`seed: true`), as real ones do.
 *
 * Checked: every leecher's files byte for byte; each leecher got bytes from some peer that is not the seeder (its
 * per-peer `transfers()`, by peer id), and that peer's own upload counter toward it covers them; per-peer totals
 * add up to each client's download and upload counters; the seeder uploaded less than four copies, and what the
 * leechers traded makes up the difference.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import * as BittorrentTracker from "../support/bittorrentTracker.ts"
import { writeData } from "../support/data.ts"
import { tempDir } from "../support/download.ts"
import { build } from "../support/seeder.ts"

const LEECHERS = 4
/** Bytes/s the seeder may upload in total: 6 MiB × 4 leechers would take it 24 s alone. */
const SEEDER_UP_LIMIT = 1024 * 1024

let tracker: BittorrentTracker.BittorrentTracker
beforeAll(async () => {
  tracker = await BittorrentTracker.start()
})
afterAll(() => tracker?.close())

/** One client with its own peer id and listener, talking to real trackers (on loopback here). */
const client = (upLimit: number | undefined) =>
  Client.layerWith({
    listen: { host: "127.0.0.1", port: 0 },
    upLimit,
    noPeersTimeout: "30 seconds"
  }).pipe(Layer.provide(TrackerLive.layer()), Layer.provide(Hasher.layerInline))

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

describe("swarm: one effect-torrent seeder, four effect-torrent leechers", () => {
  it.scopedLive("completes byte-identical, the leechers uploading to each other", () =>
    Effect.gen(function*() {
      const built = build({
        name: "swarm",
        pieceLength: 131072,
        announce: tracker.httpUrl,
        files: [
          { path: ["a.bin"], length: 4 * 1024 * 1024 + 12_345 },
          { path: ["sub", "b.bin"], length: 2 * 1024 * 1024 - 999 }
        ]
      })
      const seedDir = tempDir("swarm-seed")
      writeData(built, seedDir)
      const seederContext = yield* Layer.build(client(SEEDER_UP_LIMIT))
      const seederId = Bytes.toHex(Context.get(seederContext, Client.Client).peerId)
      const seeder = yield* Client.seed(built.metainfo, { dataDir: seedDir }).pipe(Effect.provide(seederContext))

      const leechers = yield* Effect.forEach(
        Array.from({ length: LEECHERS }, (_, i) => i),
        (i) =>
          Effect.gen(function*() {
            const context = yield* Layer.build(client(undefined))
            const dir = tempDir(`swarm-leech${i}`)
            const d = yield* Client.download(built.metainfo, { outputDir: dir, seed: true }).pipe(
              Effect.provide(context)
            )
            return { dir, d, id: Bytes.toHex(Context.get(context, Client.Client).peerId) }
          })
      )
      // Bounded: a stuck swarm fails here instead of hanging the suite.
      yield* Effect.all(leechers.map((l) => l.d.done), { concurrency: "unbounded", discard: true }).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(90),
          onTimeout: () =>
            new Error(`swarm incomplete: ${JSON.stringify(leechers.map((l) => l.d.stats()))}`)
        })
      )

      const ids = new Set(leechers.map((l) => l.id))
      expect(ids.size).toBe(LEECHERS)
      expect(ids.has(seederId)).toBe(false)
      const show = (l: (typeof leechers)[number]) =>
        JSON.stringify(l.d.transfers().map((t) => ({ ...t, peerId: Bytes.toHex(t.peerId) })))
      /** What `from` says it uploaded to `to` (by `to`'s peer id). */
      const uploadedTo = (from: (typeof leechers)[number], to: string) =>
        from.d.transfers().find((t) => Bytes.toHex(t.peerId) === to)?.uploaded ?? 0
      let traded = 0
      for (const l of leechers) {
        built.metainfo.files.forEach((f, i) => {
          expect(sha256(Fs.readFileSync(Path.join(l.dir, ...f.path)))).toBe(sha256(built.files[i]!))
        })
        const transfers = l.d.transfers()
        // Its per-peer totals account for every byte it downloaded and uploaded.
        expect(transfers.reduce((n, t) => n + t.downloaded, 0)).toBe(l.d.stats().downloaded)
        expect(transfers.reduce((n, t) => n + t.uploaded, 0)).toBe(l.d.stats().uploaded)
        expect(l.d.stats().downloaded).toBeGreaterThanOrEqual(built.payload.length)
        // It got data from a peer that is not the seeder: another leecher, whose own upload counter toward this
        // leecher covers it (blocks are counted when sent, and kept blocks are a subset of those).
        const fromLeechers = transfers.filter((t) => Bytes.toHex(t.peerId) !== seederId)
        expect(fromLeechers.reduce((n, t) => n + t.downloaded, 0), show(l)).toBeGreaterThan(0)
        for (const t of fromLeechers) {
          const other = leechers.find((o) => o.id === Bytes.toHex(t.peerId))
          expect(other, `unknown peer ${Bytes.toHex(t.peerId)}`).toBeDefined()
          expect(uploadedTo(other!, l.id), `${show(other!)} vs ${show(l)}`).toBeGreaterThanOrEqual(t.downloaded)
          traded += t.downloaded
        }
      }
      // The seeder alone did not provide the four copies; the leechers' upload counters account for the rest.
      const seederUp = seeder.stats().uploaded
      expect(seederUp).toBeLessThan(LEECHERS * built.payload.length)
      expect(traded).toBeGreaterThanOrEqual(LEECHERS * built.payload.length - seederUp)
      expect(leechers.reduce((n, l) => n + l.d.stats().uploaded, 0)).toBeGreaterThanOrEqual(traded)
      for (const l of leechers) Fs.rmSync(l.dir, { recursive: true, force: true })
      Fs.rmSync(seedDir, { recursive: true, force: true })
    }), 120_000)
})
