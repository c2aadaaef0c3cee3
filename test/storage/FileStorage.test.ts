import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as FileStorage from "../../src/storage/FileStorage.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import type * as Storage from "../../src/storage/Storage.ts"
import * as Syscalls from "../../src/storage/Syscalls.ts"
import {
  fileContent,
  layoutArb,
  listTree,
  pieceOf,
  randomBytes,
  sameBytes,
  shuffled,
  tempDir,
  type Torrent,
  torrent
} from "./support.ts"

const open = (dir: string, t: Torrent, extra: Partial<FileStorage.Options> = {}) =>
  FileStorage.make({
    outputDir: dir,
    files: t.files,
    pieceLength: t.pieceLength,
    pieceHashes: t.hashes,
    ...extra
  }).pipe(Effect.provide(Hasher.layerInline))

const writeAll = (s: Storage.StorageShape, t: Torrent, order: ReadonlyArray<number>) =>
  Effect.forEach(order, (i) => s.writePiece(i, pieceOf(t, i)), { discard: true })

/** Every wanted non-pad file exists with exactly its bytes; pads and unwanted files do not exist. */
const expectFiles = (dir: string, t: Torrent, wanted: (f: number) => boolean = () => true) => {
  t.files.forEach((e, f) => {
    const p = Path.join(dir, ...e.path)
    if (e.pad || !wanted(f)) {
      expect(Fs.existsSync(p), `${p} should not exist`).toBe(false)
    } else {
      expect(sameBytes(Fs.readFileSync(p), fileContent(t, f))).toBe("same")
    }
  })
}

describe("FileStorage layout", () => {
  it.scopedLive("multi-file with odd sizes: pieces in any order give byte-identical files", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent(
        [{ length: 7 }, { length: 1 }, { length: 0 }, { length: 40000, path: ["sub", "dir", "big"] }, { length: 3 }, {
          length: 16385
        }],
        16384
      )
      const s = yield* open(dir, t)
      yield* writeAll(s, t, shuffled(t.pieceCount, 3))
      expectFiles(dir, t)
      for (let i = 0; i < t.pieceCount; i++) expect(sameBytes(yield* s.readPiece(i), pieceOf(t, i))).toBe("same")
      // Blocks across file boundaries, and an odd unaligned range.
      expect(yield* s.readBlock(0, 0, 9)).toEqual(t.payload.subarray(0, 9))
      expect(yield* s.readBlock(1, 100, 5000)).toEqual(t.payload.subarray(16384 + 100, 16384 + 5100))
      expect(yield* s.readBlock(0, 16384, 0)).toEqual(new Uint8Array(0))
    }))

  it.scopedLive("pad files are never written: no file, no directory, sizes right, pads read as zeros", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent(
        [{ length: 10000 }, { length: 6384, pad: true }, { length: 20000 }, { length: 12768, pad: true }, {
          length: 5
        }],
        16384
      )
      const s = yield* open(dir, t)
      yield* writeAll(s, t, shuffled(t.pieceCount, 5))
      expect(listTree(dir)).toEqual(["f0.bin", "f2.bin", "f4.bin"])
      expect(Fs.statSync(Path.join(dir, "f0.bin")).size).toBe(10000)
      expect(Fs.statSync(Path.join(dir, "f2.bin")).size).toBe(20000)
      expect(Fs.statSync(Path.join(dir, "f4.bin")).size).toBe(5)
      expectFiles(dir, t)
      const p0 = yield* s.readPiece(0)
      expect(p0.subarray(10000).every((b) => b === 0)).toBe(true)
      expect(yield* s.check).toEqual(Bitfield.full(t.pieceCount))
    }))

  it.scopedLive("partial last piece: written and read at its own size; a wrong size is refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 3 * 1024 + 17 }, { length: 100 }], 1024)
      expect(t.pieceCount).toBe(4)
      const s = yield* open(dir, t)
      const last = pieceOf(t, 3)
      expect(last.length).toBe(117)
      const wrong = yield* Effect.flip(s.writePiece(3, new Uint8Array(1024)))
      expect(wrong.reason).toBe("invalid-range")
      yield* s.writePiece(3, last)
      expect(yield* s.readPiece(3)).toEqual(last)
      expect(Fs.statSync(Path.join(dir, "f1.bin")).size).toBe(100)
      expect((yield* Effect.flip(s.readBlock(3, 100, 18))).reason).toBe("invalid-range")
      expect((yield* Effect.flip(s.readPiece(4))).reason).toBe("invalid-range")
      expect((yield* Effect.flip(s.writePiece(-1, last))).reason).toBe("invalid-range")
    }))

  it.live("property: random layouts, random piece order → files equal the payload minus pads", () =>
    Effect.promise(() =>
      FastCheck.assert(
        FastCheck.asyncProperty(layoutArb, async ({ specs, pieceLength, seed }) => {
          const t = torrent(specs, pieceLength, seed)
          await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const dir = yield* tempDir
            const s = yield* open(dir, t, { maxOpenFiles: 2 })
            yield* writeAll(s, t, shuffled(t.pieceCount, seed))
            expectFiles(dir, t)
            const got = yield* Effect.forEach(shuffled(t.pieceCount, seed + 1), (i) =>
              Effect.map(s.readPiece(i), (d) => [i, d] as const))
            for (const [i, d] of got) expect(sameBytes(d, pieceOf(t, i))).toBe("same")
            expect(Bitfield.isComplete(yield* s.check)).toBe(true)
          })))
        }),
        { numRuns: 30 }
      )
    ), // 30 layouts on a real disk with fsyncs: ~2 s alone, past 30 s once in CI while npm installs ran beside it
    120_000
  )
})

