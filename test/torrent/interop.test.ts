/**
 * Downloads from real clients on 127.0.0.1: aria2c and python3-libtorrent seeders dialled directly, libtorrent found
 * through opentracker, and transmission-cli dialled directly. Multi-file payloads with odd sizes; sha256-identical.
 *
 * "Through opentracker" (tens of MiB each): every seeder announces to a real opentracker, and our client is given
 * no peer at all: it finds the seeder only through its own announce. aria2c seeds a multi-file torrent with odd
 * sizes, transmission-cli a single file, libtorrent a multi-file torrent it made itself with BEP 47 pad files
 * (`create_torrent` with `canonical_files`), whose pads are never written to disk.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as Restricted from "../../src/tracker/Restricted.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { download, tempDir, testClient } from "../support/download.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"

const running: Array<{ stop: () => Promise<void> }> = []
afterAll(() => Promise.all(running.map((r) => r.stop())))

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const payload = (name: string, announce?: string) =>
  build({
    name,
    pieceLength: 262144,
    ...(announce === undefined ? {} : { announce }),
    files: [
      { path: ["a.bin"], length: 2_000_003 },
      { path: ["sub", "b.bin"], length: 1_234_567 },
      { path: ["c.txt"], length: 1 }
    ]
  })

const identical = (b: Built, dir: string) =>
  b.metainfo.files.forEach((f, i) => {
    expect(sha(readFileSync(join(dir, ...f.path)))).toBe(sha(b.files[i]!))
  })

const fromSeeder = (start: (b: Built) => Promise<Real.RealSeeder>, name: string) =>
  Effect.gen(function*() {
    const b = payload(name)
    const s = yield* Effect.promise(() => start(b))
    running.push(s)
    const dir = tempDir(name)
    yield* download(b, dir, [s.port]).pipe(
      Effect.timeoutFail({ duration: "40 seconds", onTimeout: () => new Error(`timed out; seeder log: ${s.log()}`) })
    )
    identical(b, dir)
    yield* Effect.promise(() => s.stop())
  }).pipe(Effect.provide(testClient({ peerConfig: { requestTimeout: 5_000, connectTimeout: 2_000 } })))

describe("interop with real clients", () => {
  it.live.skipIf(!Real.shouldRun("aria2c"))(
    "downloads from an aria2c seeder",
    () => fromSeeder(Real.aria2, "aria2"),
    60_000
  )

  it.live.skipIf(!Real.shouldRun("libtorrent"))(
    "downloads from a python3-libtorrent seeder",
    () => fromSeeder(Real.libtorrent, "libtorrent"),
    60_000
  )

  it.live.skipIf(!Real.shouldRun("transmission"))(
    "downloads from a transmission-cli seeder (dialled directly)",
    () => fromSeeder(Real.transmission, "transmission"),
    60_000
  )

  it.live.skipIf(!Opentracker.shouldRun("interop through opentracker") || !Real.shouldRun("libtorrent"))(
    "finds a libtorrent seeder through opentracker and downloads from it",
    () =>
      Effect.gen(function*() {
        process.env["EFFECT_TORRENT_LOOPBACK_ONLY"] = "1"
        // The tracker URL is outside `info`, so the info-hash is known before the tracker starts: build twice.
        const pre = payload("tracked")
        const hash = Buffer.from(pre.metainfo.infoHash).toString("hex")
        const tracker = yield* Effect.promise(() => Opentracker.start([hash]))
        running.push(tracker)
        const b = buildWithAnnounce(pre, tracker.httpUrl)
        const s = yield* Effect.promise(() => Real.libtorrent(b))
        running.push(s)
        const dir = tempDir("tracked")
        yield* download(b, dir, [], { trackers: true }).pipe(
          Effect.timeoutFail({ duration: "40 seconds", onTimeout: () => new Error(`timed out; log: ${s.log()}`) }),
          Effect.provide(
            Client.layerWith({ noPeersTimeout: "30 seconds" }).pipe(
              Layer.provide(Restricted.fromEnvironment(TrackerLive.layer())),
              Layer.provide(Hasher.layerInline)
            )
          )
        )
        identical(b, dir)
      }),
    60_000
  )
})

/** The same torrent (same info dict, same payload) with an `announce` URL added. */
const buildWithAnnounce = (b: Built, announce: string): Built => {
  const bytes = Bencode.encode({ announce, info: rawInfo(b) })
  const m = Metainfo.decode(bytes)
  if (Either.isLeft(m)) throw new Error(m.left.message)
  return { ...b, metainfo: m.right, bytes }
}

