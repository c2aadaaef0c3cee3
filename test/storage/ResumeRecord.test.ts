import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import * as PlatformError from "@effect/platform/Error"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as FileLayout from "../../src/metainfo/FileLayout.ts"
import * as Resume from "../../src/storage/ResumeRecord.ts"

const hash = (b: number) => new Uint8Array(20).fill(b)

const bitfieldArb = (size: number): FastCheck.Arbitrary<Bitfield.Bitfield> =>
  FastCheck.array(FastCheck.boolean(), { minLength: size, maxLength: size }).map((bits) => {
    const bf = Bitfield.make(size)
    bits.forEach((on, i) => on && Bitfield.set(bf, i))
    return bf
  })

const fileArb: FastCheck.Arbitrary<Resume.ResumeFile> = FastCheck.record({
  path: FastCheck.array(FastCheck.string({ minLength: 1, maxLength: 8, unit: "grapheme" }), {
    minLength: 1,
    maxLength: 3
  }),
  size: FastCheck.oneof(FastCheck.integer({ min: 0, max: 1 << 30 }), FastCheck.constant(Number.MAX_SAFE_INTEGER)),
  mtimeMs: FastCheck.integer({ min: -1e12, max: 4e12 })
})

const recordArb: FastCheck.Arbitrary<Resume.ResumeRecord> = FastCheck.integer({ min: 0, max: 70 }).chain((pieceCount) =>
  FastCheck.record({
    version: FastCheck.constant(1 as const),
    infoHash: FastCheck.oneof(
      FastCheck.uint8Array({ minLength: 20, maxLength: 20 }),
      FastCheck.uint8Array({ minLength: 32, maxLength: 32 })
    ),
    pieceCount: FastCheck.constant(pieceCount),
    pieceLength: FastCheck.integer({ min: 1, max: 1 << 24 }),
    verified: bitfieldArb(pieceCount),
    files: FastCheck.array(fileArb, { maxLength: 6 }),
    savedAt: FastCheck.integer({ min: 0, max: 4e12 })
  })
)

const sample: Resume.ResumeRecord = {
  version: 1,
  infoHash: hash(7),
  pieceCount: 10,
  pieceLength: 16384,
  verified: Bitfield.full(10),
  files: [
    { path: ["dir", "a.bin"], size: 100_000, mtimeMs: 1_700_000_000_123 },
    { path: ["b"], size: 63_840, mtimeMs: 5 }
  ],
  savedAt: 1_700_000_001_000
}
const expected: Resume.Expected = { infoHash: hash(7), pieceCount: 10, pieceLength: 16384, fileCount: 2 }

const reasonOf = (bytes: Uint8Array, exp?: Resume.Expected): string | undefined =>
  Either.match(Resume.decode(bytes, exp), { onLeft: (e) => e.reason, onRight: () => undefined })

/** The sample's bencoded fields with some replaced (undefined removes a key). */
const withFields = (over: Record<string, Bencode.Encodable | undefined>): Uint8Array => {
  const top = Bencode.decode(Resume.encode(sample), { copy: true })
  const m = new Map(Either.getOrThrow(top) as Bencode.BDict)
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) m.delete(k)
    else m.set(k, v as Bencode.BValue)
  }
  return Bencode.encode(m as ReadonlyMap<string, Bencode.Encodable>)
}