describe("FileStorage files on disk", () => {
  it.scopedLive("sparse: one late piece leaves a hole, nothing is zero-filled", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const pieceLength = 1 << 20
      const length = 64 * pieceLength
      const last = randomBytes(pieceLength, 9)
      const hash = (yield* Hasher.inline.sha1(last)).digest
      const files = [{ path: ["big.bin"], length, pad: false }]
      const s = yield* FileStorage.make({ outputDir: dir, files, pieceLength, pieceHashes: () => hash }).pipe(
        Effect.provide(Hasher.layerInline)
      )
      yield* s.writePiece(63, last)
      const st = Fs.statSync(Path.join(dir, "big.bin"))
      expect(st.size).toBe(length)
      expect(st.blocks * 512).toBeLessThan(4 * pieceLength)
      expect(yield* s.readBlock(0, 0, 16)).toEqual(new Uint8Array(16))
      expect(sameBytes(yield* s.readPiece(63), last)).toBe("same")
    }))

  for (const inline of [true, false]) {
  it.scopedLive(`a piece is written in calls of at most ${inline ? "WRITE_CHUNK" : "POOL_WRITE_CHUNK"} bytes, across file boundaries too (${inline ? "inline" : "through the pool"})`, () =>
    Effect.gen(function*() {
      const size = inline ? FileStorage.WRITE_CHUNK : FileStorage.POOL_WRITE_CHUNK
      const dir = yield* tempDir
      // 1 MiB pieces over a 1.5 MiB file and a 700 KiB one: piece 1 spans both files
      const t = torrent([{ length: 1536 * 1024 }, { length: 700 * 1024 }], 1 << 20)
      const calls: Array<number> = []
      const other: Array<number> = []
      const s = yield* open(dir, t, {
        inlineIo: { enabled: inline },
        syscalls: {
          ...Syscalls.node,
          write: (fd, buffer, offset, length, position, cb) => {
            ;(inline ? other : calls).push(length)
            Syscalls.node.write(fd, buffer, offset, length, position, cb)
          },
          writeSync: (fd, buffer, offset, length, position) => {
            ;(inline ? calls : other).push(length)
            return Syscalls.node.writeSync(fd, buffer, offset, length, position)
          }
        }
      })
      for (let i = 0; i < 3; i++) yield* s.writePiece(i, pieceOf(t, i))
      expect(Math.max(...calls)).toBe(size)
      expect(calls.reduce((a, b) => a + b, 0)).toBe(t.payload.length)
      // piece 0: 1 MiB in file 0; piece 1: 512 KiB of each file; piece 2: the last 188 KiB of file 1
      const callsFor = (bytes: number) => Math.ceil(bytes / size)
      expect(calls.length).toBe(callsFor(1 << 20) + 2 * callsFor(512 * 1024) + callsFor(188 * 1024))
      for (let f = 0; f < 2; f++) {
        expect(sameBytes(new Uint8Array(Fs.readFileSync(Path.join(dir, t.files[f]!.path.join("/")))), fileContent(t, f)))
          .toBe("same")
      }
      expect(other).toEqual([])
    }))
  }

  it.scopedLive("two slow inline write calls send the rest of the write, and later writes, to the pool until the back-off ends", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 3 << 20 }], 1 << 20)
      let clock = 0
      let syncCalls = 0
      const calls: Array<"inline" | "pool"> = []
      const s = yield* open(dir, t, {
        inlineIo: { now: () => clock, slowMs: 10, backoffMs: 1000 },
        syscalls: {
          ...Syscalls.node,
          write: (fd, buffer, offset, length, position, cb) => {
            calls.push("pool")
            Syscalls.node.write(fd, buffer, offset, length, position, cb)
          },
          writeSync: (fd, buffer, offset, length, position) => {
            calls.push("inline")
            if (++syncCalls === 2 || syncCalls === 3) clock += 50 // the second and third calls are slow
            return Syscalls.node.writeSync(fd, buffer, offset, length, position)
          }
        }
      })
      const per = (1 << 20) / FileStorage.WRITE_CHUNK
      const pooled = (bytes: number) => Math.ceil(bytes / FileStorage.POOL_WRITE_CHUNK) // bigger calls there
      yield* s.writePiece(0, pieceOf(t, 0))
      expect(calls).toEqual(["inline", "inline", "inline", ...Array<"pool">(pooled((per - 3) * FileStorage.WRITE_CHUNK)).fill("pool")])
      calls.length = 0
      yield* s.writePiece(1, pieceOf(t, 1))
      expect(calls).toEqual(Array<"pool">(pooled(1 << 20)).fill("pool"))
      calls.length = 0
      clock += 1000
      yield* s.writePiece(2, pieceOf(t, 2))
      expect(calls).toEqual(Array<"inline">(per).fill("inline"))
      expect(sameBytes(new Uint8Array(Fs.readFileSync(Path.join(dir, t.files[0]!.path.join("/")))), fileContent(t, 0))).toBe("same")
    }))

  it.scopedLive("unselected files are never created, not even their directories", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent(
        [{ length: 5000 }, { length: 9000, path: ["skip", "me.bin"] }, { length: 3000 }, { length: 0 }, {
          length: 0,
          path: ["empty-unwanted"]
        }],
        4096
      )
      const wanted = (f: number) => f !== 1 && f !== 4
      const s = yield* open(dir, t, { wanted })
      yield* writeAll(s, t, shuffled(t.pieceCount, 11))
      expect(listTree(dir)).toEqual(["f0.bin", "f2.bin", "f3.bin"])
      expectFiles(dir, t, wanted)
      expect(Fs.statSync(Path.join(dir, "f3.bin")).size).toBe(0)
      // The unwanted file's bytes read as zeros.
      expect(yield* s.readBlock(2, 0, 100)).toEqual(new Uint8Array(100))
    }))

  it.scopedLive("concurrent writes (one at a time per file, queued in order) all land, with descriptors evicted meanwhile", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // Pieces straddle files, so one piece queues behind writes to two files; 2 open files for 5 evicts under load.
      const t = torrent([{ length: 70_001 }, { length: 33_333 }, { length: 1 }, { length: 90_000 }, { length: 12_345 }], 4096)
      const s = yield* open(dir, t, { maxOpenFiles: 2 })
      yield* Effect.forEach(shuffled(t.pieceCount, 5), (i) => s.writePiece(i, pieceOf(t, i)), {
        concurrency: "unbounded",
        discard: true
      })
      expectFiles(dir, t)
      // The same pieces again, all at once: rewrites queue behind each other and change nothing.
      yield* Effect.forEach(shuffled(t.pieceCount, 6), (i) => s.writePiece(i, pieceOf(t, i)), {
        concurrency: "unbounded",
        discard: true
      })
      expectFiles(dir, t)
      expect(s.openFiles()).toBeLessThanOrEqual(2)
    }))

  it.scopedLive("an existing file longer than the torrent says is cut to its length on first write", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 3000 }], 1024)
      Fs.writeFileSync(Path.join(dir, "f0.bin"), randomBytes(10000, 3))
      const s = yield* open(dir, t)
      yield* s.writePiece(0, pieceOf(t, 0))
      expect(Fs.statSync(Path.join(dir, "f0.bin")).size).toBe(3000)
    }))

  it.scopedLive("flush syncs without error; use after the scope closed is a typed 'closed' error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 3000 }, { length: 2000 }], 1024)
      const s = yield* Effect.scoped(Effect.gen(function*() {
        const s = yield* open(dir, t)
        yield* writeAll(s, t, [0, 1, 2, 3, 4])
        yield* s.flush
        return s
      }))
      expect(s.openFiles()).toBe(0)
      expect((yield* Effect.flip(s.writePiece(0, pieceOf(t, 0)))).reason).toBe("closed")
    }))
})

