import { describe, expect, it } from "@effect/vitest"
import * as Picker from "../../src/picker/Picker.ts"

describe("Picker noDuplicates (web seeds)", () => {
  it("in endgame, a caller asking without duplicates gets only open blocks", () => {
    const p = Picker.make({ pieceCount: 2, pieceLength: 32768, totalLength: 65536 })
    for (const peer of ["a", "b"]) {
      p.peerJoined(peer)
      p.peerHaveAll(peer)
    }
    expect(p.nextRequests("a", 3)).toHaveLength(3)
    expect(p.isEndgame()).toBe(true)
    // one block is still open: taken; the three held by "a" are not duplicated
    expect(p.nextRequests("b", 10, { noDuplicates: true })).toHaveLength(1)
    expect(p.nextRequests("b", 10, { noDuplicates: true })).toEqual([])
    expect(p.nextRequests("b", 10)).toHaveLength(3)
    expect(p.check()).toEqual([])
  })
})
