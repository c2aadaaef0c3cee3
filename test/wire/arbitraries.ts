/**
 * Shared helpers for the wire tests: message arbitraries, random splitting, and a decoding collector that
 * reassembles piece blocks from their parts while checking the part contract of `FrameDecoder.Handler`.
 */
import * as FastCheck from "effect/FastCheck"
import * as Merkle from "../../src/core/Merkle.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Message from "../../src/wire/Message.ts"
import type { WireError } from "../../src/wire/WireError.ts"

const u32 = FastCheck.integer({ min: 0, max: 0xffffffff })
const index = FastCheck.oneof(FastCheck.integer({ min: 0, max: 100 }), u32)
const bytes = (max: number) => FastCheck.uint8Array({ maxLength: max })

export const request = FastCheck.record({ index, begin: u32, length: FastCheck.integer({ min: 0, max: 16384 }) })
const triple = FastCheck.record({ index, begin: u32, length: u32 })

/** Every message kind, with sizes inside the decoder's default bounds (blocks up to 16 KiB). */
export const message: FastCheck.Arbitrary<Message.Message> = FastCheck.oneof(
  FastCheck.constant(Message.KeepAlive()),
  FastCheck.constant(Message.Choke()),
  FastCheck.constant(Message.Unchoke()),
  FastCheck.constant(Message.Interested()),
  FastCheck.constant(Message.NotInterested()),
  FastCheck.constant(Message.HaveAll()),
  FastCheck.constant(Message.HaveNone()),
  index.map((i) => Message.Have({ index: i })),
  index.map((i) => Message.Suggest({ index: i })),
  index.map((i) => Message.AllowedFast({ index: i })),
  bytes(64).map((b) => Message.Bitfield({ bytes: b })),
  request.map(Message.Request),
  triple.map(Message.Cancel),
  triple.map(Message.Reject),
  FastCheck.integer({ min: 0, max: 65535 }).map((port) => Message.Port({ port })),
  FastCheck.record({ id: FastCheck.integer({ min: 0, max: 255 }), payload: bytes(300) }).map(Message.Extended),
  FastCheck.record({
    index,
    begin: u32,
    block: FastCheck.oneof(
      { weight: 4, arbitrary: bytes(3000) },
      { weight: 1, arbitrary: FastCheck.uint8Array({ minLength: 16384, maxLength: 16384 }) }
    )
  }).map(Message.Piece)
)

const hashFields = FastCheck.record({
  piecesRoot: FastCheck.uint8Array({ minLength: 32, maxLength: 32 }),
  base: FastCheck.oneof(FastCheck.integer({ min: 0, max: 20 }), u32),
  index: FastCheck.oneof(FastCheck.integer({ min: 0, max: 1024 }), u32),
  length: FastCheck.integer({ min: 0, max: 40 }),
  proofLayers: FastCheck.integer({ min: 0, max: 24 })
})

/** BEP 52's messages; a `hashes` message carries exactly the hashes its fields call for. */
export const hashMessage: FastCheck.Arbitrary<Message.Message> = FastCheck.oneof(
  hashFields.map(Message.HashRequest),
  hashFields.map(Message.HashReject),
  hashFields.chain((f) =>
    FastCheck.uint8Array({
      minLength: (f.length + Merkle.uncleCount(f.length, f.proofLayers)) * 32,
      maxLength: (f.length + Merkle.uncleCount(f.length, f.proofLayers)) * 32
    }).map((hashes) => Message.Hashes({ ...f, hashes }))
  )
)

/** Every message kind, BEP 52's included (decode with `v2: true`). */
export const messageV2: FastCheck.Arbitrary<Message.Message> = FastCheck.oneof(
  { weight: 3, arbitrary: message },
  { weight: 1, arbitrary: hashMessage }
)

/** Cut points as fractions of the input, so they scale to any length. */
export const cuts = FastCheck.array(FastCheck.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 })

/** `bytes` split at the given fractional points (empty chunks included), each chunk a Node Buffer view. */
export const split = (data: Uint8Array, at: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = at.map((f) => Math.floor(f * data.length)).sort((a, b) => a - b)
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length)
  const out: Array<Uint8Array> = []
  let from = 0
  for (const p of points) {
    out.push(buf.subarray(from, p))
    from = p
  }
  out.push(buf.subarray(from))
  return out
}

export interface Decoded {
  readonly messages: Array<Message.Message>
  readonly error: WireError | undefined
  readonly atBoundary: boolean
}

/** Decodes `chunks`, turning blocks back into `Piece` messages; throws if the block-part contract is broken. */
export const decodeChunks = (chunks: ReadonlyArray<Uint8Array>, options?: FrameDecoder.Options): Decoded => {
  const messages: Array<Message.Message> = []
  let block: Uint8Array | undefined
  let next = 0
  const decoder = FrameDecoder.make({
    onMessage: (m) => {
      if (block !== undefined) throw new Error("message inside a block")
      messages.push(m)
    },
    onBlock: (index, begin, length, offset, data) => {
      if (offset !== next) throw new Error(`block part at ${offset}, expected ${next}`)
      if (offset === 0) block = new Uint8Array(length)
      if (block === undefined || block.length !== length) throw new Error("block length changed")
      if (data.length === 0 && length !== 0) throw new Error("empty part of a non-empty block")
      block.set(data, offset)
      next = offset + data.length
      if (next === length) {
        messages.push(Message.Piece({ index, begin, block }))
        block = undefined
        next = 0
      }
    }
  }, options)
  let error: WireError | undefined
  for (const c of chunks) {
    error = decoder.push(c)
    if (error !== undefined) break
  }
  return { messages, error, atBoundary: decoder.atBoundary }
}
