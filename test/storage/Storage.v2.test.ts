/**
 * Storage with BEP 52 verification (`MakeOptions.v2`, from `Metainfo.pieceVerification`): a v2-only torrent's pieces
 * are checked against their Merkle roots only (the pad past a file's data does not count), a hybrid's against both
 * its SHA-1 and its root (either wrong fails the piece), a v2-only file without its piece layer never verifies (a
 * hybrid's falls back to its SHA-1); `check`
 * over complete data finds every piece, inline and in workers.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import type * as Layer from "effect/Layer"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as MemoryStorage from "../../src/storage/MemoryStorage.ts"
import * as Storage from "../../src/storage/Storage.ts"
import { type Built } from "../support/seeder.ts"
import { buildV2 } from "../support/v2.ts"

const L = 32768
const build = (format: "v2" | "hybrid") =>
  buildV2({
    name: "t",
    format,
    pieceLength: L,
    files: [
      { path: ["a"], length: 5 * L + 100 },
      { path: ["b"], length: 10 },
      { path: ["c"], length: L },
      { path: ["d"], length: 0 },
      { path: ["e"], length: 2 * L - 1 }
    ]
  })

const storageOf = (built: Built, v2?: Storage.MakeOptions["v2"]) =>
  MemoryStorage.make({
    files: built.metainfo.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
    pieceLength: built.metainfo.pieceLength,
    ...Metainfo.pieceVerification(built.metainfo),
    ...(v2 !== undefined ? { v2 } : {})
  })

const pieceOf = (built: Built, i: number) =>
  built.payload.slice(i * built.metainfo.pieceLength, i * built.metainfo.pieceLength + Metainfo.pieceLengthAt(built.metainfo, i)!)

const layers: ReadonlyArray<readonly [string, Layer.Layer<Hasher.Hasher>]> = [
  ["inline", Hasher.layerInline],
  ["workers", Hasher.layerPool({ workers: 2, inlineMax: 0 })]
]

describe("Storage with v2 verification", () => {
  for (const [name, layer] of layers) {
    for (const format of ["v2", "hybrid"] as const) {
      it.live(`${format} (${name}): every piece verifies; a flipped data byte fails it; check finds all after writing`, () =>
        Effect.gen(function*() {
          const built = build(format)
          const m = built.metainfo
          const s = yield* storageOf(built)
          for (let i = 0; i < m.pieceCount; i++) {
            expect((yield* s.verifyPiece(i, pieceOf(built, i))).ok, `piece ${i}`).toBe(true)
            const bad = pieceOf(built, i)
            const v = Metainfo.v2Piece(m, i)!
            bad[v.dataLength - 1]! ^= 1
            expect((yield* s.verifyPiece(i, bad)).ok, `piece ${i} flipped`).toBe(false)
            yield* s.writePiece(i, pieceOf(built, i))
          }
          const have = yield* s.check
          for (let i = 0; i < m.pieceCount; i++) expect(Bitfield.has(have, i), `piece ${i} checked`).toBe(true)
        }).pipe(Effect.provide(layer)))
    }
  }

  it.effect("v2-only: bytes past the file's data in its last piece (the pad) do not count", () =>
    Effect.gen(function*() {
      const built = build("v2")
      const m = built.metainfo
      const s = yield* storageOf(built)
      const i = m.pieceCount - 1 // e's last piece: L - 1 bytes of data, then a pad byte
      const v = Metainfo.v2Piece(m, i)!
      expect(v.dataLength).toBeLessThan(Metainfo.pieceLengthAt(m, i)!)
      const piece = pieceOf(built, i)
      piece[piece.length - 1] = 0xff
      expect((yield* s.verifyPiece(i, piece)).ok).toBe(true)
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.effect("hybrid: a right SHA-1 with a wrong root fails, and a right root with a wrong SHA-1 (pad byte) fails", () =>
    Effect.gen(function*() {
      const built = build("hybrid")
      const m = built.metainfo
      const wrongRoot = yield* storageOf(built, (i) => {
        const v = Metainfo.v2Piece(m, i)!
        return { root: new Uint8Array(32), dataLength: v.dataLength, width: v.width }
      })
      expect((yield* wrongRoot.verifyPiece(0, pieceOf(built, 0))).ok).toBe(false)
      const s = yield* storageOf(built)
      // piece 6: b (10 bytes) then its pad, which only the SHA-1 covers
      const v = Metainfo.v2Piece(m, 6)!
      expect(m.files[v.fileIndex]!.path.join("/")).toBe("t/b")
      const piece = pieceOf(built, 6)
      piece[piece.length - 1] = 1
      expect((yield* s.verifyPiece(6, piece)).ok).toBe(false)
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.effect("without the file's piece layer a v2-only piece never verifies; a hybrid's is verified by its SHA-1", () =>
    Effect.gen(function*() {
      for (const format of ["v2", "hybrid"] as const) {
        const built = build(format)
        const m = built.metainfo
        const s = yield* storageOf(built, (i) => {
          const v = Metainfo.v2Piece(m, i)!
          return { root: undefined, dataLength: v.dataLength, width: v.width }
        })
        expect((yield* s.verifyPiece(0, pieceOf(built, 0))).ok).toBe(format === "hybrid")
        const bad = pieceOf(built, 0)
        bad[0]! ^= 1
        expect((yield* s.verifyPiece(0, bad)).ok).toBe(false)
      }
    }).pipe(Effect.provide(Hasher.layerInline)))
})

describe("Storage with v2 verification (property)", () => {
  const spec = FastCheck.record({
    format: FastCheck.constantFrom("v2" as const, "hybrid" as const),
    exp: FastCheck.integer({ min: 14, max: 16 }),
    lengths: FastCheck.array(
      FastCheck.oneof(FastCheck.integer({ min: 0, max: 200_000 }), FastCheck.constantFrom(0, 1, 16383, 16384, 16385, 65536)),
      { minLength: 2, maxLength: 6 }
    ).filter((ls) => ls.some((l) => l > 0)),
    flip: FastCheck.nat()
  })

  it.effect.prop("random trees: every piece verifies; a flipped data byte fails its piece; pad bytes matter only to hybrids", [spec], ([t]) =>
    Effect.gen(function*() {
      const built = buildV2({
        name: "p",
        format: t.format,
        pieceLength: 2 ** t.exp,
        files: t.lengths.map((length, i) => ({ path: [`f${i}`], length }))
      })
      const m = built.metainfo
      const s = yield* storageOf(built)
      for (let i = 0; i < m.pieceCount; i++) expect((yield* s.verifyPiece(i, pieceOf(built, i))).ok).toBe(true)
      const i = t.flip % m.pieceCount
      const v = Metainfo.v2Piece(m, i)!
      const data = pieceOf(built, i)
      data[(t.flip >> 3) % v.dataLength]! ^= 1 << (t.flip & 7)
      expect((yield* s.verifyPiece(i, data)).ok).toBe(false)
      const size = Metainfo.pieceLengthAt(m, i)!
      if (v.dataLength < size) {
        const padded = pieceOf(built, i)
        padded[size - 1] = 0xaa
        expect((yield* s.verifyPiece(i, padded)).ok).toBe(t.format === "v2")
      }
    }).pipe(Effect.provide(Hasher.layerInline)), { fastCheck: { numRuns: 40 } })
})
