import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import * as Lengths from "../../src/core/Lengths.ts"
import * as FileLayout from "../../src/metainfo/FileLayout.ts"

type Entry = FileLayout.FileEntry

const BLOCK = Lengths.BLOCK

const ok = (files: ReadonlyArray<Entry>, pieceLength: number): FileLayout.FileLayout =>
  Either.getOrThrowWith(FileLayout.make(files, pieceLength), (e) => e)

const file = (length: number, pad = false): Entry => ({ length, pad })

const piece = (layout: FileLayout.FileLayout, i: number): Lengths.PieceIndex =>
  Option.getOrThrow(Lengths.validatePiece(layout.lengths, i))

const strip = (es: ReadonlyArray<FileLayout.Extent>) => es.map((e) => [e.file, e.fileOffset, e.length, e.bufferOffset])

/** Linear model: file and in-file offset of every torrent byte. */
const byteModel = (files: ReadonlyArray<Entry>): Array<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = []
  files.forEach((f, i) => {
    for (let o = 0; o < f.length; o++) out.push([i, o])
  })
  return out
}

const fileLengthArb = (max: number) =>
  FastCheck.oneof(
    { arbitrary: FastCheck.constant(0), weight: 2 },
    { arbitrary: FastCheck.integer({ min: 1, max: 8 }), weight: 3 },
    { arbitrary: FastCheck.integer({ min: 1, max }), weight: 3 }
  )

// About one file in five is a pad file (zero-length pads included: they are as legal as any empty file).
const entryArb = (max: number): FastCheck.Arbitrary<Entry> =>
  FastCheck.record({ length: fileLengthArb(max), pad: FastCheck.integer({ min: 0, max: 4 }).map((n) => n === 0) })

/** Small torrents (≤ a few KiB) whose every byte can be checked against the linear model. */
const smallArb = FastCheck.record({
  files: FastCheck.array(entryArb(700), { maxLength: 25 }),
  pieceLength: FastCheck.oneof(FastCheck.integer({ min: 1, max: 300 }), FastCheck.constantFrom(64, 128, 256, 1024))
})

/**
 * Any shape: many tiny files, one huge file among them, pads. The piece length is raised so that the torrent has at
 * most a few thousand pieces to walk.
 */
