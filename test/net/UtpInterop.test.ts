/**
 * uTP against a real peer: python3-libtorrent 2.0.8 with TCP disabled on its side (`enable_outgoing_tcp`,
 * `enable_incoming_tcp` false), on 127.0.0.1. Results are compared by SHA-256 of the files on disk.
 * - A peer session over `UtpSocket.dial` downloads every piece byte-exact from a uTP-only libtorrent seeder.
 * - The client with transport "utp" downloads a torrent from a uTP-only libtorrent seeder (plain, and with MSE
 *   forced by libtorrent: rc4 over uTP).
 * - A uTP-only libtorrent leecher downloads from our seeder (transport "utp", listening): inbound uTP through the
 *   listener's routing.
 * - Transport "both": against a uTP-only libtorrent it connects over uTP; against a TCP-only one uTP gets no answer
 *   and TCP carries the download.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1 } from "../../src/core/InfoHash.ts"
import * as UtpSocket from "../../src/net/UtpSocket.ts"
import type * as UtpTransport from "../../src/net/UtpTransport.ts"
import * as PeerSession from "../../src/peer/PeerSession.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import { writeData } from "../support/data.ts"
import { readFile, tempDir, testClient } from "../support/download.ts"
import * as LibtorrentSeeder from "../support/libtorrentSeeder.ts"
import * as Lt from "../support/libtorrentSession.ts"
import { build, type Built } from "../support/seeder.ts"
import { TestTorrent } from "../peer/support.ts"

const host = "127.0.0.1"

/** libtorrent speaking uTP only. */
const utpOnly = {
  enable_outgoing_tcp: false,
  enable_incoming_tcp: false,
  enable_outgoing_utp: true,
  enable_incoming_utp: true
}

const running: Array<{ stop: () => Promise<void> }> = []
afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()))
})
const keep = <A extends { stop: () => Promise<void> }>(a: A): A => {
  running.push(a)
  return a
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const payload = (name: string, length: number) =>
  build({
    name,
    pieceLength: 256 * 1024,
    files: [{ path: ["data.bin"], length }, { path: ["notes.txt"], length: 777 }]
  })

const identical = (b: Built, dir: string) =>
  b.metainfo.files.forEach((f, i) => {
    if (!f.pad) expect(sha(readFile(b, dir, i))).toBe(sha(b.files[i]!))
  })

const ltSession = (settings: Record<string, unknown>) => Effect.promise(() => Lt.start(settings)).pipe(Effect.map(keep))

/** Our download of `b` from libtorrent at `port` with `transport`; the directory, events and seconds taken. */
const downloadFrom = (b: Built, port: number, transport: UtpTransport.Transport) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = tempDir("utp-interop")
    const t0 = performance.now()
    const d = yield* Client.download(b.metainfo, { outputDir: dir, peers: [{ host, port }], trackers: false })
    const events = yield* Effect.forkScoped(Stream.runCollect(d.events))
    yield* d.done
    const seconds = (performance.now() - t0) / 1000
    return { dir, seconds, events: Chunk.toReadonlyArray(yield* Fiber.join(events)) }
  })).pipe(Effect.provide(testClient({ transport, noPeersTimeout: "30 seconds" })))

const ciphers = (events: ReadonlyArray<TorrentEvent.TorrentEvent>) =>
  events.filter(TorrentEvent.$is("PeerConnected")).map((e) => e.encryption)
/** Each connection's transport and source, as the `--json` events say them (issue 19 item 5). */
const routes = (events: ReadonlyArray<TorrentEvent.TorrentEvent>) =>
  events.filter(TorrentEvent.$is("PeerConnected")).map((e) => `${e.transport} ${e.source}`)

