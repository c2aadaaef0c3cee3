/**
 * BEP 52 magnets end to end against python3-libtorrent 2.0.8 seeding on 127.0.0.1: `btmh` (v2-only and hybrid) and
 * `btih`+`btmh` (hybrid). The info dict comes by BEP 9 over the swarm's 20-byte id (its SHA-256 checked against the
 * full v2 hash), the piece layers by `hash request`s to libtorrent (each answer's proof checked against the file's
 * root), then the download verifies every piece by its Merkle root: byte-identical on disk, no piece failing, and
 * the `.torrent` written by `--save-torrent` complete (every piece layer present, loadable by libtorrent). The CLI
 * (the built bundle) is run once as a user would, and the daemon's session takes a btmh magnet. A missing python3-libtorrent skips loudly outside CI.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Magnet from "../../src/metainfo/Magnet.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Client from "../../src/session/Client.ts"
import * as Session from "../../src/session/Session.ts"
import * as SessionLive from "../../src/session/SessionLive.ts"
import type * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { bundle, cli } from "../support/cli.ts"
import { writeData } from "../support/data.ts"
import * as Opentracker from "../support/opentracker.ts"
import { freePort } from "../support/realSeeders.ts"
import { tempDir, testClient } from "../support/download.ts"
import { shouldRun } from "../support/libtorrentSeeder.ts"
import * as Lt from "../support/libtorrentSession.ts"
import type { Built } from "../support/seeder.ts"
import { buildV2, sameFiles } from "../support/v2.ts"
import { stopAfterAll } from "../support/stopAfterAll.ts"

const keep = stopAfterAll()



/**
 * Files longer than a piece with piece counts that are not powers of two (libtorrent's last request of a layer is
 * short), one of more than 512 pieces (its layer takes two requests), a file of one piece, an empty one.
 */
const tree = (name: string, format: "v2" | "hybrid") =>
  buildV2({
    name,
    format,
    pieceLength: 16384,
    files: [
      { path: ["big.bin"], length: 600 * 16384 + 100 }, // 601 pieces: 512 + 89
      { path: ["sub", "five.bin"], length: 5 * 16384 - 3 },
      { path: ["sub", "small.txt"], length: 777 },
      { path: ["empty"], length: 0 },
      { path: ["z-last"], length: 3 * 16384 + 1 }
    ]
  })

const magnetOf = (built: Built, port: number, hashes: "btmh" | "both" | "btih"): Magnet.Magnet => {
  const m = built.metainfo
  const xt = [
    ...(hashes !== "btmh" ? [`xt=urn:btih:${Bytes.toHex(m.version === "v2" ? m.infoHash : m.infoHash)}`] : []),
    ...(hashes !== "btih" ? [`xt=urn:btmh:1220${Bytes.toHex(m.infoHashV2!)}`] : [])
  ]
  const parsed = Magnet.parse(`magnet:?${xt.join("&")}&x.pe=127.0.0.1:${port}`)
  if (Either.isLeft(parsed)) throw new Error(parsed.left.message)
  return parsed.right
}

const fetchAndDownload = (magnet: Magnet.Magnet, dir: string, saveTorrent: string) =>
  Effect.scoped(Effect.gen(function*() {
    const d = yield* Client.download(magnet, { outputDir: dir, trackers: false, saveTorrent })
    const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
    yield* d.done
    return Chunk.toReadonlyArray(yield* Fiber.join(collected)) as ReadonlyArray<TorrentEvent.TorrentEvent>
  })).pipe(Effect.provide(testClient()))

/** The saved `.torrent` is the seeder's torrent: same info-hashes, every piece layer, the same layers. */
const completeTorrent = (built: Built, path: string) => {
  const saved = Metainfo.decode(Fs.readFileSync(path), { v2Only: true })
  if (Either.isLeft(saved)) throw new Error(saved.left.message)
  const m = saved.right
  expect(Bytes.toHex(m.infoHashV2!)).toBe(Bytes.toHex(built.metainfo.infoHashV2!))
  expect(Bytes.toHex(m.infoHash)).toBe(Bytes.toHex(built.metainfo.infoHash))
  const status = Metainfo.pieceLayerStatus(m)
  expect(status.needed).toBeGreaterThan(0)
  expect(status.present).toBe(status.needed)
  m.files.forEach((f, i) => {
    const want = built.metainfo.files[i]!.pieceLayer
    expect(f.pieceLayer === undefined ? undefined : Bytes.toHex(f.pieceLayer)).toBe(want === undefined ? undefined : Bytes.toHex(want))
  })
}

