/**
 * The incremental peer wire frame decoder: feed it socket chunks split anywhere, it calls a handler for each
 * message. Plain synchronous code on the byte path (THROUGHPUT.md): no Effect, no allocation per block.
 *
 * - `piece` blocks go to `onBlock` as views of the pushed chunk, in one part when the block lies inside one chunk,
 *   in several when it spans chunks. The caller copies each part straight into its piece buffer, so a block is
 *   copied once; the decoder never buffers block bytes.
 * - Every other message goes to `onMessage` as a `Message.Control`. Their byte fields are owned copies (bitfield,
 *   extended payload), never views of a chunk, so they may be retained (a view would keep the chunk alive).
 * - Size guards run on the length prefix, before any byte of the payload is buffered: a piece frame above
 *   9 + `maxBlockLength`, any other frame above `maxFrameLength`, a bitfield whose length does not match
 *   `pieceCount`, a fixed-size message with the wrong length.
 * - BEP 6 messages are decoded only when `fast` is on; otherwise they are a `not-negotiated` error, as BEP 6 asks.
 *   The same holds for BEP 10 (id 20) and `extensionProtocol`. Both default to on, so a decoder made without
 *   options accepts every message; a session passes what the handshakes negotiated.
 * - BEP 52's `hash request` (21), `hashes` (22) and `hash reject` (23) are decoded only when `v2` is on (both peers
 *   set the v2 bit and the torrent has a v2 half); off, the default, they are skipped like any unknown id, as before
 *   v2 existed here. Request and reject must be exactly 49 bytes; `hashes` must carry exactly the base hashes plus
 *   the uncles its own fields call for (`Merkle.uncleCount`), within `maxFrameLength`.
 * - Unknown ids are skipped (BEP 3), within `maxFrameLength`.
 * - It never throws (provided the handler does not): the first violation is returned as a `WireError`, and every
 *   later `push` returns the same error without decoding.
 *
 * What stays with the session: message order (bitfield only first), whether a piece was requested, block bounds
 * inside the piece, and the info-hash check of the handshake.
 */
import * as Either from "effect/Either"
import * as Bitfield from "../core/Bitfield.ts"
import * as Merkle from "../core/Merkle.ts"
import * as Message from "./Message.ts"
import { WireError } from "./WireError.ts"
import type { Reason } from "./WireError.ts"

export interface Handler {
  /** A complete message other than `piece`. */
  readonly onMessage: (message: Message.Control) => void
  /**
   * Part of the block of a `piece` message for piece `index` at byte `begin`, `length` bytes in all. `data` is a
   * view of the pushed chunk, valid only during the call: copy it to byte `begin + offset` of the piece. Parts come
   * in order without gaps; the block is complete when `offset + data.length === length`. An empty block arrives as
   * one call with empty `data`.
   */
  readonly onBlock: (index: number, begin: number, length: number, offset: number, data: Uint8Array) => void
}

export interface Options {
  /** Number of pieces, when known (not yet for a magnet link): bitfields must match it, indices stay below it. */
  readonly pieceCount?: number | undefined
  /** Largest block accepted in a piece message or asked for in a request. Default 16 KiB. */
  readonly maxBlockLength?: number | undefined
  /** Largest length prefix accepted for non-piece messages (extended, bitfield, unknown). Default 1 MiB. */
  readonly maxFrameLength?: number | undefined
  /** BEP 6 negotiated (both peers set the reserved bit). Default true. */
  readonly fast?: boolean | undefined
  /** BEP 10 negotiated (both peers set the reserved bit). Default true. */
  readonly extensionProtocol?: boolean | undefined
  /** BEP 52 negotiated: decode hash request / hashes / hash reject. Default false (they are skipped as unknown). */
  readonly v2?: boolean | undefined
}

