/**
 * The attribution of `verify` as a pure function: worked examples of pieces spanning files, and a property over
 * arbitrary layouts and damage (SHA-1 modelled as exact: a piece verifies iff none of its bytes is wrong).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as Lengths from "../../src/core/Lengths.ts"
import * as FileLayout from "../../src/metainfo/FileLayout.ts"
import * as VerifyReport from "../../src/storage/VerifyReport.ts"

const layoutOf = (files: ReadonlyArray<{ length: number; pad?: boolean }>, pieceLength: number) => {
  const made = FileLayout.make(files.map((f) => ({ length: f.length, pad: f.pad === true })), pieceLength)
  if (Either.isLeft(made)) throw new Error(made.left.message)
  return made.right
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `t/f${i}`)

/** Three 10-byte files, 8-byte pieces: piece 0 = f0, piece 1 = f0|f1, piece 2 = f1|f2, piece 3 = f2. */
const three = layoutOf([{ length: 10 }, { length: 10 }, { length: 10 }], 8)
const all = [true, true, true]
const sized = (...sizes: Array<number>) => sizes.map((size) => ({ size }))
const run = (found: ReadonlyArray<VerifyReport.Found>, verified: (p: number) => boolean, selected = all) =>
  VerifyReport.attribute({ layout: three, paths: names(3), found, selected, verified })
const statuses = (r: ReturnType<typeof run>) => r.files.map((f) => f.status)

