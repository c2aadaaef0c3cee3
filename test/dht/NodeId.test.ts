/**
 * Node ids: XOR metric, prefix lengths, ids inside a bucket range, CRC32-C and the BEP 42 test vectors.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as NodeId from "../../src/dht/NodeId.ts"

const id = FastCheck.uint8Array({ minLength: 20, maxLength: 20 })
const fixed = (bytes: Uint8Array): NodeId.Random => (n) => bytes.slice(0, n)

describe("NodeId", () => {
  it.prop("distance is symmetric, zero for equal ids, and orders like compareDistance", [id, id, id], ([t, a, b]) => {
    expect(NodeId.distance(a, b)).toEqual(NodeId.distance(b, a))
    expect(NodeId.distance(a, a).every((x) => x === 0)).toBe(true)
    expect(Math.sign(NodeId.compareDistance(t, a, b))).toBe(
      Math.sign(Bytes.compare(NodeId.distance(t, a), NodeId.distance(t, b)))
    )
  })

  it.prop("commonPrefixLength matches a bit-by-bit count", [id, id], ([a, b]) => {
    let n = 0
    while (n < 160 && NodeId.bitAt(a, n) === NodeId.bitAt(b, n)) n++
    expect(NodeId.commonPrefixLength(a, b)).toBe(n)
    expect(NodeId.commonPrefixLength(a, a)).toBe(160)
  })

  it.prop("randomWithPrefix lands in the range", [id, FastCheck.integer({ min: 0, max: 159 })], ([own, p]) => {
    expect(NodeId.commonPrefixLength(own, NodeId.randomWithPrefix(own, p))).toBe(p)
    expect(NodeId.commonPrefixLength(own, NodeId.randomWithPrefix(own, p, { atLeast: true }))).toBeGreaterThanOrEqual(p)
  })

  it("computes CRC32-C", () => {
    expect(NodeId.crc32c(Bytes.encodeUtf8("123456789"))).toBe(0xe3069283)
  })

  // BEP 42's table: IP, rand, expected id (only the first 21 bits and the last byte are determined).
  const vectors: ReadonlyArray<readonly [string, number, string]> = [
    ["124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"],
    ["21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"],
    ["65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"],
    ["84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"],
    ["43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"]
  ]

  it("matches the BEP 42 test vectors", () => {
    for (const [ip, rand, hex] of vectors) {
      const expected = Bytes.fromHex(hex)!
      expect(NodeId.isBep42Valid(expected, ip)).toBe(true)
      const generated = NodeId.bep42(ip, fixed(expected))!
      expect(generated[19]).toBe(rand)
      expect(Bytes.toHex(generated.subarray(0, 2))).toBe(hex.slice(0, 4))
      expect(generated[2]! & 0xf8).toBe(expected[2]! & 0xf8)
      const wrong = expected.slice()
      wrong[1] = wrong[1]! ^ 1
      expect(NodeId.isBep42Valid(wrong, ip)).toBe(false)
    }
  })

  it.prop("generated BEP 42 ids validate; local addresses accept any id", [FastCheck.ipV4(), id], ([ip, other]) => {
    expect(NodeId.isBep42Valid(NodeId.bep42(ip)!, ip)).toBe(true)
    expect(NodeId.isBep42Valid(other, "127.0.0.1")).toBe(true)
    expect(NodeId.isBep42Valid(other, "192.168.1.2")).toBe(true)
  })
})