export interface FrameDecoder {
  /** Decodes `chunk`; the error that stopped decoding, now or at an earlier push, or `undefined`. */
  readonly push: (chunk: Uint8Array) => WireError | undefined
  /** Sets the piece count once it is known (after a magnet link's metadata arrives). */
  readonly setPieceCount: (count: number) => void
  /** The error that stopped decoding, if any. */
  readonly error: WireError | undefined
  /** Stream bytes consumed by the pushes so far (error offsets count from the same origin). */
  readonly position: number
  /** True when the bytes so far end exactly at a frame boundary. */
  readonly atBoundary: boolean
}

export const defaultMaxFrameLength = 1 << 20

/** A decoder that reports to `handler`. */
export const make = (handler: Handler, options?: Options): FrameDecoder => new Decoder(handler, options ?? {})

/**
 * Decodes a complete byte string (tests, cold paths): every message, with piece blocks copied into `Piece` messages.
 * Input ending inside a frame is a `truncated` error.
 */
export const decodeAll = (bytes: Uint8Array, options?: Options): Either.Either<Array<Message.Message>, WireError> => {
  const out: Array<Message.Message> = []
  let block = new Uint8Array(0)
  const decoder = new Decoder({
    onMessage: (m) => out.push(m),
    onBlock: (index, begin, length, offset, data) => {
      if (offset === 0) block = new Uint8Array(length)
      block.set(data, offset)
      if (offset + data.length === length) out.push(Message.Piece({ index, begin, block }))
    }
  }, options ?? {})
  const error = decoder.push(bytes)
  if (error !== undefined) return Either.left(error)
  if (!decoder.atBoundary) {
    const detail = `input ends inside the frame starting at byte ${decoder.frameStart}`
    return Either.left(new WireError({ reason: "truncated", offset: decoder.frameStart, detail }))
  }
  return Either.right(out)
}

// Shared instances of the messages without fields: decoding them allocates nothing.
const keepAlive = Message.KeepAlive()
const choke = Message.Choke()
const unchoke = Message.Unchoke()
const interested = Message.Interested()
const notInterested = Message.NotInterested()
const haveAll = Message.HaveAll()
const haveNone = Message.HaveNone()

const HEAD = 0 // reading a length prefix, id and fixed fields (into `head` when split across chunks)
const BLOCK = 1 // streaming a piece block to onBlock
const BODY = 2 // copying a bitfield, extended or hashes payload into `body`
const SKIP = 3 // skipping an unknown message's payload

/** Length prefix of a `hash request` / `hash reject`, and the fixed part of a `hashes` one: id, root, 4 × u32. */
const HASH_FIELDS = 49

/** The root (copied) and four numbers of a hash message, from `b[o]` (the byte after the id). */
const hashFields = (b: Uint8Array, o: number) => ({
  piecesRoot: new Uint8Array(b.subarray(o, o + 32)), // a copy, even of a Node Buffer (whose slice is a view)
  base: u32(b, o + 32),
  index: u32(b, o + 36),
  length: u32(b, o + 40),
  proofLayers: u32(b, o + 44)
})

const u32 = (b: Uint8Array, o: number): number =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0

class Decoder implements FrameDecoder {
  readonly handler: Handler
  readonly maxBlock: number
  readonly maxFrame: number
  readonly fast: boolean
  readonly ext: boolean
  readonly v2: boolean
  pieceCount: number
  error: WireError | undefined
  /** Stream offset of the current chunk's first byte. */
  base: number
  /** Stream offset of the frame being decoded. */
  frameStart: number
  stage: number
  /** A frame's first bytes when they arrive split; 53 bytes fit the largest fixed-size header (hash request). */
  readonly head: Uint8Array
  headHave: number
  headNeed: number
  // The frame being decoded.
  len: number
  id: number
  index: number
  begin: number
  blockLen: number
  blockDone: number
  extId: number
  body: Uint8Array
  bodyHave: number
  skipLeft: number

