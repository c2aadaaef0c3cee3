/**
 * `Verify.verify` on real directories: arbitrary layouts (pads, empty files, folders) with arbitrary damage on disk,
 * and the odd things that can sit at a file's path. Every test also asserts the directory tree and its mtimes are
 * exactly as before: verify never writes, creates or truncates anything.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as Verify from "../../src/storage/Verify.ts"
import type * as VerifyReport from "../../src/storage/VerifyReport.ts"
import { writeData } from "../support/data.ts"
import { build, type PayloadFile } from "../support/seeder.ts"
import { snapshot } from "../support/snapshot.ts"

const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-verify-"))
afterAll(() => Fs.rmSync(work, { recursive: true, force: true }))
let serial = 0
const freshDir = () => Fs.mkdtempSync(Path.join(work, `d${serial++}-`))

const run = (
  metainfo: Parameters<typeof Verify.verify>[0],
  options: Verify.Options,
  hasher = Hasher.layerInline
) => Effect.runPromise(Verify.verify(metainfo, options).pipe(Effect.provide(hasher)))

const runFailing = (metainfo: Parameters<typeof Verify.verify>[0], options: Verify.Options) =>
  Effect.runPromise(Effect.flip(Verify.verify(metainfo, options).pipe(Effect.provide(Hasher.layerInline))))

const statusOf = (r: VerifyReport.Report, path: string) => r.files.find((f) => f.path === path)?.status

const flipByte = (path: string, at: number) => {
  const fd = Fs.openSync(path, "r+")
  const b = Buffer.alloc(1)
  Fs.readSync(fd, b, 0, 1, at)
  b[0] = b[0]! ^ 0x5a
  Fs.writeSync(fd, b, 0, 1, at)
  Fs.closeSync(fd)
}

// a (3000) | pad | b/c (5000) | b/empty (0) | d (777), 1 KiB pieces
const sample = () =>
  build({
    name: "t",
    pieceLength: 1024,
    files: [
      { path: ["a"], length: 3000 },
      { path: [".pad", "72"], length: 72, pad: true },
      { path: ["b", "c"], length: 5000 },
      { path: ["b", "empty"], length: 0 },
      { path: ["d"], length: 777 }
    ]
  })

describe("Verify.verify", () => {
  it("intact data: every file ok, pads never reported (hashed in worker threads)", async () => {
    const t = sample()
    const dir = freshDir()
    writeData(t, dir)
    const before = snapshot(dir)
    const progress: Array<[number, number]> = []
    const onProgress = (c: number, n: number) => void progress.push([c, n])
    const r = await run(t.metainfo, { dir, onProgress }, Hasher.layerPool({ inlineMax: 0 }))
    expect(r.files.map((f) => [f.index, f.path, f.status])).toEqual([
      [0, "t/a", "ok"],
      [1, "t/b/c", "ok"],
      [2, "t/b/empty", "ok"],
      [3, "t/d", "ok"]
    ])
    expect(r.summary).toMatchObject({ ok: true, pieces: t.metainfo.pieceCount, piecesOk: t.metainfo.pieceCount })
    expect(progress.at(-1)).toEqual([t.metainfo.pieceCount, t.metainfo.pieceCount])
    expect(snapshot(dir)).toEqual(before)
  })

  it("a missing directory is every file missing, and is not created", async () => {
    const t = sample()
    const dir = Path.join(work, "nowhere", "deeper")
    const r = await run(t.metainfo, { dir })
    expect(r.dirExists).toBe(false)
    expect(r.files.every((f) => f.status === "missing")).toBe(true)
    expect(r.summary).toMatchObject({ ok: false, piecesOk: 0, piecesUnchecked: r.summary.pieces })
    expect(Fs.existsSync(Path.join(work, "nowhere"))).toBe(false)
  })

  it("a regular file given as the directory is a typed error", async () => {
    const t = sample()
    const file = Path.join(freshDir(), "plain")
    Fs.writeFileSync(file, "x")
    const e = await runFailing(t.metainfo, { dir: file })
    expect(e._tag).toBe("StorageError")
    expect(e.reason).toBe("path-conflict")
  })

  it("a directory or a symlink in a file's place: missing with the reason, never opened or followed", async () => {
    const t = sample()
    const dir = freshDir()
    writeData(t, dir)
    Fs.rmSync(Path.join(dir, "t", "a"))
    Fs.mkdirSync(Path.join(dir, "t", "a"))
    Fs.writeFileSync(Path.join(dir, "t", "a", "inside"), "x")
    // d's bytes, correct, but behind a link: not followed (FileStorage refuses links too).
    const outside = Path.join(work, `outside-${serial++}`)
    Fs.renameSync(Path.join(dir, "t", "d"), outside)
    Fs.symlinkSync(outside, Path.join(dir, "t", "d"))
    const before = snapshot(dir)
    const r = await run(t.metainfo, { dir })
    expect(r.files.find((f) => f.path === "t/a")).toMatchObject({
      status: "missing",
      problem: "a directory is in its place"
    })
    expect(r.files.find((f) => f.path === "t/d")).toMatchObject({
      status: "missing",
      problem: "a symlink is in its place (not followed)"
    })
    expect(statusOf(r, "t/b/c")).toBe("unverifiable") // its first piece holds the end of a (pad in between)
    expect(snapshot(dir)).toEqual(before)
  })

  it("a symlinked folder on the way: its files are missing, naming the link", async () => {
    const t = sample()
    const dir = freshDir()
    writeData(t, dir)
    const real = Path.join(work, `real-b-${serial++}`)
    Fs.renameSync(Path.join(dir, "t", "b"), real)
    Fs.symlinkSync(real, Path.join(dir, "t", "b"))
    const r = await run(t.metainfo, { dir })
    expect(r.files.find((f) => f.path === "t/b/c")).toMatchObject({
      status: "missing",
      problem: "t/b is a symlink (not followed)"
    })
    expect(statusOf(r, "t/b/empty")).toBe("missing")
  })

  it("selection: only the pieces of selected files are read", async () => {
    const t = sample()
    const dir = freshDir()
    writeData(t, dir)
    let total = 0
    const r = await run(t.metainfo, {
      dir,
      selected: t.metainfo.files.map((f) => f.path.at(-1) === "d"),
      onProgress: (_, n) => void (total = n)
    })
    expect(r.files.map((f) => [f.index, f.status])).toEqual([[3, "ok"]])
    expect(total).toBe(2) // d spans the last two 1 KiB pieces
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Property on disk

type Damage = "intact" | "missing" | "short" | "long" | "wrong"

const diskCaseArb = FastCheck.record({
  files: FastCheck.array(
    FastCheck.record({
      length: FastCheck.oneof(FastCheck.integer({ min: 0, max: 50 }), FastCheck.integer({ min: 0, max: 2000 })),
      pad: FastCheck.constantFrom(false, false, false, true),
      folder: FastCheck.constantFrom("", "x", "x/y", "z"),
      damage: FastCheck.constantFrom<Damage>("intact", "intact", "intact", "missing", "short", "long", "wrong"),
      at: FastCheck.double({ min: 0, max: 0.999, noNaN: true })
    }),
    { minLength: 1, maxLength: 7 }
  ).filter((fs) => fs.some((f) => !f.pad && f.length > 0)),
  pieceLength: FastCheck.constantFrom(13, 64, 100, 512, 1024, 4096)
})

describe("Verify.verify (property, on disk)", () => {
  it("never ok for a damaged file, ok for untouched files with intact pieces; the tree never changes", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(diskCaseArb, async (c) => {
        const files: Array<PayloadFile> = c.files.map((f, i) =>
          f.pad
            ? { path: [".pad", String(i)], length: f.length, pad: true }
            : { path: [...(f.folder === "" ? [] : f.folder.split("/")), `f${i}.bin`], length: f.length }
        )
        const t = build({ name: "p", pieceLength: c.pieceLength, files })
        const dir = freshDir()
        writeData(t, dir)
        const m = t.metainfo
        const damaged = new Set<number>()
        m.files.forEach((f, i) => {
          if (f.pad) return
          const path = Path.join(dir, ...f.path)
          const d = c.files[i]!.damage
          if (d === "missing") Fs.rmSync(path)
          else if (d === "long") Fs.appendFileSync(path, "++")
          else if (d === "short" && f.length > 0) Fs.truncateSync(path, Math.floor(f.length * c.files[i]!.at))
          else if (d === "wrong" && f.length > 0) flipByte(path, Math.floor(f.length * c.files[i]!.at))
          else return
          damaged.add(i)
        })
        const before = snapshot(dir)
        const r = await run(m, { dir })
        expect(snapshot(dir)).toEqual(before)

        // The pieces whose every file is untouched (pads count as untouched).
        const pl = m.pieceLength
        const cleanPiece = (p: number) =>
          m.files.every((f, i) =>
            f.length === 0 || !damaged.has(i) || f.offset + f.length <= p * pl || f.offset >= (p + 1) * pl
          )
        const data = m.files.flatMap((f, i) => (f.pad ? [] : [i]))
        expect(r.files).toHaveLength(data.length)
        r.files.forEach((report, k) => {
          const i = data[k]!
          const f = m.files[i]!
          if (damaged.has(i)) expect(report.status).not.toBe("ok")
          else {
            const first = Math.floor(f.offset / pl)
            const last = Math.floor((f.offset + f.length - 1) / pl)
            let allClean = true
            for (let p = first; p <= last; p++) allClean &&= cleanPiece(p)
            if (allClean) expect(report.status).toBe("ok")
          }
        })
        expect(r.summary.ok).toBe(damaged.size === 0)
      }),
      { numRuns: 40 }
    )
  })
})
