import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as FileLayout from "../../src/metainfo/FileLayout.ts"
import * as WebSeedRange from "../../src/torrent/WebSeedRange.ts"

const BLOCK = 16384

/** Random files (some empty, some pads), a piece length, and a random subset of the torrent's blocks. */
const scenario = FastCheck.record({
  files: FastCheck.array(
    FastCheck.record({ length: FastCheck.integer({ min: 0, max: 40_000 }), pad: FastCheck.boolean() }),
    { minLength: 1, maxLength: 6 }
  ),
  pieceLength: FastCheck.constantFrom(16384, 32768, 49152),
  pick: FastCheck.array(FastCheck.boolean(), { maxLength: 40 })
}).filter((s) => s.files.some((f) => f.length > 0))

const blocksOf = (total: number, pieceLength: number, pick: ReadonlyArray<boolean>) => {
  const out: Array<WebSeedRange.Block> = []
  let k = 0
  for (let index = 0; index * pieceLength < total; index++) {
    const size = Math.min(pieceLength, total - index * pieceLength)
    for (let begin = 0; begin < size; begin += BLOCK) {
      if (pick[k++ % Math.max(1, pick.length)] ?? true) out.push({ index, begin, length: Math.min(BLOCK, size - begin) })
    }
  }
  return out
}

describe("WebSeedRange", () => {
  it.prop("blocks → runs → file segments → bytes: the blocks' bytes, every one once", [scenario], ([s]) => {
    const layout = Either.getOrThrow(FileLayout.make(s.files, s.pieceLength))
    const total = FileLayout.total(layout)
    // each file's contents: bytes numbered by torrent offset (pads zero)
    const fileBytes = s.files.map((f, i) => {
      const start = FileLayout.fileOffset(layout, i)
      const b = new Uint8Array(f.length)
      if (!f.pad) for (let j = 0; j < f.length; j++) b[j] = ((start + j) * 7 + 3) & 0xff
      return b
    })
    const payload = new Uint8Array(total)
    fileBytes.forEach((b, i) => payload.set(b, FileLayout.fileOffset(layout, i)))
    const blocks = blocksOf(total, s.pieceLength, s.pick)
    const runs = WebSeedRange.runs([...blocks].reverse(), s.pieceLength)
    // runs: sorted, disjoint, maximal, each the concatenation of its blocks
    for (let r = 1; r < runs.length; r++) expect(runs[r]!.offset).toBeGreaterThan(runs[r - 1]!.offset + runs[r - 1]!.length)
    expect(runs.flatMap((r) => r.blocks).length).toBe(blocks.length)
    for (const run of runs) {
      let at = run.offset
      for (const b of run.blocks) {
        expect(b.index * s.pieceLength + b.begin).toBe(at)
        at += b.length
      }
      expect(at).toBe(run.offset + run.length)
      // one segment per file crossed; reading them back gives the run's bytes
      const segs = WebSeedRange.segments(layout, run)
      const got = new Uint8Array(run.length)
      let next = 0
      for (const seg of segs) {
        expect(seg.runOffset).toBe(next)
        expect(seg.fileOffset + seg.length).toBeLessThanOrEqual(s.files[seg.file]!.length)
        expect(seg.pad).toBe(s.files[seg.file]!.pad)
        got.set(fileBytes[seg.file]!.subarray(seg.fileOffset, seg.fileOffset + seg.length), seg.runOffset)
        next += seg.length
      }
      expect(next).toBe(run.length)
      expect(new Set(segs.map((x) => x.file)).size).toBe(segs.length)
      expect(Buffer.from(got).equals(payload.subarray(run.offset, run.offset + run.length))).toBe(true)
    }
  })

  it.prop("a Range header and the Content-Range answering it round trip", [
    FastCheck.integer({ min: 1, max: 2 ** 40 }).chain((fileLength) =>
      FastCheck.tuple(
        FastCheck.constant(fileLength),
        FastCheck.integer({ min: 0, max: fileLength - 1 }).chain((from) =>
          FastCheck.tuple(FastCheck.constant(from), FastCheck.integer({ min: 1, max: fileLength - from }))
        )
      )
    )
  ], ([[fileLength, [from, length]]]) => {
    const header = WebSeedRange.rangeHeader(from, length)
    const m = /^bytes=(\d+)-(\d+)$/.exec(header)!
    const contentRange = `bytes ${m[1]}-${m[2]}/${fileLength}`
    const ok = WebSeedRange.check("u", { status: 206, contentRange, contentLength: String(length) }, from, length, fileLength)
    expect(ok).toEqual(Either.right({ skip: 0 }))
    // any other range, total or length is bad data
    const shifted = `bytes ${from + 1}-${from + length}/${fileLength}`
    const wrongTotal = `bytes ${m[1]}-${m[2]}/${fileLength + 1}`
    for (const head of [
      { status: 206, contentRange: shifted },
      { status: 206, contentRange: wrongTotal },
      { status: 206, contentRange, contentLength: String(length + 1) },
      { status: 206 },
      { status: 200, contentLength: String(fileLength - 1) }
    ]) {
      const r = WebSeedRange.check("u", head, from, length, fileLength)
      expect(Either.isLeft(r) && r.left.reason).toBe("bad-response")
    }
  })

  it("200 with the whole file: the range is cut from it", () => {
    expect(WebSeedRange.check("u", { status: 200, contentLength: "1000" }, 300, 100, 1000)).toEqual(Either.right({ skip: 300 }))
    expect(WebSeedRange.check("u", { status: 200 }, 0, 1000, 1000)).toEqual(Either.right({ skip: 0 }))
    expect(WebSeedRange.check("u", { status: 206, contentRange: "bytes 0-99/*" }, 0, 100, 1000)).toEqual(Either.right({ skip: 0 }))
  })

  it("statuses: 404/410 a missing file, 416 bad data, others back off (Retry-After kept)", () => {
    const reason = (status: number, retryAfter?: string) => {
      const r = WebSeedRange.check("u", { status, retryAfter }, 0, 10, 10)
      return Either.isLeft(r) ? [r.left.reason, r.left.retryAfter] : undefined
    }
    expect(reason(404)).toEqual(["missing-file", undefined])
    expect(reason(410)).toEqual(["missing-file", undefined])
    expect(reason(416)).toEqual(["bad-response", undefined])
    expect(reason(503, "7")).toEqual(["http-status", 7])
    expect(reason(429, "Wed, 21 Oct 2015 07:28:00 GMT")).toEqual(["http-status", undefined])
    expect(reason(500)).toEqual(["http-status", undefined])
  })
})