  constructor(handler: Handler, options: Options) {
    this.handler = handler
    this.maxBlock = options.maxBlockLength ?? Message.blockLength
    this.maxFrame = options.maxFrameLength ?? defaultMaxFrameLength
    this.fast = options.fast ?? true
    this.ext = options.extensionProtocol ?? true
    this.v2 = options.v2 ?? false
    this.pieceCount = options.pieceCount ?? -1
    this.error = undefined
    this.base = 0
    this.frameStart = 0
    this.stage = HEAD
    this.head = new Uint8Array(Message.hashHeaderLength)
    this.headHave = 0
    this.headNeed = 4
    this.len = 0
    this.id = 0
    this.index = 0
    this.begin = 0
    this.blockLen = 0
    this.blockDone = 0
    this.extId = 0
    this.body = this.head
    this.bodyHave = 0
    this.skipLeft = 0
  }

  get position(): number {
    return this.base
  }

  get atBoundary(): boolean {
    return this.stage === HEAD && this.headHave === 0
  }

  setPieceCount(count: number): void {
    this.pieceCount = count
  }

  push(chunk: Uint8Array): WireError | undefined {
    if (this.error !== undefined) return this.error
    const n = chunk.length
    let pos = 0
    while (pos < n) {
      const stage = this.stage
      if (stage === BLOCK) {
        const done = this.blockDone
        const take = Math.min(this.blockLen - done, n - pos)
        this.blockDone = done + take
        if (this.blockDone === this.blockLen) this.stage = HEAD
        this.handler.onBlock(this.index, this.begin, this.blockLen, done, chunk.subarray(pos, pos + take))
        pos += take
      } else if (stage === HEAD) {
        if (this.headHave === 0) {
          // Fast path: the whole header is in this chunk, read it in place.
          this.frameStart = this.base + pos
          const avail = n - pos
          if (avail >= 4) {
            const len = u32(chunk, pos)
            if (len === 0) {
              pos += 4
              this.handler.onMessage(keepAlive)
              continue
            }
            if (avail >= 5) {
              const id = chunk[pos + 4]!
              const need = this.check(len, id)
              if (need < 0) break
              if (avail >= need) {
                if (!this.header(chunk, pos, len, id)) break
                pos += need
                continue
              }
            }
          }
        }
        // Slow path: gather the header in `head` across chunks.
        const head = this.head
        while (this.headHave < this.headNeed && pos < n) head[this.headHave++] = chunk[pos++]!
        if (this.headHave < this.headNeed) break
        if (this.headNeed === 4) {
          const len = u32(head, 0)
          if (len === 0) {
            this.headHave = 0
            this.handler.onMessage(keepAlive)
            continue
          }
          this.headNeed = 5
          continue
        }
        const len = u32(head, 0)
        const id = head[4]!
        if (this.headNeed === 5) {
          const need = this.check(len, id)
          if (need < 0) break
          if (need > 5) {
            this.headNeed = need
            continue
          }
        }
        this.headHave = 0
        this.headNeed = 4
        if (!this.header(head, 0, len, id)) break
      } else if (stage === BODY) {
        const take = Math.min(this.body.length - this.bodyHave, n - pos)
        this.body.set(chunk.subarray(pos, pos + take), this.bodyHave)
        this.bodyHave += take
        pos += take
        if (this.bodyHave === this.body.length) {
          this.stage = HEAD
          if (!this.emitBody()) break
        }
      } else {
        const take = Math.min(this.skipLeft, n - pos)
        this.skipLeft -= take
        pos += take
        if (this.skipLeft === 0) this.stage = HEAD
      }
    }
    this.base += pos
    return this.error
  }

  fail(reason: Reason, detail: string): -1 {
    this.error = new WireError({ reason, offset: this.frameStart, detail })
    return -1
  }