describe("FileStorage resume check", () => {
  it.scopedLive("finds exactly the written pieces; a corrupted byte makes its piece missing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 20000 }, { length: 3333, pad: true }, { length: 30000 }, { length: 12345 }], 4096)
      const written = shuffled(t.pieceCount, 21).slice(0, Math.floor(t.pieceCount / 2))
      yield* Effect.scoped(Effect.flatMap(open(dir, t), (s) => writeAll(s, t, written)))

      const s = yield* open(dir, t)
      const bf = yield* s.check
      expect(Bitfield.indices(bf)).toEqual([...written].sort((a, b) => a - b))

      const victim = written[0]!
      // Flip the first data byte of the victim piece (skipping the pad), in whichever file holds it.
      const off = victim * 4096
      const at = off < 20000 ? off : Math.max(off, 23333)
      const [name, start] = at < 20000 ? ["f0.bin", 0] : at < 53333 ? ["f2.bin", 23333] : ["f3.bin", 53333]
      const fd = Fs.openSync(Path.join(dir, name), "r+")
      Fs.writeSync(fd, new Uint8Array([~t.payload[at]! & 0xff]), 0, 1, at - start)
      Fs.closeSync(fd)
      const after = yield* s.check
      expect(Bitfield.indices(after)).toEqual(written.filter((i) => i !== victim).sort((a, b) => a - b))
    }))

  it.scopedLive("pieces of missing or short files are skipped without reading", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 8192 }, { length: 8192 }, { length: 8192 }], 4096)
      yield* Effect.scoped(Effect.flatMap(open(dir, t), (s) => writeAll(s, t, [0, 1, 2])))
      Fs.truncateSync(Path.join(dir, "f1.bin"), 5000) // piece 3 is now short; piece 2 is whole
      const s = yield* open(dir, t)
      const progress = yield* Stream.runCollect(s.checkStream)
      const rows = [...progress].map((p) => [p.index, p.ok, p.skipped, p.checked])
      expect(rows).toEqual([
        [0, true, false, 1],
        [1, true, false, 2],
        [2, true, false, 3],
        [3, false, true, 4],
        [4, false, true, 5],
        [5, false, true, 6]
      ])
      expect([...progress].every((p) => p.total === 6)).toBe(true)
    }))

  it.scopedLive("an empty output directory checks as nothing, reading no file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const out = Path.join(dir, "not-yet")
      const t = torrent([{ length: 5000 }, { length: 7000, path: ["a", "b"] }], 1024)
      const s = yield* open(out, t)
      expect(Bitfield.isEmpty(yield* s.check)).toBe(true)
      expect(Fs.existsSync(out)).toBe(false)
      expect(yield* s.readPiece(0)).toEqual(new Uint8Array(1024))
      expect(Fs.existsSync(out)).toBe(false)
    }))
})

