/**
 * `create` for BEP 52 (v2-only and v1/v2 hybrid) against libtorrent 2.0.8 itself: for the same files and piece
 * length, python3-libtorrent's `create_torrent` (default flags, `v2_only` for v2) and ours must write the same
 * bytes, the whole `.torrent` (with the same `created by` and `creation date`; private or not). Trees chosen for the edge cases
 * (tree order against v1 order, empty files, executables, a symlink, non-ASCII names, files of exactly a piece or a
 * block, a single file, a directory holding one file) and random ones (sizes around piece and block boundaries),
 * hashed inline and in workers. A missing python3-libtorrent skips loudly outside CI.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import type * as Layer from "effect/Layer"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import type * as Create from "../../src/metainfo/Create.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Creator from "../../src/storage/Creator.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import { randomBytes } from "./support.ts"

const PYTHON = "/usr/bin/python3"

const haveLibtorrent = (): boolean => {
  try {
    execFileSync(PYTHON, ["-c", "import libtorrent"], { stdio: "ignore" })
    return true
  } catch {
    if (process.env["CI"]) throw new Error("python3-libtorrent is missing (required in CI)")
    console.warn("\n!!! SKIPPED: python3-libtorrent is not installed; create --v2/--hybrid against libtorrent did not run !!!\n")
    return false
  }
}

/** Makes one torrent per job with libtorrent: [input path, format, piece length, output path, private]. */
const SCRIPT = `
import json, os, sys, libtorrent as lt
for path, fmt, pl, out, priv in json.loads(sys.argv[1]):
    flags = lt.create_torrent.v2_only if fmt == "v2" else 0
    fs = lt.file_storage()
    lt.add_files(fs, path, flags=flags)
    ct = lt.create_torrent(fs, pl, flags)
    ct.set_creator("effect-torrent test")
    ct.set_priv(priv)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    e = ct.generate()
    e[b"creation date"] = 1700000000
    with open(out, "wb") as f:
        f.write(lt.bencode(e))
`

type Job = readonly [path: string, format: Create.Format, pieceLength: number, out: string, priv: boolean]
const libtorrentCreates = (jobs: ReadonlyArray<Job>): void => {
  execFileSync(PYTHON, ["-c", SCRIPT, JSON.stringify(jobs)], { stdio: ["ignore", "ignore", "inherit"] })
}

const dirs: Array<string> = []
const tmp = (): string => {
  const d = Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-create-v2-"))
  dirs.push(d)
  return d
}
afterAll(() => dirs.forEach((d) => Fs.rmSync(d, { recursive: true, force: true })))

interface Spec {
  readonly length: number
  readonly mode?: number
}
const writeTree = (root: string, files: Record<string, Spec>): void => {
  let seed = 7
  for (const [rel, spec] of Object.entries(files)) {
    const p = Path.join(root, rel)
    Fs.mkdirSync(Path.dirname(p), { recursive: true })
    Fs.writeFileSync(p, randomBytes(spec.length, seed++))
    Fs.chmodSync(p, spec.mode ?? 0o644)
  }
}

const ours = (
  path: string,
  format: Create.Format,
  pieceLength: number,
  layer: Layer.Layer<Hasher.Hasher>,
  priv = false
) =>
  Creator.create(path, {
    format,
    pieceLength,
    private: priv,
    createdBy: "effect-torrent test",
    creationDate: 1700000000,
    concurrency: 3
  }).pipe(Effect.provide(layer))

const inline = Hasher.layerInline
const workers = Hasher.layerPool({ workers: 2, inlineMax: 0 })

/** Ours and libtorrent's for every job: byte-identical files. */
const compareAll = (jobs: ReadonlyArray<Job>) =>
  Effect.gen(function*() {
    libtorrentCreates(jobs)
    let i = 0
    for (const [path, format, pieceLength, out, priv] of jobs) {
      const r = yield* ours(path, format, pieceLength, i++ % 2 === 0 ? inline : workers, priv)
      const theirs = new Uint8Array(Fs.readFileSync(out))
      if (!Bytes.equals(r.torrent, theirs)) {
        Fs.writeFileSync(`${out}.ours`, r.torrent)
        expect.fail(`${format} ${pieceLength} ${path}: ours differs from libtorrent's (${out}, ${out}.ours)`)
      }
      expect(r.metainfo.version).toBe(format)
    }
  })

