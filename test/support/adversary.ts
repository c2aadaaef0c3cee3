/**
 * Hostile peers for whole-download tests: an in-process peer on 127.0.0.1 (port 0) that our client dials, answers
 * the handshake the way it is told (or not at all), then runs a script of misbehaviour over our own wire codec.
 * Real peers never do these things on purpose, hence an in-process fake (the standards allow fakes for failures a
 * real peer won't produce).
 *
 * Every loop here is bounded and stops when the socket closes: floods write with backpressure (`stream` waits for
 * 'drain', so the adversary itself buffers little) and stop after a fixed number of bytes.
 */
import { randomBytes } from "node:crypto"
import * as Net from "node:net"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import { WireError } from "../../src/wire/WireError.ts"
import type { Built } from "./seeder.ts"

/**
 * How the adversary answers our handshake: properly; for another torrent; with our own peer id (as if we had dialled
 * ourselves); one byte every 200 ms (a slow-loris); or never (it accepts and stays silent).
 */
export type HandshakeMode = "valid" | "wrong-info-hash" | "own-peer-id" | "slow-loris" | "silent"

/** One connection's view for a script. */
export interface Peer {
  readonly pieceCount: number
  readonly pieceLength: number
  readonly totalLength: number
  readonly send: (messages: ReadonlyArray<Message.Message>) => void
  readonly raw: (bytes: Uint8Array) => void
  /** Writes what `next` returns until it returns undefined or the connection ends, waiting for 'drain' between. */
  readonly stream: (next: () => Uint8Array | undefined) => void
  /** Our messages to it (decoded once its handshake went out). */
  readonly onMessage: (f: (message: Message.Control) => void) => void
  /** Whole blocks (`piece` messages) we send it. */
  readonly onBlock: (f: (index: number, begin: number) => void) => void
  /** Stops reading what we send (what we write then piles up on our side). */
  readonly pauseReading: () => void
  readonly destroy: () => void
  readonly destroyed: () => boolean
}

export interface AdversaryOptions {
  readonly handshake?: HandshakeMode
  /** Runs once the adversary's handshake went out (valid, wrong-info-hash and own-peer-id modes). */
  readonly script?: (peer: Peer) => void
}

export interface Adversary {
  readonly port: number
  readonly address: string
  /** Connections we made to it. */
  readonly connections: () => number
  /** Script events (`mark`), e.g. "disconnected mid-block". */
  readonly marks: () => ReadonlyArray<string>
  readonly mark: (what: string) => void
  readonly stop: () => Promise<void>
}

export const adversary = (built: Built, options: AdversaryOptions = {}): Promise<Adversary> => {
  const m = built.metainfo
  const mode = options.handshake ?? "valid"
  const marks: Array<string> = []
  let connections = 0
  const sockets = new Set<Net.Socket>()
  const server = Net.createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => {})
    if (mode === "silent") return
    const reader = Handshake.reader()
    const listeners: Array<(message: Message.Control) => void> = []
    const blockListeners: Array<(index: number, begin: number) => void> = []
    let decoder: FrameDecoder.FrameDecoder | undefined
    const write = (bytes: Uint8Array) => {
      if (!socket.destroyed) socket.write(bytes)
    }
    const peer: Peer = {
      pieceCount: m.pieceCount,
      pieceLength: m.pieceLength,
      totalLength: m.totalLength,
      send: (messages) => write(Message.encodeBatch(messages)),
      raw: write,
      stream: (next) => {
        const pump = () => {
          for (;;) {
            if (socket.destroyed) return
            const chunk = next()
            if (chunk === undefined) return
            if (!socket.write(chunk)) return void socket.once("drain", pump)
          }
        }
        pump()
      },
      onMessage: (f) => void listeners.push(f),
      onBlock: (f) => void blockListeners.push(f),
      pauseReading: () => void socket.pause(),
      destroy: () => void socket.destroy(),
      destroyed: () => socket.destroyed
    }
    socket.on("data", (chunk: Buffer) => {
      if (decoder !== undefined) {
        if (decoder.push(chunk) !== undefined) socket.destroy()
        return
      }
      const p = reader.push(chunk)
      if (p instanceof WireError) return void socket.destroy()
      if (p._tag === "NeedMore") return
      const theirs = p.handshake
      const hs = Handshake.encode({
        reserved: Handshake.reserved({}),
        infoHash: mode === "wrong-info-hash" ? new Uint8Array(randomBytes(20)) as never : m.infoHash,
        peerId: mode === "own-peer-id" ? theirs.peerId : new Uint8Array(randomBytes(20)) as never
      })
      decoder = FrameDecoder.make({
        onMessage: (message) => {
          for (const f of listeners) f(message)
        },
        onBlock: (index, begin, length, offset, data) => {
          if (offset + data.length === length) for (const f of blockListeners) f(index, begin)
        }
      }, { pieceCount: m.pieceCount, fast: false, extensionProtocol: false })
      if (mode === "slow-loris") {
        let i = 0
        const drip = () => {
          if (socket.destroyed || i >= hs.length) return
          write(hs.subarray(i, ++i))
          setTimeout(drip, 200)
        }
        return drip()
      }
      write(hs)
      options.script?.(peer)
    })
  })
  const stop = async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      resolve({
        port,
        address: `127.0.0.1:${port}`,
        connections: () => connections,
        marks: () => marks,
        mark: (what) => void marks.push(what),
        stop
      })
    })
  })
}

/** Encodes `count` copies of `message` in one buffer (for floods). */
export const repeated = (message: Message.Message, count: number): Uint8Array => {
  const one = Message.encode(message)
  const out = new Uint8Array(one.length * count)
  for (let i = 0; i < count; i++) out.set(one, i * one.length)
  return out
}

/** A `stream` source: `chunks` times `chunk`, then done. */
export const times = (chunk: Uint8Array, chunks: number): (() => Uint8Array | undefined) => {
  let left = chunks
  return () => (left-- > 0 ? chunk : undefined)
}

/** A bitfield message claiming every piece, or none. */
export const bitfieldOf = (pieceCount: number, all: boolean): Message.Message =>
  Message.Bitfield({ bytes: (all ? Bitfield.full(pieceCount) : Bitfield.make(pieceCount)).bytes })
