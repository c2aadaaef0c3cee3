import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as AllowedFast from "../../src/wire/AllowedFast.ts"

const aa = new Uint8Array(20).fill(0xaa)

describe("AllowedFast.canonicalSet", () => {
  it("matches BEP 6's published example (80.4.4.200, info-hash 0xaa…, 1313 pieces)", () => {
    expect(AllowedFast.canonicalSet("80.4.4.200", aa, 1313, 7)).toEqual([1059, 431, 808, 1217, 287, 376, 1188])
    expect(AllowedFast.canonicalSet("80.4.4.200", aa, 1313, 9)).toEqual([
      1059, 431, 808, 1217, 287, 376, 1188, 353, 508
    ])
  })

  it("depends on the /24 only, and gives nothing for IPv6 or tiny torrents", () => {
    expect(AllowedFast.canonicalSet("80.4.4.1", aa, 1313, 7)).toEqual(AllowedFast.canonicalSet("80.4.4.200", aa, 1313, 7))
    expect(AllowedFast.canonicalSet("::ffff:80.4.4.200", aa, 1313, 7)[0]).toBe(1059)
    expect(AllowedFast.canonicalSet("2001:db8::1", aa, 1313)).toEqual([])
    expect(AllowedFast.canonicalSet("80.4.4.200", aa, 5, 5)).toEqual([])
  })

  it.prop("k distinct pieces in range", [fc.ipV4(), fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.integer({ min: 6, max: 5000 })], ([ip, ih, n]) => {
    const set = AllowedFast.canonicalSet(ip, ih, n)
    expect(set).toHaveLength(5)
    expect(new Set(set).size).toBe(5)
    for (const i of set) expect(i >= 0 && i < n).toBe(true)
  })
})
