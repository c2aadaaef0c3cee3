/**
 * Test helpers for downloads: build a torrent from an in-memory payload, and a tiny in-process seeder that speaks
 * our own wire codec over real loopback TCP, serving blocks from the payload. Seeders count the blocks they served
 * and can misbehave: send corrupt blocks, stall (never answer), or serve only some pieces.
 */
import { createHash, randomBytes } from "node:crypto"
import * as Net from "node:net"
import * as Either from "effect/Either"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as ExtensionHandshake from "../../src/wire/ExtensionHandshake.ts"
import * as Message from "../../src/wire/Message.ts"
import * as UtMetadata from "../../src/wire/UtMetadata.ts"
import { WireError } from "../../src/wire/WireError.ts"

export interface PayloadFile {
  readonly path: ReadonlyArray<string>
  readonly length: number
  /** BEP 47 pad file (zeros). */
  readonly pad?: boolean
}

export interface Built {
  readonly metainfo: Metainfo.Metainfo
  readonly bytes: Uint8Array
  /** The concatenated torrent data (pads as zeros). */
  readonly payload: Uint8Array
  /** Per file: its bytes. */
  readonly files: ReadonlyArray<Uint8Array>
}

/** A torrent over random content; single-file when `files` has one entry with a one-component path and `single`. */
export const build = (options: {
  readonly name: string
  readonly files: ReadonlyArray<PayloadFile>
  readonly pieceLength: number
  readonly single?: boolean
  readonly announce?: string
  /** BEP 12 tiers (`announce-list`). */
  readonly announceList?: ReadonlyArray<ReadonlyArray<string>>
  /** Each file's bytes (of its length), instead of random ones. */
  readonly contents?: ReadonlyArray<Uint8Array>
}): Built => {
  const files = options.files.map((f, i) =>
    options.contents?.[i] ?? (f.pad ? new Uint8Array(f.length) : new Uint8Array(randomBytes(f.length)))
  )
  const total = files.reduce((n, f) => n + f.length, 0)
  const payload = new Uint8Array(total)
  let o = 0
  for (const f of files) {
    payload.set(f, o)
    o += f.length
  }
  const count = Math.ceil(total / options.pieceLength)
  const pieces = new Uint8Array(count * 20)
  for (let i = 0; i < count; i++) {
    const h = createHash("sha1").update(payload.subarray(i * options.pieceLength, (i + 1) * options.pieceLength))
    pieces.set(h.digest(), i * 20)
  }
  const info: Record<string, Bencode.Encodable> = {
    name: options.name,
    "piece length": options.pieceLength,
    pieces
  }
  if (options.single === true) info["length"] = total
  else {
    info["files"] = options.files.map((f) =>
      f.pad ? { length: f.length, path: [...f.path], attr: "p" } : { length: f.length, path: [...f.path] }
    )
  }
  const top: Record<string, Bencode.Encodable> = { info }
  if (options.announce !== undefined) top["announce"] = options.announce
  if (options.announceList !== undefined) top["announce-list"] = options.announceList.map((t) => [...t])
  const bytes = Bencode.encode(top)
  const decoded = Metainfo.decode(bytes)
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  return { metainfo: decoded.right, bytes, payload, files }
}

export interface SeederOptions {
  /** Pieces this seeder has (default all). */
  readonly pieces?: ReadonlyArray<number>
  /** Corrupt every block it sends (flips a byte). */
  readonly corrupt?: boolean
  /** Corrupt only the blocks at this index within each piece (begin = 16 KiB × it). */
  readonly corruptBlock?: number
  /** Never answer requests (after unchoking). */
  readonly stall?: boolean
  /** Stop serving (close every connection and the listener) after this many blocks. */
  readonly stopAfterBlocks?: number
  /** Wait this long before answering each request (throttles a download so it can be interrupted). */
  readonly blockDelayMs?: number
  /**
   * Speak BEP 10 and serve the info dict over ut_metadata (BEP 9): "honest", or "liar" (every metadata piece has a
   * flipped byte, so the assembled dict fails its SHA-1).
   */
  readonly metadata?: "honest" | "liar"
  /**
   * BEP 52: answer `hash request`s for piece layers (v2 and hybrid torrents) from the torrent's layers: "honest", or
   * "liar" (a flipped bit in every answer, so its proof fails), or "reject" (a `hash reject` to each).
   */
  readonly hashes?: "honest" | "liar" | "reject"
  /** Keep every peer choked until this settles (the download waits; no request deadline runs meanwhile). */
  readonly unchokeWhen?: Promise<unknown>
  /** Listen on this port (default 0: any free port), e.g. to come back where a stopped seeder was. */
  readonly port?: number
}

export interface Seeder {
  readonly port: number
  /** Blocks sent so far. */
  readonly served: () => number
  /** Blocks of piece `index` sent so far. */
  readonly servedOf: (index: number) => number
  /** Connections accepted so far. */
  readonly connections: () => number
  /** ut_metadata data messages sent so far. */
  readonly metadataServed: () => number
  /** BEP 52 hash requests received so far. */
  readonly hashRequests: () => number
  readonly stop: () => Promise<void>
}

