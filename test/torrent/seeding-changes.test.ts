/**
 * A file changed on disk while we seed it: the pieces that no longer match are never served (a piece read for a
 * peer is hashed before it is served, once per version of its files), they leave the bitfield later peers get, the
 * other pieces of the changed file are re-checked, and the change is logged. A file cut short (or deleted) ends the
 * seed with one error naming it, as libtorrent stops a torrent whose file is too short. The leecher is a raw wire client over loopback (fast extension on,
 * so refusals are explicit rejects) that asks for every block and checks every byte it gets.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Stream from "effect/Stream"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Client from "../../src/session/Client.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import { WireError } from "../../src/wire/WireError.ts"
import { writeData } from "../support/data.ts"
import { tempDir, testClient } from "../support/download.ts"
import { build } from "../support/seeder.ts"

const sockets: Array<Net.Socket> = []
afterAll(() => sockets.forEach((s) => s.destroy()))

const built = build({
  name: "changing",
  pieceLength: 32768,
  files: [{ path: ["a.bin"], length: 300_001 }, { path: ["b.bin"], length: 200_000 }]
})
const m = built.metainfo
const pieceSize = (i: number) => Math.min(m.pieceLength, m.totalLength - i * m.pieceLength)

interface Fetched {
  /** What the seeder said it has: "all" (have-all) or the pieces of its bitfield. */
  readonly has: "all" | ReadonlyArray<number>
  /** Pieces whose every block arrived, with their bytes. */
  readonly pieces: ReadonlyMap<number, Uint8Array>
  /** Pieces with at least one rejected block. */
  readonly rejected: ReadonlySet<number>
}

/** Connects to `port`, asks for every block of every piece, and returns once each was answered (or refused). */
const fetchAll = (port: number): Promise<Fetched> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect(port, "127.0.0.1")
    sockets.push(socket)
    socket.on("error", reject)
    // The seeder may end the connection (its torrent stopped): what arrived until then.
    socket.on("close", () => {
      const pieces = new Map([...buffers].filter(([i]) => got.get(i) === Math.ceil(pieceSize(i) / 16384)))
      resolve({ has, pieces, rejected })
    })
    const buffers = new Map<number, Uint8Array>()
    const got = new Map<number, number>()
    const rejected = new Set<number>()
    let has: "all" | Array<number> = []
    let pending = 0
    const reader = Handshake.reader()
    let decoder: FrameDecoder.FrameDecoder | undefined
    const done = () => {
      if (pending > 0) return
      socket.destroy()
      const pieces = new Map([...buffers].filter(([i]) => got.get(i) === Math.ceil(pieceSize(i) / 16384)))
      resolve({ has, pieces, rejected })
    }
    const handler: FrameDecoder.Handler = {
      onMessage: (msg) => {
        if (msg._tag === "HaveAll") has = "all"
        else if (msg._tag === "Bitfield") has = Bitfield.indices(Bitfield.fromBytes(msg.bytes, m.pieceCount)!)
        else if (msg._tag === "Reject") {
          rejected.add(msg.index)
          pending--
          done()
        } else if (msg._tag === "Unchoke") {
          const reqs: Array<Message.Message> = []
          for (let i = 0; i < m.pieceCount; i++) {
            for (let b = 0; b < pieceSize(i); b += 16384) {
              reqs.push(Message.Request({ index: i, begin: b, length: Math.min(16384, pieceSize(i) - b) }))
            }
          }
          pending = reqs.length
          socket.write(Message.encodeBatch(reqs))
        }
      },
      onBlock: (index, begin, length, offset, data) => {
        let buf = buffers.get(index)
        if (buf === undefined) buffers.set(index, buf = new Uint8Array(pieceSize(index)))
        buf.set(data, begin + offset)
        if (offset + data.length < length) return
        got.set(index, (got.get(index) ?? 0) + 1)
        pending--
        done()
      }
    }
    socket.on("data", (chunk: Buffer) => {
      if (decoder !== undefined) return void (decoder.push(chunk) !== undefined && reject(new Error("bad frame")))
      const p = reader.push(chunk)
      if (p instanceof WireError) return reject(p)
      if (p._tag === "NeedMore") return
      decoder = FrameDecoder.make(handler, { pieceCount: m.pieceCount, fast: true, extensionProtocol: false })
      decoder.push(p.rest)
      socket.write(Message.encode(Message.Interested()))
    })
    const ours = { reserved: Handshake.reserved({ fast: true }), infoHash: m.infoHash, peerId: randomBytes(20) as never }
    socket.write(Handshake.encode(ours))
  })

