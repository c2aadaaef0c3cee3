import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Lengths from "../../src/core/Lengths.ts"

const BLOCK = Lengths.BLOCK

const ok = (total: number, pieceLength: number): Lengths.Lengths =>
  Either.getOrThrowWith(Lengths.make(total, pieceLength), (e) => e)

const reasonOf = (total: number, pieceLength: number): string | undefined =>
  Either.match(Lengths.make(total, pieceLength), { onLeft: (e) => e.reason, onRight: () => undefined })

const piece = (l: Lengths.Lengths, i: number): Lengths.PieceIndex => Option.getOrThrow(Lengths.validatePiece(l, i))

/** Piece lengths as torrents use them (powers of two from 16 KiB) and odd ones (any positive size). */
const pieceLengthArb = FastCheck.oneof(
  FastCheck.integer({ min: 14, max: 24 }).map((e) => 2 ** e),
  FastCheck.integer({ min: 1, max: 3 * BLOCK + 7 }),
  FastCheck.integer({ min: 1, max: 1 << 22 })
)

/** Geometry described by piece length, piece count and last-piece size, so the count stays small enough to walk. */
const geometryArb = FastCheck.tuple(
  pieceLengthArb,
  FastCheck.integer({ min: 0, max: 600 }),
  FastCheck.double({ min: 0, max: 1, noNaN: true })
).map(([pieceLength, count, frac]) => {
  const last = Math.max(1, Math.ceil(frac * pieceLength))
  return { pieceLength, count, last, total: count === 0 ? 0 : (count - 1) * pieceLength + last }
})