describe("FileStorage path safety", () => {
  const evil: ReadonlyArray<ReadonlyArray<string>> = [
    ["..", "escaped.bin"],
    ["a", "..", "..", "escaped.bin"],
    ["/etc", "escaped.bin"],
    ["a/../../escaped.bin"],
    ["."],
    [""],
    [],
    ["nul\0byte"]
  ]
  for (const path of evil) {
    it.scopedLive(`refuses ${JSON.stringify(path)} before touching the disk`, () =>
      Effect.gen(function*() {
        const parent = yield* tempDir
        const dir = Path.join(parent, "out")
        Fs.mkdirSync(dir)
        const before = listTree(parent)
        const t = torrent([{ length: 100, path: ["ok.bin"] }, { length: 100, path }], 64)
        const err = yield* Effect.flip(open(dir, t))
        expect(err.reason).toBe("unsafe-path")
        expect(err.message).toMatch(/^storage unsafe-path: /)
        expect(listTree(parent)).toEqual(before)
      }))
  }

  it.scopedLive("two files with the same path are refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent([{ length: 100, path: ["x", "y"] }, { length: 100, path: ["x", "y"] }], 64)
      expect((yield* Effect.flip(open(dir, t))).reason).toBe("path-conflict")
    }))

  it.scopedLive("a symlinked directory inside the output directory that points outside is not followed", () =>
    Effect.gen(function*() {
      const parent = yield* tempDir
      const dir = Path.join(parent, "out")
      const outside = Path.join(parent, "outside")
      Fs.mkdirSync(dir)
      Fs.mkdirSync(outside)
      Fs.writeFileSync(Path.join(outside, "f.bin"), "secret")
      Fs.symlinkSync(outside, Path.join(dir, "link"))
      const t = torrent([{ length: 3000, path: ["link", "f.bin"] }], 1024)
      const s = yield* open(dir, t)
      const err = yield* Effect.flip(s.writePiece(0, pieceOf(t, 0)))
      expect(err.reason).toBe("unsafe-path")
      expect(err.path).toBe(Path.join(dir, "link"))
      expect((yield* Effect.flip(s.readPiece(0))).reason).toBe("unsafe-path")
      expect((yield* Effect.flip(s.check)).reason).toBe("unsafe-path")
      expect(Fs.readdirSync(outside)).toEqual(["f.bin"])
      expect(Fs.readFileSync(Path.join(outside, "f.bin"), "utf8")).toBe("secret")
    }))

  it.scopedLive("a symlink in place of a file is not followed, for writes or reads", () =>
    Effect.gen(function*() {
      const parent = yield* tempDir
      const dir = Path.join(parent, "out")
      Fs.mkdirSync(dir)
      const target = Path.join(parent, "target.txt")
      Fs.writeFileSync(target, "secret")
      Fs.symlinkSync(target, Path.join(dir, "f0.bin"))
      const t = torrent([{ length: 3000 }], 1024)
      const s = yield* open(dir, t)
      expect((yield* Effect.flip(s.writePiece(0, pieceOf(t, 0)))).reason).toBe("unsafe-path")
      expect((yield* Effect.flip(s.readBlock(0, 0, 6))).reason).toBe("unsafe-path")
      expect((yield* Effect.flip(s.check)).reason).toBe("unsafe-path")
      expect(Fs.readFileSync(target, "utf8")).toBe("secret")
    }))

  it.scopedLive("a file where a directory is needed, or a directory where a file is, is a typed path-conflict", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      Fs.writeFileSync(Path.join(dir, "blocker"), "x")
      Fs.mkdirSync(Path.join(dir, "f1.bin"))
      const t = torrent([{ length: 3000, path: ["blocker", "f.bin"] }, { length: 3000 }], 1024)
      const s = yield* open(dir, t)
      const e1 = yield* Effect.flip(s.writePiece(0, pieceOf(t, 0)))
      expect(e1.reason).toBe("path-conflict")
      expect(e1.path).toBe(Path.join(dir, "blocker"))
      const e2 = yield* Effect.flip(s.writePiece(4, pieceOf(t, 4)))
      expect(e2.reason).toBe("path-conflict")
      expect(e2.message).toContain(Path.join(dir, "f1.bin"))
    }))

  it.scopedLive("an output directory that is a file is a typed path-conflict", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "file")
      Fs.writeFileSync(file, "x")
      const t = torrent([{ length: 100 }], 64)
      const s = yield* open(file, t)
      expect((yield* Effect.flip(s.writePiece(0, pieceOf(t, 0)))).reason).toBe("path-conflict")
    }))

  it.scopedLive.skipIf(process.getuid?.() === 0)("a read-only output directory gives a typed read-only error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const out = Path.join(dir, "ro")
      Fs.mkdirSync(out)
      Fs.chmodSync(out, 0o555)
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.chmodSync(out, 0o755)))
      const t = torrent([{ length: 100 }], 64)
      const s = yield* open(out, t)
      const err = yield* Effect.flip(s.writePiece(0, pieceOf(t, 0)))
      expect(err.reason).toBe("read-only")
      expect(err.path).toBe(Path.join(out, "f0.bin"))
    }))
})

