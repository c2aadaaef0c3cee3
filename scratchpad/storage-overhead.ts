// Main-thread cost per piece of Storage.writePiece + verifyPiece (FileStorage, inline hasher) with tiny pieces, so
// the Effect and bookkeeping overhead shows rather than the copy: npx tsx scratchpad/storage-overhead.ts [pieces]
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as FileStorage from "../src/storage/FileStorage.ts"
import * as Hasher from "../src/storage/Hasher.ts"
import { createHash } from "node:crypto"

const N = Number(process.argv[2] ?? 20000)
const L = 64
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "so-"))
const piece = new Uint8Array(L).fill(7)
const h = createHash("sha1").update(piece).digest()
const hashes = new Uint8Array(20 * N)
for (let i = 0; i < N; i++) hashes.set(h, 20 * i)
const program = Effect.gen(function*() {
  const s = yield* FileStorage.make({ outputDir: dir, files: [{ path: ["f.bin"], length: L * N, pad: false }] as never, pieceLength: L, pieceHashes: hashes } as never)
  for (const mode of ["write", "verify+write", "write", "verify+write"]) {
    const t0 = process.cpuUsage(); const w0 = performance.now()
    for (let i = 0; i < N; i++) {
      if (mode === "verify+write") { const v = yield* s.verifyPiece(i, piece); if (!v.ok) throw new Error("bad") }
      yield* s.writePiece(i, piece)
    }
    const u = process.cpuUsage(t0)
    console.log(`${mode}: ${((performance.now() - w0) * 1000 / N).toFixed(1)} µs wall, ${((u.user + u.system) / N).toFixed(1)} µs CPU (sys ${(u.system / N).toFixed(1)}) per piece`)
  }
})
await Effect.runPromise(Effect.scoped(Effect.provide(program, Hasher.layerInline)))
Fs.rmSync(dir, { recursive: true })
