import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
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

  it("trim lets every idle buffer go; a buffer released again afterwards is pooled as usual", () => {
    const pool = PiecePool.make({ maxFree: 8 })
    const a = pool.acquire(1024)
    const b = pool.acquire(2048)
    pool.release(a)
    pool.release(b)
    expect([pool.free(), pool.freeBytes()]).toEqual([2, 3072])
    pool.trim()
    expect([pool.free(), pool.freeBytes()]).toEqual([0, 0])
    const c = pool.acquire(1024)
    expect(c).not.toBe(a) // a fresh allocation: the trimmed one is gone
    expect(pool.allocated()).toBe(3)
    pool.release(a) // given back after the trim: pooled again
    expect(pool.acquire(1024)).toBe(a)
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

describe("PiecePool ownership", () => {
  it("a second release of the same memory through another view is ignored (the Hasher hands memory back as a new view)", () => {
    const pool = PiecePool.make({ maxFree: 8 })
    const a = pool.acquire(64)
    pool.release(a)
    pool.release(new Uint8Array(a.buffer)) // the same memory again, through another whole view
    expect(pool.free()).toBe(1)
    const x = pool.acquire(64)
    const y = pool.acquire(64)
    expect(x.buffer).not.toBe(y.buffer)
  })

  // Model: holders own buffers; each step acquires, releases (through the view it got or another whole view over the
  // same memory), releases again what was last released while nobody has it (a double release, the bug class the
  // guard is for), or writes its id into its buffer. Whatever the sequence, no two holders ever share memory and every holder reads
  // back what it wrote.
  it.prop(
    "never hands one buffer to two holders, whatever the order of acquires, releases and double releases",
    [
      FastCheck.array(
        FastCheck.oneof(
          FastCheck.record({ op: FastCheck.constant("acquire" as const), size: FastCheck.constantFrom(16, 32, 48) }),
          FastCheck.record({ op: FastCheck.constant("release" as const), who: FastCheck.nat(), alias: FastCheck.boolean() }),
          FastCheck.record({ op: FastCheck.constant("again" as const), alias: FastCheck.boolean() }),
          FastCheck.record({ op: FastCheck.constant("write" as const), who: FastCheck.nat() })
        ),
        { maxLength: 60, size: "max" }
      ),
      FastCheck.integer({ min: 0, max: 6 })
    ],
    ([steps, maxFree]) => {
      const pool = PiecePool.make({ maxFree })
      const holders: Array<{ buf: Uint8Array; id: number }> = []
      let lastReleased: Uint8Array | undefined
      let nextId = 1
      const check = () => {
        const memory = new Set(holders.map((h) => h.buf.buffer))
        expect(memory.size).toBe(holders.length)
        for (const h of holders) expect(h.buf.every((b) => b === (h.id & 0xff))).toBe(true)
        expect(pool.free()).toBeLessThanOrEqual(maxFree)
      }
      for (const s of steps) {
        if (s.op === "acquire") {
          const id = nextId++
          const buf = pool.acquire(s.size)
          // Handed out again: from now on a release by its former holder is a use after release, not modelled.
          if (buf.buffer === lastReleased?.buffer) lastReleased = undefined
          buf.fill(id & 0xff)
          holders.push({ buf, id })
        } else if (s.op === "release" && holders.length > 0) {
          const [h] = holders.splice(s.who % holders.length, 1)
          pool.release(s.alias ? new Uint8Array(h!.buf.buffer) : h!.buf)
          lastReleased = h!.buf
        } else if (s.op === "again" && lastReleased !== undefined) {
          pool.release(s.alias ? new Uint8Array(lastReleased.buffer) : lastReleased)
          lastReleased = undefined // a third release would be a use after release by its former holder
        } else if (s.op === "write" && holders.length > 0) {
          const h = holders[s.who % holders.length]!
          h.id = nextId++
          h.buf.fill(h.id & 0xff)
        }
        check()
      }
    },
    { fastCheck: { numRuns: 150 } }
  )
})