const expectedPiece = (i: number) => built.payload.subarray(i * m.pieceLength, i * m.pieceLength + pieceSize(i))
const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex")

describe("a file changed on disk while seeding", () => {
  it.live("its changed pieces are never served, leave the bitfield, and are logged; the rest is served intact", () =>
    Effect.gen(function*() {
      const dir = tempDir("changing")
      writeData(built, dir)
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
          warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
        }
      })
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.seed(m, { dataDir: dir, trackers: false })
        yield* Effect.forkScoped(Stream.runDrain(d.subscribe))
        const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener)
        const port = listener!.address.port

        // Piece 3 (inside a.bin) changes in place, same size.
        const a = Fs.openSync(Path.join(dir, "changing", "a.bin"), "r+")
        Fs.writeSync(a, new Uint8Array(randomBytes(10)), 0, 10, 3 * m.pieceLength + 100)
        Fs.closeSync(a)
        const bLost: Array<number> = []

        const first = yield* Effect.promise(() => fetchAll(port))
        expect(first.has).toBe("all") // it was told before the change was noticed
        // Never a byte that fails its hash: every piece served is the original.
        for (const [i, data] of first.pieces) expect(sha1(data), `piece ${i}`).toBe(sha1(expectedPiece(i)))
        expect(first.rejected.has(3)).toBe(true)
        for (const i of bLost) expect(first.rejected.has(i), `piece ${i}`).toBe(true)
        const intact = Array.from({ length: m.pieceCount }, (_, i) => i).filter((i) => i !== 3 && !bLost.includes(i))
        for (const i of intact) expect(first.pieces.has(i), `piece ${i}`).toBe(true)

        // A peer connecting now is not told about the lost pieces.
        const second = yield* Effect.promise(() => fetchAll(port))
        expect(second.has).toEqual(intact)
        for (const [i, data] of second.pieces) expect(sha1(data)).toBe(sha1(expectedPiece(i)))
        expect(d.stats().have).toBe(intact.length)
      })).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(warnings.filter((w) => /^piece 3 no longer matches its hash on disk/.test(w))).toHaveLength(1)
    }).pipe(Effect.provide(testClient({ listen: { host: "127.0.0.1", port: 0 } }))))
})


describe("a file cut short while seeding", () => {
  it.live("ends the seed with one error naming the file; nothing that fails its hash is served before", () =>
    Effect.gen(function*() {
      const dir = tempDir("cut")
      writeData(built, dir)
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.seed(m, { dataDir: dir, trackers: false })
        yield* Effect.forkScoped(Stream.runDrain(d.subscribe))
        const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener)
        const port = listener!.address.port
        Fs.truncateSync(Path.join(dir, "changing", "b.bin"), 100_000)
        // A peer asking for everything makes us read b.bin's lost tail (its hash fails, then the files are audited).
        const got = yield* Effect.promise(() => fetchAll(port))
        for (const [i, data] of got.pieces) expect(sha1(data), `piece ${i}`).toBe(sha1(expectedPiece(i)))
        const error = yield* Effect.flip(d.failed)
        expect(error.reason).toBe("storage")
        expect(error.message).toMatch(/changing\/b\.bin: cut to 100000 of its 200000 bytes by something else while in use/)
        expect(error.message.split("\n")).toHaveLength(1)
      }))
    }).pipe(Effect.provide(testClient({ listen: { host: "127.0.0.1", port: 0 } }))))

  it.live("a file deleted while seeding ends the seed within the audit interval, with no peer asking", () =>
    Effect.gen(function*() {
      const dir = tempDir("deleted")
      writeData(built, dir)
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.seed(m, { dataDir: dir, trackers: false })
        yield* Effect.forkScoped(Stream.runDrain(d.subscribe))
        Fs.rmSync(Path.join(dir, "changing", "a.bin"))
        const error = yield* Effect.flip(d.failed)
        expect(error.message).toMatch(/changing\/a\.bin: deleted by something else while in use/)
      }))
    }).pipe(Effect.provide(testClient({ listen: { host: "127.0.0.1", port: 0 }, auditInterval: "200 millis" }))))
})
