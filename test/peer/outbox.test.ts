/**
 * The upload path's outgoing buffers (src/peer/internal/outbox.ts): bytes in order, blocks copied when appended,
 * small flushes sharing one buffer, and a buffer reused only after every region of it was reported written.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Bytes from "../../src/core/Bytes.ts"
import { BUFFER_SIZE, idle, Outbox } from "../../src/peer/internal/outbox.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Message from "../../src/wire/Message.ts"

interface Written {
  readonly bytes: Uint8Array
  /** A copy taken when it was written (what the socket would have sent). */
  readonly sent: Uint8Array
  readonly done: (() => void) | undefined
}

const recorder = () => {
  const writes: Array<Written> = []
  const box = new Outbox((bytes, written) => void writes.push({ bytes, sent: Uint8Array.from(bytes), done: written }))
  return { box, writes }
}

const decode = (bytes: Uint8Array) => {
  const r = FrameDecoder.decodeAll(bytes, { pieceCount: 100, fast: true, extensionProtocol: true })
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

const block = (n: number, fill: number) => new Uint8Array(n).fill(fill)

describe("Outbox", () => {
  it("a flush writes what was appended since the last one, in order; blocks are copied when appended", () => {
    const { box, writes } = recorder()
    const b = block(16384, 7)
    box.appendMessage(Message.Unchoke())
    box.appendPiece(3, 16384, b)
    b.fill(9) // the uploader reuses its piece buffer at once
    box.appendMessage(Message.Choke())
    expect(box.hasPending()).toBe(true)
    expect(box.pendingBlockBytes).toBe(16384)
    box.flush()
    expect(box.hasPending()).toBe(false)
    expect(box.pendingBlockBytes).toBe(0)
    expect(writes.length).toBe(1)
    expect(decode(writes[0]!.sent)).toEqual([
      Message.Unchoke(),
      Message.Piece({ index: 3, begin: 16384, block: block(16384, 7) }),
      Message.Choke()
    ])
    box.flush() // nothing new: nothing written
    expect(writes.length).toBe(1)
  })

  it("small flushes share one buffer, region after region", () => {
    const { box, writes } = recorder()
    for (let i = 0; i < 5; i++) {
      box.appendPiece(i, 0, block(1000, i))
      box.flush()
    }
    expect(writes.length).toBe(5)
    const buffer = writes[0]!.bytes.buffer
    let offset = writes[0]!.bytes.byteOffset
    for (const [i, w] of writes.entries()) {
      expect(w.bytes.buffer).toBe(buffer)
      expect(w.bytes.byteOffset).toBe(offset)
      offset += w.bytes.length
      expect(decode(w.sent)).toEqual([Message.Piece({ index: i, begin: 0, block: block(1000, i) })])
    }
  })

  it("a full buffer is reused only once every region of it was reported written", () => {
    const { box, writes } = recorder()
    const idleBefore = idle()
    // Fill more than one buffer: 17 blocks of 16 KiB (+ headers) do not fit in 256 KiB.
    for (let i = 0; i < 17; i++) {
      box.appendPiece(i, 0, block(16384, i))
      if (i % 4 === 3) box.flush()
    }
    box.flush()
    const first = writes[0]!.bytes.buffer
    const ofFirst = writes.filter((w) => w.bytes.buffer === first)
    const later = writes.filter((w) => w.bytes.buffer !== first)
    expect(ofFirst.length).toBeGreaterThan(1)
    expect(later.length).toBeGreaterThan(0)
    // Bytes in order across buffers.
    const sent = Bytes.concat(writes.map((w) => w.sent))
    expect(decode(sent).map((m) => (m._tag === "Piece" ? m.index : -1))).toEqual(Array.from({ length: 17 }, (_, i) => i))
    // Nothing reported yet: the retired buffer is not in the pool, another outbox gets fresh memory.
    expect(idle()).toBe(idleBefore)
    const other = recorder()
    other.box.appendPiece(0, 0, block(10, 1))
    other.box.flush()
    expect(other.writes[0]!.bytes.buffer).not.toBe(first)
    // All but one region written: still not reused.
    for (const w of ofFirst.slice(1)) w.done!()
    expect(idle()).toBe(idleBefore)
    ofFirst[0]!.done!()
    expect(idle()).toBe(idleBefore + 1)
    const third = recorder()
    third.box.appendPiece(0, 0, block(10, 1))
    third.box.flush()
    expect(third.writes[0]!.bytes.buffer).toBe(first)
    expect(third.writes[0]!.bytes.byteLength).toBeLessThan(BUFFER_SIZE)
  })

  it("close retires the current buffer: reused once its regions are written, never before", () => {
    const { box, writes } = recorder()
    box.appendPiece(0, 0, block(100, 1))
    box.flush()
    const buffer = writes[0]!.bytes.buffer
    const before = idle()
    box.close()
    expect(idle()).toBe(before)
    writes[0]!.done!()
    expect(idle()).toBe(before + 1)
    const next = recorder()
    next.box.appendPiece(0, 0, block(10, 1))
    next.box.flush()
    expect(next.writes[0]!.bytes.buffer).toBe(buffer)
  })
})