describe("Lengths.make", () => {
  it("rejects invalid totals and piece lengths with a reason", () => {
    expect(reasonOf(-1, BLOCK)).toBe("invalid-total")
    expect(reasonOf(1.5, BLOCK)).toBe("invalid-total")
    expect(reasonOf(Number.NaN, BLOCK)).toBe("invalid-total")
    expect(reasonOf(Number.POSITIVE_INFINITY, BLOCK)).toBe("invalid-total")
    expect(reasonOf(2 ** 53, BLOCK)).toBe("invalid-total")
    expect(reasonOf(Lengths.MAX_TOTAL + 1, 2 ** 20)).toBe("total-too-large")
    expect(reasonOf(100, 0)).toBe("invalid-piece-length")
    expect(reasonOf(100, -BLOCK)).toBe("invalid-piece-length")
    expect(reasonOf(100, 1000.5)).toBe("invalid-piece-length")
    expect(reasonOf(100, Number.NaN)).toBe("invalid-piece-length")
    expect(reasonOf(100, Lengths.MAX_PIECE_LENGTH * 2)).toBe("piece-length-too-large")
    expect(reasonOf(Lengths.MAX_PIECES + 1, 1)).toBe("too-many-pieces")
    expect(reasonOf(Lengths.MAX_PIECES, 1)).toBeUndefined()
    expect(reasonOf(Lengths.MAX_TOTAL, Lengths.MAX_PIECE_LENGTH)).toBeUndefined()
  })

  it("the error is a tagged LengthsError", () => {
    const e = Either.getLeft(Lengths.make(-1, 1)).pipe(Option.getOrThrow)
    expect(e._tag).toBe("LengthsError")
    expect(e.message).toContain("-1")
  })

  it("total 0: no pieces, no blocks, no valid index", () => {
    const l = ok(0, BLOCK)
    expect(Lengths.pieceCount(l)).toBe(0)
    expect(l.lastPieceSize).toBe(0)
    expect(Lengths.totalBlocks(l)).toBe(0)
    expect(Option.isNone(Lengths.lastPiece(l))).toBe(true)
    expect(Option.isNone(Lengths.validatePiece(l, 0))).toBe(true)
    expect(Option.isNone(Lengths.pieceOf(l, 0))).toBe(true)
    expect(Lengths.isValidRequest(l, 0, 0, 1)).toBe(false)
    expect(Lengths.isExactBlock(l, 0, 0, 0)).toBe(false)
  })

  it("single-byte torrent: one piece of one byte, one block of one byte", () => {
    const l = ok(1, 2 ** 18)
    const p = piece(l, 0)
    expect(Lengths.pieceCount(l)).toBe(1)
    expect(Lengths.pieceSize(l, p)).toBe(1)
    expect(Lengths.blockCount(l, p)).toBe(1)
    expect(Lengths.blockSize(l, p, 0)).toBe(1)
    expect(Lengths.blockSize(l, p, 1)).toBe(0)
    expect(Lengths.isExactBlock(l, 0, 0, 1)).toBe(true)
    expect(Lengths.isExactBlock(l, 0, 0, BLOCK)).toBe(false)
    expect(Lengths.isValidRequest(l, 0, 0, 1)).toBe(true)
    expect(Lengths.isValidRequest(l, 0, 0, 2)).toBe(false)
    expect(Lengths.isValidRequest(l, 0, 1, 1)).toBe(false)
    expect(Option.getOrThrow(Lengths.pieceOf(l, 0))).toBe(0)
    expect(Option.isNone(Lengths.pieceOf(l, 1))).toBe(true)
  })

  it("last piece exactly full", () => {
    const l = ok(4 * 2 ** 18, 2 ** 18)
    expect(Lengths.pieceCount(l)).toBe(4)
    expect(Lengths.pieceSize(l, piece(l, 3))).toBe(2 ** 18)
    expect(Lengths.blockCount(l, piece(l, 3))).toBe(16)
    expect(Lengths.blockSize(l, piece(l, 3), 15)).toBe(BLOCK)
    expect(Option.isNone(Lengths.validatePiece(l, 4))).toBe(true)
  })

  it("matches rqbit's worked example (1174243328 bytes, 256 KiB pieces)", () => {
    const l = ok(1174243328, 262144)
    const last = Option.getOrThrow(Lengths.lastPiece(l))
    expect(Lengths.pieceCount(l)).toBe(4480)
    expect(last).toBe(4479)
    expect(Lengths.pieceSize(l, piece(l, 0))).toBe(262144)
    expect(Lengths.pieceSize(l, last)).toBe(100352)
    expect(Lengths.blockCount(l, piece(l, 0))).toBe(16)
    expect(Lengths.blockCount(l, last)).toBe(7)
    expect(Lengths.blockSize(l, last, 0)).toBe(BLOCK)
    expect(Lengths.blockSize(l, last, 6)).toBe(2048)
    expect(Lengths.totalBlocks(l)).toBe(4479 * 16 + 7)
  })

  it("piece length smaller than a block and not a multiple of it", () => {
    const l = ok(25000, 10000)
    expect(Lengths.pieceCount(l)).toBe(3)
    expect(Lengths.blockCount(l, piece(l, 0))).toBe(1)
    expect(Lengths.blockSize(l, piece(l, 0), 0)).toBe(10000)
    expect(Lengths.blockSize(l, piece(l, 2), 0)).toBe(5000)
    expect(Lengths.isExactBlock(l, 1, 0, 10000)).toBe(true)
    expect(Lengths.isExactBlock(l, 2, 0, 10000)).toBe(false)
  })

  it("validatePiece and isPiece reject non-integers, negatives and out-of-range indices", () => {
    const l = ok(100, 10)
    for (const i of [-1, 10, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(Option.isNone(Lengths.validatePiece(l, i))).toBe(true)
      expect(Lengths.isPiece(l, i)).toBe(false)
    }
    expect(Option.getOrThrow(Lengths.validatePiece(l, 9))).toBe(9)
  })

  it("isExactBlock rejects unaligned, short, long and out-of-range blocks", () => {
    const l = ok(3 * 2 ** 15 + 100, 2 ** 15)
    expect(Lengths.isExactBlock(l, 0, 0, BLOCK)).toBe(true)
    expect(Lengths.isExactBlock(l, 0, BLOCK, BLOCK)).toBe(true)
    expect(Lengths.isExactBlock(l, 0, 2 * BLOCK, BLOCK)).toBe(false)
    expect(Lengths.isExactBlock(l, 0, 1, BLOCK)).toBe(false)
    expect(Lengths.isExactBlock(l, 0, 0, BLOCK - 1)).toBe(false)
    expect(Lengths.isExactBlock(l, 3, 0, 100)).toBe(true)
    expect(Lengths.isExactBlock(l, 3, 0, BLOCK)).toBe(false)
    expect(Lengths.isExactBlock(l, 4, 0, BLOCK)).toBe(false)
    expect(Lengths.isExactBlock(l, -1, 0, BLOCK)).toBe(false)
  })

  it("isValidRequest: any begin, length 1..BLOCK, inside the piece", () => {
    const l = ok(3 * 2 ** 15 + 100, 2 ** 15)
    expect(Lengths.isValidRequest(l, 0, 0, BLOCK)).toBe(true)
    expect(Lengths.isValidRequest(l, 0, 7, BLOCK)).toBe(true)
    expect(Lengths.isValidRequest(l, 0, 2 ** 15 - 1, 1)).toBe(true)
    expect(Lengths.isValidRequest(l, 0, 2 ** 15 - 1, 2)).toBe(false)
    expect(Lengths.isValidRequest(l, 0, 0, BLOCK + 1)).toBe(false)
    expect(Lengths.isValidRequest(l, 0, 0, 0)).toBe(false)
    expect(Lengths.isValidRequest(l, 0, -1, 10)).toBe(false)
    expect(Lengths.isValidRequest(l, 0, 0.5, 10)).toBe(false)
    expect(Lengths.isValidRequest(l, 3, 0, 100)).toBe(true)
    expect(Lengths.isValidRequest(l, 3, 0, 101)).toBe(false)
    expect(Lengths.isValidRequest(l, 4, 0, 1)).toBe(false)
  })

  it("blockOffset and blockIndexOf", () => {
    expect(Lengths.blockOffset(0)).toBe(0)
    expect(Lengths.blockOffset(3)).toBe(3 * BLOCK)
    expect(Lengths.blockIndexOf(0)).toBe(0)
    expect(Lengths.blockIndexOf(BLOCK - 1)).toBe(0)
    expect(Lengths.blockIndexOf(BLOCK)).toBe(1)
  })

  it("huge torrents keep exact arithmetic at the last piece", () => {
    const l = ok(Lengths.MAX_TOTAL, Lengths.MAX_PIECE_LENGTH)
    const last = Option.getOrThrow(Lengths.lastPiece(l))
    expect(Lengths.pieceOffset(l, last) + Lengths.pieceSize(l, last)).toBe(Lengths.MAX_TOTAL)
    expect(Lengths.pieceSize(l, last)).toBe(Lengths.MAX_PIECE_LENGTH - 1)
    expect(Lengths.blockSize(l, last, Lengths.blockCount(l, last) - 1)).toBe(BLOCK - 1)
    expect(Option.getOrThrow(Lengths.pieceOf(l, Lengths.MAX_TOTAL - 1))).toBe(last)
  })
})

describe("Lengths properties", () => {
  it.prop("piece count, sizes and offsets add up to the total", [geometryArb], ([g]) => {
    const l = ok(g.total, g.pieceLength)
    expect(Lengths.pieceCount(l)).toBe(g.count)
    const bad: Array<string> = []
    let sum = 0
    let blocks = 0
    for (let i = 0; i < g.count; i++) {
      const p = piece(l, i)
      const size = Lengths.pieceSize(l, p)
      const offset = Lengths.pieceOffset(l, p)
      if (offset !== sum) bad.push(`piece ${i}: offset ${offset}, expected ${sum}`)
      if (size !== (i === g.count - 1 ? g.last : g.pieceLength)) bad.push(`piece ${i}: size ${size}`)
      sum += size
      blocks += Lengths.blockCount(l, p)
    }
    expect(bad).toEqual([])
    expect(sum).toBe(g.total)
    expect(Lengths.totalBlocks(l)).toBe(blocks)
    expect(Option.isNone(Lengths.validatePiece(l, g.count))).toBe(true)
  })

  it.prop(
    "blocks tile each piece: never past the piece end, at most 16 KiB, exact blocks accepted",
    [geometryArb, FastCheck.nat()],
    ([g, seed]) => {
      if (g.count === 0) return
      const l = ok(g.total, g.pieceLength)
      // Always the last piece, plus one other.
      for (const i of new Set([g.count - 1, seed % g.count])) {
        const p = piece(l, i)
        const size = Lengths.pieceSize(l, p)
        const n = Lengths.blockCount(l, p)
        expect(n).toBe(Math.ceil(size / BLOCK))
        const bad: Array<string> = []
        let covered = 0
        for (let b = 0; b < n; b++) {
          const begin = Lengths.blockOffset(b)
          const bs = Lengths.blockSize(l, p, b)
          if (begin !== covered) bad.push(`block ${b}: begins at ${begin}, expected ${covered}`)
          if (bs <= 0 || bs > BLOCK) bad.push(`block ${b}: size ${bs}`)
          if (begin + bs > size) bad.push(`block ${b}: ends past the piece`)
          if (b < n - 1 && bs !== BLOCK) bad.push(`block ${b}: short block before the last`)
          if (Lengths.blockIndexOf(begin) !== b || Lengths.blockIndexOf(begin + bs - 1) !== b) {
            bad.push(`block ${b}: blockIndexOf`)
          }
          if (!Lengths.isExactBlock(l, i, begin, bs)) bad.push(`block ${b}: not an exact block`)
          if (Lengths.isExactBlock(l, i, begin, bs + 1) || Lengths.isExactBlock(l, i, begin, bs - 1)) {
            bad.push(`block ${b}: wrong length accepted`)
          }
          if (!Lengths.isValidRequest(l, i, begin, bs)) bad.push(`block ${b}: not a valid request`)
          covered += bs
        }
        expect(bad).toEqual([])
        expect(covered).toBe(size)
        expect(Lengths.blockSize(l, p, n)).toBe(0)
        expect(Lengths.blockSize(l, p, -1)).toBe(0)
      }
    }
  )

  it.prop(
    "isValidRequest agrees with the model; pieceOf inverts pieceOffset",
    [
      geometryArb,
      FastCheck.nat(),
      FastCheck.integer({ min: -5, max: 1 << 23 }),
      FastCheck.integer({ min: -2, max: 2 * BLOCK })
    ],
    ([g, seed, begin, length]) => {
      if (g.count === 0) return
      const l = ok(g.total, g.pieceLength)
      const i = seed % g.count
      const size = Lengths.pieceSize(l, piece(l, i))
      const model = begin >= 0 && length >= 1 && length <= BLOCK && begin + length <= size
      expect(Lengths.isValidRequest(l, i, begin, length)).toBe(model)
      const offset = seed % g.total
      const p = Option.getOrThrow(Lengths.pieceOf(l, offset))
      expect(Lengths.pieceOffset(l, p)).toBeLessThanOrEqual(offset)
      expect(offset).toBeLessThan(Lengths.pieceOffset(l, p) + Lengths.pieceSize(l, p))
    }
  )

  it.prop(
    "large geometries: last piece in 1..pieceLength and ends at the total",
    [
      FastCheck.integer({ min: 1, max: Lengths.MAX_TOTAL }),
      FastCheck.integer({ min: 1, max: Lengths.MAX_PIECE_LENGTH })
    ],
    ([total, pieceLength]) => {
      const made = Lengths.make(total, pieceLength)
      if (Math.ceil(total / pieceLength) > Lengths.MAX_PIECES) {
        expect(Either.isLeft(made)).toBe(true)
        return
      }
      const l = Either.getOrThrow(made)
      const last = Option.getOrThrow(Lengths.lastPiece(l))
      const size = Lengths.pieceSize(l, last)
      expect(size).toBeGreaterThanOrEqual(1)
      expect(size).toBeLessThanOrEqual(pieceLength)
      expect(Lengths.pieceOffset(l, last) + size).toBe(total)
      expect(Option.getOrThrow(Lengths.pieceOf(l, total - 1))).toBe(last)
    }
  )
})
