/**
 * A free list of piece buffers, so the receive path reuses warm memory instead of touching fresh pages
 * (THROUGHPUT.md rule 9). Plain synchronous code: it sits on the byte path.
 *
 * Every buffer handed out is a whole ArrayBuffer of exactly the requested size, so the worker Hasher can transfer
 * it without a copy. Buffers are kept per size; at most `maxFree` idle buffers and `maxFreeBytes` idle bytes are kept
 * in all, the rest are left to the GC (a count alone would let 32 idle 8 MiB pieces hold 256 MiB). A released buffer
 * that was detached (transferred away and never returned) is dropped. A second release of memory already idle (the
 * same view, or another whole view over the same ArrayBuffer) is ignored; what the pool cannot see is a release by
 * a former holder after the buffer was handed out again (`release` means: the caller never touches it again).
 */

export interface PiecePool {
  /** A buffer of `size` bytes; its contents are whatever the last user left (not zeroed). */
  readonly acquire: (size: number) => Uint8Array
  /** Gives a buffer back. The caller must not use it afterwards. */
  readonly release: (buf: Uint8Array) => void
  /** Idle buffers held. */
  readonly free: () => number
  /** Bytes of the idle buffers held. */
  readonly freeBytes: () => number
  /** Buffers allocated so far (misses of the free list). */
  readonly allocated: () => number
  /** Lets every idle buffer go (to the GC): nothing more is expected soon, e.g. the torrent is complete. */
  readonly trim: () => void
}

export interface Options {
  /** Most idle buffers kept. Default 64 (64 MiB of 1 MiB pieces; the torrent passes its own, smaller bound). */
  readonly maxFree?: number
  /** Most idle bytes kept (default unbounded: `maxFree` alone decides). */
  readonly maxFreeBytes?: number
}

export const make = (options: Options = {}): PiecePool => {
  const maxFree = Math.max(0, options.maxFree ?? 64)
  const maxFreeBytes = Math.max(0, options.maxFreeBytes ?? Infinity)
  const lists = new Map<number, Array<Uint8Array>>()
  // Guards against a double release handing one buffer out twice. Keyed by the memory (the ArrayBuffer), not the
  // view: the worker Hasher hands the same memory back as a new view, so a second release may come through another
  // view object than the first.
  const idle = new WeakSet<ArrayBufferLike>()
  let free = 0
  let freeBytes = 0
  let allocated = 0
  return {
    acquire: (size) => {
      const list = lists.get(size)
      const buf = list?.pop()
      if (buf !== undefined) {
        idle.delete(buf.buffer)
        free--
        freeBytes -= buf.byteLength
        return buf
      }
      allocated++
      return new Uint8Array(size)
    },
    release: (buf) => {
      // Only whole, attached ArrayBuffers go back on the list (views into other memory are not ours to reuse).
      if (buf.byteLength === 0 || buf.byteOffset !== 0 || buf.buffer.byteLength !== buf.byteLength) return
      if (idle.has(buf.buffer) || free >= maxFree || freeBytes + buf.byteLength > maxFreeBytes) return
      let list = lists.get(buf.byteLength)
      if (list === undefined) {
        list = []
        lists.set(buf.byteLength, list)
      }
      list.push(buf)
      idle.add(buf.buffer)
      free++
      freeBytes += buf.byteLength
    },
    free: () => free,
    freeBytes: () => freeBytes,
    allocated: () => allocated,
    trim: () => {
      for (const list of lists.values()) for (const buf of list) idle.delete(buf.buffer)
      lists.clear()
      free = 0
      freeBytes = 0
    }
  }
}
