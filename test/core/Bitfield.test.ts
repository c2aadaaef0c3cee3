import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bitfield from "../../src/core/Bitfield.ts"

/** Spare bits of the last byte (past the last piece) are all clear. */
const spareClear = (bf: Bitfield.Bitfield): boolean => Bitfield.fromBytes(bf.bytes, bf.size) !== undefined

type Op = { readonly op: "set" | "clear"; readonly index: number }

const opsArb = (size: number): FastCheck.Arbitrary<ReadonlyArray<Op>> =>
  size === 0
    ? FastCheck.constant([])
    : FastCheck.array(
      FastCheck.record({
        op: FastCheck.constantFrom("set" as const, "clear" as const),
        index: FastCheck.integer({ min: 0, max: size - 1 })
      }),
      { maxLength: 200 }
    )

const scenarioArb = FastCheck.integer({ min: 0, max: 300 }).chain((size) =>
  opsArb(size).map((ops) => ({ size, ops }))
)

describe("Bitfield", () => {
  it("byteLength rounds up to whole bytes", () => {
    expect([0, 1, 7, 8, 9, 16, 17].map(Bitfield.byteLength)).toEqual([0, 1, 1, 1, 2, 2, 3])
  })

  it("wire order: piece 0 is the high bit of byte 0", () => {
    const bf = Bitfield.make(10)
    Bitfield.set(bf, 0)
    Bitfield.set(bf, 9)
    expect(Array.from(bf.bytes)).toEqual([0x80, 0x40])
  })

  it("fromBytes rejects a wrong length", () => {
    expect(Bitfield.fromBytes(new Uint8Array(1), 9)).toBeUndefined()
    expect(Bitfield.fromBytes(new Uint8Array(3), 9)).toBeUndefined()
    expect(Bitfield.fromBytes(new Uint8Array(1), 0)).toBeUndefined()
    expect(Bitfield.fromBytes(new Uint8Array(0), 0)).toEqual(Bitfield.make(0))
    expect(Bitfield.fromBytes(new Uint8Array(2), 9)).toBeDefined()
  })

  it("fromBytes rejects any spare bit set", () => {
    for (let size = 1; size <= 16; size++) {
      const n = Bitfield.byteLength(size)
      const spare = n * 8 - size
      for (let s = 0; s < spare; s++) {
        const bytes = new Uint8Array(n)
        bytes[n - 1] = 1 << s
        expect(Bitfield.fromBytes(bytes, size)).toBeUndefined()
      }
      // The last real piece's bit is accepted.
      const bytes = new Uint8Array(n)
      bytes[n - 1] = 1 << spare
      expect(Bitfield.has(Bitfield.fromBytes(bytes, size)!, size - 1)).toBe(true)
    }
  })

  it("fromBytes copies its input", () => {
    const bytes = new Uint8Array([0xff, 0x80])
    const bf = Bitfield.fromBytes(bytes, 9)!
    bytes[0] = 0
    expect(Bitfield.count(bf)).toBe(9)
  })

  it("set and clear reject out-of-range indices; has answers false for them", () => {
    const bf = Bitfield.make(9)
    expect(() => Bitfield.set(bf, 9)).toThrow(RangeError)
    expect(() => Bitfield.set(bf, -1)).toThrow(RangeError)
    expect(() => Bitfield.clear(bf, 9)).toThrow(RangeError)
    expect(Bitfield.has(Bitfield.full(9), 9)).toBe(false)
    expect(Bitfield.has(Bitfield.full(9), -1)).toBe(false)
  })

  it("empty torrents: size 0 is empty and complete", () => {
    const bf = Bitfield.full(0)
    expect(bf.bytes.length).toBe(0)
    expect(Bitfield.isComplete(bf)).toBe(true)
    expect(Bitfield.isEmpty(bf)).toBe(true)
  })

  it.prop("full(size) has every piece and no spare bits", [FastCheck.integer({ min: 0, max: 2000 })], ([size]) => {
    const bf = Bitfield.full(size)
    expect(bf.bytes.length).toBe(Bitfield.byteLength(size))
    expect(spareClear(bf)).toBe(true)
    expect(Bitfield.count(bf)).toBe(size)
    expect(Bitfield.isComplete(bf)).toBe(true)
    expect(Bitfield.isEmpty(bf)).toBe(size === 0)
    expect(Bitfield.indices(bf)).toEqual(Array.from({ length: size }, (_, i) => i))
  })

  it.prop("set / clear / has / count / indices agree with a Set model", [scenarioArb], ([{ size, ops }]) => {
    const bf = Bitfield.make(size)
    const model = new Set<number>()
    for (const { op, index } of ops) {
      if (op === "set") {
        Bitfield.set(bf, index)
        model.add(index)
      } else {
        Bitfield.clear(bf, index)
        model.delete(index)
      }
    }
    const bad: Array<number> = []
    for (let i = 0; i < size; i++) if (Bitfield.has(bf, i) !== model.has(i)) bad.push(i)
    expect(bad).toEqual([])
    expect(Bitfield.count(bf)).toBe(model.size)
    expect(Bitfield.indices(bf)).toEqual([...model].sort((a, b) => a - b))
    expect(Bitfield.isEmpty(bf)).toBe(model.size === 0)
    expect(Bitfield.isComplete(bf)).toBe(model.size === size)
    expect(spareClear(bf)).toBe(true)
    // Wire round trip.
    expect(Bitfield.fromBytes(bf.bytes, size)).toEqual(bf)
  })

  it.prop("copy shares nothing with the original", [scenarioArb], ([{ size, ops }]) => {
    const bf = Bitfield.make(size)
    for (const { index } of ops) Bitfield.set(bf, index)
    const c = Bitfield.copy(bf)
    expect(c).toEqual(bf)
    if (size > 0) {
      Bitfield.clear(c, 0)
      Bitfield.set(bf, 0)
      expect(Bitfield.has(bf, 0)).toBe(true)
      expect(Bitfield.has(c, 0)).toBe(false)
    }
  })

  it.prop(
    "fromBytes accepts exactly the byte strings without spare bits",
    [FastCheck.integer({ min: 0, max: 100 }).chain((size) =>
      FastCheck.uint8Array({ minLength: Bitfield.byteLength(size), maxLength: Bitfield.byteLength(size) }).map(
        (bytes) => ({ size, bytes })
      )
    )],
    ([{ size, bytes }]) => {
      const spare = bytes.length * 8 - size
      const spareBits = spare === 0 ? 0 : bytes[bytes.length - 1]! & ((1 << spare) - 1)
      const bf = Bitfield.fromBytes(bytes, size)
      expect(bf === undefined).toBe(spareBits !== 0)
      if (bf !== undefined) {
        let n = 0
        for (let i = 0; i < size; i++) if (((bytes[i >> 3]! >> (7 - (i & 7))) & 1) === 1) n++
        expect(Bitfield.count(bf)).toBe(n)
      }
    }
  )
})
