/**
 * announce tokens: bound to the requester's IP, valid for one to two rotation periods, never forgeable by length.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Tokens from "../../src/dht/Tokens.ts"

const MIN = 60_000

describe("Tokens", () => {
  it("accepts a token for the same IP under the current and the previous secret only", () => {
    let t = Tokens.make(0)
    const token = Tokens.issue(t, "10.0.0.1")
    expect(token.length).toBe(Tokens.TOKEN_LENGTH)
    expect(Tokens.verify(t, token, "10.0.0.1")).toBe(true)
    expect(Tokens.verify(t, token, "10.0.0.2")).toBe(false)
    t = Tokens.rotate(t, 4 * MIN)
    expect(Tokens.verify(t, token, "10.0.0.1")).toBe(true) // not rotated yet
    t = Tokens.rotate(t, 6 * MIN)
    expect(Tokens.verify(t, token, "10.0.0.1")).toBe(true) // previous secret
    expect(Tokens.issue(t, "10.0.0.1")).not.toEqual(token)
    t = Tokens.rotate(t, 10 * MIN)
    expect(Tokens.verify(t, token, "10.0.0.1")).toBe(false) // two rotations later
  })

  it("forgets both secrets after a long idle time", () => {
    const t = Tokens.make(0)
    const token = Tokens.issue(t, "10.0.0.1")
    const later = Tokens.rotate(t, 60 * MIN)
    expect(Tokens.verify(later, token, "10.0.0.1")).toBe(false)
    expect(later.rotatedAt).toBe(60 * MIN)
  })

  it.prop("rejects tokens of any other length or content", [
    FastCheck.uint8Array({ maxLength: 20 }),
    FastCheck.ipV4()
  ], ([token, ip]) => {
    const t = Tokens.make(0)
    const good = Tokens.issue(t, ip)
    const same = token.length === good.length && token.every((b, i) => b === good[i])
    expect(Tokens.verify(t, token, ip)).toBe(same)
  })
})
