/**
 * Payloads of many files (more than a storage keeps descriptors open for: FileStorage's `maxOpenFiles`, default
 * 64) in nested folders, with odd sizes, one zero-length file and a few tiny ones; and a byte-for-byte comparison
 * of a download against a reference copy (the seeder's) that says what differs, file by file. Issue 13: a descriptor
 * LRU that flushed, and closed, descriptors it no longer owned wrote blocks into the wrong files.
 *
 * No vitest import here: scratchpad scripts use it too.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

export interface Entry {
  /** Path components below the torrent's name. */
  readonly path: ReadonlyArray<string>
  readonly length: number
}

/** mulberry32: a small seeded PRNG, so that a layout is the same on every run. */
export const prng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The folders files are spread over: the top level and `count` nested ones (`d0`, `d0/d1`, `d0/d1/d2`, `d3`, …). */
export const folders = (count: number): ReadonlyArray<ReadonlyArray<string>> => {
  const out: Array<Array<string>> = [[]]
  let chain: Array<string> = []
  for (let i = 0; i < count; i++) {
    // chains of three: d0, d0/d1, d0/d1/d2, then d3, d3/d4, d3/d4/d5, then d6 ...
    if (i % 3 === 0) chain = []
    chain = [...chain, `d${i}`]
    out.push(chain)
  }
  return out
}

/**
 * `files` files over the top level and `folderCount` nested folders, about `totalBytes` in all: odd sizes around
 * the mean (±40 %), except (unless `tiny: false`) one zero-length file and four tiny ones (1, 17, 4095 and 16385
 * bytes) at fixed places in the middle of the list. Names `f<i>.bin`, with a few `.txt`. Deterministic for a `seed`.
 */
export const layout = (options: {
  readonly files: number
  readonly folders: number
  readonly totalBytes: number
  readonly seed?: number
  readonly tiny?: boolean
}): ReadonlyArray<Entry> => {
  const random = prng(options.seed ?? 13)
  const dirs = folders(options.folders)
  const special = new Map<number, number>(options.tiny === false ? [] : [
    [Math.floor(options.files * 0.37), 0],
    [Math.floor(options.files * 0.11), 1],
    [Math.floor(options.files * 0.52), 17],
    [Math.floor(options.files * 0.78), 4095],
    [Math.floor(options.files * 0.93), 16385]
  ])
  const tinyTotal = [...special.values()].reduce((n, l) => n + l, 0)
  const mean = Math.floor((options.totalBytes - tinyTotal) / (options.files - special.size))
  const out: Array<Entry> = []
  for (let i = 0; i < options.files; i++) {
    const dir = dirs[Math.floor(random() * dirs.length)]!
    const fixed = special.get(i)
    const length = fixed ?? (Math.floor(mean * (0.6 + 0.8 * random())) | 1) // odd
    out.push({ path: [...dir, `f${i}.${fixed !== undefined && fixed < 100 ? "txt" : "bin"}`], length })
  }
  return out
}

/** Every regular file under `dir`, relative, sorted (symlinks and other kinds listed with a marker). */
export const filesUnder = (dir: string): Array<string> =>
  (Fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<Fs.Dirent>)
    .filter((e) => !e.isDirectory())
    .map((e) => Path.relative(dir, Path.join(e.parentPath, e.name)) + (e.isFile() ? "" : " (not a regular file)"))
    .sort()

const CHUNK = 4 * 1024 * 1024

/** The first offset at which the two files differ (within the shorter one's length), -1 if none. */
const firstDifference = (a: string, b: string, length: number): number => {
  const fa = Fs.openSync(a, "r")
  const fb = Fs.openSync(b, "r")
  try {
    const ba = Buffer.allocUnsafe(CHUNK)
    const bb = Buffer.allocUnsafe(CHUNK)
    for (let at = 0; at < length; at += CHUNK) {
      const n = Math.min(CHUNK, length - at)
      const ra = Fs.readSync(fa, ba, 0, n, at)
      const rb = Fs.readSync(fb, bb, 0, n, at)
      const m = Math.min(ra, rb)
      if (ba.subarray(0, m).compare(bb.subarray(0, m)) !== 0) {
        for (let i = 0; i < m; i++) if (ba[i] !== bb[i]) return at + i
      }
      if (ra !== n || rb !== n) return at + m
    }
    return -1
  } finally {
    Fs.closeSync(fa)
    Fs.closeSync(fb)
  }
}

/**
 * What differs between `outDir` and `referenceDir` (the seeder's copy), each file `expected` lists (relative paths,
 * with the length the torrent gives): missing, a size other than the torrent's, bytes that differ (the first
 * offset); and any file under `outDir` that is not listed. Empty when the download is exactly right.
 */
export const differences = (
  expected: ReadonlyArray<{ readonly path: string; readonly length: number }>,
  referenceDir: string,
  outDir: string
): Array<string> => {
  const problems: Array<string> = []
  for (const f of expected) {
    const got = Path.join(outDir, f.path)
    const ref = Path.join(referenceDir, f.path)
    const st = Fs.lstatSync(got, { throwIfNoEntry: false })
    if (st === undefined) {
      problems.push(`${f.path}: missing`)
      continue
    }
    if (!st.isFile()) {
      problems.push(`${f.path}: not a regular file`)
      continue
    }
    const refSize = Fs.statSync(ref).size
    if (refSize !== f.length) {
      problems.push(`${f.path}: the reference copy has ${refSize} bytes, the torrent says ${f.length}`)
    }
    const sizeNote = st.size === f.length ? "" : ` (${st.size} bytes, the torrent says ${f.length})`
    const at = firstDifference(got, ref, Math.min(st.size, f.length))
    if (at >= 0) problems.push(`${f.path}: differs from byte ${at}${sizeNote}`)
    else if (sizeNote !== "") problems.push(`${f.path}:${sizeNote}`)
  }
  const listed = new Set(expected.map((f) => f.path))
  for (const extra of filesUnder(outDir)) if (!listed.has(extra)) problems.push(`${extra}: not in the torrent`)
  return problems
}