  /** Validates a frame's length against its id; the header size to read (prefix included), or -1 on error. */
  check(len: number, id: number): number {
    switch (id) {
      case Message.Id.Choke:
      case Message.Id.Unchoke:
      case Message.Id.Interested:
      case Message.Id.NotInterested:
        return len === 1 ? 5 : this.badLength(id, len, 1)
      case Message.Id.Have:
        return len === 5 ? 9 : this.badLength(id, len, 5)
      case Message.Id.Bitfield:
        if (this.pieceCount >= 0) {
          const want = 1 + Bitfield.byteLength(this.pieceCount)
          if (len !== want) {
            return this.fail("bad-bitfield", `bitfield of ${len - 1} bytes for ${this.pieceCount} pieces`)
          }
        } else if (len > this.maxFrame) return this.tooLarge(id, len, this.maxFrame)
        return 5
      case Message.Id.Request:
      case Message.Id.Cancel:
        return len === 13 ? 17 : this.badLength(id, len, 13)
      case Message.Id.Piece:
        if (len < 9) return this.badLength(id, len, 9)
        return len <= 9 + this.maxBlock ? 13 : this.tooLarge(id, len, 9 + this.maxBlock)
      case Message.Id.Port:
        return len === 3 ? 7 : this.badLength(id, len, 3)
      case Message.Id.Suggest:
      case Message.Id.AllowedFast:
        if (!this.fast) return this.notNegotiated(id)
        return len === 5 ? 9 : this.badLength(id, len, 5)
      case Message.Id.HaveAll:
      case Message.Id.HaveNone:
        if (!this.fast) return this.notNegotiated(id)
        return len === 1 ? 5 : this.badLength(id, len, 1)
      case Message.Id.Reject:
        if (!this.fast) return this.notNegotiated(id)
        return len === 13 ? 17 : this.badLength(id, len, 13)
      case Message.Id.Extended:
        if (!this.ext) return this.notNegotiated(id)
        if (len < 2) return this.badLength(id, len, 2)
        return len <= this.maxFrame ? 6 : this.tooLarge(id, len, this.maxFrame)
      case Message.Id.HashRequest:
      case Message.Id.HashReject:
        if (!this.v2) break
        return len === HASH_FIELDS ? Message.hashHeaderLength : this.badLength(id, len, HASH_FIELDS)
      case Message.Id.Hashes:
        if (!this.v2) break
        if (len < HASH_FIELDS || (len - HASH_FIELDS) % 32 !== 0) {
          return this.fail("bad-length", `hashes message with length ${len}, expected 49 + a multiple of 32`)
        }
        return len <= this.maxFrame ? 5 : this.tooLarge(id, len, this.maxFrame)
    }
    // unknown ids (and BEP 52's without v2) are skipped, within the frame bound
    return len <= this.maxFrame ? 5 : this.tooLarge(id, len, this.maxFrame)
  }

  badLength(id: number, len: number, want: number): -1 {
    const expected = id === Message.Id.Piece ? `at least ${want}` : `${want}`
    return this.fail("bad-length", `message id ${id} with length ${len}, expected ${expected}`)
  }

  tooLarge(id: number, len: number, max: number): -1 {
    return this.fail("frame-too-large", `message id ${id} with length ${len}, at most ${max} allowed`)
  }

  notNegotiated(id: number): -1 {
    const what = id === Message.Id.Extended ? "extension protocol (BEP 10)" : "fast extension (BEP 6)"
    return this.fail("not-negotiated", `message id ${id} but the ${what} was not negotiated`)
  }

  badIndex(index: number): boolean {
    if (this.pieceCount < 0 || index < this.pieceCount) return false
    this.fail("bad-index", `piece index ${index}, the torrent has ${this.pieceCount} pieces`)
    return true
  }

