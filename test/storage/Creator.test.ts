import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { Buffer } from "node:buffer"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Creator from "../../src/storage/Creator.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import { randomBytes } from "./support.ts"

const dirs: Array<string> = []
const tmp = (): string => {
  const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-create-"))
  dirs.push(d)
  return d
}
afterAll(() => dirs.forEach((d) => Fs.rmSync(d, { recursive: true, force: true })))

/** Writes `files` (relative path → size) under `root`, returns the data by path. */
const writeTree = (root: string, files: Record<string, number>): Map<string, Uint8Array> => {
  const out = new Map<string, Uint8Array>()
  let seed = 1
  for (const [rel, size] of Object.entries(files)) {
    const data = randomBytes(size, seed++)
    Fs.mkdirSync(Path.dirname(Path.join(root, rel)), { recursive: true })
    Fs.writeFileSync(Path.join(root, rel), data)
    out.set(rel, data)
  }
  return out
}

/** Every piece of `m` hashes to what the metainfo says, over `payload`. */
const expectPiecesVerify = (m: Metainfo.Metainfo, payload: Uint8Array) => {
  expect(m.totalLength).toBe(payload.length)
  for (let i = 0; i < m.pieceCount; i++) {
    const start = i * m.pieceLength
    const piece = payload.subarray(start, start + Metainfo.pieceLengthAt(m, i)!)
    expect(Bytes.toHex(Metainfo.pieceHash(m, i)!)).toBe(Bytes.toHex(Bytes.sha1(piece)))
  }
}

const inline = Hasher.layerInline
const workers = Hasher.layerPool({ workers: 2, inlineMax: 0 })

const run = <A, E>(effect: Effect.Effect<A, E, Hasher.Hasher>, layer: Layer.Layer<Hasher.Hasher> = inline) =>
  Effect.either(Effect.provide(effect, layer))

