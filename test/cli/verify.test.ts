/**
 * `effect-torrent verify` as a user runs it (the built bundle in a child process): a multi-file torrent made by our
 * own `create` over odd-sized files in several folders, then the data intact, with a flipped byte, a deleted, a
 * truncated and a lengthened file, a missing directory; `--json` and `--only`; usage errors and real fixtures. After
 * every run the data directory's tree and mtimes are what they were: verify writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Schema from "effect/Schema"
import * as VerifyReport from "../../src/storage/VerifyReport.ts"
import { cli, expectOneLineError, type Run } from "../support/cli.ts"
import { writeData } from "../support/data.ts"
import { requireFixtures, torrentsDir } from "../support/fixtures.ts"
import { build } from "../support/seeder.ts"
import { snapshot } from "../support/snapshot.ts"

const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-verify-cli-"))
afterAll(() => Fs.rmSync(work, { recursive: true, force: true }))

// Torrent order (sorted paths) and byte ranges, 16 KiB pieces, 13 pieces in all:
//   big.bin 0..100003 (pieces 0-6) · docs/deep/notes.md ..140003 (6-8) · docs/readme.txt ..141237 (8) · empty
//   · media/clip.dat ..211238 (8-12) · media/tiny ..211245 (12)
const FILES: Record<string, number> = {
  "big.bin": 100_003,
  "docs/deep/notes.md": 40_000,
  "docs/readme.txt": 1_234,
  "empty": 0,
  "media/clip.dat": 70_001,
  "media/tiny": 7
}
const ORDER = Object.keys(FILES).map((f) => `payload/${f}`)
const pristine = Path.join(work, "pristine")
const torrent = Path.join(work, "payload.torrent")

let state = 99
const bytes = (n: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    state = (state * 1103515245 + 12345) >>> 0
    out[i] = state >>> 24
  }
  return out
}

beforeAll(async () => {
  for (const [rel, size] of Object.entries(FILES)) {
    const p = Path.join(pristine, "payload", rel)
    Fs.mkdirSync(Path.dirname(p), { recursive: true })
    Fs.writeFileSync(p, bytes(size))
  }
  const made = await cli(["create", Path.join(pristine, "payload"), "-o", torrent, "-l", "16K", "--no-date"])
  expect(made.code).toBe(0)
})

let serial = 0
/** A fresh copy of the intact data, changed by `damage`. */
const dataDir = (damage: (payload: string) => void = () => {}): string => {
  const dir = Path.join(work, `data-${serial++}`)
  Fs.cpSync(pristine, dir, { recursive: true })
  damage(Path.join(dir, "payload"))
  return dir
}

/** Runs verify and asserts it changed nothing under `dir`. */
const verify = async (dir: string, ...extra: Array<string>): Promise<Run> => {
  const before = snapshot(dir)
  const r = await cli(["verify", torrent, dir, ...extra])
  expect(snapshot(dir)).toEqual(before)
  return r
}

/** The status column of each file line: path → status. */
const statuses = (stdout: string): Record<string, string> =>
  Object.fromEntries(
    stdout.split("\n").flatMap((line) => {
      const m = /^ {2}(\S+)\s+(payload\/\S+)/.exec(line)
      return m === null ? [] : [[m[2]!, m[1]!]]
    })
  )

const allOkBut = (changes: Record<string, string>) =>
  Object.fromEntries(ORDER.map((p) => [p, changes[p] ?? "ok"]))

const decodeReport = (stdout: string) => Schema.decodeUnknownSync(Schema.parseJson(VerifyReport.Report))(stdout)

