/**
 * The client's listening socket over real loopback TCP: two torrents seeded behind one port and downloaded by
 * another in-process client (our downloader ↔ our seeder, byte-identical), and the refusals (unknown info-hash,
 * our own peer id).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Net from "node:net"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import * as Client from "../../src/session/Client.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import { download, readFile, tempDir, testClient } from "../support/download.ts"
import { writeData } from "../support/data.ts"
import { build, type Built } from "../support/seeder.ts"

const one = build({
  name: "one.bin",
  single: true,
  files: [{ path: ["one.bin"], length: 300_001 }],
  pieceLength: 32768
})
const two = build({
  name: "two",
  pieceLength: 16384,
  files: [
    { path: ["a.bin"], length: 40_000 },
    { path: ["empty"], length: 0 },
    { path: ["sub", "b.bin"], length: 123_457 }
  ]
})

const sameFiles = (b: Built, dir: string) =>
  b.metainfo.files.forEach((f, i) => {
    if (!f.pad) expect(Buffer.compare(readFile(b, dir, i), Buffer.from(b.files[i]!))).toBe(0)
  })

const seederId = new Uint8Array(20).fill(0x5e) as PeerId

/** A client listening on 127.0.0.1 (ephemeral port) that seeds `torrents`; returns its listener. */
const seeding = (torrents: ReadonlyArray<Built>, options: { host?: string; maxPeers?: number } = {}) =>
  Effect.gen(function*() {
    const listen = { host: options.host ?? "127.0.0.1", port: 0 }
    const context = yield* Layer.build(testClient({ peerId: seederId, listen, maxPeers: options.maxPeers }))
    const client = Effect.provide(Client.Client, context)
    for (const t of torrents) {
      const dir = tempDir("seed")
      writeData(t, dir)
      yield* Client.seed(t.metainfo, { dataDir: dir, trackers: false }).pipe(Effect.provide(context))
    }
    const listener = (yield* Effect.flatMap(client, (c) => c.listener))!
    return listener
  })

/**
 * Sends a handshake to `port`; resolves with the bytes received until the listener closes the socket (with `keep`:
 * as soon as a handshake came back, leaving the socket open for the seeder to close).
 */
const rawHandshake = (port: number, infoHash: Uint8Array, peerId: Uint8Array, host = "127.0.0.1", keep = false) =>
  Effect.async<number>((resume) => {
    const sock = Net.connect(port, host)
    let got = 0
    const timer = setTimeout(() => sock.destroy(), 5000)
    const handshake = { reserved: new Uint8Array(8), infoHash: infoHash as InfoHashV1, peerId: peerId as PeerId }
    sock.on("connect", () => sock.write(Handshake.encode(handshake)))
    sock.on("data", (d) => {
      got += d.length
      if (got >= Handshake.length) {
        if (keep) {
          clearTimeout(timer)
          resume(Effect.succeed(got))
        } else sock.destroy()
      }
    })
    sock.on("error", () => {})
    sock.on("close", () => {
      clearTimeout(timer)
      resume(Effect.succeed(got))
    })
    return Effect.sync(() => sock.destroy())
  })

/**
 * Handshakes with `port`, then (once our handshake came back) sends `after`; resolves with the local address
 * (`host:port`, as the seeder sees this peer) when the seeder closes the socket.
 */
const handshakeThen = (port: number, infoHash: Uint8Array, peerId: Uint8Array, after: Uint8Array) =>
  Effect.async<string>((resume) => {
    const sock = Net.connect(port, "127.0.0.1")
    let got = 0
    let local = ""
    const timer = setTimeout(() => sock.destroy(), 10_000)
    const handshake = { reserved: new Uint8Array(8), infoHash: infoHash as InfoHashV1, peerId: peerId as PeerId }
    sock.on("connect", () => {
      local = `${sock.localAddress}:${sock.localPort}`
      sock.write(Handshake.encode(handshake))
    })
    sock.on("data", (d) => {
      const before = got
      got += d.length
      if (before < Handshake.length && got >= Handshake.length) sock.write(after)
    })
    sock.on("error", () => {})
    sock.on("close", () => {
      clearTimeout(timer)
      resume(Effect.succeed(local))
    })
    return Effect.sync(() => sock.destroy())
  })

