/**
 * The 68-byte BitTorrent handshake: `19 "BitTorrent protocol" reserved[8] info_hash[20] peer_id[20]`, the reserved
 * bits we use (BEP 10 extension protocol, BEP 6 fast extension, BEP 5 DHT, BEP 52 v2), and a streaming reader for
 * a handshake that arrives split across chunks or merged with the first messages.
 *
 * BEP 52: a v2 swarm's handshake carries the SHA-256 info-hash truncated to 20 bytes (`InfoHash.truncatedV2`). A
 * peer that sends a hybrid's SHA-1 info-hash with the v2 bit set says it also speaks v2; the other side may answer
 * with the truncated v2 hash to "upgrade" the connection to v2 (so a listener must accept either id of a hybrid).
 */
import * as Either from "effect/Either"
import type { InfoHashV1, PeerId } from "../core/InfoHash.ts"
import { WireError } from "./WireError.ts"

export interface Handshake {
  /** The 8 reserved bytes as sent, unknown bits included. */
  readonly reserved: Uint8Array
  readonly infoHash: InfoHashV1
  readonly peerId: PeerId
}

/** Which of the extensions we know a reserved field announces. */
export interface Features {
  /** BEP 10, bit 0x10 of reserved byte 5. */
  readonly extensionProtocol: boolean
  /** BEP 6, bit 0x04 of reserved byte 7. */
  readonly fast: boolean
  /** BEP 5, bit 0x01 of reserved byte 7. */
  readonly dht: boolean
}

export const length = 68
export const protocol = "BitTorrent protocol"

const PSTR = Uint8Array.from(protocol, (c) => c.charCodeAt(0))

export const supportsExtensionProtocol = (reserved: Uint8Array): boolean => (reserved[5]! & 0x10) !== 0
export const supportsFast = (reserved: Uint8Array): boolean => (reserved[7]! & 0x04) !== 0
export const supportsDht = (reserved: Uint8Array): boolean => (reserved[7]! & 0x01) !== 0
/** BEP 52, bit 0x10 of reserved byte 7 (the 4th most significant bit of the last byte): v2 support. */
export const supportsV2 = (reserved: Uint8Array): boolean => (reserved[7]! & 0x10) !== 0

/** The reserved bytes announcing `features` (and BEP 52's v2 bit with `v2`). */
export const reserved = (features: Partial<Features> & { readonly v2?: boolean | undefined }): Uint8Array => {
  const r = new Uint8Array(8)
  if (features.extensionProtocol === true) r[5] = 0x10
  r[7] = (features.fast === true ? 0x04 : 0) | (features.dht === true ? 0x01 : 0) | (features.v2 === true ? 0x10 : 0)
  return r
}

/** The features a reserved field announces. */
export const features = (reserved: Uint8Array): Features => ({
  extensionProtocol: supportsExtensionProtocol(reserved),
  fast: supportsFast(reserved),
  dht: supportsDht(reserved)
})

/**
 * What both sides announced, i.e. what the connection may use: pass `fast` and `extensionProtocol` on to
 * `FrameDecoder.make`. (`dht` only says whether a `port` message is worth sending.)
 */
export const negotiated = (ours: Uint8Array, theirs: Uint8Array): Features => ({
  extensionProtocol: supportsExtensionProtocol(ours) && supportsExtensionProtocol(theirs),
  fast: supportsFast(ours) && supportsFast(theirs),
  dht: supportsDht(ours) && supportsDht(theirs)
})

/**
 * Whether both sides set BEP 52's v2 bit: with a v2 torrent, pass `v2: true` on to `FrameDecoder.make` (hash
 * request, hashes and hash reject are then decoded). Kept apart from {@link negotiated}, whose shape callers match.
 */
export const negotiatedV2 = (ours: Uint8Array, theirs: Uint8Array): boolean => supportsV2(ours) && supportsV2(theirs)

