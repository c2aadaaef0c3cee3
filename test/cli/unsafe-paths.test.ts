/**
 * Malicious torrents downloaded for real: every shared fixture tagged `unsafe-path` or `symlink` (`..`, absolute,
 * empty, `\`, `/` components, names like `temp/../../abc`, symlinks, overlapping symlinked directories) is given a
 * payload — the fixture's info dict with its `pieces` (v2-only ones: its `pieces root`s and `piece layers`)
 * recomputed over random content, so its hostile names stay byte for byte — and downloaded by `effect-torrent download` (the built CLI, in a child process whose working
 * directory sits four levels deep in a sandbox) from a seeder: our in-process one, and libtorrent 2.0 (a real
 * client, which writes the data where its own sanitizer puts each file). The sandbox is listed (lstat, never
 * following links) before and after: everything new is inside the output directory, and the root directory gets
 * nothing either. Symlink attributes are never materialised as links, and a symlink planted in the output directory
 * is never followed.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Either from "effect/Either"
import * as Bencode from "../../src/bencode/Bencode.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import { bundle, cliEnv, type Run } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { manifest, requireFixtures, torrentsDir } from "../support/fixtures.ts"
import * as Lt from "../support/libtorrentSeeder.ts"
import { type Built, seed } from "../support/seeder.ts"
import { regenerate } from "../support/v2.ts"

const stops: Array<() => Promise<void>> = []
afterAll(() => Promise.all(stops.map((s) => s())))

const hostile = requireFixtures("unsafe-path downloads")
  ? manifest().filter((e) => e.tags.includes("unsafe-path") || e.tags.includes("symlink"))
  : []

/** The fixture with `pieces` recomputed over a random payload; `Left` with the reason when we refuse it. */
const withPayload = (bytes: Uint8Array): Either.Either<Built, string> => {
  const original = Metainfo.decode(bytes, { v2Only: true })
  if (Either.isLeft(original)) return Either.left(original.left.message)
  if (original.right.version === "v2") return regenerate(bytes)
  const m = original.right
  const payload = new Uint8Array(m.totalLength)
  const files: Array<Uint8Array> = []
  let at = 0
  for (const f of m.files) {
    const data = f.pad ? new Uint8Array(f.length) : new Uint8Array(randomBytes(f.length))
    payload.set(data, at)
    files.push(data)
    at += f.length
  }
  const pieces = new Uint8Array(m.pieceCount * 20)
  for (let i = 0; i < m.pieceCount; i++) {
    const piece = payload.subarray(i * m.pieceLength, (i + 1) * m.pieceLength)
    pieces.set(createHash("sha1").update(piece).digest(), i * 20)
  }
  const top = Bencode.decode(bytes)
  if (Either.isLeft(top) || !Bencode.isDict(top.right)) return Either.left("not a dict")
  const info = top.right.get("info")
  if (!Bencode.isDict(info)) return Either.left("no info dict")
  const rewritten = Bencode.encode(new Map([...top.right, ["info", new Map([...info, ["pieces", pieces]])]]))
  const decoded = Metainfo.decode(rewritten)
  if (Either.isLeft(decoded)) return Either.left(decoded.left.message)
  return Either.right({ metainfo: decoded.right, bytes: rewritten, payload, files })
}

/** Every path under `root`, relative, with its kind; links are listed, never followed. */
const listing = (root: string): Array<string> => {
  const out: Array<string> = []
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const p = rel === "" ? name : `${rel}/${name}`
      const st = lstatSync(join(root, p))
      out.push(`${p} ${st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : "file"}`)
      if (st.isDirectory()) walk(p)
    }
  }
  walk("")
  return out.sort()
}

const WORK = "a/b/c/work"

interface Sandbox {
  readonly root: string
  readonly work: string
  readonly torrent: string
  readonly state: string
}

const sandbox = (torrent: Uint8Array): Sandbox => {
  const root = tempDir("unsafe")
  const work = join(root, WORK)
  mkdirSync(work, { recursive: true })
  const elsewhere = tempDir("unsafe-torrent")
  const file = join(elsewhere, "hostile.torrent")
  writeFileSync(file, torrent)
  return { root, work, torrent: file, state: join(elsewhere, "state") }
}