describe("create --v2 / --hybrid: byte-identical to libtorrent 2.0.8's create_torrent", { timeout: 120_000 }, () => {
  const run = haveLibtorrent()

  it.live.skipIf(!run)("edge-case trees, single files, every piece length from 16 KiB to 128 KiB (private at 32 KiB)", () =>
    Effect.gen(function*() {
      const base = tmp()
      const tree = Path.join(base, "Tree ü")
      writeTree(tree, {
        // tree order (component by component) differs from v1 order ("a/b" joined sorts after "a-b")
        "a/b": { length: 10 },
        "a-b": { length: 16384 },
        "a.bin": { length: 100_000 },
        "a.txt": { length: 5 },
        "empty": { length: 0 },
        "zz-empty-last": { length: 0 },
        ".hidden": { length: 32768 },
        "exec.sh": { length: 70_000, mode: 0o755 },
        "group-exec": { length: 3, mode: 0o654 },
        "sub/deeper/x": { length: 131_073 },
        "sub/y": { length: 49_152 },
        "ünï cödé/ファイル": { length: 1 }
      })
      Fs.symlinkSync("a.bin", Path.join(tree, "link-to-a"))
      const one = Path.join(base, "one")
      writeTree(one, { "only.dat": { length: 65_537 } })
      const lastEmpty = Path.join(base, "last-empty")
      writeTree(lastEmpty, { "a": { length: 20_000 }, "b": { length: 0 } })
      writeTree(base, { "single.iso": { length: 333_333 }, "tiny": { length: 1 }, "run.bin": { length: 16384, mode: 0o700 } })
      const jobs: Array<Job> = []
      const out = tmp()
      for (const p of [tree, one, lastEmpty, ...["single.iso", "tiny", "run.bin"].map((n) => Path.join(base, n))]) {
        for (const format of ["v2", "hybrid"] as const) {
          for (const pl of [16384, 32768, 65536, 131072]) {
            jobs.push([p, format, pl, Path.join(out, `${jobs.length}.torrent`), pl === 32768])
          }
        }
      }
      yield* compareAll(jobs)
    }))

  it.live.skipIf(!run)("random trees: sizes around block and piece boundaries, nested paths", () =>
    Effect.gen(function*() {
      const pieceLengths = [16384, 32768, 65536]
      const size = FastCheck.oneof(
        FastCheck.constantFrom(0, 1, 16383, 16384, 16385, 32767, 32768, 32769, 65536, 65537, 98304),
        FastCheck.integer({ min: 0, max: 300_000 })
      )
      const name = FastCheck.constantFrom("a", "b", "a.b", "a-b", "é", "x y", ".h", "0")
      const file = FastCheck.record({ path: FastCheck.array(name, { minLength: 1, maxLength: 3 }), length: size })
      const trees = FastCheck.sample(
        FastCheck.record({
          files: FastCheck.uniqueArray(file, { minLength: 1, maxLength: 8, selector: (f) => f.path.join("/") }),
          pl: FastCheck.constantFrom(...pieceLengths),
          format: FastCheck.constantFrom("v2" as const, "hybrid" as const)
        }),
        { numRuns: 24, seed: 20261204 }
      )
      const base = tmp()
      const jobs: Array<Job> = []
      trees.forEach((t, i) => {
        // no file may be another's directory
        const isPrefix = (p: ReadonlyArray<string>, q: ReadonlyArray<string>) =>
          p.length < q.length && p.every((c, k) => q[k] === c)
        const files = t.files.filter((f) => !t.files.some((g) => isPrefix(f.path, g.path)))
        if (files.every((f) => f.length === 0)) return
        const root = Path.join(base, `t${i}`)
        writeTree(root, Object.fromEntries(files.map((f) => [f.path.join("/"), { length: f.length }])))
        jobs.push([root, t.format, t.pl, Path.join(base, `t${i}.torrent`), i % 3 === 0])
      })
      expect(jobs.length).toBeGreaterThan(15)
      yield* compareAll(jobs)
    }))
})