const rawInfo = (b: Built): Bencode.Encodable => {
  const v = Bencode.decode(b.metainfo.rawInfo)
  if (Either.isLeft(v)) throw new Error("bad info")
  return v.right as Bencode.Encodable
}

const MB = 1_000_000

/**
 * `seeder` seeds `b0` announcing to a fresh opentracker; once the tracker counts it, we download with no peer given
 * (trackers only). Byte-identical, nothing but the data files on disk, and we dialled the seeder at the address the
 * tracker handed out.
 */
const throughTracker = (name: string, b0: Built, seeder: (b: Built) => Promise<Real.RealSeeder>) =>
  Effect.gen(function*() {
    const tracker = yield* Effect.promise(() => Opentracker.start([Tracked.hexOf(b0)]))
    running.push(tracker)
    const b = Tracked.withAnnounce(b0, tracker.httpUrl)
    const s = yield* Effect.promise(() => seeder(b))
    running.push(s)
    yield* Effect.promise(() => Tracked.untilSeeders(tracker.port, b, 1))
    const dir = tempDir(name)
    const { events, from } = yield* Effect.scoped(Effect.gen(function*() {
      const d = yield* Client.download(b.metainfo, { outputDir: dir })
      const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
      yield* d.done.pipe(
        Effect.timeoutFail({ duration: "90 seconds", onTimeout: () => new Error(`timed out; seeder log: ${s.log()}`) })
      )
      return { events: Chunk.toReadonlyArray(yield* Fiber.join(collected)), from: d.downloadedFrom() }
    })).pipe(Effect.provide(Tracked.trackedClient()))
    Tracked.expectIdentical(b, dir)
    Tracked.expectOnlyDataFiles(b, dir)
    const connected = events.flatMap((e) => (e._tag === "PeerConnected" ? [e.addr] : []))
    expect(connected).toContain(`127.0.0.1:${s.port}`)
    expect(from.reduce((n, f) => n + f.bytes, 0)).toBe(b.metainfo.totalLength)
    expect(events.some((e) => e._tag === "PeerBanned")).toBe(false)
    yield* Effect.promise(() => s.stop())
  })

const throughOpentracker = (client: "aria2c" | "libtorrent" | "transmission") =>
  Real.shouldRun(client) && Opentracker.shouldRun(`${client} through opentracker`)

describe("real seeders found through opentracker (tens of MiB)", () => {
  it.live.skipIf(!throughOpentracker("aria2c"))(
    "aria2c seeds a multi-file torrent with odd sizes (~25 MB)",
    () =>
      throughTracker(
        "tr-aria2",
        build({
          name: "aria2-multi",
          pieceLength: 262144,
          files: [
            { path: ["a.bin"], length: 11 * MB + 3 },
            { path: ["sub", "b.bin"], length: 9 * MB + 777 },
            { path: ["sub", "deeper", "c.bin"], length: 5 * MB - 12_345 },
            { path: ["one.txt"], length: 1 }
          ]
        }),
        Real.aria2
      ),
    120_000
  )

  it.live.skipIf(!throughOpentracker("transmission"))(
    "transmission-cli seeds a single file (~20 MB)",
    () =>
      throughTracker(
        "tr-transmission",
        build({
          name: "transmission-single.bin",
          single: true,
          pieceLength: 524288,
          files: [{ path: ["transmission-single.bin"], length: 20 * MB + 4_321 }]
        }),
        Real.transmission
      ),
    150_000
  )

  it.live.skipIf(!throughOpentracker("libtorrent"))(
    "libtorrent seeds a multi-file torrent it made with BEP 47 pad files (~19 MB); pads never written",
    () => {
      const b = Tracked.libtorrentPadded("lt-padded", [
        { path: "a.bin", length: 7 * MB + 1 },
        { path: "b/b.bin", length: 6 * MB + 99_999 },
        { path: "b/c.bin", length: 6 * MB - 4_097 },
        { path: "tiny.txt", length: 17 }
      ], 262144)
      expect(b.metainfo.files.filter((f) => f.pad).length).toBeGreaterThanOrEqual(3)
      return throughTracker("tr-libtorrent", b, Real.libtorrent)
    },
    120_000
  )
})
