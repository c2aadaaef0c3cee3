/**
 * The uTP packet codec (BEP 29, header version 1). Pure: no I/O, never throws on any input.
 *
 * ```
 *  0       4       8               16              24              32
 * +-------+-------+---------------+---------------+---------------+
 * | type  | ver   | extension     | connection_id                 |
 * +-------+-------+---------------+---------------+---------------+
 * | timestamp_microseconds                                        |
 * | timestamp_difference_microseconds                             |
 * | wnd_size                                                      |
 * | seq_nr                        | ack_nr                        |
 * +-------+-------+---------------+---------------+---------------+
 * then the extension chain: [next extension type u8, length u8, length bytes]..., ending at type 0; then payload.
 * ```
 * All fields big-endian. Types: ST_DATA 0, ST_FIN 1, ST_STATE 2, ST_RESET 3, ST_SYN 4. Extension 1 is the
 * selective ack: a bitmask whose bit i (least significant bit of each byte first) says seq_nr `ack_nr + 2 + i` was
 * received (`ack_nr + 1` is implied missing). BEP 29 asks for a multiple of 4 bytes; libtorrent sends
 * `ceil(span / 8)` bytes, so any length of at least 1 is accepted, and we send multiples of 4. Other extension
 * types (libtorrent's close reason is 3) are kept as they are and skipped by the connection.
 *
 * `parse` (hot path) returns the packet or a `UtpPacketError`; `decode` wraps it in an `Either`. `encode` is the
 * exact inverse on everything `parse` accepts: `encode(parse(b)) = b`. `writeHeader` fills a 20-byte header in
 * place (the connection builds its packets into one buffer with it, without a `Packet` object).
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

export const VERSION = 1
export const HEADER_SIZE = 20

/** Packet types (the high nibble of the first byte). */
export const Type = { Data: 0, Fin: 1, State: 2, Reset: 3, Syn: 4 } as const
export type Type = (typeof Type)[keyof typeof Type]

export const typeName = (t: Type): "ST_DATA" | "ST_FIN" | "ST_STATE" | "ST_RESET" | "ST_SYN" =>
  (["ST_DATA", "ST_FIN", "ST_STATE", "ST_RESET", "ST_SYN"] as const)[t]

/** Extension types. */
export const Extension = { None: 0, SelectiveAck: 1, CloseReason: 3 } as const

export interface ExtensionField {
  /** Non-zero (0 ends the chain). */
  readonly type: number
  /** 0..255 bytes. */
  readonly data: Uint8Array
}

export interface Packet {
  readonly type: Type
  readonly connectionId: number
  /** Sender's clock when sent, µs modulo 2^32 (0: none). */
  readonly timestamp: number
  /** The sender's last measured `receive time - our timestamp`, µs modulo 2^32 (0: none yet). */
  readonly timestampDiff: number
  /** Bytes the sender can still receive (u32). */
  readonly windowSize: number
  readonly seqNr: number
  readonly ackNr: number
  /** Every extension, in chain order (the selective ack included). */
  readonly extensions: ReadonlyArray<ExtensionField>
  /** The selective-ack bitmask, when the chain has one. */
  readonly selectiveAck: Uint8Array | undefined
  /** A view of the input (no copy). */
  readonly payload: Uint8Array
}

export type Reason =
  | "too-short" // fewer than 20 bytes
  | "bad-version" // version nibble is not 1
  | "bad-type" // type nibble above 4
  | "truncated-extension" // an extension header or body runs past the end of the datagram
  | "bad-selective-ack" // a selective ack with no bitmask byte, or a second one in the chain

export class UtpPacketError extends Data.TaggedError("UtpPacketError")<{
  readonly reason: Reason
  /** Byte offset of the problem in the datagram. */
  readonly offset: number
  readonly detail: string
}> {
  override get message(): string {
    return `invalid uTP packet (${this.reason}) at byte ${this.offset}: ${this.detail}`
  }
}

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!
const u32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0

/**
 * Whether a datagram looks like uTP from its first byte and length alone (version nibble 1, a known type, at least a
 * header): the demultiplexing rule of a UDP socket shared with the DHT (bencoded KRPC starts with `d` = 0x64, whose
 * version nibble is 4).
 */
export const looksLikeUtp = (bytes: Uint8Array): boolean =>
  bytes.length >= HEADER_SIZE && (bytes[0]! & 0x0f) === VERSION && bytes[0]! >> 4 <= Type.Syn

const EMPTY: ReadonlyArray<ExtensionField> = []

/** Decodes one datagram. Never throws. */
export const parse = (bytes: Uint8Array): Packet | UtpPacketError => {
  if (bytes.length < HEADER_SIZE) {
    return new UtpPacketError({ reason: "too-short", offset: bytes.length, detail: `${bytes.length} bytes` })
  }
  const b0 = bytes[0]!
  if ((b0 & 0x0f) !== VERSION) {
    return new UtpPacketError({ reason: "bad-version", offset: 0, detail: `version ${b0 & 0x0f}` })
  }
  const type = b0 >> 4
  if (type > Type.Syn) return new UtpPacketError({ reason: "bad-type", offset: 0, detail: `type ${type}` })
  let next = bytes[1]!
  let at = HEADER_SIZE
  let extensions: Array<ExtensionField> | undefined
  let selectiveAck: Uint8Array | undefined
  while (next !== 0) {
    if (at + 2 > bytes.length) {
      return new UtpPacketError({ reason: "truncated-extension", offset: at, detail: `extension ${next} header` })
    }
    const following = bytes[at]!
    const len = bytes[at + 1]!
    const start = at + 2
    if (start + len > bytes.length) {
      return new UtpPacketError({
        reason: "truncated-extension",
        offset: at,
        detail: `extension ${next} of ${len} bytes, ${bytes.length - start} left`
      })
    }
    const data = bytes.subarray(start, start + len)
    if (next === Extension.SelectiveAck) {
      if (len === 0) return new UtpPacketError({ reason: "bad-selective-ack", offset: at, detail: "empty bitmask" })
      if (selectiveAck !== undefined) {
        return new UtpPacketError({ reason: "bad-selective-ack", offset: at, detail: "second selective ack" })
      }
      selectiveAck = data
    }
    ;(extensions ??= []).push({ type: next, data })
    next = following
    at = start + len
  }
  return {
    type: type as Type,
    connectionId: u16(bytes, 2),
    timestamp: u32(bytes, 4),
    timestampDiff: u32(bytes, 8),
    windowSize: u32(bytes, 12),
    seqNr: u16(bytes, 16),
    ackNr: u16(bytes, 18),
    extensions: extensions ?? EMPTY,
    selectiveAck,
    payload: bytes.subarray(at)
  }
}