describe("Creator", () => {
  it.live("single file: a single-file torrent named after it", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const data = writeTree(dir, { "movie.bin": 100_001 }).get("movie.bin")!
      const r = yield* run(Creator.create(Path.join(dir, "movie.bin"), { pieceLength: 16384 }))
      const c = Either.getOrThrow(r)
      expect(c.metainfo.isMultiFile).toBe(false)
      expect(c.metainfo.name).toBe("movie.bin")
      expect(c.pieceCount).toBe(7)
      expectPiecesVerify(c.metainfo, data)
    }))

  it.live("multi-file: nested dirs, odd sizes, empty and hidden files, sorted by path bytes; pieces span files", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "tree")
      const files = {
        "b.bin": 40_000,
        "a/z.txt": 1,
        "a/y/x": 16_385,
        "a.txt": 5,
        "empty": 0,
        ".hidden/secret": 777,
        "c/deep/er/still/f": 33_333
      }
      const data = writeTree(root, files)
      Fs.mkdirSync(Path.join(root, "empty-dir/inner"), { recursive: true })
      const c = Either.getOrThrow(yield* run(Creator.create(root, { pieceLength: 16384, trackers: [["http://t/a"]] })))
      const order = [".hidden/secret", "a.txt", "a/y/x", "a/z.txt", "b.bin", "c/deep/er/still/f", "empty"]
      expect(c.metainfo.files.map((f) => f.path.join("/"))).toEqual(order.map((p) => `tree/${p}`))
      expect(c.metainfo.files.map((f) => f.length)).toEqual(order.map((p) => data.get(p)!.length))
      expect(c.scan.skipped).toEqual([])
      expectPiecesVerify(c.metainfo, Bytes.concat(order.map((p) => data.get(p)!)))
      expect(c.metainfo.trackers).toEqual([["http://t/a"]])
    }))

  it.live("zero bytes in all, or no files at all: a typed `empty` error", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "zeros")
      writeTree(root, { "a": 0, "b/c": 0 })
      const r = yield* run(Creator.create(root))
      expect(Either.isLeft(r) && r.left.reason).toBe("empty")
      const bare = Path.join(tmp(), "bare")
      Fs.mkdirSync(Path.join(bare, "only/dirs"), { recursive: true })
      const r2 = yield* run(Creator.create(bare))
      expect(Either.isLeft(r2) && r2.left.reason).toBe("empty")
      const r3 = yield* run(Creator.create(Path.join(bare, "missing")))
      expect(Either.isLeft(r3) && r3.left.reason).toBe("not-found")
    }))

  it.live("symlinks: one out of the tree is not followed (and reported); one to a file inside is included", () =>
    Effect.gen(function*() {
      const base = tmp()
      const outside = writeTree(base, { "outside.bin": 5000 })
      const root = Path.join(base, "links")
      const data = writeTree(root, { "real.bin": 3000, "d/x": 10 })
      Fs.symlinkSync(Path.join(base, "outside.bin"), Path.join(root, "out-link"))
      Fs.symlinkSync("real.bin", Path.join(root, "in-link"))
      Fs.symlinkSync("d", Path.join(root, "dir-link"))
      Fs.symlinkSync("nowhere", Path.join(root, "dangling"))
      const c = Either.getOrThrow(yield* run(Creator.create(root, { pieceLength: 16384 })))
      expect(c.metainfo.files.map((f) => f.path.join("/"))).toEqual(["links/d/x", "links/in-link", "links/real.bin"])
      expect(c.metainfo.totalLength).toBe(10 + 3000 + 3000)
      expect(c.scan.skipped.map((s) => s.path).sort()).toEqual(["links/dangling", "links/dir-link", "links/out-link"])
      expect(c.scan.skipped.find((s) => s.path === "links/out-link")?.reason).toMatch(/outside/)
      expectPiecesVerify(c.metainfo, Bytes.concat([data.get("d/x")!, data.get("real.bin")!, data.get("real.bin")!]))
      expect(outside.size).toBe(1)
    }))

  it.live("names that are not UTF-8 are refused with `unsafe-name`", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "bytes")
      writeTree(root, { "ok": 10 })
      Fs.writeFileSync(Buffer.concat([Buffer.from(root + "/bad-"), Buffer.from([0xff, 0xfe])]), "x")
      const r = yield* run(Creator.create(root))
      expect(Either.isLeft(r) && r.left.reason).toBe("unsafe-name")
    }))

  it.live("progress: one event per piece after the initial one, ending at the total", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "prog")
      writeTree(root, { "a": 50_000, "b": 70_000 })
      const events: Array<Creator.Progress> = []
      const c = Either.getOrThrow(yield* run(Creator.create(root, {
        pieceLength: 16384,
        onProgress: (p) => Effect.sync(() => void events.push(p))
      })))
      expect(c.pieceCount).toBe(8)
      expect(events).toHaveLength(c.pieceCount + 1)
      expect(events[0]).toEqual({ piecesHashed: 0, pieceCount: 8, bytesHashed: 0, totalSize: 120_000 })
      expect(events.at(-1)).toEqual({ piecesHashed: 8, pieceCount: 8, bytesHashed: 120_000, totalSize: 120_000 })
      expect(events.map((e) => e.piecesHashed)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
    }))

  it.live("the worker-pool hasher gives the same torrent as inline hashing, at any concurrency", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "pool")
      writeTree(root, { "a": 300_001, "b/c": 123_456, "d": 1 })
      const a = Either.getOrThrow(yield* run(Creator.create(root, { pieceLength: 32768, concurrency: 1 })))
      const b = Either.getOrThrow(yield* run(Creator.create(root, { pieceLength: 32768, concurrency: 4 }), workers))
      const auto = Either.getOrThrow(yield* run(Creator.create(root), workers))
      expect(Bytes.equals(a.torrent, b.torrent)).toBe(true)
      expect(auto.pieceLength).toBe(16384)
    }))

  it.live("reports a file that shrinks after the walk as a `read` error", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "shrink")
      writeTree(root, { "a": 40_000 })
      const s = Either.getOrThrow(yield* Effect.either(Creator.scan(root)))
      Fs.truncateSync(Path.join(root, "a"), 100)
      const r = yield* run(Creator.hashPieces(s.files, { pieceLength: 16384 }))
      expect(Either.isLeft(r) && r.left.reason).toBe("read")
    }))
})
