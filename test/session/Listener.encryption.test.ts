/**
 * Encrypted inbound connections at the client's listening socket, over real loopback TCP: the first bytes classify
 * a connection as plain or MSE; encrypted ones are answered for the torrents registered (an unknown info-hash is
 * refused), the BitTorrent handshake inside must name the same torrent, and the policy refuses plain ("require")
 * or encrypted ("off") connections. Downloads by our own clients are compared byte for byte.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Net from "node:net"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import * as Tcp from "../../src/net/Tcp.ts"
import * as Encryption from "../../src/peer/Encryption.ts"
import * as Client from "../../src/session/Client.ts"
import * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import { writeData } from "../support/data.ts"
import { download, readFile, tempDir, testClient } from "../support/download.ts"
import { build, type Built } from "../support/seeder.ts"

const one = build({
  name: "one.bin",
  single: true,
  files: [{ path: ["one.bin"], length: 200_001 }],
  pieceLength: 32768
})
const two = build({
  name: "two.bin",
  single: true,
  files: [{ path: ["two.bin"], length: 50_000 }],
  pieceLength: 16384
})

const sameFiles = (b: Built, dir: string) =>
  b.metainfo.files.forEach((f, i) => {
    if (!f.pad) expect(Buffer.compare(readFile(b, dir, i), Buffer.from(b.files[i]!))).toBe(0)
  })

/** A client on 127.0.0.1 seeding `torrents` under `encryption`; returns its listener. */
const seeding = (torrents: ReadonlyArray<Built>, encryption: Encryption.Policy) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(testClient({ listen: { host: "127.0.0.1", port: 0 }, encryption }))
    for (const t of torrents) {
      const dir = tempDir("enc-seed")
      writeData(t, dir)
      yield* Client.seed(t.metainfo, { dataDir: dir, trackers: false }).pipe(Effect.provide(context))
    }
    return (yield* Effect.flatMap(Client.Client, (c) => c.listener).pipe(Effect.provide(context)))!
  })

/** The `encryption` of every PeerConnected event. */
const ciphers = (events: ReadonlyArray<TorrentEvent.TorrentEvent>) =>
  events.filter(TorrentEvent.$is("PeerConnected")).map((e) => e.encryption)

/** A downloading client under `encryption` (its context, to look at its memory of plain-only peers). */
const downloader = (encryption: Encryption.Policy) => Layer.build(testClient({ encryption }))

const handshakeFor = (infoHash: Uint8Array, id: number) =>
  Handshake.encode({
    reserved: new Uint8Array(8),
    infoHash: infoHash as InfoHashV1,
    peerId: new Uint8Array(20).fill(id) as PeerId
  })

/** Dials the listener and runs our MSE initiator with `ia` inside; the result (or the failure's reason). */
const encryptedTo = (port: number, infoHash: Uint8Array, policy: "prefer" | "require", ia?: Uint8Array) =>
  Effect.gen(function*() {
    const conn = yield* Tcp.dial({ host: "127.0.0.1", port })
    const r = yield* Effect.either(Encryption.initiate(conn, infoHash as InfoHashV1, policy, { initialPayload: ia }))
    return { conn, r }
  })

/** A plain handshake; resolves with the bytes received until the listener closes the socket. */
const plainHandshake = (port: number, infoHash: Uint8Array) =>
  Effect.async<number>((resume) => {
    const sock = Net.connect(port, "127.0.0.1")
    let got = 0
    sock.on("connect", () => sock.write(handshakeFor(infoHash, 9)))
    sock.on("data", (d) => {
      got += d.length
    })
    sock.on("error", () => {})
    sock.on("close", () => resume(Effect.succeed(got)))
    return Effect.sync(() => sock.destroy())
  })