/** Writes the 68 bytes at `offset` and returns the offset after them. */
export const encodeInto = (handshake: Handshake, buf: Uint8Array, offset: number): number => {
  buf[offset] = 19
  buf.set(PSTR, offset + 1)
  buf.set(handshake.reserved.subarray(0, 8), offset + 20)
  buf.set(handshake.infoHash.subarray(0, 20), offset + 28)
  buf.set(handshake.peerId.subarray(0, 20), offset + 48)
  return offset + length
}

export const encode = (handshake: Handshake): Uint8Array => {
  const buf = new Uint8Array(length)
  encodeInto(handshake, buf, 0)
  return buf
}

/** Index of the first byte in `bytes[from, to)` that differs from the protocol prefix, or -1. */
const prefixMismatch = (bytes: Uint8Array, from: number, to: number): number => {
  for (let i = from; i < to && i < 20; i++) {
    if (bytes[i] !== (i === 0 ? 19 : PSTR[i - 1])) return i
  }
  return -1
}

const mismatch = (at: number, byte: number | undefined): WireError =>
  new WireError({
    reason: "protocol-mismatch",
    offset: at,
    detail: at === 0
      ? `protocol string length ${byte}, expected 19 (an encrypted or non-BitTorrent connection?)`
      : `byte ${at} of the protocol string is ${byte}, expected "${protocol}"`
  })

/** Fields of a complete handshake in `b` (copied, so they do not keep `b` alive). */
const fields = (b: Uint8Array): Handshake => ({
  reserved: copy(b, 20, 28),
  infoHash: copy(b, 28, 48) as InfoHashV1,
  peerId: copy(b, 48, 68) as PeerId
})

/** A copy even when `b` is a Node Buffer (whose `slice` is a view). */
const copy = (b: Uint8Array, from: number, to: number): Uint8Array => new Uint8Array(b.subarray(from, to))

/** Decodes exactly one handshake (68 bytes). */
export const decode = (bytes: Uint8Array): Either.Either<Handshake, WireError> => {
  const bad = prefixMismatch(bytes, 0, Math.min(bytes.length, 20))
  if (bad >= 0) return Either.left(mismatch(bad, bytes[bad]))
  if (bytes.length !== length) {
    return Either.left(
      new WireError({ reason: "bad-handshake", offset: 0, detail: `${bytes.length} bytes, a handshake is ${length}` })
    )
  }
  return Either.right(fields(bytes))
}

/** Progress of a `Reader`. */
export type Progress =
  | {
    readonly _tag: "NeedMore"
    /** Known once 48 bytes are in: enough for a listener to route the connection before the peer id arrives. */
    readonly infoHash: InfoHashV1 | undefined
  }
  | {
    readonly _tag: "Done"
    readonly handshake: Handshake
    /** The bytes of the pushed chunk after the handshake (a view): push them into the frame decoder right away. */
    readonly rest: Uint8Array
  }

export interface Reader {
  /**
   * Takes the next chunk. A wrong protocol prefix is reported as soon as its first wrong byte arrives. After `Done`,
   * every chunk comes back whole as `rest`.
   */
  readonly push: (chunk: Uint8Array) => Progress | WireError
}

/** A reader for one incoming handshake. */
export const reader = (): Reader => {
  const buf = new Uint8Array(length)
  let have = 0
  let infoHash: InfoHashV1 | undefined
  let done: Handshake | undefined
  let error: WireError | undefined
  return {
    push: (chunk) => {
      if (error !== undefined) return error
      if (done !== undefined) return { _tag: "Done", handshake: done, rest: chunk }
      const take = Math.min(length - have, chunk.length)
      buf.set(chunk.subarray(0, take), have)
      const bad = prefixMismatch(buf, have, have + take)
      if (bad >= 0) return (error = mismatch(bad, buf[bad]))
      have += take
      if (have === length) {
        done = fields(buf)
        return { _tag: "Done", handshake: done, rest: chunk.subarray(take) }
      }
      if (have >= 48 && infoHash === undefined) infoHash = copy(buf, 28, 48) as InfoHashV1
      return { _tag: "NeedMore", infoHash }
    }
  }
}