describe("FileStorage open files", () => {
  const fdCount = () => Fs.readdirSync("/proc/self/fd").length

  it.scopedLive("keeps at most maxOpenFiles descriptors with many files, and closes all on scope exit", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent(Array.from({ length: 300 }, (_, i) => ({ length: 37 + (i % 50) })), 500)
      const base = fdCount()
      let peak = 0
      let peakFds = 0
      yield* Effect.scoped(Effect.gen(function*() {
        const s = yield* open(dir, t, { maxOpenFiles: 8 })
        for (const i of shuffled(t.pieceCount, 4)) {
          yield* s.writePiece(i, pieceOf(t, i))
          peak = Math.max(peak, s.openFiles())
          peakFds = Math.max(peakFds, fdCount() - base)
        }
        // Concurrent readers too.
        yield* Effect.forEach(shuffled(t.pieceCount, 5), (i) =>
          Effect.tap(s.readPiece(i), () =>
            Effect.sync(() => {
              peak = Math.max(peak, s.openFiles())
            })), { concurrency: 4, discard: true })
        expect(Bitfield.isComplete(yield* s.check)).toBe(true)
        peak = Math.max(peak, s.openFiles())
      }))
      expect(peak).toBeLessThanOrEqual(8)
      expect(peak).toBeGreaterThan(1)
      expect(peakFds).toBeLessThanOrEqual(8)
      expectFiles(dir, t)
      // Closes are asynchronous (fs.close callbacks); give them a moment.
      yield* Effect.sleep("50 millis")
      expect(fdCount()).toBe(base)
    }))

  it.scopedLive("concurrent writes after a check (read-only handles reopened for writing) stay correct and bounded", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const t = torrent(Array.from({ length: 120 }, (_, i) => ({ length: 1 + ((i * 7919) % 3000) })), 2048)
      // Half the data already on disk, so the check opens files read-only first.
      yield* Effect.scoped(Effect.flatMap(open(dir, t), (s) => writeAll(s, t, shuffled(t.pieceCount, 1).slice(0, 40))))
      let peak = 0
      yield* Effect.scoped(Effect.gen(function*() {
        const s = yield* open(dir, t, { maxOpenFiles: 4 })
        expect(Bitfield.count(yield* s.check)).toBeGreaterThan(0)
        yield* Effect.forEach(shuffled(t.pieceCount, 2), (i) =>
          Effect.tap(s.writePiece(i, pieceOf(t, i)), () =>
            Effect.sync(() => {
              peak = Math.max(peak, s.openFiles())
            })), { concurrency: 6, discard: true })
        expect(Bitfield.isComplete(yield* s.check)).toBe(true)
      }))
      // Evicted descriptors still in use close when their operation ends: at most one extra per concurrent write.
      expect(peak).toBeLessThanOrEqual(4 + 6)
      expectFiles(dir, t)
    }))
})