describe("VerifyReport.attribute", () => {
  it("all there and verified: every file ok, the summary complete", () => {
    const r = run(sized(10, 10, 10), () => true)
    expect(statuses(r)).toEqual(["ok", "ok", "ok"])
    expect(r.summary).toEqual({
      ok: true,
      files: 3,
      filesOk: 3,
      pieces: 4,
      piecesOk: 4,
      piecesFailed: 0,
      piecesUnchecked: 0,
      bytes: 30,
      bytesOk: 30
    })
  })

  it("a missing middle file: it is missing, its neighbours unverifiable in the shared pieces, naming it", () => {
    const r = run([{ size: 10 }, VerifyReport.absent, { size: 10 }], () => true)
    expect(statuses(r)).toEqual(["unverifiable", "missing", "unverifiable"])
    expect(r.files[0]).toMatchObject({ uncheckedPieces: [1], blockedBy: ["t/f1"], failedPieces: [] })
    expect(r.files[1]).toMatchObject({ size: null, uncheckedPieces: [], blockedBy: [] })
    expect(r.files[2]).toMatchObject({ uncheckedPieces: [2], blockedBy: ["t/f1"] })
    expect(r.summary).toMatchObject({ ok: false, piecesOk: 2, piecesUnchecked: 2, filesOk: 0, bytesOk: 8 + 6 })
  })

  it("a short file: only the pieces past its end are unchecked; blame stays with the short file", () => {
    // f1 has 7 of 10 bytes: piece 1 (f1 bytes 0..5) is readable, piece 2 (f1 bytes 6..9) is not.
    const r = run(sized(10, 7, 10), () => true)
    expect(statuses(r)).toEqual(["ok", "short", "unverifiable"])
    expect(r.files[1]).toMatchObject({ size: 7, expectedSize: 10, failedPieces: [] })
    expect(r.files[2]).toMatchObject({ uncheckedPieces: [2], blockedBy: ["t/f1"] })
  })

  it("a failed piece spanning two present files counts against both, each naming the other", () => {
    const r = run(sized(10, 10, 10), (p) => p !== 1)
    expect(statuses(r)).toEqual(["corrupt", "corrupt", "ok"])
    expect(r.files[0]).toMatchObject({ failedPieces: [1], sharedWith: ["t/f1"] })
    expect(r.files[1]).toMatchObject({ failedPieces: [1], sharedWith: ["t/f0"] })
    expect(r.summary).toMatchObject({ piecesFailed: 1, piecesOk: 3 })
  })

  it("a failed piece inside one file is that file's alone", () => {
    const r = run(sized(10, 10, 10), (p) => p !== 0)
    expect(statuses(r)).toEqual(["corrupt", "ok", "ok"])
    expect(r.files[0]).toMatchObject({ failedPieces: [0], sharedWith: [] })
  })

  it("a longer file whose pieces verify is long; corrupt outranks long and unverifiable", () => {
    expect(statuses(run(sized(10, 12, 10), () => true))).toEqual(["ok", "long", "ok"])
    expect(statuses(run(sized(12, 10, 10), (p) => p !== 0))).toEqual(["corrupt", "ok", "ok"])
    const r = run([{ size: 10 }, { size: 10 }, VerifyReport.absent], (p) => p !== 1)
    expect(statuses(r)).toEqual(["corrupt", "corrupt", "missing"])
    expect(r.files[1]).toMatchObject({ failedPieces: [1], uncheckedPieces: [2], blockedBy: ["t/f2"] })
  })

  it("selection: only selected files are reported, only their pieces are asked about, numbering kept", () => {
    const asked: Array<number> = []
    const r = run(sized(10, 10, 10), (p) => (asked.push(p), true), [false, false, true])
    expect(r.files.map((f) => [f.index, f.path, f.status])).toEqual([[2, "t/f2", "ok"]])
    expect(asked.sort()).toEqual([2, 3])
    expect(r.summary).toMatchObject({ files: 1, pieces: 2, bytes: 10, bytesOk: 10 })
  })

  it("an unselected missing neighbour still makes a shared piece unverifiable", () => {
    const r = run([VerifyReport.absent, { size: 10 }, { size: 10 }], () => true, [false, true, false])
    expect(r.files.map((f) => f.status)).toEqual(["unverifiable"])
    expect(r.files[0]).toMatchObject({ blockedBy: ["t/f0"], uncheckedPieces: [1] })
  })

  it("pad files are never reported, never read and never block a piece; numbering skips them", () => {
    // f0 (5) | pad (3) | f2 (8) | pad (0) | f4 (4), 8-byte pieces: each file alone in its pieces.
    const layout = layoutOf([{ length: 5 }, { length: 3, pad: true }, { length: 8 }, { length: 0, pad: true }, {
      length: 4
    }], 8)
    const asked: Array<number> = []
    const r = VerifyReport.attribute({
      layout,
      paths: ["t/a", "t/.pad/3", "t/b", "t/.pad/0", "t/c"],
      found: [{ size: 5 }, VerifyReport.absent, VerifyReport.absent, VerifyReport.absent, { size: 4 }],
      selected: [true, true, true, true, true],
      verified: (p) => (asked.push(p), true)
    })
    expect(r.files.map((f) => [f.index, f.path, f.status])).toEqual([[0, "t/a", "ok"], [1, "t/b", "missing"], [
      2,
      "t/c",
      "ok"
    ]])
    expect(asked).toEqual([0, 2])
    expect(r.files[0]!.blockedBy).toEqual([])
  })

  it("zero-length files: ok when there, missing when not, long when they have bytes", () => {
    const layout = layoutOf([{ length: 0 }, { length: 4 }, { length: 0 }, { length: 0 }], 4)
    const r = VerifyReport.attribute({
      layout,
      paths: names(4),
      found: [{ size: 0 }, { size: 4 }, VerifyReport.absent, { size: 3 }],
      selected: [true, true, true, true],
      verified: () => true
    })
    expect(r.files.map((f) => f.status)).toEqual(["ok", "ok", "missing", "long"])
    expect(r.files[0]!.pieces).toBe(0)
  })

  it("a problem at the path is passed on", () => {
    const r = run([{ size: 10 }, { size: -1, problem: "a directory is in its place" }, { size: 10 }], () => true)
    expect(r.files[1]).toMatchObject({ status: "missing", problem: "a directory is in its place" })
  })

  it("the JSON document decodes back through the schema to the same report", () => {
    const body = run([{ size: 10 }, VerifyReport.absent, { size: 12 }], (p) => p !== 3)
    const report: VerifyReport.Report = {
      name: "t",
      infoHash: "00".repeat(20),
      dir: "/data",
      dirExists: true,
      pieceLength: 8,
      ...body
    }
    const json = VerifyReport.toJson(report)
    expect(JSON.parse(json)).toEqual(report)
    expect(Schema.decodeUnknownSync(VerifyReport.Report)(JSON.parse(json))).toEqual(report)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Property

type Damage =
  | { readonly _tag: "intact" }
  | { readonly _tag: "missing" }
  | { readonly _tag: "short"; readonly cut: number } // fraction of the length kept, in 1/1000
  | { readonly _tag: "long"; readonly extra: number }
  | { readonly _tag: "wrong"; readonly at: number } // offset fraction, in 1/1000

const damageArb: FastCheck.Arbitrary<Damage> = FastCheck.oneof(
  { weight: 4, arbitrary: FastCheck.constant({ _tag: "intact" as const }) },
  FastCheck.constant({ _tag: "missing" as const }),
  FastCheck.integer({ min: 0, max: 999 }).map((cut) => ({ _tag: "short" as const, cut })),
  FastCheck.integer({ min: 1, max: 50 }).map((extra) => ({ _tag: "long" as const, extra })),
  FastCheck.integer({ min: 0, max: 999 }).map((at) => ({ _tag: "wrong" as const, at }))
)

const caseArb = FastCheck.record({
  files: FastCheck.array(
    FastCheck.record({
      length: FastCheck.oneof(FastCheck.integer({ min: 0, max: 40 }), FastCheck.integer({ min: 0, max: 300 })),
      pad: FastCheck.boolean(),
      damage: damageArb,
      selected: FastCheck.boolean()
    }),
    { minLength: 1, maxLength: 8 }
  ).filter((fs) => fs.some((f) => !f.pad && f.length > 0)),
  pieceLength: FastCheck.integer({ min: 1, max: 64 })
})

describe("VerifyReport.attribute (property)", () => {
  it.prop("never ok for a damaged file; ok exactly for untouched files with all pieces intact", [caseArb], ([c]) => {
    const layout = layoutOf(c.files, c.pieceLength)
    // The effective damage: a short cut or wrong byte of a zero-length file is no damage at all.
    const damage = c.files.map((f): Damage =>
      f.pad || (f.length === 0 && (f.damage._tag === "short" || f.damage._tag === "wrong"))
        ? { _tag: "intact" }
        : f.damage
    )
    const found = c.files.map((f, i): VerifyReport.Found => {
      const d = damage[i]!
      if (f.pad) return VerifyReport.absent
      return d._tag === "missing"
        ? VerifyReport.absent
        : d._tag === "short"
        ? { size: Math.floor((f.length * d.cut) / 1000) }
        : d._tag === "long"
        ? { size: f.length + d.extra }
        : { size: f.length }
    })
    const wrongAt = (f: number): number | undefined => {
      const d = damage[f]!
      return d._tag === "wrong" ? Math.floor((c.files[f]!.length * d.at) / 1000) : undefined
    }
    const extentsOf = (p: number) => FileLayout.pieceDataExtents(layout, Lengths.unsafePiece(p))
    const pieceHasWrongByte = (p: number) =>
      extentsOf(p).some((e) => {
        const w = wrongAt(e.file)
        return w !== undefined && w >= e.fileOffset && w < e.fileOffset + e.length
      })
    const intactPiece = (p: number) => VerifyReport.readable(layout, found, p) && !pieceHasWrongByte(p)
    const selected = c.files.map((f) => f.selected)
    const asked = new Set<number>()
    const r = VerifyReport.attribute({
      layout,
      paths: c.files.map((_, i) => `t/f${i}`),
      found,
      selected,
      verified: (p) => {
        expect(VerifyReport.readable(layout, found, p)).toBe(true)
        asked.add(p)
        return !pieceHasWrongByte(p)
      }
    })

    const reported = c.files.flatMap((f, i) => (f.pad || !f.selected ? [] : [i]))
    expect(r.files.map((f) => f.path)).toEqual(reported.map((i) => `t/f${i}`))
    r.files.forEach((report, k) => {
      const f = reported[k]!
      const range = FileLayout.piecesOfFile(layout, f)
      const pieces = range._tag === "None"
        ? []
        : Array.from({ length: range.value.last - range.value.first + 1 }, (_, j) => range.value.first + j)
      const untouched = damage[f]!._tag === "intact"
      // The two halves of the property the brief asks for, as one equivalence.
      expect(report.status === "ok").toBe(untouched && pieces.every(intactPiece))
      if (report.status === "corrupt") {
        expect(report.failedPieces.length).toBeGreaterThan(0)
        for (const p of report.failedPieces) expect(pieceHasWrongByte(p)).toBe(true)
      }
      // A wrong byte the check could read is always caught, in its own file, at its piece.
      const w = wrongAt(f)
      if (w !== undefined) {
        const p = Math.floor((FileLayout.fileOffset(layout, f) + w) / c.pieceLength)
        if (VerifyReport.readable(layout, found, p)) {
          expect(report.status).toBe("corrupt")
          expect(report.failedPieces).toContain(p)
        }
      }
      if (report.status === "unverifiable") {
        expect(report.blockedBy.length).toBeGreaterThan(0)
        for (const path of report.blockedBy) {
          const i = Number(path.slice(3))
          expect(found[i]!.size).toBeLessThan(c.files[i]!.length)
        }
      }
      expect(report.failedPieces.length + report.uncheckedPieces.length).toBeLessThanOrEqual(report.pieces)
    })
    const s = r.summary
    expect(s.piecesOk + s.piecesFailed + s.piecesUnchecked).toBe(s.pieces)
    expect(s.pieces).toBe(VerifyReport.piecesInScope(layout, selected).length)
    expect(s.piecesUnchecked).toBe(s.pieces - asked.size)
    expect(s.ok).toBe(r.files.every((f) => f.status === "ok"))
    expect(s.bytesOk).toBeLessThanOrEqual(s.bytes)
  })
})
