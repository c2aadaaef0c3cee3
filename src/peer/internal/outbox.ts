/**
 * Outgoing bytes of one connection, encoded into recycled buffers (the upload path; THROUGHPUT.md rule 9: fresh
 * memory costs a page fault per 4 KiB here, and a new array per write is also zero-filled and collected).
 *
 * Messages are copied in when they are appended (a piece block from the uploader's piece buffer, which may be
 * recycled as soon as `appendPiece` returns). `flush` hands what was appended since the last flush to the
 * connection as one region of the current buffer and goes on filling the same buffer after it, so many small
 * flushes share one buffer. A buffer goes back to the pool only when it is no longer current and the connection
 * has reported every region of it written (`Tcp.Connection.write`'s `written`): memory the socket still holds is
 * never reused. A connection that never reports (a wrapper ignoring `written`, a closed socket) just leaves its
 * buffers to the GC.
 *
 * The pool is shared by every connection of the process: at most {@link FREE_MAX} idle buffers of
 * {@link BUFFER_SIZE} bytes (8 MiB). Plain synchronous code.
 */
import * as Message from "../../wire/Message.ts"

export const BUFFER_SIZE = 256 * 1024
export const FREE_MAX = 32

const free: Array<Uint8Array> = []

const take = (need: number): Uint8Array => (need > BUFFER_SIZE ? new Uint8Array(need) : free.pop() ?? new Uint8Array(BUFFER_SIZE))

const give = (bytes: Uint8Array): void => {
  if (bytes.length === BUFFER_SIZE && free.length < FREE_MAX) free.push(bytes)
}

/** Idle buffers in the process-wide pool (tests). */
export const idle = (): number => free.length

interface Slab {
  readonly bytes: Uint8Array
  /** Regions handed to the connection and not reported written yet. */
  inFlight: number
  /** Still being filled. */
  current: boolean
}

export type Write = (bytes: Uint8Array, written?: () => void) => void

export class Outbox {
  readonly write: Write
  cur: Slab | undefined = undefined
  /** End of the bytes appended to `cur`. */
  used = 0
  /** Start of the bytes appended to `cur` since the last flush. */
  start = 0
  /** Block bytes appended since the last flush. */
  pendingBlockBytes = 0

  constructor(write: Write) {
    this.write = write
  }

  /** Something was appended since the last flush. */
  hasPending(): boolean {
    return this.used > this.start
  }

  /** Room for `n` more bytes in the current buffer (flushing and retiring a full one first). */
  room(n: number): Uint8Array {
    const cur = this.cur
    if (cur !== undefined && cur.bytes.length - this.used >= n) return cur.bytes
    this.flush()
    if (cur !== undefined) this.retire(cur)
    const next: Slab = { bytes: take(n), inFlight: 0, current: true }
    this.cur = next
    this.used = 0
    this.start = 0
    return next.bytes
  }

  retire(b: Slab): void {
    b.current = false
    if (b.inFlight === 0) give(b.bytes)
  }

  appendRaw(bytes: Uint8Array): void {
    const buf = this.room(bytes.length)
    buf.set(bytes, this.used)
    this.used += bytes.length
  }

  appendMessage(message: Message.Message): void {
    const n = Message.encodedLength(message)
    const buf = this.room(n)
    this.used = Message.encodeInto(message, buf, this.used)
  }

  /** A piece message for `block` (copied). */
  appendPiece(index: number, begin: number, block: Uint8Array): void {
    const buf = this.room(Message.pieceHeaderLength + block.length)
    const at = Message.writePieceHeader(buf, this.used, index, begin, block.length)
    buf.set(block, at)
    this.used = at + block.length
    this.pendingBlockBytes += block.length
  }

  /** Hands what was appended since the last flush to the connection. */
  flush(): void {
    const b = this.cur
    if (b === undefined || this.used === this.start) return
    const region = b.bytes.subarray(this.start, this.used)
    this.start = this.used
    this.pendingBlockBytes = 0
    b.inFlight++
    this.write(region, () => {
      b.inFlight--
      if (!b.current && b.inFlight === 0) give(b.bytes)
    })
  }

  /** The connection is gone: the current buffer is retired (reused once every region of it was written). */
  close(): void {
    const b = this.cur
    this.cur = undefined
    this.used = 0
    this.start = 0
    this.pendingBlockBytes = 0
    if (b !== undefined) this.retire(b)
  }
}