/** Starts a seeder for `built` on 127.0.0.1 (port 0). */
export const seed = (built: Built, options: SeederOptions = {}): Promise<Seeder> => {
  const m = built.metainfo
  const peerId = new Uint8Array(randomBytes(20))
  const has = Bitfield.make(m.pieceCount)
  for (let i = 0; i < m.pieceCount; i++) {
    if (options.pieces === undefined || options.pieces.includes(i)) Bitfield.set(has, i)
  }
  let served = 0
  let metadataServed = 0
  let hashRequests = 0
  const hashServer = Metainfo.hashServer(m)
  const UT_METADATA = 3
  const perPiece = new Array<number>(m.pieceCount).fill(0)
  let connections = 0
  let stopped = false
  const sockets = new Set<Net.Socket>()
  const server = Net.createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => {})
    if (stopped) return void socket.destroy()
    const reader = Handshake.reader()
    let decoder: FrameDecoder.FrameDecoder | undefined
    let peerUtMetadata = 0
    const send = (msgs: ReadonlyArray<Message.Message>) => {
      if (!socket.destroyed) socket.write(Message.encodeBatch(msgs))
    }
    const handler: FrameDecoder.Handler = {
      onBlock: () => {},
      onMessage: (msg) => {
        if (msg._tag === "HashRequest" && options.hashes !== undefined) {
          hashRequests++
          const hashes = options.hashes === "reject" ? undefined : hashServer?.(msg)?.slice()
          if (hashes !== undefined && options.hashes === "liar") hashes[0] = hashes[0]! ^ 1
          const { piecesRoot, base, index, length, proofLayers } = msg
          send([
            hashes === undefined
              ? Message.HashReject({ piecesRoot, base, index, length, proofLayers })
              : Message.Hashes({ piecesRoot, base, index, length, proofLayers, hashes })
          ])
          return
        }
        if (msg._tag === "Extended" && msg.id === UT_METADATA && options.metadata !== undefined) {
          const req = UtMetadata.decode(msg.payload)
          if (Either.isLeft(req) || req.right._tag !== "Request") return
          const answer = UtMetadata.answer(m.rawInfo, req.right.piece)
          if (answer._tag === "Data" && options.metadata === "liar") {
            const bytes = new Uint8Array(answer.bytes)
            bytes[0] = bytes[0]! ^ 0xff
            send([Message.Extended({ id: peerUtMetadata, payload: UtMetadata.encode({ ...answer, bytes }) })])
          } else send([Message.Extended({ id: peerUtMetadata, payload: UtMetadata.encode(answer) })])
          if (answer._tag === "Data") metadataServed++
          return
        }
        if (msg._tag === "Extended" && msg.id === 0) {
          const h = ExtensionHandshake.decode(msg.payload, { lenient: true })
          if (Either.isRight(h)) peerUtMetadata = h.right.m.get(ExtensionHandshake.UtMetadata) ?? 0
          return
        }
        if (msg._tag === "Interested") {
          if (options.unchokeWhen === undefined) send([Message.Unchoke()])
          else void options.unchokeWhen.then(() => send([Message.Unchoke()]))
        }
        else if (msg._tag === "Request") {
          if (options.stall === true || stopped || !Bitfield.has(has, msg.index)) return
          const start = msg.index * m.pieceLength + msg.begin
          const block = new Uint8Array(built.payload.subarray(start, start + msg.length))
          const bad = options.corrupt === true || options.corruptBlock === msg.begin / 16384
          if (bad && block.length > 0) block[0] = block[0]! ^ 0xff
          const answer = () => {
            if (stopped || socket.destroyed) return
            served++
            perPiece[msg.index] = (perPiece[msg.index] ?? 0) + 1
            send([Message.Piece({ index: msg.index, begin: msg.begin, block })])
            if (options.stopAfterBlocks !== undefined && served >= options.stopAfterBlocks) void stop()
          }
          if (options.blockDelayMs === undefined) answer()
          else setTimeout(answer, options.blockDelayMs)
        }
      }
    }
    socket.on("data", (chunk: Buffer) => {
      if (decoder !== undefined) {
        if (decoder.push(chunk) !== undefined) socket.destroy()
        return
      }
      const p = reader.push(chunk)
      if (p instanceof WireError) return void socket.destroy()
      if (p._tag === "NeedMore") return
      if (Buffer.compare(p.handshake.infoHash, m.infoHash) !== 0) return void socket.destroy()
      const v2 = options.hashes !== undefined
      const ext = options.metadata !== undefined
      const hs = { reserved: Handshake.reserved({ extensionProtocol: ext }), infoHash: m.infoHash, peerId: peerId as never }
      socket.write(Handshake.encode(hs))
      send([Message.Bitfield({ bytes: has.bytes })])
      if (ext) {
        const payload = ExtensionHandshake.encode({
          m: new Map([[ExtensionHandshake.UtMetadata, UT_METADATA]]),
          metadataSize: m.rawInfo.length
        })
        send([Message.Extended({ id: 0, payload })])
      }
      decoder = FrameDecoder.make(handler, { pieceCount: m.pieceCount, fast: false, extensionProtocol: ext, v2 })
      if (p.rest.length > 0 && decoder.push(p.rest) !== undefined) socket.destroy()
    })
  })
  const stop = async () => {
    stopped = true
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      resolve({
        port,
        served: () => served,
        servedOf: (index) => perPiece[index] ?? 0,
        connections: () => connections,
        metadataServed: () => metadataServed,
        hashRequests: () => hashRequests,
        stop
      })
    })
  })
}

/** A port with nothing listening (bound then closed). */
export const deadPort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = Net.createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
