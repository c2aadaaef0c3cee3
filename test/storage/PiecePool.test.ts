import { describe, expect, it } from "@effect/vitest"
import * as PiecePool from "../../src/storage/PiecePool.ts"

describe("PiecePool", () => {
  it("recycles buffers of the same size and allocates only on a miss", () => {
    const pool = PiecePool.make({ maxFree: 2 })
    const a = pool.acquire(1024)
    const b = pool.acquire(1024)
    expect(a).not.toBe(b)
    expect(a.byteOffset).toBe(0)
    expect(a.buffer.byteLength).toBe(1024)
    pool.release(a)
    expect(pool.acquire(1024)).toBe(a)
    expect(pool.acquire(100).length).toBe(100) // another size: a new buffer
    expect(pool.allocated()).toBe(3)
  })

  it("keeps at most maxFree idle buffers", () => {
    const pool = PiecePool.make({ maxFree: 3 })
    const bufs = Array.from({ length: 10 }, () => pool.acquire(64))
    for (const b of bufs) pool.release(b)
    expect(pool.free()).toBe(3)
  })

  it("keeps at most maxFreeBytes idle bytes (big pieces), whatever maxFree allows", () => {
    const pool = PiecePool.make({ maxFree: 32, maxFreeBytes: 3000 })
    const bufs = Array.from({ length: 10 }, () => pool.acquire(1000))
    for (const b of bufs) pool.release(b)
    expect(pool.free()).toBe(3)
    expect(pool.freeBytes()).toBe(3000)
    pool.acquire(1000)
    expect(pool.freeBytes()).toBe(2000)
    pool.release(pool.acquire(5000)) // larger than the whole bound: never kept
    expect(pool.free()).toBe(2)
  })

  it("ignores double releases, views and detached buffers", () => {
    const pool = PiecePool.make({ maxFree: 8 })
    const a = pool.acquire(64)
    pool.release(a)
    pool.release(a)
    expect(pool.free()).toBe(1)
    const x = pool.acquire(64)
    const y = pool.acquire(64)
    expect(x).not.toBe(y)
    pool.release(new Uint8Array(128).subarray(0, 64))
    const detached = new Uint8Array(64)
    structuredClone(detached.buffer, { transfer: [detached.buffer] })
    pool.release(detached)
    expect(pool.free()).toBe(0)
  })
})