describe("create --v2 / --hybrid: what the torrent says", () => {
  it.live("every file's pieces root and piece layer are its Merkle hashes; a hybrid's v1 pieces hash the padded data", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "t")
      writeTree(root, { "a": { length: 100_000 }, "b/c": { length: 16_385 }, "d": { length: 0 }, "e": { length: 7 } })
      for (const format of ["v2", "hybrid"] as const) {
        for (const layer of [inline, workers]) {
          const r = yield* ours(root, format, 32768, layer)
          const m = r.metainfo
          expect(m.version).toBe(format)
          const padded: Array<Uint8Array> = []
          for (const f of m.files) {
            if (f.pad) {
              padded.push(new Uint8Array(f.length))
              continue
            }
            const data = new Uint8Array(Fs.readFileSync(Path.join(root, ...f.path.slice(1))))
            padded.push(data)
            if (f.length === 0) {
              expect(f.piecesRoot).toBeUndefined()
              continue
            }
            const leaves = Merkle.leafHashes(data)
            expect(Bytes.toHex(f.piecesRoot!)).toBe(Bytes.toHex(Merkle.fileRoot(leaves)))
            if (f.length > m.pieceLength) {
              expect(Bytes.toHex(f.pieceLayer!)).toBe(Bytes.toHex(Merkle.pieceLayer(leaves, m.pieceLength)))
            } else expect(f.pieceLayer).toBeUndefined()
          }
          if (format === "v2") {
            expect(m.pieces.length).toBe(0)
            continue
          }
          const payload = Bytes.concat(padded)
          expect(m.totalLength).toBe(payload.length)
          for (let i = 0; i < m.pieceCount; i++) {
            const piece = payload.subarray(i * m.pieceLength, i * m.pieceLength + Metainfo.pieceLengthAt(m, i)!)
            expect(Bytes.toHex(Metainfo.pieceHash(m, i)!)).toBe(Bytes.toHex(Bytes.sha1(piece)))
          }
        }
      }
    }))

  it.live("the v2 info-hash is SHA-256 of the info dict; a v2-only torrent's swarm id is its truncation", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "t")
      writeTree(root, { "a": { length: 50_000 } })
      const r = yield* ours(root, "v2", 16384, inline)
      expect(Bytes.toHex(r.infoHashV2!)).toBe(Bytes.toHex(Bytes.sha256(r.metainfo.rawInfo)))
      expect(Bytes.toHex(r.infoHash)).toBe(Bytes.toHex(r.infoHashV2!.subarray(0, 20)))
      const h = yield* ours(root, "hybrid", 16384, inline)
      expect(Bytes.toHex(h.infoHash)).toBe(Bytes.toHex(Bytes.sha1(h.metainfo.rawInfo)))
      expect(Bytes.toHex(h.infoHashV2!)).toBe(Bytes.toHex(Bytes.sha256(h.metainfo.rawInfo)))
    }))

  it.live("a top-level .pad in a hybrid is refused (it would clash with the pad files); fine in v2", () =>
    Effect.gen(function*() {
      const root = Path.join(tmp(), "t")
      writeTree(root, { ".pad/x": { length: 5 }, "a": { length: 5 } })
      const hybrid = yield* Effect.either(ours(root, "hybrid", 16384, inline))
      expect(Either.isLeft(hybrid) && hybrid.left.reason).toBe("unsafe-name")
      const v2 = yield* Effect.either(ours(root, "v2", 16384, inline))
      expect(Either.isRight(v2)).toBe(true)
    }))
})