/** `parse` as an `Either`. */
export const decode = (bytes: Uint8Array): Either.Either<Packet, UtpPacketError> => {
  const p = parse(bytes)
  return p instanceof UtpPacketError ? Either.left(p) : Either.right(p)
}

/**
 * Writes a header at `offset` of `target` (20 bytes). Numbers are taken modulo their field width; `extension` is
 * the type of the first extension (0: none), whose bytes the caller writes after the header.
 */
export const writeHeader = (
  target: Uint8Array,
  offset: number,
  type: Type,
  extension: number,
  connectionId: number,
  timestamp: number,
  timestampDiff: number,
  windowSize: number,
  seqNr: number,
  ackNr: number
): void => {
  target[offset] = (type << 4) | VERSION
  target[offset + 1] = extension
  target[offset + 2] = (connectionId >>> 8) & 0xff
  target[offset + 3] = connectionId & 0xff
  writeU32(target, offset + 4, timestamp)
  writeU32(target, offset + 8, timestampDiff)
  writeU32(target, offset + 12, windowSize)
  target[offset + 16] = (seqNr >>> 8) & 0xff
  target[offset + 17] = seqNr & 0xff
  target[offset + 18] = (ackNr >>> 8) & 0xff
  target[offset + 19] = ackNr & 0xff
}

/** Rewrites the fields a retransmission refreshes (timestamps, window, ack) of a header at `offset`. */
export const refreshHeader = (
  target: Uint8Array,
  offset: number,
  timestamp: number,
  timestampDiff: number,
  windowSize: number,
  ackNr: number
): void => {
  writeU32(target, offset + 4, timestamp)
  writeU32(target, offset + 8, timestampDiff)
  writeU32(target, offset + 12, windowSize)
  target[offset + 18] = (ackNr >>> 8) & 0xff
  target[offset + 19] = ackNr & 0xff
}

const writeU32 = (t: Uint8Array, o: number, v: number): void => {
  const x = v >>> 0
  t[o] = x >>> 24
  t[o + 1] = (x >>> 16) & 0xff
  t[o + 2] = (x >>> 8) & 0xff
  t[o + 3] = x & 0xff
}

/** Size of `p` encoded. */
export const encodedLength = (p: Packet): number => {
  let n = HEADER_SIZE + p.payload.length
  for (const e of p.extensions) n += 2 + e.data.length
  return n
}

/**
 * Encodes a packet. `extensions` is the chain (lengths above 255 bytes are not representable: callers keep them
 * short; `selectiveAck` is informational and not read here). Inverse of `parse` on what it accepts.
 */
export const encode = (p: Packet): Uint8Array => {
  const out = new Uint8Array(encodedLength(p))
  const exts = p.extensions
  writeHeader(
    out,
    0,
    p.type,
    exts.length > 0 ? exts[0]!.type : 0,
    p.connectionId,
    p.timestamp,
    p.timestampDiff,
    p.windowSize,
    p.seqNr,
    p.ackNr
  )
  let at = HEADER_SIZE
  for (let i = 0; i < exts.length; i++) {
    const e = exts[i]!
    out[at] = i + 1 < exts.length ? exts[i + 1]!.type : 0
    out[at + 1] = e.data.length
    out.set(e.data, at + 2)
    at += 2 + e.data.length
  }
  out.set(p.payload, at)
  return out
}

/** Builds a packet value with defaults (tests, simple senders). */
export const make = (fields: Partial<Packet> & { readonly type: Type }): Packet => {
  const extensions = fields.extensions ?? []
  return {
    type: fields.type,
    connectionId: fields.connectionId ?? 0,
    timestamp: fields.timestamp ?? 0,
    timestampDiff: fields.timestampDiff ?? 0,
    windowSize: fields.windowSize ?? 0,
    seqNr: fields.seqNr ?? 0,
    ackNr: fields.ackNr ?? 0,
    extensions,
    selectiveAck: extensions.find((e) => e.type === Extension.SelectiveAck)?.data,
    payload: fields.payload ?? new Uint8Array(0)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sequence numbers (16 bits) and timestamps (32 bits) wrap around.

/** `a - b` as a signed distance on the 16-bit circle (-32768..32767). */
export const seqDiff = (a: number, b: number): number => (((a - b) & 0xffff) ^ 0x8000) - 0x8000

/** `a` comes before `b` on the 16-bit circle. */
export const seqLess = (a: number, b: number): boolean => seqDiff(a, b) < 0

/** `(a - b) mod 2^32`, for µs timestamps. */
export const u32Diff = (a: number, b: number): number => (a - b) >>> 0