  /** Acts on a checked header at `b[o]`; false on error. */
  header(b: Uint8Array, o: number, len: number, id: number): boolean {
    const h = this.handler
    switch (id) {
      case Message.Id.Piece: {
        const index = u32(b, o + 5)
        if (this.badIndex(index)) return false
        this.index = index
        this.begin = u32(b, o + 9)
        this.blockLen = len - 9
        this.blockDone = 0
        if (len > 9) this.stage = BLOCK
        else h.onBlock(index, this.begin, 0, 0, b.subarray(o, o))
        return true
      }
      case Message.Id.Choke:
        h.onMessage(choke)
        return true
      case Message.Id.Unchoke:
        h.onMessage(unchoke)
        return true
      case Message.Id.Interested:
        h.onMessage(interested)
        return true
      case Message.Id.NotInterested:
        h.onMessage(notInterested)
        return true
      case Message.Id.HaveAll:
        h.onMessage(haveAll)
        return true
      case Message.Id.HaveNone:
        h.onMessage(haveNone)
        return true
      case Message.Id.Have:
      case Message.Id.Suggest:
      case Message.Id.AllowedFast: {
        const index = u32(b, o + 5)
        if (this.badIndex(index)) return false
        h.onMessage(
          id === Message.Id.Have
            ? Message.Have({ index })
            : id === Message.Id.Suggest
            ? Message.Suggest({ index })
            : Message.AllowedFast({ index })
        )
        return true
      }
      case Message.Id.Request:
      case Message.Id.Cancel:
      case Message.Id.Reject: {
        const index = u32(b, o + 5)
        const begin = u32(b, o + 9)
        const length = u32(b, o + 13)
        if (this.badIndex(index)) return false
        if (id === Message.Id.Request) {
          if (length > this.maxBlock) {
            this.fail("request-too-large", `request for ${length} bytes, at most ${this.maxBlock} allowed`)
            return false
          }
          h.onMessage(Message.Request({ index, begin, length }))
        } else if (id === Message.Id.Cancel) h.onMessage(Message.Cancel({ index, begin, length }))
        else h.onMessage(Message.Reject({ index, begin, length }))
        return true
      }
      case Message.Id.Port:
        h.onMessage(Message.Port({ port: (b[o + 5]! << 8) | b[o + 6]! }))
        return true
      case Message.Id.HashRequest:
      case Message.Id.HashReject:
        if (this.v2) {
          const fields = hashFields(b, o + 5)
          h.onMessage(id === Message.Id.HashRequest ? Message.HashRequest(fields) : Message.HashReject(fields))
          return true
        }
        return this.skip(len)
      case Message.Id.Hashes:
        return this.v2 ? this.startBody(b, o, len, id) : this.skip(len)
      case Message.Id.Bitfield:
      case Message.Id.Extended:
        return this.startBody(b, o, len, id)
      default:
        return this.skip(len)
    }
  }

  /** Collects the payload of a bitfield, extended or hashes frame into `body`, then emits it. */
  startBody(b: Uint8Array, o: number, len: number, id: number): boolean {
    this.id = id
    const skip = id === Message.Id.Extended ? 2 : 1
    this.extId = skip === 2 ? b[o + 5]! : 0
    this.body = new Uint8Array(len - skip)
    this.bodyHave = 0
    if (len > skip) {
      this.stage = BODY
      return true
    }
    return this.emitBody()
  }

  /** Skips the payload of a frame of length `len` whose id was read. */
  skip(len: number): boolean {
    this.skipLeft = len - 1
    if (len > 1) this.stage = SKIP
    return true
  }

  emitBody(): boolean {
    const body = this.body
    this.body = this.head
    if (this.id === Message.Id.Extended) {
      this.handler.onMessage(Message.Extended({ id: this.extId, payload: body }))
      return true
    }
    if (this.id === Message.Id.Hashes) {
      const fields = hashFields(body, 0)
      const hashes = body.subarray(48)
      const want = fields.length + Merkle.uncleCount(fields.length, fields.proofLayers)
      if (hashes.length !== want * 32) {
        this.fail(
          "bad-length",
          `hashes message with ${hashes.length / 32} hashes, but length ${fields.length} and ${fields.proofLayers} ` +
            `proof layers call for ${want}`
        )
        return false
      }
      this.handler.onMessage(Message.Hashes({ ...fields, hashes }))
      return true
    }
    if (this.pieceCount >= 0) {
      const spare = body.length * 8 - this.pieceCount
      if (spare > 0 && (body[body.length - 1]! & ((1 << spare) - 1)) !== 0) {
        this.fail("bad-bitfield", `spare bits set past piece ${this.pieceCount - 1}`)
        return false
      }
    }
    this.handler.onMessage(Message.Bitfield({ bytes: body }))
    return true
  }
}