describe("Listener with encryption", () => {
  it.scopedLive("prefer: plain and encrypted inbound connections are both routed; downloads byte-identical", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one], "prefer")
      const port = listener.address.port
      const plainDir = tempDir("enc-plain")
      const plain = yield* download(one, plainDir, [port]).pipe(Effect.provide(testClient({ encryption: "off" })))
      sameFiles(one, plainDir)
      expect(ciphers(plain.events)).toEqual(["none"])
      expect(listener.counts().encrypted).toBe(0)
      const rc4Dir = tempDir("enc-rc4")
      const rc4 = yield* download(one, rc4Dir, [port]).pipe(Effect.provide(testClient({ encryption: "require" })))
      sameFiles(one, rc4Dir)
      expect(ciphers(rc4.events)).toEqual(["rc4"])
      const preferDir = tempDir("enc-prefer")
      const prefer = yield* download(one, preferDir, [port]).pipe(Effect.provide(testClient()))
      sameFiles(one, preferDir)
      expect(ciphers(prefer.events)).toEqual(["plaintext"])
      const c = listener.counts()
      expect(c.routed).toBeGreaterThanOrEqual(3)
      expect(c.encrypted).toBeGreaterThanOrEqual(2)
      expect(c.policy).toBe(0)
      // (`failed` may count a connection our downloader dropped after Yb to redial: 1 in 256, Encryption.connect.)
    }))

  it.scopedLive("selects plaintext for a prefer initiator and rc4 for a require one", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one], "prefer")
      const port = listener.address.port
      const hash = one.metainfo.infoHash
      const prefer = yield* encryptedTo(port, hash, "prefer", handshakeFor(hash, 1))
      expect(Either.isRight(prefer.r) && prefer.r.right.cipher).toBe("plaintext")
      const require = yield* encryptedTo(port, hash, "require", handshakeFor(hash, 2))
      expect(Either.isRight(require.r) && require.r.right.cipher).toBe("rc4")
    }))

  it.scopedLive("an encrypted connection for an info-hash we do not serve is refused after Yb", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one], "prefer")
      const { r } = yield* encryptedTo(listener.address.port, two.metainfo.infoHash, "prefer")
      expect(Either.isLeft(r) && r.left.reason).toBe("refused")
      const c = listener.counts()
      expect(c.unknownInfoHash).toBe(1)
      expect(c.routed).toBe(0)
    }))

  it.scopedLive("the BitTorrent handshake inside MSE must name the torrent MSE was keyed with", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one, two], "prefer")
      const { conn, r } = yield* encryptedTo(
        listener.address.port,
        one.metainfo.infoHash,
        "require",
        handshakeFor(two.metainfo.infoHash, 3)
      )
      expect(Either.isRight(r)).toBe(true)
      if (Either.isRight(r)) r.right.connection.onData(() => {})
      yield* conn.closed.pipe(Effect.ignore)
      const c = listener.counts()
      expect(c.failed).toBe(1)
      expect(c.routed).toBe(0)
    }))

  it.scopedLive("require refuses plain inbound connections; encrypted ones download", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one], "require")
      const port = listener.address.port
      expect(yield* plainHandshake(port, one.metainfo.infoHash)).toBe(0)
      expect(listener.counts().policy).toBe(1)
      const dir = tempDir("enc-req")
      yield* download(one, dir, [port]).pipe(Effect.provide(testClient()))
      sameFiles(one, dir)
      expect(listener.counts().encrypted).toBeGreaterThanOrEqual(1)
    }))

  it.scopedLive("off refuses encrypted inbound; a prefer downloader falls back to plain and remembers the peer", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one], "off")
      const port = listener.address.port
      const { r } = yield* encryptedTo(port, one.metainfo.infoHash, "prefer")
      expect(Either.isLeft(r) && r.left.reason).toBe("closed")
      expect(listener.counts().policy).toBe(1)
      const context = yield* downloader("prefer")
      const dir = tempDir("enc-off")
      const first = yield* download(one, dir, [port]).pipe(Effect.provide(context))
      sameFiles(one, dir)
      expect(ciphers(first.events)).toEqual(["none"])
      const client = yield* Effect.provide(Client.Client, context)
      expect(client.encryption.plainOnly?.has(`127.0.0.1:${port}`)).toBe(true)
      const before = listener.counts().policy
      expect(before).toBe(2) // the downloader's one MSE attempt
      // The same client again: it dials plain at once, the listener refuses nothing more.
      const again = tempDir("enc-off-2")
      yield* download(one, again, [port]).pipe(Effect.provide(context))
      sameFiles(one, again)
      expect(listener.counts().policy).toBe(before)
      expect(listener.counts().encrypted).toBe(0)
    }))
})