describe.runIf(shouldRun("BEP 52 magnets with libtorrent"))("btmh magnets from a libtorrent seeder", { timeout: 90_000 }, () => {
  const cases = [
    { format: "v2", hashes: "btmh" },
    { format: "hybrid", hashes: "btmh" },
    { format: "hybrid", hashes: "both" }
  ] as const
  for (const { format, hashes } of cases) {
    it.live(`${format} by ${hashes === "both" ? "btih+btmh" : "btmh"}: metadata, then piece layers by hash requests, then every piece verified by its Merkle root`, () =>
      Effect.gen(function*() {
        const built = tree(`magnet-${format}-${hashes}`, format)
        const lt = keep(yield* Effect.promise(() => Lt.start()))
        yield* Effect.promise(() => lt.seed("t", built))
        const dir = tempDir(`btmh-${format}`)
        const save = Path.join(tempDir("btmh-save"), "saved.torrent")
        const events = yield* fetchAndDownload(magnetOf(built, lt.port, hashes), dir, save)
        expect(events.some((e) => e._tag === "MetadataReceived")).toBe(true)
        expect(events.filter((e) => e._tag === "PieceFailed")).toEqual([])
        expect(events.filter((e) => e._tag === "PieceVerified").length).toBe(built.metainfo.pieceCount)
        sameFiles(built, dir)
        completeTorrent(built, save)
      }))
  }

  it.live("the CLI: `download magnet:?xt=urn:btmh:…&x.pe=…` of a v2-only single file completes byte-identical; --save-torrent writes it whole, and libtorrent loads it", () =>
    Effect.gen(function*() {
      expect(Fs.existsSync(bundle), `${bundle} (npm run prepare)`).toBe(true)
      const built = buildV2({
        name: "single.iso",
        format: "v2",
        pieceLength: 32768,
        single: true,
        files: [{ path: ["single.iso"], length: 11 * 32768 + 5 }]
      })
      const lt = keep(yield* Effect.promise(() => Lt.start()))
      yield* Effect.promise(() => lt.seed("s", built))
      const dir = tempDir("btmh-cli")
      const save = Path.join(dir, "..", `${Path.basename(dir)}.torrent`)
      const uri = `magnet:?xt=urn:btmh:1220${Bytes.toHex(built.metainfo.infoHashV2!)}&x.pe=127.0.0.1:${lt.port}`
      const r = yield* Effect.promise(() =>
        cli(["download", uri, "-o", dir, "--save-torrent", save, "--no-dht", "--no-lsd", "--no-port-mapping"], { timeout: 60_000 })
      )
      expect(r.code, r.stderr).toBe(0)
      sameFiles(built, dir)
      completeTorrent(built, save)
      // libtorrent takes our .torrent as a complete one (it would refuse piece layers that do not match the roots)
      const check = keep(yield* Effect.promise(() => Lt.start()))
      yield* Effect.promise(() => check.seed("again", { ...built, bytes: Fs.readFileSync(save) }))
    }))

  it.live("the daemon's session takes a btmh magnet of a v2-only torrent: fetched, downloaded, seeding", () =>
    Effect.scoped(Effect.gen(function*() {
      const built = tree("daemon-btmh", "v2")
      const lt = keep(yield* Effect.promise(() => Lt.start()))
      yield* Effect.promise(() => lt.seed("t", built))
      const dir = tempDir("btmh-daemon")
      const stateDir = tempDir("btmh-daemon-state")
      const session = yield* Effect.provide(
        Session.Session,
        yield* Layer.build(SessionLive.layer({ stateDir, settings: { downloadDir: dir } }).pipe(Layer.provide(testClient({ stateDir }))))
      )
      const uri = `magnet:?xt=urn:btmh:1220${Bytes.toHex(built.metainfo.infoHashV2!)}&x.pe=127.0.0.1:${lt.port}`
      const added = yield* session.add({ _tag: "Magnet", uri })
      expect(added.infoHash).toBe(Bytes.toHex(built.metainfo.infoHash))
      for (let i = 0; ; i++) {
        const d = yield* session.get(added.id)
        if (d.state === "seeding") break
        if (i > 600) throw new Error(`still ${d.state}`)
        yield* Effect.sleep(Duration.millis(50))
      }
      sameFiles(built, dir)
    })))
})

