/**
 * Micro-benchmark of the frame decoder: 1 GiB of piece frames (16 KiB blocks, 1 MiB pieces) pushed as 64 KiB Node
 * Buffer chunks split at arbitrary frame positions, as a socket delivers them. Modes: "view" (the handler only counts
 * bytes) and "assemble" (each block part copied into its 1 MiB piece buffer, THROUGHPUT.md's assemble mode).
 * Run: npx tsx scratchpad/wire-bench.ts
 */
import * as FrameDecoder from "../src/wire/FrameDecoder.ts"
import * as Message from "../src/wire/Message.ts"

const PIECE = 1 << 20
const BLOCK = Message.blockLength
const PIECES_IN_BUFFER = 16
const CHUNK = 64 * 1024
const TOTAL = 1 << 30

// 16 MiB of payload as piece frames, encoded once and cut into 64 KiB chunks.
const payload = new Uint8Array(BLOCK)
for (let i = 0, x = 2463534242; i < BLOCK; i++) {
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  payload[i] = x
}
const frames: Array<Message.Message> = []
for (let p = 0; p < PIECES_IN_BUFFER; p++) {
  for (let b = 0; b < PIECE / BLOCK; b++) frames.push(Message.Piece({ index: p, begin: b * BLOCK, block: payload }))
}
const stream = Buffer.from(Message.encodeBatch(frames))
const cut = (buf: Buffer, size: number): Array<Buffer> => {
  const out: Array<Buffer> = []
  for (let o = 0; o < buf.length; o += size) out.push(buf.subarray(o, Math.min(o + size, buf.length)))
  return out
}
const rounds = Math.round(TOTAL / (PIECES_IN_BUFFER * PIECE))

const run = (mode: "view" | "assemble", chunks: Array<Buffer>): number => {
  let bytes = 0
  let pieces = 0
  const bufs = Array.from({ length: PIECES_IN_BUFFER }, () => new Uint8Array(PIECE))
  const got = new Uint32Array(PIECES_IN_BUFFER)
  const decoder = FrameDecoder.make({
    onMessage: () => {},
    onBlock: mode === "view"
      ? (_index, _begin, _length, _offset, data) => {
        bytes += data.length
      }
      : (index, begin, _length, offset, data) => {
        bufs[index]!.set(data, begin + offset)
        bytes += data.length
        got[index] = got[index]! + data.length
        if (got[index] === PIECE) {
          got[index] = 0
          pieces++
        }
      }
  })
  const t0 = process.hrtime.bigint()
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < chunks.length; i++) {
      const err = decoder.push(chunks[i]!)
      if (err !== undefined) throw err
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  if (bytes !== TOTAL) throw new Error(`decoded ${bytes} bytes, expected ${TOTAL}`)
  if (mode === "assemble" && pieces !== TOTAL / PIECE) throw new Error(`${pieces} pieces`)
  return TOTAL / s / 1e6
}

for (const [mode, size] of [["view", CHUNK], ["assemble", CHUNK], ["assemble", 1460]] as const) {
  const chunks = cut(stream, size)
  run(mode, chunks) // warm-up, not counted
  const runs = Array.from({ length: 5 }, () => run(mode, chunks)).sort((a, b) => a - b)
  console.log(
    `${mode.padEnd(8)} 1 GiB of piece frames in ${size}-byte chunks: median ${runs[2]!.toFixed(0)} MB/s ` +
      `(runs ${runs.map((r) => r.toFixed(0)).join(", ")})`
  )
}

// Control messages: 1M request messages (what a seeder decodes), 64 KiB chunks.
{
  const N = 1 << 20
  const reqs = Array.from(
    { length: N },
    (_, i) => Message.Request({ index: i >>> 6, begin: (i & 63) * BLOCK, length: BLOCK })
  )
  const chunks = cut(Buffer.from(Message.encodeBatch(reqs)), CHUNK)
  const times: Array<number> = []
  for (let r = 0; r < 5; r++) {
    let n = 0
    const decoder = FrameDecoder.make({ onMessage: () => void n++, onBlock: () => {} })
    const t0 = process.hrtime.bigint()
    for (const c of chunks) decoder.push(c)
    times.push(Number(process.hrtime.bigint() - t0) / N)
    if (n !== N) throw new Error(`${n} requests`)
  }
  times.sort((a, b) => a - b)
  console.log(`request  decode: median ${times[2]!.toFixed(0)} ns per message (Data.TaggedEnum construction included)`)
}
