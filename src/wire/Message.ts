/**
 * Peer wire messages (BEP 3, plus BEP 6 fast extension, BEP 10 extension protocol and BEP 52's hash messages) and
 * their encoders.
 *
 * Decoding lives in `FrameDecoder.ts`; it emits these values for everything except `piece` blocks, which go to a
 * callback so they can be copied once, straight into their piece buffer. Encoders write into a caller's buffer;
 * `encodeBatch` puts many messages into one array for one socket write (STACK.md gotcha 3).
 */
import * as Data from "effect/Data"

/** Message ids on the wire (the byte after the length prefix). Keep-alive has no id. */
export const Id = {
  Choke: 0,
  Unchoke: 1,
  Interested: 2,
  NotInterested: 3,
  Have: 4,
  Bitfield: 5,
  Request: 6,
  Piece: 7,
  Cancel: 8,
  Port: 9,
  Suggest: 0x0d,
  HaveAll: 0x0e,
  HaveNone: 0x0f,
  Reject: 0x10,
  AllowedFast: 0x11,
  Extended: 20,
  HashRequest: 21,
  Hashes: 22,
  HashReject: 23
} as const

/** The block size every current client requests (BEP 3: larger requests get the connection closed). */
export const blockLength = 16_384

/** Bytes before a piece message's block: length prefix, id, index, begin. */
export const pieceHeaderLength = 13

/** Bytes of a `hash request` / `hash reject`, and of a `hashes` message before its hashes: prefix, id, root, 4 × u32. */
export const hashHeaderLength = 53

/**
 * One peer wire message. Byte fields (`bytes`, `block`, `payload`) of decoded messages are owned copies, never
 * views of a socket chunk, so they can be retained.
 */
export type Message = Data.TaggedEnum<{
  KeepAlive: {}
  Choke: {}
  Unchoke: {}
  Interested: {}
  NotInterested: {}
  Have: { readonly index: number }
  /** Raw bitfield bytes (high bit of byte 0 is piece 0); read them with `Bitfield.fromBytes`. */
  Bitfield: { readonly bytes: Uint8Array }
  Request: { readonly index: number; readonly begin: number; readonly length: number }
  Piece: { readonly index: number; readonly begin: number; readonly block: Uint8Array }
  Cancel: { readonly index: number; readonly begin: number; readonly length: number }
  /** BEP 5: the peer's DHT port. */
  Port: { readonly port: number }
  /** BEP 6 fast extension. */
  Suggest: { readonly index: number }
  HaveAll: {}
  HaveNone: {}
  Reject: { readonly index: number; readonly begin: number; readonly length: number }
  AllowedFast: { readonly index: number }
  /** BEP 10: extended message `id` (0 is the extension handshake) with its payload (bencoded dict, maybe data). */
  Extended: { readonly id: number; readonly payload: Uint8Array }
  /**
   * BEP 52: asks for `length` hashes of layer `base` (0: leaves) of the file whose Merkle root is `piecesRoot`,
   * from `index` on, with uncle hashes for `proofLayers` layers above (see `core/Merkle.ts`, whose `Range` these
   * fields are). The decoder checks only the framing; whether the range fits the file is the torrent's call.
   */
  HashRequest: {
    readonly piecesRoot: Uint8Array
    readonly base: number
    readonly index: number
    readonly length: number
    readonly proofLayers: number
  }
  /**
   * BEP 52: the answer to a hash request: its fields, then `hashes`, the `length` base hashes followed by the uncle
   * hashes, lowest first (`Merkle.uncleCount(length, proofLayers)` of them; the decoder checks the count).
   */
  Hashes: {
    readonly piecesRoot: Uint8Array
    readonly base: number
    readonly index: number
    readonly length: number
    readonly proofLayers: number
    readonly hashes: Uint8Array
  }
  /** BEP 52: a hash request the peer will not serve (the request's fields). */
  HashReject: {
    readonly piecesRoot: Uint8Array
    readonly base: number
    readonly index: number
    readonly length: number
    readonly proofLayers: number
  }
}>

export type Piece = Extract<Message, { readonly _tag: "Piece" }>

/** Every message but `Piece`: what `FrameDecoder` hands to `onMessage`. */
export type Control = Exclude<Message, Piece>

export const {
  $is,
  $match,
  AllowedFast,
  Bitfield,
  Cancel,
  Choke,
  Extended,
  HashReject,
  HashRequest,
  Hashes,
  Have,
  HaveAll,
  HaveNone,
  Interested,
  KeepAlive,
  NotInterested,
  Piece,
  Port,
  Reject,
  Request,
  Suggest,
  Unchoke
} = Data.taggedEnum<Message>()

/** Bytes `message` takes on the wire, length prefix included. */
export const encodedLength = (message: Message): number => {
  switch (message._tag) {
    case "KeepAlive":
      return 4
    case "Choke":
    case "Unchoke":
    case "Interested":
    case "NotInterested":
    case "HaveAll":
    case "HaveNone":
      return 5
    case "Have":
    case "Suggest":
    case "AllowedFast":
      return 9
    case "Request":
    case "Cancel":
    case "Reject":
      return 17
    case "Port":
      return 7
    case "Bitfield":
      return 5 + message.bytes.length
    case "Piece":
      return pieceHeaderLength + message.block.length
    case "Extended":
      return 6 + message.payload.length
    case "HashRequest":
    case "HashReject":
      return hashHeaderLength
    case "Hashes":
      return hashHeaderLength + message.hashes.length
  }
}

