import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as FileLayout from "../../src/metainfo/FileLayout.ts"
import * as FileSelection from "../../src/torrent/FileSelection.ts"

// Pieces of 10 bytes: a = 0..14 (pieces 0, 1), b = 15..24 (pieces 1, 2), c = 25..44 (pieces 2, 3, 4).
const layout = Either.getOrThrow(FileLayout.make([{ length: 15, pad: false }, { length: 10, pad: false }, { length: 20, pad: false }], 10))

describe("FileSelection", () => {
  it("piecePriorities: each piece takes its highest file's priority", () => {
    expect(FileSelection.piecePriorities(layout, ["low", "high", "normal"])).toEqual([
      "low",
      "high",
      "high",
      "normal",
      "normal"
    ])
    expect(FileSelection.piecePriorities(layout, ["low", "low", "low"])).toEqual(["low", "low", "low", "low", "low"])
  })

  it("newlyWanted: the pieces of files selected now, straddling pieces included", () => {
    const bf = FileSelection.newlyWanted(layout, [true, false, false], [true, true, false])
    expect([...Bitfield.indices(bf)]).toEqual([1, 2])
    expect(Bitfield.count(FileSelection.newlyWanted(layout, [true, true, true], [true, true, true]))).toBe(0)
  })
})