describe.runIf(shouldRun("hybrid swarms with libtorrent") && Opentracker.shouldRun("hybrid swarms via opentracker"))(
  "a hybrid is announced in both swarms",
  { timeout: 90_000 },
  () => {
    it.live("we seed a hybrid announced to opentracker; a libtorrent peer knowing only its v2 hash (btmh magnet) finds us there and downloads it", () =>
      Effect.scoped(Effect.gen(function*() {
        const built = tree("both-swarms", "hybrid")
        const v1 = Bytes.toHex(built.metainfo.infoHash)
        const v2 = Bytes.toHex(built.metainfo.infoHashV2!).slice(0, 40)
        // whitelist-only: both swarm ids are admitted
        const ot = keep(yield* Effect.promise(() => Opentracker.start([v1, v2])))
        const data = tempDir("both-swarms-seed")
        writeData(built, data)
        const layer = Client.layerWith({ listen: { host: "127.0.0.1", port: 0 } }).pipe(
          Layer.provide(TrackerLive.layer()),
          Layer.provide(Hasher.layerInline)
        )
        const context = yield* Layer.build(layer)
        // trackers are outside the info dict: the same torrent, announced to this one
        const metainfo = { ...built.metainfo, trackers: [[ot.httpUrl]] }
        yield* Client.seed(metainfo, { dataDir: data }).pipe(Effect.provide(context))
        const lt = keep(yield* Effect.promise(() => Lt.start()))
        const uri = `magnet:?xt=urn:btmh:1220${Bytes.toHex(built.metainfo.infoHashV2!)}&tr=${encodeURIComponent(ot.httpUrl)}`
        const save = yield* Effect.promise(() => lt.magnet("t", uri))
        yield* Effect.promise(() => lt.waitFor("t", (st) => st.seeding, 60_000))
        sameFiles(built, save)
      })))

    it.live("we seed a hybrid with no listener: the libtorrent peer found in its v2 swarm (it knows only the btmh magnet) is dialled with the v2 hash and downloads it", () =>
      Effect.scoped(Effect.gen(function*() {
        const built = tree("dial-v2-swarm", "hybrid")
        const v1 = Bytes.toHex(built.metainfo.infoHash)
        const v2 = Bytes.toHex(built.metainfo.infoHashV2!).slice(0, 40)
        const ot = keep(yield* Effect.promise(() => Opentracker.start([v1, v2])))
        // libtorrent announces first (it finds nobody), so our announce is answered with it
        const lt = keep(yield* Effect.promise(() => Lt.start()))
        const uri = `magnet:?xt=urn:btmh:1220${Bytes.toHex(built.metainfo.infoHashV2!)}&tr=${encodeURIComponent(ot.httpUrl)}`
        const save = yield* Effect.promise(() => lt.magnet("t", uri))
        yield* Effect.sleep("1 second")
        const data = tempDir("dial-v2-seed")
        writeData(built, data)
        // no listener: libtorrent cannot reach us (the port announced is closed), we must dial it
        const unreachable = yield* Effect.promise(() => freePort())
        const layer = Client.layerWith({ port: unreachable }).pipe(
          Layer.provide(TrackerLive.layer()),
          Layer.provide(Hasher.layerInline)
        )
        const context = yield* Layer.build(layer)
        yield* Client.seed({ ...built.metainfo, trackers: [[ot.httpUrl]] }, { dataDir: data }).pipe(Effect.provide(context))
        yield* Effect.promise(() => lt.waitFor("t", (st) => st.seeding, 60_000))
        sameFiles(built, save)
      })))
  }
)