describe("effect-torrent verify", () => {
  it("intact data: every file ok, the summary line, exit 0, nothing on stderr", async () => {
    const r = await verify(dataDir())
    expect(r.code).toBe(0)
    expect(r.stderr).toBe("")
    expect(statuses(r.stdout)).toEqual(allOkBut({}))
    expect(r.stdout.trim().split("\n").at(-1)).toBe("pieces 13/13 ok, bytes 211,245/211,245 verified, files 6/6 ok")
  })

  it("one flipped byte: that file is corrupt at the right piece, the others ok, exit 1 with one line", async () => {
    const dir = dataDir((p) => {
      const file = Path.join(p, "big.bin")
      const data = Fs.readFileSync(file)
      data[50_000] = data[50_000]! ^ 0xff // piece 3 = bytes 49152..65535, big.bin's alone
      Fs.writeFileSync(file, data)
    })
    const r = await verify(dir)
    expectOneLineError(r, 1)
    expect(r.stderr).toBe("effect-torrent: 1 of 6 files not ok: payload/big.bin (corrupt)\n")
    expect(statuses(r.stdout)).toEqual(allOkBut({ "payload/big.bin": "corrupt" }))
    expect(r.stdout).toMatch(/corrupt +payload\/big\.bin +1 of 7 pieces failed: 3\n/)
    expect(r.stdout).toMatch(/pieces 12\/13 ok \(1 failed\)/)
    const json = decodeReport((await verify(dir, "--json")).stdout)
    expect(json.files[0]).toMatchObject({
      path: "payload/big.bin",
      status: "corrupt",
      failedPieces: [3],
      sharedWith: []
    })
  })

  it("a flipped byte in a piece two files share: both corrupt, each naming the other", async () => {
    const dir = dataDir((p) => {
      const file = Path.join(p, "big.bin")
      const data = Fs.readFileSync(file)
      data[100_000] = data[100_000]! ^ 0xff // piece 6 = bytes 98304..114687: big.bin's end, notes.md's start
      Fs.writeFileSync(file, data)
    })
    const r = await verify(dir)
    expect(r.code).toBe(1)
    expect(statuses(r.stdout)).toEqual(
      allOkBut({ "payload/big.bin": "corrupt", "payload/docs/deep/notes.md": "corrupt" })
    )
    expect(r.stdout).toContain("shared with payload/docs/deep/notes.md: the wrong bytes may be in either file")
  })

  it("a deleted file: missing; its neighbours in shared pieces unverifiable, naming it", async () => {
    const r = await verify(dataDir((p) => Fs.rmSync(Path.join(p, "docs/readme.txt"))))
    expectOneLineError(r, 1)
    expect(statuses(r.stdout)).toEqual(allOkBut({
      "payload/docs/readme.txt": "missing",
      "payload/docs/deep/notes.md": "unverifiable",
      "payload/media/clip.dat": "unverifiable"
    }))
    expect(r.stdout).toContain(
      "unverifiable  payload/docs/deep/notes.md  1 of 3 pieces cannot be checked: 8, " +
        "shared with payload/docs/readme.txt (missing)"
    )
    expect(r.stderr).toMatch(/3 of 6 files not ok: .*payload\/docs\/readme\.txt \(missing\)/)
  })

  it("a truncated file: short with its size; the file after it unverifiable", async () => {
    const r = await verify(dataDir((p) => Fs.truncateSync(Path.join(p, "media/clip.dat"), 30_000)))
    expectOneLineError(r, 1)
    expect(statuses(r.stdout)).toEqual(
      allOkBut({ "payload/media/clip.dat": "short", "payload/media/tiny": "unverifiable" })
    )
    expect(r.stdout).toMatch(/short +payload\/media\/clip\.dat +30,000 of 70,001 bytes/)
    expect(r.stdout).toMatch(/payload\/media\/tiny .*shared with payload\/media\/clip\.dat \(short\)/)
  })

  it("bytes appended to a file: longer than expected, exit 1, the rest ok", async () => {
    const r = await verify(dataDir((p) => Fs.appendFileSync(Path.join(p, "media/tiny"), "more")))
    expectOneLineError(r, 1)
    expect(statuses(r.stdout)).toEqual(allOkBut({ "payload/media/tiny": "long" }))
    expect(r.stdout).toMatch(/long +payload\/media\/tiny +longer than expected: 11 bytes, the torrent says 7/)
    expect(r.stdout).toMatch(/pieces 13\/13 ok/)
  })

  it("a missing directory: everything missing, exit 1, and the directory is not created", async () => {
    const dir = Path.join(work, "absent", "dir")
    const r = await cli(["verify", torrent, dir])
    expectOneLineError(r, 1)
    expect(r.stderr).toBe(`effect-torrent: ${dir}: no such directory (all 6 files missing)\n`)
    expect(statuses(r.stdout)).toEqual(Object.fromEntries(ORDER.map((p) => [p, "missing"])))
    expect(Fs.existsSync(Path.join(work, "absent"))).toBe(false)
    const json = decodeReport((await cli(["verify", torrent, dir, "--json"])).stdout)
    expect(json).toMatchObject({ dirExists: false, summary: { ok: false, piecesOk: 0, filesOk: 0 } })
  })

  it("--json: one document that decodes through the schema and agrees with the text", async () => {
    const dir = dataDir((p) => {
      Fs.rmSync(Path.join(p, "docs/readme.txt"))
      Fs.appendFileSync(Path.join(p, "media/tiny"), "x")
    })
    const text = await verify(dir)
    const r = await verify(dir, "--json")
    expectOneLineError(r, 1)
    const report = decodeReport(r.stdout)
    expect(Object.keys(JSON.parse(r.stdout))).toEqual(
      ["name", "infoHash", "dir", "dirExists", "pieceLength", "files", "summary"]
    )
    expect(report).toMatchObject({ name: "payload", dir: Path.resolve(dir), dirExists: true, pieceLength: 16384 })
    expect(report.infoHash).toMatch(/^[0-9a-f]{40}$/)
    expect(Object.fromEntries(report.files.map((f) => [f.path, f.status]))).toEqual(statuses(text.stdout))
    expect(report.files.map((f) => f.index)).toEqual([0, 1, 2, 3, 4, 5])
    expect(report.files[2]).toEqual({
      index: 2,
      path: "payload/docs/readme.txt",
      status: "missing",
      size: null,
      expectedSize: 1234,
      pieces: 1,
      failedPieces: [],
      uncheckedPieces: [],
      sharedWith: [],
      blockedBy: [],
      problem: null
    })
    expect(report.files[1]).toMatchObject({ uncheckedPieces: [8], blockedBy: ["payload/docs/readme.txt"] })
    expect(report.files[5]).toMatchObject({ status: "long", size: 8, expectedSize: 7 })
    expect(report.summary).toEqual({
      ok: false,
      files: 6,
      filesOk: 2,
      pieces: 13,
      piecesOk: 12,
      piecesFailed: 0,
      piecesUnchecked: 1,
      bytes: 211_245,
      bytesOk: 211_245 - 16_384
    })
  })

  it("--only by number and by glob: only those files are reported and decide the exit code", async () => {
    const dir = dataDir((p) => Fs.rmSync(Path.join(p, "big.bin")))
    const media = await verify(dir, "--only", "media/*")
    expect(media.code).toBe(0)
    expect(statuses(media.stdout)).toEqual({ "payload/media/clip.dat": "ok", "payload/media/tiny": "ok" })
    expect(media.stdout).toMatch(/pieces 5\/5 ok, bytes 70,008\/70,008 verified, files 2\/2 ok/)
    const first = await verify(dir, "--only", "0", "--json")
    expect(first.code).toBe(1)
    expect(decodeReport(first.stdout).files.map((f) => [f.index, f.status])).toEqual([[0, "missing"]])
    expectOneLineError(await cli(["verify", torrent, dir, "--only", "nothing*"]), 2)
    expectOneLineError(await cli(["verify", torrent, dir, "--only", "6"]), 2)
  })

  it("pad files (BEP 47) are checked as zeros and never reported", async () => {
    const t = build({
      name: "padded",
      pieceLength: 16384,
      files: [
        { path: ["a.bin"], length: 20_000 },
        { path: [".pad", "12768"], length: 12_768, pad: true },
        { path: ["sub", "b.bin"], length: 5_000 }
      ]
    })
    const file = Path.join(work, "padded.torrent")
    Fs.writeFileSync(file, t.bytes)
    const dir = Path.join(work, `padded-${serial++}`)
    writeData(t, dir)
    const before = snapshot(dir)
    const r = await cli(["verify", file, dir, "--json"])
    expect(r.code).toBe(0)
    expect(decodeReport(r.stdout).files.map((f) => [f.index, f.path, f.status])).toEqual([
      [0, "padded/a.bin", "ok"],
      [1, "padded/sub/b.bin", "ok"]
    ])
    expect(snapshot(dir)).toEqual(before)
  })

  it("usage errors exit 2: a missing argument, a magnet link", async () => {
    const noDir = await cli(["verify", torrent])
    expect(noDir.code).toBe(2)
    const magnet = await cli(["verify", `magnet:?xt=urn:btih:${"a".repeat(40)}`, work])
    expectOneLineError(magnet, 2)
    expect(magnet.stderr).toMatch(/needs a \.torrent file/)
  })

  it("a bad torrent path and a regular file as DIR: one line, exit 1", async () => {
    expectOneLineError(await cli(["verify", Path.join(work, "none.torrent"), work]), 1)
    const r = await cli(["verify", torrent, torrent])
    expectOneLineError(r, 1)
    expect(r.stderr).toMatch(/not a directory/)
  })

  it.skipIf(!requireFixtures("verify on real v2-only and hybrid torrents"))(
    "real fixtures: a v2-only torrent and a hybrid are checked (their files missing here), no pad listed",
    async () => {
      const none = Path.join(work, `none-${serial++}`)
      Fs.mkdirSync(none)
      const v2 = await cli(["verify", Path.join(torrentsDir, "libtorrent/v2_only.torrent"), none, "--json"])
      expect(v2.code).toBe(1)
      const v2Report = decodeReport(v2.stdout)
      expect(v2Report.files.length).toBeGreaterThan(0)
      expect(v2Report.files.every((f) => f.status === "missing" && !f.path.includes(".pad"))).toBe(true)
      // A hybrid with pad files and empty files, against an empty directory: every real file missing, no pad listed.
      const empty = Path.join(work, `empty-${serial++}`)
      Fs.mkdirSync(empty)
      const hybrid = await cli(["verify", Path.join(torrentsDir, "libtorrent/empty-files-1.torrent"), empty, "--json"])
      expect(hybrid.code).toBe(1)
      const report = decodeReport(hybrid.stdout)
      expect(report.files.length).toBeGreaterThan(0)
      expect(report.files.every((f) => f.status === "missing" && !f.path.includes(".pad"))).toBe(true)
      expect(Fs.readdirSync(empty)).toEqual([])
    }
  )
})
