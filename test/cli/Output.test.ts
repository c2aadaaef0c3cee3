/** The CLI's number formatting: `groupDigits` writes what `toLocaleString("en-US")` writes, without loading ICU. */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { formatBytes, groupDigits } from "../../src/cli/Output.ts"

describe("groupDigits", () => {
  it("groups by thousands", () => {
    expect(groupDigits(0)).toBe("0")
    expect(groupDigits(999)).toBe("999")
    expect(groupDigits(1000)).toBe("1,000")
    expect(groupDigits(1_556_086_784)).toBe("1,556,086,784")
    expect(groupDigits(-12_345)).toBe("-12,345")
    expect(groupDigits(-0)).toBe((-0).toLocaleString("en-US"))
  })

  it("equals toLocaleString('en-US') for every safe integer and beyond", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: -1_000_000, max: 1_000_000 }), fc.maxSafeInteger(), fc.double({ noNaN: true })),
        (n) => {
          expect(groupDigits(n)).toBe(n.toLocaleString("en-US"))
        }
      ),
      { numRuns: 2000 }
    )
  })
})

describe("formatBytes", () => {
  it("keeps whole units whole", () => {
    expect(formatBytes(16384)).toBe("16 KiB")
    expect(formatBytes(1536)).toBe("1.50 KiB")
  })
})
