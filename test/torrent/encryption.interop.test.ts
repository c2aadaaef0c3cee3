/**
 * Message stream encryption against real clients on 127.0.0.1, both ways:
 * - python3-libtorrent (Debian's, through `/usr/bin/python3`) seeding with encryption forced
 *   (`in_enc_policy`/`out_enc_policy` = pe_forced, `allowed_enc_level` rc4 or plaintext): we download through MSE
 *   under the default policy and under "require"; a plaintext-only libtorrent and our "require" find no common
 *   method (the download fails with no peers, typed); libtorrent with encryption disabled (a plain-only peer) still
 *   serves us under the default policy, through the fallback; a libtorrent leecher that forces rc4 downloads from us.
 * - aria2c with `--bt-require-crypto=true --bt-min-crypto-level=arc4`: as a leecher it finds our seeder through
 *   opentracker and dials it; as a seeder it serves our download.
 * Every result is compared by SHA-256, and the torrent's `PeerConnected` events say which cipher was negotiated.
 * Absent binaries skip loudly outside CI (and fail in CI); children are killed by PID; every wait is bounded.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import type { ChildProcess } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bytes from "../../src/core/Bytes.ts"
import type * as Encryption from "../../src/peer/Encryption.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { runChild } from "../support/children.ts"
import { writeData } from "../support/data.ts"
import { readFile, tempDir, testClient } from "../support/download.ts"
import { shouldRun as libtorrentShouldRun } from "../support/libtorrentSeeder.ts"
import * as Lt from "../support/libtorrentSession.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"

const running: Array<{ stop: () => Promise<void> }> = []
const children: Array<ChildProcess> = []
afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
  }
  await Promise.all(running.map((r) => r.stop()))
})
const keep = <A extends { stop: () => Promise<void> }>(a: A): A => {
  running.push(a)
  return a
}

const host = "127.0.0.1"
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const payload = (name: string) =>
  build({
    name,
    pieceLength: 65536,
    files: [{ path: ["data.bin"], length: 65536 * 40 + 12_345 }, { path: ["notes.txt"], length: 777 }]
  })

const identical = (b: Built, dir: string) =>
  b.metainfo.files.forEach((f, i) => {
    if (!f.pad) expect(sha(readFile(b, dir, i))).toBe(sha(b.files[i]!))
  })

const ciphers = (events: ReadonlyArray<TorrentEvent.TorrentEvent>) =>
  events.filter(TorrentEvent.$is("PeerConnected")).map((e) => e.encryption)

/** libtorrent settings: encryption forced both ways, at `level` (1 plaintext, 2 rc4, 3 both). */
const forced = (level: 1 | 2 | 3) => ({ in_enc_policy: 0, out_enc_policy: 0, allowed_enc_level: level })

/** Our download of `b` from `port` under `encryption`; the events. */
const downloadFrom = (
  b: Built,
  port: number,
  encryption: Encryption.Policy | undefined,
  noPeersTimeout: Duration.DurationInput = "30 seconds"
) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = tempDir("enc-interop")
    const d = yield* Client.download(b.metainfo, { outputDir: dir, peers: [{ host, port }], trackers: false })
    const events = yield* Effect.forkScoped(Stream.runCollect(d.events))
    yield* d.done
    return { dir, events: Chunk.toReadonlyArray(yield* Fiber.join(events)) }
  })).pipe(Effect.provide(testClient({ encryption, noPeersTimeout })))

/** libtorrent seeding `b` with `settings`; its port. */
const ltSeeder = (b: Built, settings: Record<string, unknown>) =>
  Effect.gen(function*() {
    const lt = keep(yield* Effect.promise(() => Lt.start(settings)))
    yield* Effect.promise(() => lt.seed("t", b))
    return lt
  })

/** Our seeder on 127.0.0.1 (default policy, optionally announcing to trackers): its port and its events so far. */
const ourSeeder = (b: Built, trackers: boolean) =>
  Effect.gen(function*() {
    const data = tempDir("enc-seed")
    writeData(b, data)
    const layer = Client.layerWith({ listen: { host, port: 0 } }).pipe(
      Layer.provide(TrackerLive.layer()),
      Layer.provide(Hasher.layerInline)
    )
    const context = yield* Layer.build(layer)
    const d = yield* Client.seed(b.metainfo, { dataDir: data, trackers }).pipe(Effect.provide(context))
    const seen: Array<TorrentEvent.TorrentEvent> = []
    yield* Effect.forkScoped(Stream.runForEach(d.subscribe, (e) => Effect.sync(() => void seen.push(e))))
    const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(context))
    return { port: listener!.address.port, download: d, events: () => seen }
  })