describe("Listener", () => {
  it.scopedLive("routes two torrents behind one port; our downloader gets both byte-identical", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one, two])
      const port = listener.address.port
      expect(port).toBeGreaterThan(0)
      const [a, b] = [tempDir("dl-one"), tempDir("dl-two")]
      yield* Effect.all([download(one, a, [port]), download(two, b, [port])], { concurrency: 2 }).pipe(
        Effect.provide(testClient())
      )
      sameFiles(one, a)
      sameFiles(two, b)
      expect(listener.counts().routed).toBeGreaterThanOrEqual(2)
    }))

  it.scopedLive("refuses an unknown info-hash and a connection from ourselves", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one])
      const port = listener.address.port
      const other = new Uint8Array(20).fill(0x77)
      // Nothing comes back: closed without our handshake.
      expect(yield* rawHandshake(port, other, new Uint8Array(20).fill(1))).toBe(0)
      expect(yield* rawHandshake(port, one.metainfo.infoHash, seederId)).toBe(0)
      const c = listener.counts()
      expect(c.unknownInfoHash).toBe(1)
      expect(c.self).toBe(1)
      expect(c.routed).toBe(0)
      // A proper peer is answered with a handshake.
      expect(yield* rawHandshake(port, one.metainfo.infoHash, new Uint8Array(20).fill(2)).pipe(
        Effect.timeout("10 seconds")
      )).toBeGreaterThanOrEqual(68)
    }))

  it.scopedLive("listens on IPv6 loopback too", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one], { host: "::1" })
      const got = yield* rawHandshake(listener.address.port, one.metainfo.infoHash, new Uint8Array(20).fill(3), "::1")
      expect(got).toBeGreaterThanOrEqual(Handshake.length)
      expect(listener.counts().routed).toBe(1)
    }))

  it.scopedLive("an inbound peer breaking the protocol is closed and logged once per host, with its address", () => {
    const lines: Array<{ level: LogLevel.LogLevel; message: string; peer: string | undefined }> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      const peer = HashMap.get(annotations, "peer").pipe(Option.map(String), Option.getOrUndefined)
      lines.push({ level: logLevel, message: Array.isArray(message) ? message.join(" ") : String(message), peer })
    })
    return Effect.gen(function*() {
      const listener = yield* seeding([one])
      const port = listener.address.port
      const hash = one.metainfo.infoHash
      const huge = new Uint8Array([0xff, 0xff, 0xff, 0xff, 7]) // a piece message of 2^32 - 1 bytes
      const first = yield* handshakeThen(port, hash, new Uint8Array(20).fill(6), huge)
      const loud = () => lines.filter((l) => LogLevel.greaterThanEqual(l.level, LogLevel.Info))
      yield* Effect.sleep("20 millis").pipe(Effect.repeat({ until: () => loud().length > 0 }), Effect.timeout("10 seconds"))
      expect(loud().map((l) => [l.peer, l.message.replace(/:.*/, "")])).toEqual([[first, "inbound peer closed"]])
      expect(loud()[0]!.message).toMatch(/^inbound peer closed: protocol: .*frame/)
      // The same host misbehaving again on another port: closed again, not logged again at info or above.
      const second = yield* handshakeThen(port, hash, new Uint8Array(20).fill(7), huge)
      expect(second).not.toBe(first)
      yield* Effect.sleep("20 millis").pipe(
        Effect.repeat({ until: () => lines.some((l) => l.peer === second) }),
        Effect.timeout("10 seconds")
      )
      expect(loud()).toHaveLength(1)
      expect(listener.counts().routed).toBe(2)
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Effect.provide(Logger.minimumLogLevel(LogLevel.Debug)))
  })

  it.scopedLive("inbound peers count against the torrent's connection limit", () =>
    Effect.gen(function*() {
      const listener = yield* seeding([one], { maxPeers: 1 })
      const port = listener.address.port
      const hash = one.metainfo.infoHash
      // The first peer stays connected; the second is over the limit and closed without an answer.
      expect(yield* rawHandshake(port, hash, new Uint8Array(20).fill(4), "127.0.0.1", true)).toBeGreaterThanOrEqual(68)
      expect(yield* rawHandshake(port, hash, new Uint8Array(20).fill(5))).toBe(0)
      expect(listener.counts().refused).toBe(1)
    }))
})