describe("FileStorage pieceVersion", () => {
  it.scopedLive("stable while the files are unchanged; changes with an in-place write, a truncate or a replace", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // Piece 1 spans f0 and f1; piece 0 lies in f0 only.
      const t = torrent([{ length: 1500 }, { length: 1000 }], 1024)
      const s = yield* open(dir, t)
      yield* writeAll(s, t, [0, 1, 2])
      const v0 = yield* s.pieceVersion(0)
      const v1 = yield* s.pieceVersion(1)
      expect(v0).toBeDefined()
      expect(v1).toContain("|") // both files
      yield* s.readPiece(0)
      expect(yield* s.pieceVersion(0)).toBe(v0)
      // The check reports the version each piece verified at.
      const checked = [...yield* Stream.runCollect(s.checkStream)]
      expect(checked.map((p) => [p.ok, p.version])).toEqual([[true, v0], [true, v1], [true, yield* s.pieceVersion(2)]])
      const f0 = Path.join(dir, ...t.files[0]!.path)
      const f1 = Path.join(dir, ...t.files[1]!.path)
      // In place, same size, through another descriptor.
      const fd = Fs.openSync(f1, "r+")
      Fs.writeSync(fd, Uint8Array.of(1, 2, 3), 0, 3, 10)
      Fs.closeSync(fd)
      expect(yield* s.pieceVersion(0)).toBe(v0)
      const v1b = yield* s.pieceVersion(1)
      expect(v1b).not.toBe(v1)
      Fs.truncateSync(f0, 100)
      expect(yield* s.pieceVersion(0)).not.toBe(v0)
      // Replaced by another file at the same path: the version is that of the open descriptor, which reads use
      // (they still see the old file); unlinking that file changed its ctime, so the version changed anyway.
      const before = yield* s.pieceVersion(2)
      const oldPiece2 = yield* s.readPiece(2)
      Fs.writeFileSync(`${f1}.new`, new Uint8Array(1000).fill(9))
      Fs.renameSync(`${f1}.new`, f1)
      expect(yield* s.pieceVersion(2)).not.toBe(before)
      expect(yield* s.readPiece(2)).toEqual(oldPiece2)
    }))
})