describe.runIf(LibtorrentSeeder.shouldRun("uTP interop with libtorrent"))("uTP interop with libtorrent", () => {
  it.scopedLive("a peer session over uTP downloads every piece byte-exact from a uTP-only libtorrent seeder", () =>
    Effect.gen(function*() {
      const b = build({ name: "utp.bin", files: [{ path: ["utp.bin"], length: 8 * 262_144 + 12_345 }], pieceLength: 262_144, single: true })
      const lt = yield* ltSession(utpOnly)
      yield* Effect.promise(() => lt.seed("t", b))
      const utp = yield* UtpSocket.make({ host })
      const t = new TestTorrent({ payload: b.payload, pieceLength: 262_144, infoHash: b.metainfo.infoHash as InfoHashV1 })
      const complete = yield* Deferred.make<void>()
      t.onComplete = () => Deferred.unsafeDone(complete, Exit.void)
      const fiber = yield* Effect.fork(PeerSession.connect({ host, port: lt.port, handle: t, dial: (a) => utp.dial(a) }))
      const ended = Fiber.join(fiber).pipe(
        Effect.catchAll((e) => Effect.dieMessage(`session ended early: ${e.message}\n${lt.log().slice(-3000)}`))
      )
      yield* Deferred.await(complete).pipe(Effect.raceFirst(ended), Effect.timeout("30 seconds"))
      expect(t.hashFailures).toBe(0)
      expect(Bytes.equals(t.data, b.payload)).toBe(true)
      expect(utp.stats().datagramsIn).toBeGreaterThan(b.payload.length / 1500)
      yield* Fiber.interrupt(fiber)
    }), 60_000)

  it.live("the client (transport utp) downloads from a uTP-only libtorrent seeder, plain and with MSE: byte-identical", () =>
    Effect.gen(function*() {
      const b = payload("utp-download", 32 * 262_144 + 4321)
      const plain = yield* ltSession(utpOnly)
      yield* Effect.promise(() => plain.seed("t", b))
      const r = yield* downloadFrom(b, plain.port, "utp")
      identical(b, r.dir)
      expect(ciphers(r.events)).toEqual(["none"])
      expect(routes(r.events)).toEqual(["utp manual"])
      console.log(`uTP download from libtorrent: ${(b.payload.length / r.seconds / 1e6).toFixed(1)} MB/s (${r.seconds.toFixed(2)} s)`)
      const encrypted = yield* ltSession({ ...utpOnly, in_enc_policy: 0, out_enc_policy: 0, allowed_enc_level: 2 })
      yield* Effect.promise(() => encrypted.seed("t", b))
      const e = yield* downloadFrom(b, encrypted.port, "utp")
      identical(b, e.dir)
      expect(ciphers(e.events)).toEqual(["rc4"])
    }), 120_000)

  it.live("a uTP-only libtorrent leecher downloads from our seeder (transport utp): byte-identical", () =>
    Effect.scoped(Effect.gen(function*() {
      const b = payload("utp-seed", 16 * 262_144 + 999)
      const data = tempDir("utp-seed")
      writeData(b, data)
      const layer = Client.layerWith({ listen: { host, port: 0 }, transport: "utp" }).pipe(
        Layer.provide(TrackerLive.layer()),
        Layer.provide(Hasher.layerInline)
      )
      const context = yield* Layer.build(layer)
      const seeding = yield* Client.seed(b.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(context))
      const firstPeer = yield* Effect.forkScoped(
        seeding.subscribe.pipe(Stream.filter(TorrentEvent.$is("PeerConnected")), Stream.runHead)
      )
      const client = yield* Effect.provide(Client.Client, context)
      const listener = yield* client.listener
      const utp = yield* client.utp
      expect(utp?.local.port).toBe(listener!.address.port)
      const lt = yield* ltSession(utpOnly)
      const save = yield* Effect.promise(() => lt.leech("t", b))
      yield* Effect.promise(() => lt.command({ op: "connect", id: "t", ip: host, port: listener!.address.port }))
      yield* Effect.promise(() => lt.waitFor("t", (s) => s.seeding, 60_000))
      identical(b, save)
      expect(listener!.counts().routed).toBeGreaterThanOrEqual(1)
      expect(Option.getOrUndefined(yield* Fiber.join(firstPeer))).toMatchObject({ transport: "utp", source: "incoming" })
    })), 90_000)

  it.live("transport both connects over uTP to a peer that speaks only uTP", () =>
    Effect.gen(function*() {
      const b = payload("utp-both-utp", 8 * 262_144 + 2)
      const lt = yield* ltSession(utpOnly)
      yield* Effect.promise(() => lt.seed("t", b))
      const r = yield* downloadFrom(b, lt.port, "both")
      identical(b, r.dir)
      expect(routes(r.events)).toEqual(["utp manual"])
    }), 90_000)

  it.live("transport both falls back to TCP when the peer does not speak uTP", () =>
    Effect.gen(function*() {
      const b = payload("utp-both", 8 * 262_144 + 1)
      // libtorrentSession's defaults: TCP only.
      const lt = yield* ltSession({})
      yield* Effect.promise(() => lt.seed("t", b))
      const r = yield* downloadFrom(b, lt.port, "both")
      identical(b, r.dir)
      expect(routes(r.events)).toEqual(["tcp manual"])
    }), 90_000)
})
