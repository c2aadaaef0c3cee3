import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Range from "../../src/api/Range.ts"

describe("Range.parse", () => {
  const L = 1000

  it("no header, another unit, nonsense: the whole file", () => {
    for (const h of [undefined, "", "items=0-1", "bytes", "bytes=", "bytes=abc", "bytes=5-3", "bytes=--1", "bytes=1-2-3"]) {
      expect(Range.parse(h, L)).toEqual({ _tag: "Full" })
    }
  })

  it("first-last, clamped to the end", () => {
    expect(Range.parse("bytes=0-499", L)).toEqual({ _tag: "Partial", start: 0, end: 500 })
    expect(Range.parse("bytes=500-999", L)).toEqual({ _tag: "Partial", start: 500, end: 1000 })
    expect(Range.parse("bytes=990-5000", L)).toEqual({ _tag: "Partial", start: 990, end: 1000 })
    expect(Range.parse("bytes=7-7", L)).toEqual({ _tag: "Partial", start: 7, end: 8 })
    expect(Range.parse("  Bytes = 1-2 ", L)).toEqual({ _tag: "Partial", start: 1, end: 3 })
  })

  it("open ranges and suffixes", () => {
    expect(Range.parse("bytes=100-", L)).toEqual({ _tag: "Partial", start: 100, end: 1000 })
    expect(Range.parse("bytes=-500", L)).toEqual({ _tag: "Partial", start: 500, end: 1000 })
    expect(Range.parse("bytes=-5000", L)).toEqual({ _tag: "Partial", start: 0, end: 1000 })
  })

  it("unsatisfiable: a start at or past the end, an empty suffix, any range of an empty file", () => {
    expect(Range.parse("bytes=1000-", L)).toEqual({ _tag: "Unsatisfiable" })
    expect(Range.parse("bytes=1000-2000", L)).toEqual({ _tag: "Unsatisfiable" })
    expect(Range.parse("bytes=-0", L)).toEqual({ _tag: "Unsatisfiable" })
    expect(Range.parse("bytes=0-", 0)).toEqual({ _tag: "Unsatisfiable" })
    expect(Range.parse("bytes=-10", 0)).toEqual({ _tag: "Unsatisfiable" })
    expect(Range.parse("bytes=99999999999999999999999999-", L)).toEqual({ _tag: "Unsatisfiable" })
  })

  it("several ranges are ignored (one part or none, never multipart)", () => {
    expect(Range.parse("bytes=0-1,5-6", L)).toEqual({ _tag: "Full" })
    expect(Range.parse("bytes=0-1, ", L)).toEqual({ _tag: "Partial", start: 0, end: 2 })
  })

  it("Content-Range values", () => {
    expect(Range.contentRange(0, 500, 1000)).toBe("bytes 0-499/1000")
    expect(Range.unsatisfiedRange(1000)).toBe("bytes */1000")
  })

  it.prop(
    "never throws; an accepted range lies inside the file",
    [FastCheck.string({ maxLength: 60 }), FastCheck.nat({ max: 1 << 30 })],
    ([header, length]) => {
      const r = Range.parse(header, length)
      if (r._tag === "Partial") {
        expect(Number.isInteger(r.start) && Number.isInteger(r.end)).toBe(true)
        expect(0 <= r.start && r.start < r.end && r.end <= length).toBe(true)
      }
    }
  )

  const specArb = FastCheck.oneof(
    FastCheck.tuple(FastCheck.nat({ max: 3000 }), FastCheck.option(FastCheck.nat({ max: 3000 }), { nil: undefined }))
      .map(([a, b]) => ({ text: `${a}-${b ?? ""}`, first: a, last: b, suffix: undefined })),
    FastCheck.nat({ max: 3000 }).map((n) => ({ text: `-${n}`, first: undefined, last: undefined, suffix: n }))
  )

  it.prop(
    "well-formed single ranges agree with RFC 9110's rules",
    [specArb, FastCheck.nat({ max: 2000 }), FastCheck.constantFrom("", " ", "\t")],
    ([spec, length, ws]) => {
      const r = Range.parse(`bytes=${ws}${spec.text}${ws}`, length)
      if (spec.suffix !== undefined) {
        if (spec.suffix === 0 || length === 0) expect(r).toEqual({ _tag: "Unsatisfiable" })
        else expect(r).toEqual({ _tag: "Partial", start: Math.max(0, length - spec.suffix), end: length })
      } else {
        const first = spec.first!
        const last = spec.last ?? Infinity
        if (last < first) expect(r).toEqual({ _tag: "Full" })
        else if (first >= length) expect(r).toEqual({ _tag: "Unsatisfiable" })
        else expect(r).toEqual({ _tag: "Partial", start: first, end: Math.min(last, length - 1) + 1 })
      }
    }
  )
})