const anyArb = FastCheck.record({
  files: FastCheck.oneof(
    FastCheck.array(entryArb(5000), { maxLength: 60 }),
    FastCheck.array(entryArb(3), { minLength: 500, maxLength: 3000 }),
    FastCheck.tuple(
      FastCheck.array(entryArb(1 << 20), { maxLength: 10 }),
      FastCheck.integer({ min: 2 ** 32, max: 2 ** 41 }),
      FastCheck.array(entryArb(1 << 20), { maxLength: 10 })
    ).map(([a, huge, b]) => [...a, file(huge), ...b])
  ),
  pieceLength: FastCheck.oneof(
    FastCheck.integer({ min: 1, max: 1 << 16 }),
    FastCheck.integer({ min: 14, max: 24 }).map((e) => 2 ** e)
  ),
  seeds: FastCheck.array(FastCheck.double({ min: 0, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 })
}).map(({ files, pieceLength, seeds }) => {
  const total = files.reduce((s, f) => s + f.length, 0)
  return { files, pieceLength: Math.max(pieceLength, Math.ceil(total / 3000)), seeds, total }
})

/**
 * Structural invariants of the extents of `offset .. offset+length` (plain comparisons collected into one
 * assertion: `expect` per extent makes the 3000-file cases slow).
 */
const checkExtents = (
  layout: FileLayout.FileLayout,
  files: ReadonlyArray<Entry>,
  offset: number,
  length: number
): Array<FileLayout.Extent> => {
  const es = FileLayout.extents(layout, offset, length)
  const bad: Array<string> = []
  let buf = 0
  let prevFile = -1
  es.forEach((e, k) => {
    const f = files[e.file]!
    if (e.bufferOffset !== buf) bad.push(`extent ${k}: bufferOffset ${e.bufferOffset}, expected ${buf}`)
    if (e.length <= 0) bad.push(`extent ${k}: empty`)
    if (e.file <= prevFile) bad.push(`extent ${k}: file ${e.file} after ${prevFile}`)
    if (e.fileOffset < 0 || e.fileOffset + e.length > f.length) bad.push(`extent ${k}: crosses the end of its file`)
    if (FileLayout.fileOffset(layout, e.file) + e.fileOffset !== offset + e.bufferOffset) {
      bad.push(`extent ${k}: torrent position mismatch`)
    }
    if (e.pad !== f.pad) bad.push(`extent ${k}: pad flag`)
    // Interior extents cover whole files; only the ends may be partial.
    if (k > 0 && e.fileOffset !== 0) bad.push(`extent ${k}: interior extent starts inside its file`)
    if (k < es.length - 1 && e.fileOffset + e.length !== f.length) bad.push(`extent ${k}: interior extent ends early`)
    buf += e.length
    prevFile = e.file
  })
  if (buf !== length) bad.push(`extents sum to ${buf}, expected ${length}`)
  expect(bad).toEqual([])
  expect(FileLayout.dataExtents(layout, offset, length)).toEqual(es.filter((e) => !e.pad))
  return es
}

describe("FileLayout.make", () => {
  it("rejects bad file lengths and passes geometry errors through", () => {
    const reason = (files: ReadonlyArray<Entry>, pl: number) =>
      Either.match(FileLayout.make(files, pl), { onLeft: (e) => `${e._tag}:${e.reason}`, onRight: () => "ok" })
    expect(reason([file(1), file(-1)], 16)).toBe("FileLayoutError:invalid-file-length")
    expect(reason([file(1.5)], 16)).toBe("FileLayoutError:invalid-file-length")
    expect(reason([file(Number.NaN)], 16)).toBe("FileLayoutError:invalid-file-length")
    expect(reason([file(Lengths.MAX_TOTAL), file(1)], 2 ** 20)).toBe("FileLayoutError:total-too-large")
    expect(reason([file(10)], 0)).toBe("LengthsError:invalid-piece-length")
    expect(reason([file(10)], 16)).toBe("ok")
    const e = Either.getLeft(FileLayout.make([file(1), file(-1)], 16)).pipe(Option.getOrThrow)
    expect(e._tag === "FileLayoutError" && e.file).toBe(1)
  })

  it("no files, or only empty files: total 0, no pieces, no extents", () => {
    for (const files of [[], [file(0), file(0)]]) {
      const layout = ok(files, BLOCK)
      expect(FileLayout.total(layout)).toBe(0)
      expect(Lengths.pieceCount(layout.lengths)).toBe(0)
      expect(FileLayout.extents(layout, 0, 0)).toEqual([])
      for (let f = 0; f < files.length; f++) {
        expect(Option.isNone(FileLayout.piecesOfFile(layout, f))).toBe(true)
        expect(FileLayout.fileOffset(layout, f)).toBe(0)
      }
      expect(() => FileLayout.extents(layout, 0, 1)).toThrow(RangeError)
    }
  })

  it("single file", () => {
    const layout = ok([file(40000)], BLOCK)
    expect(Lengths.pieceCount(layout.lengths)).toBe(3)
    expect(strip(FileLayout.pieceExtents(layout, piece(layout, 2)))).toEqual([[0, 2 * BLOCK, 40000 - 2 * BLOCK, 0]])
    expect(FileLayout.filesOfPiece(layout, piece(layout, 1))).toEqual([0])
    expect(Option.getOrThrow(FileLayout.piecesOfFile(layout, 0))).toEqual({ first: 0, last: 2 })
  })

  it("a piece spanning files, an empty file on a piece boundary, and a pad file (BEP 47)", () => {
    // bytes: a = 0..9, (empty b at 10), pad = 10..15, c = 16..35, (empty d at 36)
    const files = [file(10), file(0), file(6, true), file(20), file(0)]
    const layout = ok(files, 16)
    expect(FileLayout.fileOffset(layout, 1)).toBe(10)
    expect(FileLayout.fileOffset(layout, 3)).toBe(16)
    expect(FileLayout.fileOffset(layout, 4)).toBe(36)
    expect(FileLayout.fileLength(layout, 2)).toBe(6)
    expect(FileLayout.isPad(layout, 2)).toBe(true)
    expect(FileLayout.isPad(layout, 3)).toBe(false)
    expect(strip(FileLayout.pieceExtents(layout, piece(layout, 0)))).toEqual([
      [0, 0, 10, 0],
      [2, 0, 6, 10]
    ])
    expect(strip(FileLayout.pieceDataExtents(layout, piece(layout, 0)))).toEqual([[0, 0, 10, 0]])
    expect(strip(FileLayout.pieceExtents(layout, piece(layout, 1)))).toEqual([[3, 0, 16, 0]])
    expect(strip(FileLayout.pieceExtents(layout, piece(layout, 2)))).toEqual([[3, 16, 4, 0]])
    expect(strip(FileLayout.extents(layout, 5, 20))).toEqual([
      [0, 5, 5, 0],
      [2, 0, 6, 5],
      [3, 0, 9, 11]
    ])
    expect(FileLayout.filesOfPiece(layout, piece(layout, 0))).toEqual([0, 2])
    expect(FileLayout.filesOfPiece(layout, piece(layout, 2))).toEqual([3])
    expect(Option.isNone(FileLayout.piecesOfFile(layout, 1))).toBe(true)
    expect(Option.isNone(FileLayout.piecesOfFile(layout, 4))).toBe(true)
    expect(Option.getOrThrow(FileLayout.piecesOfFile(layout, 3))).toEqual({ first: 1, last: 2 })
  })

  it("a file ending exactly on a piece boundary touches only its own pieces", () => {
    const layout = ok([file(32), file(1)], 16)
    expect(Option.getOrThrow(FileLayout.piecesOfFile(layout, 0))).toEqual({ first: 0, last: 1 })
    expect(Option.getOrThrow(FileLayout.piecesOfFile(layout, 1))).toEqual({ first: 2, last: 2 })
    expect(FileLayout.filesOfPiece(layout, piece(layout, 1))).toEqual([0])
    expect(FileLayout.filesOfPiece(layout, piece(layout, 2))).toEqual([1])
    expect(Lengths.pieceSize(layout.lengths, piece(layout, 2))).toBe(1)
  })

  it("single-byte torrent", () => {
    const layout = ok([file(0), file(1), file(0)], 2 ** 18)
    expect(strip(FileLayout.pieceExtents(layout, piece(layout, 0)))).toEqual([[1, 0, 1, 0]])
    expect(FileLayout.filesOfPiece(layout, piece(layout, 0))).toEqual([1])
  })

  it("rejects out-of-range arguments with RangeError", () => {
    const layout = ok([file(10), file(10)], 8)
    expect(() => FileLayout.extents(layout, 15, 6)).toThrow(RangeError)
    expect(() => FileLayout.extents(layout, -1, 1)).toThrow(RangeError)
    expect(() => FileLayout.extents(layout, 0, -1)).toThrow(RangeError)
    expect(() => FileLayout.extents(layout, 0.5, 1)).toThrow(RangeError)
    expect(() => FileLayout.fileOffset(layout, 2)).toThrow(RangeError)
    expect(() => FileLayout.piecesOfFile(layout, -1)).toThrow(RangeError)
    expect(() => FileLayout.filesOfPiece(layout, Lengths.unsafePiece(3))).toThrow(RangeError)
    expect(FileLayout.extents(layout, 20, 0)).toEqual([])
  })

  it("100k files: building and mapping every piece stays fast", () => {
    const files = Array.from({ length: 100_000 }, (_, i) => file(i % 7 === 0 ? 0 : 1000 + (i % 13) * 517, i % 11 === 5))
    const t0 = performance.now()
    const layout = ok(files, 2 ** 18)
    let bytes = 0
    for (let i = 0; i < Lengths.pieceCount(layout.lengths); i++) {
      for (const e of FileLayout.pieceExtents(layout, piece(layout, i))) bytes += e.length
    }
    expect(bytes).toBe(FileLayout.total(layout))
    expect(performance.now() - t0).toBeLessThan(2000)
  })
})

describe("FileLayout properties", () => {
  it.prop("every byte maps to exactly one file position, in order", [smallArb], ([{ files, pieceLength }]) => {
    const layout = ok(files, pieceLength)
    const model = byteModel(files)
    expect(FileLayout.total(layout)).toBe(model.length)
    const mapped: Array<readonly [number, number]> = []
    for (const e of checkExtents(layout, files, 0, model.length)) {
      for (let o = 0; o < e.length; o++) mapped.push([e.file, e.fileOffset + o])
    }
    expect(mapped).toEqual(model)
    // Piece by piece, the same bytes in the same order.
    const viaPieces: Array<readonly [number, number]> = []
    for (let i = 0; i < Lengths.pieceCount(layout.lengths); i++) {
      const p = piece(layout, i)
      for (const e of FileLayout.pieceExtents(layout, p)) {
        for (let o = 0; o < e.length; o++) viaPieces.push([e.file, e.fileOffset + o])
      }
    }
    expect(viaPieces).toEqual(model)
  })

  it.prop(
    "sub-ranges agree with the byte model",
    [smallArb, FastCheck.nat(), FastCheck.nat()],
    ([{ files, pieceLength }, a, b]) => {
      const layout = ok(files, pieceLength)
      const model = byteModel(files)
      const offset = a % (model.length + 1)
      const length = b % (model.length - offset + 1)
      const mapped: Array<readonly [number, number]> = []
      for (const e of checkExtents(layout, files, offset, length)) {
        for (let o = 0; o < e.length; o++) mapped.push([e.file, e.fileOffset + o])
      }
      expect(mapped).toEqual(model.slice(offset, offset + length))
    }
  )

  it.prop("extents of any range: contiguous, summing to the length, inside files", [anyArb], ([g]) => {
    const layout = ok(g.files, g.pieceLength)
    expect(FileLayout.total(layout)).toBe(g.total)
    const [s0, s1, s2, s3] = g.seeds as [number, number, number, number]
    const offset = Math.floor(s0 * g.total)
    const length = Math.floor(s1 * (g.total - offset))
    checkExtents(layout, g.files, offset, length)
    checkExtents(layout, g.files, 0, g.total)
    const count = Lengths.pieceCount(layout.lengths)
    if (count > 0) {
      // seeds lie in [0, 1]: a seed of exactly 1 must still name the last piece
      for (const i of [0, count - 1, Math.min(count - 1, Math.floor(s2 * count)), Math.min(count - 1, Math.floor(s3 * count))]) {
        const p = piece(layout, i)
        const begin = Lengths.pieceOffset(layout.lengths, p)
        const es = checkExtents(layout, g.files, begin, Lengths.pieceSize(layout.lengths, p))
        expect(FileLayout.pieceExtents(layout, p)).toEqual(es)
      }
    }
  })

  it.prop("filesOfPiece and piecesOfFile are inverse", [anyArb], ([g]) => {
    const layout = ok(g.files, g.pieceLength)
    const count = Lengths.pieceCount(layout.lengths)
    const fromPieces = new Map<number, Array<number>>()
    const bad: Array<string> = []
    let pieceSum = 0
    for (let i = 0; i < count; i++) {
      const p = piece(layout, i)
      pieceSum += Lengths.pieceSize(layout.lengths, p)
      const fs = FileLayout.filesOfPiece(layout, p)
      const viaExtents = FileLayout.pieceExtents(layout, p).map((e) => e.file)
      if (fs.join() !== viaExtents.join()) bad.push(`piece ${i}: files ${fs} but extents in ${viaExtents}`)
      for (const f of fs) {
        const r = Option.getOrThrow(FileLayout.piecesOfFile(layout, f))
        if (i < r.first || i > r.last) bad.push(`piece ${i} lists file ${f} with pieces ${r.first}..${r.last}`)
        const list = fromPieces.get(f) ?? []
        list.push(i)
        fromPieces.set(f, list)
      }
    }
    expect(bad).toEqual([])
    expect(pieceSum).toBe(g.total)
    for (let f = 0; f < g.files.length; f++) {
      const r = FileLayout.piecesOfFile(layout, f)
      if (g.files[f]!.length === 0) {
        if (Option.isSome(r) || fromPieces.has(f)) bad.push(`empty file ${f} touches a piece`)
      } else {
        const { first, last } = Option.getOrThrow(r)
        // Every piece of the range lists the file, and no other piece does.
        const got = fromPieces.get(f) ?? []
        if (got.length !== last - first + 1 || got.some((p, k) => p !== first + k)) {
          bad.push(`file ${f}: pieces ${first}..${last}, listed by ${got}`)
        }
      }
    }
    expect(bad).toEqual([])
  })
})
