/**
 * Downloads from real clients on 127.0.0.1: aria2c and python3-libtorrent seeders dialled directly, libtorrent found
 * through opentracker, and transmission-cli dialled directly. Multi-file payloads with odd sizes; sha256-identical.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Effect from "effect/Effect"
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