const u32 = (buf: Uint8Array, o: number, v: number): void => {
  buf[o] = v >>> 24
  buf[o + 1] = v >>> 16
  buf[o + 2] = v >>> 8
  buf[o + 3] = v
}

/** The 48 bytes after a hash message's id: root (32 bytes, zero-filled if shorter), base, index, length, proof layers. */
const hashFields = (
  buf: Uint8Array,
  o: number,
  m: { readonly piecesRoot: Uint8Array; readonly base: number; readonly index: number; readonly length: number; readonly proofLayers: number }
): number => {
  buf.fill(0, o, o + 32)
  buf.set(m.piecesRoot.subarray(0, 32), o)
  u32(buf, o + 32, m.base)
  u32(buf, o + 36, m.index)
  u32(buf, o + 40, m.length)
  u32(buf, o + 44, m.proofLayers)
  return o + 48
}

/** Length prefix and id. */
const head = (buf: Uint8Array, o: number, length: number, id: number): number => {
  u32(buf, o, length)
  buf[o + 4] = id
  return o + 5
}

const triple = (buf: Uint8Array, o: number, id: number, index: number, begin: number, length: number): number => {
  o = head(buf, o, 13, id)
  u32(buf, o, index)
  u32(buf, o + 4, begin)
  u32(buf, o + 8, length)
  return o + 12
}

/**
 * Writes a piece message's 13-byte header for a block of `length` bytes; the block goes right after it, so an
 * uploader can read the block from storage straight into `buf` at the returned offset. Returns that offset.
 */
export const writePieceHeader = (
  buf: Uint8Array,
  offset: number,
  index: number,
  begin: number,
  length: number
): number => {
  const o = head(buf, offset, 9 + length, Id.Piece)
  u32(buf, o, index)
  u32(buf, o + 4, begin)
  return o + 8
}

/**
 * Writes `message` at `offset` (the caller sized `buf` with `encodedLength`) and returns the offset after it.
 * Numbers are written as unsigned 32-bit (16-bit for ports, 8-bit for extended ids) without range checks.
 */
export const encodeInto = (message: Message, buf: Uint8Array, offset: number): number => {
  switch (message._tag) {
    case "KeepAlive":
      u32(buf, offset, 0)
      return offset + 4
    case "Choke":
      return head(buf, offset, 1, Id.Choke)
    case "Unchoke":
      return head(buf, offset, 1, Id.Unchoke)
    case "Interested":
      return head(buf, offset, 1, Id.Interested)
    case "NotInterested":
      return head(buf, offset, 1, Id.NotInterested)
    case "HaveAll":
      return head(buf, offset, 1, Id.HaveAll)
    case "HaveNone":
      return head(buf, offset, 1, Id.HaveNone)
    case "Have":
    case "Suggest":
    case "AllowedFast": {
      const o = head(buf, offset, 5, Id[message._tag])
      u32(buf, o, message.index)
      return o + 4
    }
    case "Request":
    case "Cancel":
    case "Reject":
      return triple(buf, offset, Id[message._tag], message.index, message.begin, message.length)
    case "Port": {
      const o = head(buf, offset, 3, Id.Port)
      buf[o] = message.port >>> 8
      buf[o + 1] = message.port
      return o + 2
    }
    case "Bitfield": {
      const o = head(buf, offset, 1 + message.bytes.length, Id.Bitfield)
      buf.set(message.bytes, o)
      return o + message.bytes.length
    }
    case "Piece": {
      const o = writePieceHeader(buf, offset, message.index, message.begin, message.block.length)
      buf.set(message.block, o)
      return o + message.block.length
    }
    case "Extended": {
      const o = head(buf, offset, 2 + message.payload.length, Id.Extended)
      buf[o] = message.id
      buf.set(message.payload, o + 1)
      return o + 1 + message.payload.length
    }
    case "HashRequest":
    case "HashReject":
      return hashFields(buf, head(buf, offset, hashHeaderLength - 4, Id[message._tag]), message)
    case "Hashes": {
      const o = hashFields(buf, head(buf, offset, hashHeaderLength - 4 + message.hashes.length, Id.Hashes), message)
      buf.set(message.hashes, o)
      return o + message.hashes.length
    }
  }
}

/** One message as a new byte array. */
export const encode = (message: Message): Uint8Array => {
  const buf = new Uint8Array(encodedLength(message))
  encodeInto(message, buf, 0)
  return buf
}

/** Many messages concatenated into one new byte array, for a single socket write. */
export const encodeBatch = (messages: ReadonlyArray<Message>): Uint8Array => {
  let n = 0
  for (let i = 0; i < messages.length; i++) n += encodedLength(messages[i]!)
  const buf = new Uint8Array(n)
  let o = 0
  for (let i = 0; i < messages.length; i++) o = encodeInto(messages[i]!, buf, o)
  return buf
}
