/** Torrent fixtures and temp directories for the storage tests. */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import type * as Storage from "../../src/storage/Storage.ts"

export interface Torrent {
  readonly files: ReadonlyArray<Storage.StorageFile>
  readonly pieceLength: number
  /** Concatenated torrent bytes, pads as zeros. */
  readonly payload: Uint8Array
  readonly hashes: Uint8Array
  readonly pieceCount: number
}

export interface FileSpec {
  readonly length: number
  readonly pad?: boolean
  readonly path?: ReadonlyArray<string>
}

/** Deterministic pseudo-random bytes (xorshift). */
export const randomBytes = (n: number, seed = 1): Uint8Array => {
  const out = new Uint8Array(n)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

export const torrent = (specs: ReadonlyArray<FileSpec>, pieceLength: number, seed = 7): Torrent => {
  const files = specs.map((s, i): Storage.StorageFile => ({
    path: s.path ?? (s.pad === true ? [".pad", String(s.length)] : [`f${i}.bin`]),
    length: s.length,
    pad: s.pad === true
  }))
  const total = specs.reduce((n, s) => n + s.length, 0)
  const payload = randomBytes(total, seed)
  let off = 0
  for (const s of specs) {
    if (s.pad === true) payload.fill(0, off, off + s.length)
    off += s.length
  }
  const pieceCount = Math.ceil(total / pieceLength)
  const hashes = new Uint8Array(pieceCount * 20)
  for (let i = 0; i < pieceCount; i++) {
    hashes.set(Bytes.sha1(payload.subarray(i * pieceLength, Math.min(total, (i + 1) * pieceLength))), i * 20)
  }
  return { files, pieceLength, payload, hashes, pieceCount }
}

/** A copy of piece `i` in its own ArrayBuffer. */
export const pieceOf = (t: Torrent, i: number): Uint8Array =>
  t.payload.slice(i * t.pieceLength, Math.min(t.payload.length, (i + 1) * t.pieceLength))

/** Torrent byte offset of file `f`. */
export const fileStart = (t: Torrent, f: number): number => t.files.slice(0, f).reduce((n, e) => n + e.length, 0)

export const fileContent = (t: Torrent, f: number): Uint8Array =>
  t.payload.subarray(fileStart(t, f), fileStart(t, f) + t.files[f]!.length)

/** A fresh temp directory, removed when the scope closes. */
export const tempDir: Effect.Effect<string, never, import("effect/Scope").Scope> = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "et-storage-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Every path under `dir` (relative, sorted), directories marked with a trailing "/". */
export const listTree = (dir: string): Array<string> => {
  const out: Array<string> = []
  const walk = (d: string, prefix: string) => {
    for (const e of Fs.readdirSync(d, { withFileTypes: true })) {
      const rel = prefix + e.name
      if (e.isDirectory()) {
        out.push(rel + "/")
        walk(Path.join(d, e.name), rel + "/")
      } else out.push(rel)
    }
  }
  walk(dir, "")
  return out.sort()
}

/** Shuffled 0..n-1. */
export const shuffled = (n: number, seed: number): Array<number> => {
  const order = Array.from({ length: n }, (_, i) => i)
  const r = randomBytes(n * 4, seed)
  for (let i = n - 1; i > 0; i--) {
    const j = ((r[i * 4]! | (r[i * 4 + 1]! << 8) | (r[i * 4 + 2]! << 16)) >>> 0) % (i + 1)
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  return order
}

/** Random layouts: a few files of odd sizes (some empty), some pads, small piece lengths. */
export const layoutArb = FastCheck.record({
  specs: FastCheck.array(
    FastCheck.record({ length: FastCheck.integer({ min: 0, max: 9000 }), pad: FastCheck.boolean() }),
    { minLength: 1, maxLength: 6 }
  ).filter((s) => s.some((f) => !f.pad && f.length > 0)),
  pieceLength: FastCheck.oneof(FastCheck.integer({ min: 256, max: 5000 }), FastCheck.constantFrom(1024, 4096, 16384)),
  seed: FastCheck.integer({ min: 1, max: 1 << 30 })
})

/** Byte equality that stays fast on MiB arrays (vitest's deep equality walks element by element). */
export const sameBytes = (got: Uint8Array, want: Uint8Array): string => {
  const view = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
  if (view(got).equals(view(want))) return "same"
  let i = 0
  while (i < got.length && i < want.length && got[i] === want[i]) i++
  return `differ at ${i} (lengths ${got.length}, ${want.length})`
}