describe.runIf(libtorrentShouldRun("encryption interop with libtorrent"))("encryption interop: libtorrent", () => {
  it.live("downloads from a libtorrent seeder forcing rc4 (default policy, then require): byte-identical", () =>
    Effect.gen(function*() {
      const b = payload("lt-rc4")
      const lt = yield* ltSeeder(b, forced(2))
      const prefer = yield* downloadFrom(b, lt.port, undefined)
      identical(b, prefer.dir)
      expect(ciphers(prefer.events)).toEqual(["rc4"])
      const require = yield* downloadFrom(b, lt.port, "require")
      identical(b, require.dir)
      expect(ciphers(require.events)).toEqual(["rc4"])
    }), 90_000)

  it.live("downloads from a libtorrent seeder forcing MSE with plaintext only (header obfuscation): byte-identical", () =>
    Effect.gen(function*() {
      const b = payload("lt-plaintext")
      const lt = yield* ltSeeder(b, forced(1))
      const r = yield* downloadFrom(b, lt.port, undefined)
      identical(b, r.dir)
      expect(ciphers(r.events)).toEqual(["plaintext"])
    }), 90_000)

  it.live("our require and a plaintext-only libtorrent share no method: the download fails typed (no peers)", () =>
    Effect.gen(function*() {
      const b = payload("lt-mismatch")
      const lt = yield* ltSeeder(b, forced(1))
      const r = yield* Effect.either(downloadFrom(b, lt.port, "require", "3 seconds"))
      expect(Either.isLeft(r) && r.left.reason).toBe("no-peers")
    }), 60_000)

  it.live("a libtorrent seeder with encryption disabled still serves us under the default policy (fallback)", () =>
    Effect.gen(function*() {
      const b = payload("lt-plain")
      const lt = yield* ltSeeder(b, { in_enc_policy: 2, out_enc_policy: 2 })
      const r = yield* downloadFrom(b, lt.port, undefined)
      identical(b, r.dir)
      expect(ciphers(r.events)).toEqual(["none"])
    }), 90_000)

  it.live("a libtorrent leecher forcing rc4 downloads from our seeder (default policy): byte-identical", () =>
    Effect.scoped(Effect.gen(function*() {
      const b = payload("lt-leech-rc4")
      const seeder = yield* ourSeeder(b, false)
      const lt = keep(yield* Effect.promise(() => Lt.start(forced(2))))
      const save = yield* Effect.promise(() => lt.leech("t", b))
      yield* Effect.promise(() => lt.command({ op: "connect", id: "t", ip: host, port: seeder.port }))
      yield* Effect.promise(() => lt.waitFor("t", (s) => s.seeding, 60_000))
      identical(b, save)
      expect(ciphers(seeder.events())).toContain("rc4")
      expect(ciphers(seeder.events())).not.toContain("none")
    })), 90_000)
})

// --- aria2c ----------------------------------------------------------------------------------------------------

const requireCrypto = ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"]

describe.runIf(Real.shouldRun("aria2c") && Opentracker.shouldRun("encryption interop with aria2c"))(
  "encryption interop: aria2c requiring rc4",
  () => {
    it.live("an aria2c leecher (--bt-require-crypto, arc4) downloads from our seeder through opentracker", () =>
      Effect.scoped(Effect.gen(function*() {
        const b = payload("aria2-leech-rc4")
        const tracker = keep(yield* Effect.promise(() => Opentracker.start([Bytes.toHex(b.metainfo.infoHash)])))
        const built = Tracked.withAnnounce(b, tracker.httpUrl)
        const seeder = yield* ourSeeder(built, true)
        yield* Effect.promise(() => Tracked.untilSeeders(tracker.port, built, 1, 10_000))
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-enc-aria2-"))
        const torrent = Path.join(dir, "t.torrent")
        Fs.writeFileSync(torrent, built.bytes)
        const out = Path.join(dir, "out")
        const port = yield* Effect.promise(() => Real.freePort())
        const r = yield* Effect.promise(() =>
          runChild(children, "aria2c", [
            `--dir=${out}`,
            "--seed-time=0",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--summary-interval=0",
            "--file-allocation=none",
            `--listen-port=${port}`,
            ...requireCrypto,
            torrent
          ], 70_000)
        )
        expect(r.code, r.log).toBe(0)
        identical(built, out)
        expect(seeder.download.stats().uploaded).toBeGreaterThanOrEqual(built.payload.length)
        expect(ciphers(seeder.events())).toContain("rc4")
        expect(ciphers(seeder.events())).not.toContain("none")
        Fs.rmSync(dir, { recursive: true, force: true })
      })), 90_000)

    it.live("an aria2c seeder (--bt-require-crypto, arc4) serves our download under the default policy", () =>
      Effect.gen(function*() {
        const b = payload("aria2-seed-rc4")
        const seeder = keep(yield* Effect.promise(() => Real.aria2(b, { extra: requireCrypto })))
        const r = yield* downloadFrom(b, seeder.port, undefined)
        identical(b, r.dir)
        expect(ciphers(r.events)).toEqual(["rc4"])
      }), 90_000)
  }
)
