/**
 * A tiny in-process peer on a real loopback socket (`Tcp.listen`), for session tests: it seeds a payload from
 * memory, answering requests, or misbehaves in one chosen way.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import * as Tcp from "../../src/net/Tcp.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import { WireError } from "../../src/wire/WireError.ts"

export type Mode =
  | "seed" // handshake, have-all (or a full bitfield), unchoke, then answer every request
  | "silent" // accept and never send a byte
  | "wrong-info-hash" // answer the handshake for another torrent
  | "huge-frame" // a valid handshake, then a frame length of 2^32 - 1
  | "garbage" // bytes that are no handshake at all

export interface StubOptions {
  readonly payload: Uint8Array
  readonly pieceLength: number
  readonly infoHash: InfoHashV1
  readonly mode: Mode
  readonly fast?: boolean
}

export const stubPeerId = new Uint8Array(20).fill(0x44) as PeerId

/** Listens on 127.0.0.1 (a free port) for the lifetime of the scope; serves every connection per `mode`. */
export const seederStub = (o: StubOptions): Effect.Effect<{ readonly port: number }, Tcp.TcpError, Scope.Scope> =>
  Effect.gen(function*() {
    const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
    // Each connection lives in its own scope, closed when its server fiber ends.
    const one = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const conn = yield* listener.accept.pipe(Scope.extend(scope))
      yield* serve(conn, o).pipe(Effect.ensuring(Scope.close(scope, Exit.void)), Effect.forkScoped)
    })
    yield* one.pipe(Effect.forever, Effect.forkScoped)
    return { port: listener.address.port }
  })

const serve = (conn: Tcp.Connection, o: StubOptions): Effect.Effect<void> => {
  const fast = o.fast ?? true
  const pieceCount = Math.ceil(o.payload.length / o.pieceLength)
  const reader = Handshake.reader()
  let decoder: FrameDecoder.FrameDecoder | undefined
  const answer = (m: Message.Control) => {
    if (m._tag !== "Request") return
    const at = m.index * o.pieceLength + m.begin
    const block = o.payload.subarray(at, at + m.length)
    conn.write(Message.encode(Message.Piece({ index: m.index, begin: m.begin, block })))
  }
  const reply = (infoHash: InfoHashV1): Uint8Array =>
    Handshake.encode({ reserved: Handshake.reserved({ fast, extensionProtocol: true }), infoHash, peerId: stubPeerId })
  if (o.mode === "garbage") conn.write(Uint8Array.from({ length: 200 }, (_, i) => (i * 31 + 7) & 0xff))
  conn.onData((chunk) => {
    if (o.mode !== "seed" && o.mode !== "wrong-info-hash" && o.mode !== "huge-frame") return
    if (decoder !== undefined) {
      decoder.push(chunk)
      return
    }
    const p = reader.push(chunk)
    if (p instanceof WireError || p._tag === "NeedMore") return
    if (o.mode === "wrong-info-hash") {
      conn.write(reply(new Uint8Array(20).fill(0xee) as InfoHashV1))
      return
    }
    conn.write(reply(o.infoHash))
    if (o.mode === "huge-frame") {
      conn.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff, Message.Id.Piece, 0, 0, 0, 0))
      return
    }
    const full = new Uint8Array(Math.ceil(pieceCount / 8)).fill(0xff)
    if (pieceCount % 8 !== 0) full[full.length - 1] = (0xff << (8 - (pieceCount % 8))) & 0xff
    conn.write(Message.encodeBatch([
      fast ? Message.HaveAll() : Message.Bitfield({ bytes: full }),
      Message.Unchoke()
    ]))
    decoder = FrameDecoder.make({ onMessage: answer, onBlock: () => {} }, { pieceCount, fast, extensionProtocol: true })
    if (p.rest.length > 0) decoder.push(p.rest)
  })
  return Effect.ignore(conn.closed)
}