/** `effect-torrent download` run from `box.work` into `out` (relative, as a user would type it). */
const download = (box: Sandbox, port: number | undefined): Promise<Run> =>
  new Promise((resolve) => {
    const peers = port === undefined ? [] : ["--peer", `127.0.0.1:${port}`]
    const args = [bundle, "download", box.torrent, "-o", "out", ...peers, "--no-trackers", "--quiet"]
    execFile(
      process.execPath,
      [...args, "--state-dir", box.state, "--no-peers-timeout", "30"],
      { cwd: box.work, env: cliEnv, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
    )
  })

const expectOnlyInside = (before: ReadonlyArray<string>, after: ReadonlyArray<string>, rootBefore: Set<string>) => {
  const added = after.filter((p) => !before.includes(p))
  expect(added.filter((p) => !p.startsWith(`${WORK}/out/`) && !p.startsWith(`${WORK}/out `))).toEqual([])
  expect(readdirSync("/").filter((e) => !rootBefore.has(e))).toEqual([])
}

const seeders = {
  ours: async (b: Built) => {
    const s = await seed(b)
    stops.push(s.stop)
    return s.port
  },
  libtorrent: async (b: Built) => {
    const s = await Lt.startFor(b.bytes, b.payload)
    stops.push(s.stop)
    return s.port
  }
} as const

for (const kind of ["ours", "libtorrent"] as const) {
  const run = kind === "ours" || Lt.shouldRun("unsafe-path downloads from libtorrent")
  describe.skipIf(!run)(`hostile file names, downloaded from ${kind === "ours" ? "our seeder" : "libtorrent"}`, () => {
    for (const entry of hostile) {
      // libtorrent names this one's second file `test` (its own directory's path): it cannot write it to seed it
      const ltCannotSeed = kind === "libtorrent" && entry.file === "libtorrent/v2_invalid_filename2.torrent"
      it.skipIf(ltCannotSeed)(`${entry.file} (${entry.tags.join(", ")}): nothing lands outside the output directory`, async () => {
        const original = readFileSync(join(torrentsDir, entry.file))
        const built = withPayload(original)
        const box = sandbox(Either.isRight(built) ? built.right.bytes : original)
        const rootBefore = new Set(readdirSync("/"))
        const before = listing(box.root)
        const port = Either.isRight(built) ? await seeders[kind](built.right) : undefined
        const r = await download(box, port)
        expectOnlyInside(before, listing(box.root), rootBefore)
        if (Either.isLeft(built)) {
          // Refused before anything is written: one line, nothing created.
          expect(r.code).toBe(1)
          expect(r.stderr.trim().split("\n")).toHaveLength(1)
          expect(listing(box.root)).toEqual(before)
          return
        }
        expect(r.stderr).toBe("")
        expect(r.code).toBe(0)
        const b = built.right
        b.metainfo.files.forEach((f, i) => {
          const path = join(box.work, "out", ...f.path)
          if (f.pad) return
          if (f.attributes.symlink !== undefined) {
            // A symlink entry is never made a link (so never followed): at most an empty regular file.
            const st = lstatSync(path, { throwIfNoEntry: false })
            expect(st === undefined || (st.isFile() && st.size === 0)).toBe(true)
            return
          }
          expect(Buffer.compare(readFileSync(path), Buffer.from(b.files[i]!))).toBe(0)
        })
      }, 90_000)
    }
  })
}

describe("a symlink planted in the output directory", () => {
  it("is never followed: the download stops with one line and nothing is written through it", async () => {
    const built = withPayload(readFileSync(join(torrentsDir, "libtorrent/symlink1.torrent")))
    if (Either.isLeft(built)) throw new Error(built.left)
    const box = sandbox(built.right.bytes)
    // The torrent writes temp/a/b/bar: make out/temp/a lead to a directory outside the output directory.
    const outside = join(box.root, "outside")
    mkdirSync(join(outside, "b"), { recursive: true })
    mkdirSync(join(box.work, "out", "temp"), { recursive: true })
    symlinkSync(outside, join(box.work, "out", "temp", "a"))
    const before = listing(box.root)
    const r = await download(box, await seeders.ours(built.right))
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split("\n")).toHaveLength(1)
    expect(r.stderr).toMatch(/^effect-torrent: .*symlink/)
    expect(listing(box.root)).toEqual(before)
  }, 90_000)
})