describe("ResumeRecord codec", () => {
  it("round-trips and checks against the torrent", () => {
    const decoded = Either.getOrThrow(Resume.decode(Resume.encode(sample), expected))
    expect(decoded).toEqual(sample)
  })

  it("is canonical bencode with documented keys", () => {
    const text = new TextDecoder().decode(Resume.encode(sample))
    expect(text.startsWith("d5:filesl")).toBe(true)
    for (const k of ["info-hash", "piece-count", "piece-length", "verified", "saved-at", "version", "mtime-ms"]) {
      expect(text).toContain(`${k.length}:${k}`)
    }
  })

  it("rejects a record for another torrent or geometry", () => {
    const bytes = Resume.encode(sample)
    expect(reasonOf(bytes, { ...expected, infoHash: hash(8) })).toBe("other-torrent")
    expect(reasonOf(bytes, { ...expected, pieceCount: 11 })).toBe("geometry-mismatch")
    expect(reasonOf(bytes, { ...expected, pieceLength: 32768 })).toBe("geometry-mismatch")
    expect(reasonOf(bytes, { ...expected, fileCount: 3 })).toBe("geometry-mismatch")
    expect(reasonOf(bytes)).toBeUndefined()
  })

  it("rejects a wrong bitfield size or set spare bits", () => {
    expect(reasonOf(withFields({ verified: new Uint8Array(1) }))).toBe("invalid-record")
    expect(reasonOf(withFields({ verified: new Uint8Array(3) }))).toBe("invalid-record")
    expect(reasonOf(withFields({ verified: Uint8Array.of(0xff, 0xc1) }))).toBe("invalid-record")
    expect(reasonOf(withFields({ verified: Uint8Array.of(0xff, 0xc0) }))).toBeUndefined()
  })

  it("rejects other versions, missing or ill-typed fields, bad bencode", () => {
    expect(reasonOf(withFields({ version: 2 }))).toBe("unsupported-version")
    expect(reasonOf(withFields({ version: undefined }))).toBe("unsupported-version")
    expect(reasonOf(withFields({ "info-hash": new Uint8Array(19) }))).toBe("invalid-record")
    expect(reasonOf(withFields({ "piece-count": -1 }))).toBe("invalid-record")
    expect(reasonOf(withFields({ "piece-count": 2n ** 60n }))).toBe("invalid-record")
    expect(reasonOf(withFields({ "piece-length": 0 }))).toBe("invalid-record")
    expect(reasonOf(withFields({ files: undefined }))).toBe("invalid-record")
    expect(reasonOf(withFields({ files: [{ path: ["x"], size: -1, "mtime-ms": 0 }] }))).toBe(
      "invalid-record"
    )
    expect(reasonOf(withFields({ files: [{ path: [Uint8Array.of(0xff)], size: 1, "mtime-ms": 0 }] })))
      .toBe("invalid-record")
    expect(reasonOf(withFields({ "saved-at": "soon" }))).toBe("invalid-record")
    expect(reasonOf(withFields({ extra: "ignored" }))).toBeUndefined()
    expect(reasonOf(new TextEncoder().encode("d7:versioni1ee "))).toBe("invalid-bencode")
    expect(reasonOf(new TextEncoder().encode("le"))).toBe("invalid-record")
    // Strict bencode: unsorted keys are refused.
    expect(reasonOf(new TextEncoder().encode("d7:versioni1e5:fileslee"))).toBe("invalid-bencode")
  })

  it.prop("round-trips any record", [recordArb], ([r]) => {
    const { infoHash, pieceCount, pieceLength } = r
    const exp = { infoHash, pieceCount, pieceLength, fileCount: r.files.length }
    expect(Either.getOrThrow(Resume.decode(Resume.encode(r), exp))).toEqual(r)
  })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 300 })], ([bytes]) => {
    expect(Either.isEither(Resume.decode(bytes, expected))).toBe(true)
  })

  it.prop("never throws on mutated records, and accepts only well-formed ones", [
    recordArb,
    FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.integer({ min: 0, max: 255 })), {
      minLength: 1,
      maxLength: 4
    }),
    FastCheck.nat()
  ], ([r, edits, cut]) => {
    const bytes = Resume.encode(r)
    for (const [at, v] of edits) if (bytes.length > 0) bytes[at % bytes.length] = v
    for (const input of [bytes, bytes.subarray(0, cut % (bytes.length + 1))]) {
      const d = Resume.decode(input)
      if (Either.isRight(d)) {
        const rec = d.right
        expect(rec.verified.bytes.length).toBe(Bitfield.byteLength(rec.pieceCount))
        expect(Resume.encode(rec)).toEqual(input) // strict bencode: only the canonical form decodes
      }
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------
// matches()

const layoutOf = (lengths: ReadonlyArray<number>, pieceLength: number, pads: ReadonlyArray<number> = []) =>
  Either.getOrThrow(FileLayout.make(lengths.map((length, i) => ({ length, pad: pads.includes(i) })), pieceLength))

const recordFor = (
  layout: FileLayout.FileLayout,
  verified: Bitfield.Bitfield,
  stats: ReadonlyArray<Resume.FileStat>
): Resume.ResumeRecord => ({
  version: 1 as const,
  infoHash: hash(1),
  pieceCount: layout.lengths.pieceCount,
  pieceLength: layout.lengths.pieceLength,
  verified,
  files: stats.map((s, i) => Resume.fileEntry([`f${i}`], s)),
  savedAt: 0
})

describe("ResumeRecord.matches", () => {
  // Files: a = bytes 0..99, b = 100..149, c = 150..349; pieces of 64: 0:[a] 1:[a,b] 2:[b,c] 3..5:[c].
  const layout = layoutOf([100, 50, 200], 64)
  const stats = [{ size: 100, mtimeMs: 1 }, { size: 50, mtimeMs: 2 }, { size: 200, mtimeMs: 3 }]
  const rec = recordFor(layout, Bitfield.full(6), stats)

  it("trusts everything when nothing changed", () => {
    const m = Resume.matches(rec, layout, stats)
    expect(Bitfield.indices(m.trusted)).toEqual([0, 1, 2, 3, 4, 5])
    expect(m.changed).toEqual([])
  })

  it("a changed mtime or size, or a missing file, distrusts exactly the pieces it touches", () => {
    const touch = (f: number, s: Resume.FileStat | undefined) => stats.map((x, i) => (i === f ? s : x))
    const trusted = (stats: ReadonlyArray<Resume.FileStat | undefined>) =>
      Bitfield.indices(Resume.matches(rec, layout, stats).trusted)
    expect(trusted(touch(1, { size: 50, mtimeMs: 9 }))).toEqual([0, 3, 4, 5])
    expect(trusted(touch(0, { size: 99, mtimeMs: 1 }))).toEqual([2, 3, 4, 5])
    const gone = Resume.matches(rec, layout, touch(2, undefined))
    expect(Bitfield.indices(gone.trusted)).toEqual([0, 1])
    expect(gone.changed).toEqual([2])
  })

  it("never trusts what the record did not verify, or bytes past a (recorded) short file's end", () => {
    const partial = Bitfield.make(6)
    Bitfield.set(partial, 3)
    Bitfield.set(partial, 5)
    const short = [stats[0]!, stats[1]!, { size: 150, mtimeMs: 3 }] // c holds only bytes 150..299 of the torrent
    const m = Resume.matches(recordFor(layout, partial, short), layout, short)
    expect(Bitfield.indices(m.trusted)).toEqual([3])
  })

  it("ignores pad files' stats", () => {
    const padded = layoutOf([64, 10, 54], 64, [1])
    const s = [{ size: 64, mtimeMs: 1 }, { size: 10, mtimeMs: 1 }, { size: 54, mtimeMs: 1 }]
    const r = recordFor(padded, Bitfield.full(2), s)
    expect(Bitfield.indices(Resume.matches(r, padded, [s[0], undefined, s[2]]).trusted)).toEqual([0, 1])
  })

  it("trusts nothing when the geometry or file count differ", () => {
    expect(Bitfield.count(Resume.matches({ ...rec, pieceLength: 32 }, layout, stats).trusted)).toBe(0)
    expect(Bitfield.count(Resume.matches(rec, layout, stats.slice(0, 2)).trusted)).toBe(0)
    expect(Bitfield.count(Resume.matches({ ...rec, files: rec.files.slice(1) }, layout, stats).trusted)).toBe(0)
  })

  const scenarioArb = FastCheck.record({
    files: FastCheck.array(
      FastCheck.record({
        length: FastCheck.oneof(FastCheck.constant(0), FastCheck.integer({ min: 1, max: 400 })),
        pad: FastCheck.integer({ min: 0, max: 6 }).map((n) => n === 0),
        mtimeMs: FastCheck.integer({ min: 0, max: 1e12 }),
        change: FastCheck.constantFrom("none", "none", "size", "mtime", "gone")
      }),
      { minLength: 1, maxLength: 12 }
    ),
    pieceLength: FastCheck.integer({ min: 1, max: 128 }),
    seed: FastCheck.array(FastCheck.boolean(), { minLength: 4000, maxLength: 4000 })
  })

  it.prop("trusted = verified minus pieces touching a changed non-pad file", [scenarioArb], ([s]) => {
    const layout = layoutOf(s.files.map((f) => f.length), s.pieceLength, s.files.flatMap((f, i) => (f.pad ? [i] : [])))
    const n = layout.lengths.pieceCount
    const verified = Bitfield.make(n)
    for (let i = 0; i < n; i++) if (s.seed[i % s.seed.length]) Bitfield.set(verified, i)
    const before = s.files.map((f) => ({ size: f.length, mtimeMs: f.mtimeMs }))
    const now = s.files.map((f, i): Resume.FileStat | undefined => {
      const b = before[i]!
      switch (f.change) {
        case "size":
          return { size: b.size + 1, mtimeMs: b.mtimeMs }
        case "mtime":
          return { size: b.size, mtimeMs: b.mtimeMs + 1 }
        case "gone":
          return undefined
        default:
          return b
      }
    })
    const m = Resume.matches(recordFor(layout, verified, before), layout, now)
    const changed = new Set(s.files.flatMap((f, i) => (!f.pad && f.change !== "none" ? [i] : [])))
    expect(m.changed).toEqual([...changed].sort((a, b) => a - b))
    for (let i = 0; i < n; i++) {
      const touched = FileLayout.filesOfPiece(layout, i as never).some((f) => changed.has(f))
      expect(Bitfield.has(m.trusted, i)).toBe(Bitfield.has(verified, i) && !touched)
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Files

const tmpDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "resume-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** NodeFileSystem with `rename` replaced. */
const withRename = (rename: FileSystem.FileSystem["rename"]) =>
  Layer.effect(FileSystem.FileSystem, Effect.map(FileSystem.FileSystem, (fs) => ({ ...fs, rename }))).pipe(
    Layer.provide(NodeFileSystem.layer)
  )

const renameFails = withRename((from, to) =>
  Effect.fail(
    new PlatformError.SystemError({
      reason: "Unknown",
      module: "FileSystem",
      method: "rename",
      pathOrDescriptor: `${from} -> ${to}`
    })
  )
)

describe("ResumeRecord files", () => {
  it.scoped("writeAtomic creates the directory, replaces the target, leaves no temp file; read gets it back", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Resume.pathFor(Path.join(dir, "state", "nested"), hash(0xab))
      expect(path.endsWith(`${"ab".repeat(20)}.resume`)).toBe(true)
      expect(yield* Resume.read(path)).toEqual(Option.none())
      yield* Resume.writeAtomic(path, Resume.encode(sample))
      yield* Resume.writeAtomic(path, Resume.encode({ ...sample, savedAt: 42 }))
      const bytes = Option.getOrThrow(yield* Resume.read(path))
      expect(Either.getOrThrow(Resume.decode(bytes, expected)).savedAt).toBe(42)
      expect(Fs.readdirSync(Path.dirname(path))).toEqual([Path.basename(path)])
      expect(Fs.statSync(path).mode & 0o777).toBe(0o600)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("a failure between writing the temp and renaming keeps the old record whole and removes the temp", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "x.resume")
      const old = Resume.encode(sample)
      yield* Resume.writeAtomic(path, old).pipe(Effect.provide(NodeFileSystem.layer))
      const err = yield* Resume.writeAtomic(path, Resume.encode({ ...sample, savedAt: 1 })).pipe(
        Effect.provide(renameFails),
        Effect.flip
      )
      expect(err.reason).toBe("write")
      expect(err.path).toBe(path)
      expect(new Uint8Array(Fs.readFileSync(path))).toEqual(old)
      expect(Fs.readdirSync(dir)).toEqual(["x.resume"])
    }))

  it.scoped("a path collision (a directory where the record goes) fails cleanly and leaves no temp", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "y.resume")
      Fs.mkdirSync(path)
      Fs.writeFileSync(Path.join(path, "keep"), "x")
      const err = yield* Resume.writeAtomic(path, Resume.encode(sample)).pipe(Effect.flip)
      expect(err._tag).toBe("ResumeError")
      expect(Fs.readdirSync(dir)).toEqual(["y.resume"])
      expect(Fs.readFileSync(Path.join(path, "keep"), "utf8")).toBe("x")
      expect((yield* Resume.read(path).pipe(Effect.flip)).reason).toBe("read")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("a leftover temp file from a crash is never read and never replaces the target", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const path = Path.join(dir, "z.resume")
      yield* Resume.writeAtomic(path, Resume.encode(sample))
      // What a crash between create and rename leaves: a partial temp file with a writer's name pattern.
      const stale = Path.join(dir, `.z.resume.${process.pid}.000000000000.tmp`)
      Fs.writeFileSync(stale, Resume.encode(sample).subarray(0, 17))
      expect(Option.getOrThrow(yield* Resume.read(path))).toEqual(Resume.encode(sample))
      const next = Resume.encode({ ...sample, savedAt: 99 })
      yield* Resume.writeAtomic(path, next)
      expect(new Uint8Array(Fs.readFileSync(path))).toEqual(next)
      expect(new Uint8Array(Fs.readFileSync(stale))).toEqual(Resume.encode(sample).subarray(0, 17))
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("statFile reports size and whole-ms mtime, or undefined for a missing file", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const p = Path.join(dir, "data")
      Fs.writeFileSync(p, new Uint8Array(1234))
      Fs.utimesSync(p, 1_700_000_000.5, 1_700_000_000.5)
      expect(yield* Resume.statFile(p)).toEqual({ size: 1234, mtimeMs: 1_700_000_000_500 })
      expect(yield* Resume.statFile(Path.join(dir, "missing"))).toBeUndefined()
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it("default state dir: XDG_STATE_HOME when absolute, else ~/.local/state", () => {
    expect(Resume.defaultStateDir({ XDG_STATE_HOME: "/x/state" }, "/home/u")).toBe("/x/state/effect-torrent")
    expect(Resume.defaultStateDir({ XDG_STATE_HOME: "rel" }, "/home/u")).toBe("/home/u/.local/state/effect-torrent")
    expect(Resume.defaultStateDir({}, "/home/u")).toBe("/home/u/.local/state/effect-torrent")
  })
})
