import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bitfield from "../../src/core/Bitfield.ts"
import type * as Lengths from "../../src/core/Lengths.ts"
import * as FileLayout from "../../src/metainfo/FileLayout.ts"
import * as FileStorage from "../../src/storage/FileStorage.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as MemoryStorage from "../../src/storage/MemoryStorage.ts"
import * as PiecePool from "../../src/storage/PiecePool.ts"
import * as Storage from "../../src/storage/Storage.ts"
import { fileContent, layoutArb, pieceOf, sameBytes, shuffled, tempDir, torrent } from "./support.ts"

describe("MemoryStorage", () => {
  it.prop("random layouts, random piece order: files equal the payload minus pads; check finds all", [layoutArb], (
    [{ pieceLength, seed, specs }]
  ) => {
    const t = torrent(specs, pieceLength, seed)
    Effect.runSync(Effect.gen(function*() {
      const s = yield* MemoryStorage.make({ files: t.files, pieceLength, pieceHashes: t.hashes })
      // Before any write only pieces made wholly of pad bytes (no data extent) verify.
      const padOnly = Array.from({ length: t.pieceCount }, (_, i) => i).filter((i) =>
        FileLayout.pieceDataExtents(s.layout, i as Lengths.PieceIndex).length === 0
      )
      expect(Bitfield.indices(yield* s.check)).toEqual(padOnly)
      for (const i of shuffled(t.pieceCount, seed)) yield* s.writePiece(i, pieceOf(t, i))
      t.files.forEach((e, f) => {
        const got = s.contents(f)
        if (e.pad) expect(got).toBeUndefined()
        else expect(sameBytes(got!, fileContent(t, f))).toBe("same")
      })
      for (let i = 0; i < t.pieceCount; i++) expect(sameBytes(yield* s.readPiece(i), pieceOf(t, i))).toBe("same")
      // readPieceInto fills a dirty recycled buffer of the piece's size completely (pads and all) and returns it.
      for (let i = 0; i < t.pieceCount; i++) {
        const into = new Uint8Array(pieceOf(t, i).length).fill(0xa5)
        const got = yield* s.readPieceInto(i, into)
        expect(got).toBe(into)
        expect(sameBytes(got, pieceOf(t, i))).toBe("same")
      }
      expect(Bitfield.isComplete(yield* s.check)).toBe(true)
    }).pipe(Effect.provide(Hasher.layerInline)))
  }, { fastCheck: { numRuns: 60 } })

  it.effect("readPieceInto: a buffer of the wrong size or a piece out of range is refused", () =>
    Effect.gen(function*() {
      const t = torrent([{ length: 5000 }], 1024)
      const s = yield* MemoryStorage.make({ files: t.files, pieceLength: 1024, pieceHashes: t.hashes })
      expect((yield* Effect.flip(s.readPieceInto(4, new Uint8Array(1024)))).reason).toBe("invalid-range")
      expect((yield* Effect.flip(s.readPieceInto(5, new Uint8Array(904)))).reason).toBe("invalid-range")
      expect((yield* s.readPieceInto(4, new Uint8Array(904))).length).toBe(904)
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.effect("check: written pieces only, corrupted byte drops its piece, short files are skipped", () =>
    Effect.gen(function*() {
      const t = torrent([{ length: 5000 }, { length: 1000, pad: true }, { length: 9000 }], 1024)
      const s = yield* MemoryStorage.make({ files: t.files, pieceLength: 1024, pieceHashes: t.hashes })
      for (const i of [0, 2, 6, 7]) yield* s.writePiece(i, pieceOf(t, i))
      expect(Bitfield.indices(yield* s.check)).toEqual([0, 2, 6, 7])
      const f0 = s.contents(0)!
      f0[2048] = f0[2048]! ^ 1
      expect(Bitfield.indices(yield* s.check)).toEqual([0, 6, 7])
      // A file ends at its furthest write, so pieces past it are skipped without a read.
      const progress = [...yield* Stream.runCollect(s.checkStream)]
      expect(progress.filter((p) => p.skipped).map((p) => p.index)).toEqual([3, 4, 8, 9, 10, 11, 12, 13, 14])
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.effect("checkStreamExcept: skipped pieces are neither read nor reported; total counts the rest", () =>
    Effect.gen(function*() {
      const t = torrent([{ length: 5000 }, { length: 1000, pad: true }, { length: 9000 }], 1024)
      const s = yield* MemoryStorage.make({ files: t.files, pieceLength: 1024, pieceHashes: t.hashes })
      for (const i of [0, 2, 6, 7]) yield* s.writePiece(i, pieceOf(t, i))
      // Corrupt piece 2: skipping it means it is not read, so it is not reported either.
      const f0 = s.contents(0)!
      f0[2048] = f0[2048]! ^ 1
      const skip = Bitfield.make(t.pieceCount)
      for (const i of [1, 2, 7]) Bitfield.set(skip, i)
      const progress = [...yield* Stream.runCollect(s.checkStreamExcept(skip))]
      expect(progress.map((p) => p.index)).toEqual([0, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14])
      expect(progress.filter((p) => p.ok).map((p) => p.index)).toEqual([0, 6])
      expect(progress.every((p) => p.total === 12)).toBe(true)
      expect(progress.at(-1)?.checked).toBe(12)
    }).pipe(Effect.provide(Hasher.layerInline)))

  it.effect("layer: the Storage tag is provided", () =>
    Effect.gen(function*() {
      const t = torrent([{ length: 100 }], 64)
      const s = yield* Storage.Storage
      yield* s.writePiece(1, pieceOf(t, 1))
      expect(sameBytes(yield* s.readPiece(1), pieceOf(t, 1))).toBe("same")
    }).pipe(
      Effect.provide(
        MemoryStorage.layer({
          files: torrent([{ length: 100 }], 64).files,
          pieceLength: 64,
          pieceHashes: torrent([{ length: 100 }], 64).hashes
        }).pipe(Layer.provide(Hasher.layerInline))
      )
    ))
})

describe("verifyPiece (both layers, pool hasher)", () => {
  it.scopedLive("accepts the right bytes, refuses one flipped bit, and the returned data writes correctly", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 300_000 }, { length: 123_456, path: ["d", "x.bin"] }], 65536)
      const hasher = yield* Hasher.makePool({ workers: 1, inlineMax: 1024 })
      const pieces = PiecePool.make()
      const pieceHashes = (i: number) => t.hashes.subarray(i * 20, i * 20 + 20)
      const opts = { files: t.files, pieceLength: t.pieceLength, pieceHashes }
      const file = yield* FileStorage.make({ ...opts, outputDir: dir }).pipe(
        Effect.provideService(Hasher.Hasher, hasher)
      )
      const mem = yield* MemoryStorage.make(opts).pipe(Effect.provideService(Hasher.Hasher, hasher))
      for (const s of [file, mem] as ReadonlyArray<Storage.StorageShape>) {
        for (let i = 0; i < t.pieceCount; i++) {
          const want = pieceOf(t, i)
          const buf = pieces.acquire(want.length)
          buf.set(want)
          if (i === 2) buf[100] = buf[100]! ^ 0x10
          const v = yield* s.verifyPiece(i, buf)
          expect(v.ok).toBe(i !== 2)
          if (v.ok) yield* s.writePiece(i, v.data)
          pieces.release(v.data)
        }
        const bf = yield* s.check
        expect(Bitfield.indices(bf)).toEqual([0, 1, 3, 4, 5, 6])
      }
      expect(pieces.allocated()).toBeLessThanOrEqual(3) // full pieces recycled, plus the short last one
      expect((yield* Effect.flip(file.verifyPiece(99, new Uint8Array(1)))).reason).toBe("invalid-range")
    }))

  it.effect("a wrong number of piece hashes is a typed invalid-layout error", () =>
    Effect.gen(function*() {
      const t = torrent([{ length: 100 }], 64)
      const err = yield* Effect.flip(
        MemoryStorage.make({ files: t.files, pieceLength: 64, pieceHashes: new Uint8Array(20) })
      )
      expect(err.reason).toBe("invalid-layout")
      const err2 = yield* Effect.flip(MemoryStorage.make({ files: t.files, pieceLength: 0, pieceHashes: t.hashes }))
      expect(err2.reason).toBe("invalid-layout")
    }).pipe(Effect.provide(Hasher.layerInline)))
})
