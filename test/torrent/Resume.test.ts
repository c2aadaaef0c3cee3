/**
 * Fast resume end to end (Client + Torrent + ResumeStore + FileStorage): a record saved when the scope closes lets
 * the next start trust its pieces without hashing them; a changed file costs only its own pieces; a corrupt or
 * foreign record is ignored. Hashing is observed through a Hasher wrapper that maps each digest to its piece.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as ResumeRecord from "../../src/storage/ResumeRecord.ts"
import { download, noTracker, readFile, tempDir } from "../support/download.ts"
import { build, type Built, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
const start = (built: Built) =>
  Effect.promise(() => seed(built)).pipe(Effect.tap((s) => Effect.sync(() => seeders.push(s))))
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

/** Records, per piece, how often bytes hashing to its expected digest went through the hasher. */
const countingHasher = (built: Built) => {
  const n = built.metainfo.pieceCount
  const byDigest = new Map<string, number>()
  for (let i = 0; i < n; i++) byDigest.set(Bytes.toHex(built.metainfo.pieces.subarray(i * 20, i * 20 + 20)), i)
  const counts = new Array<number>(n).fill(0)
  let calls = 0
  const shape: Hasher.HasherShape = {
    sha1: (data) =>
      Effect.tap(Hasher.inline.sha1(data), (r) =>
        Effect.sync(() => {
          calls++
          const i = byDigest.get(Bytes.toHex(r.digest))
          if (i !== undefined) counts[i]!++
        }))
  }
  return {
    shape,
    hashedPieces: () => counts.flatMap((c, i) => (c > 0 ? [i] : [])),
    calls: () => calls,
    reset: () => {
      counts.fill(0)
      calls = 0
    }
  }
}

const clientWith = (hasher: Hasher.HasherShape, stateDir: string) =>
  Client.layerWith({
    noPeersTimeout: "10 seconds",
    peerConfig: { requestTimeout: 1_000, tickInterval: 100, connectTimeout: 2_000 },
    stateDir
  }).pipe(Layer.provide(noTracker), Layer.provide(Layer.succeed(Hasher.Hasher, hasher)))

const readRecord = (built: Built, stateDir: string) => {
  const bytes = Fs.readFileSync(ResumeRecord.pathFor(stateDir, built.metainfo.infoHash))
  const r = ResumeRecord.decode(new Uint8Array(bytes), {
    infoHash: built.metainfo.infoHash,
    pieceCount: built.metainfo.pieceCount,
    pieceLength: built.metainfo.pieceLength
  })
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

const all = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("fast resume (Client, FileStorage, state directory)", () => {
  const big = build({
    name: "resume.bin",
    single: true,
    files: [{ path: ["resume.bin"], length: 2_000_003 }],
    pieceLength: 65536
  })

  it.live("a download stopped half-way restarts trusting the recorded pieces: not hashed, not fetched", () =>
    Effect.gen(function*() {
      const dir = tempDir("rs-half")
      const stateDir = tempDir("rs-state")
      const hasher = countingHasher(big)
      const first = yield* start(big)
      let verified = 0
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(big.metainfo, {
          outputDir: dir,
          peers: [{ host: "127.0.0.1", port: first.port }],
          trackers: false
        })
        yield* d.events.pipe(
          Stream.takeWhile(() => verified < 10),
          Stream.runForEach((e) => Effect.sync(() => e._tag === "PieceVerified" && verified++))
        )
      })).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      // Saved when the scope closed.
      const record = readRecord(big, stateDir)
      const recorded = Bitfield.indices(record.verified)
      expect(recorded.length).toBeGreaterThanOrEqual(10)
      expect(recorded.length).toBeLessThan(big.metainfo.pieceCount)

      hasher.reset()
      const second = yield* start(big)
      const out = yield* download(big, dir, [second.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      const started = out.events.find((e) => e._tag === "Started")
      expect(started?._tag === "Started" ? started.have : -1).toBeGreaterThanOrEqual(recorded.length)
      // No recorded piece went through the hasher (nor was served) in the second run; every other one did, once.
      const hashed = new Set(hasher.hashedPieces())
      for (const i of recorded) {
        expect(hashed.has(i)).toBe(false)
        expect(second.servedOf(i)).toBe(0)
      }
      expect(hashed.size).toBe(big.metainfo.pieceCount - recorded.length)
      expect(Buffer.compare(readFile(big, dir, 0), Buffer.from(big.files[0]!))).toBe(0)
      // The record now says everything.
      expect(Bitfield.count(readRecord(big, stateDir).verified)).toBe(big.metainfo.pieceCount)
    }))

  const two = build({
    name: "two",
    pieceLength: 32768,
    files: [{ path: ["a.bin"], length: 200_000 }, { path: ["b.bin"], length: 150_000 }]
  })

  it.live("a file whose mtime or size changed has its pieces re-verified; the other file's are trusted", () =>
    Effect.gen(function*() {
      const dir = tempDir("rs-changed")
      const stateDir = tempDir("rs-state")
      const hasher = countingHasher(two)
      const s = yield* start(two)
      yield* download(two, dir, [s.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      expect(Bitfield.count(readRecord(two, stateDir).verified)).toBe(two.metainfo.pieceCount)
      const pl = two.metainfo.pieceLength
      const aPieces = all(Math.floor(200_000 / pl)) // pieces entirely inside a.bin
      const bPieces = all(two.metainfo.pieceCount).filter((i) => (i + 1) * pl > 200_000) // touching b.bin

      // Same bytes, another mtime: b's pieces are re-hashed (and pass), a's are trusted; nothing is fetched.
      const b = Path.join(dir, ...two.metainfo.files[1]!.path)
      Fs.utimesSync(b, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000))
      hasher.reset()
      const again = yield* start(two)
      yield* download(two, dir, [again.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      expect(hasher.hashedPieces()).toEqual(bPieces)
      expect(again.served()).toBe(0)

      // One byte lost at the end of b: its pieces are re-verified, the last one fetched again; a's still trusted.
      Fs.truncateSync(b, 150_000 - 1)
      hasher.reset()
      const third = yield* start(two)
      yield* download(two, dir, [third.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      const hashed = hasher.hashedPieces()
      for (const i of aPieces) expect(hashed).not.toContain(i)
      expect(third.servedOf(two.metainfo.pieceCount - 1)).toBeGreaterThan(0)
      expect(third.served()).toBe(third.servedOf(two.metainfo.pieceCount - 1))
      two.metainfo.files.forEach((_, f) => {
        expect(Buffer.compare(readFile(two, dir, f), Buffer.from(two.files[f]!))).toBe(0)
      })
    }))

  it.live("seed: pieces the record vouches for are not re-read; a touched file's pieces are", () =>
    Effect.gen(function*() {
      const dir = tempDir("rs-seed")
      const stateDir = tempDir("rs-state")
      const hasher = countingHasher(two)
      const s = yield* start(two)
      yield* download(two, dir, [s.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      const seedOnce = Effect.scoped(
        Effect.flatMap(
          Client.seed(two.metainfo, { dataDir: dir, trackers: false }),
          (d) => Effect.zipRight(d.done, Effect.sync(d.stats))
        )
      ).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      hasher.reset()
      expect((yield* seedOnce).bytesLeft).toBe(0)
      expect(hasher.calls()).toBe(0)
      const b = Path.join(dir, ...two.metainfo.files[1]!.path)
      Fs.utimesSync(b, new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000))
      hasher.reset()
      yield* seedOnce
      const pl = two.metainfo.pieceLength
      expect(hasher.hashedPieces()).toEqual(all(two.metainfo.pieceCount).filter((i) => (i + 1) * pl > 200_000))
    }))

  it.live("a corrupt record, or one for another torrent, is ignored: every piece is re-checked", () =>
    Effect.gen(function*() {
      const dir = tempDir("rs-corrupt")
      const stateDir = tempDir("rs-state")
      const hasher = countingHasher(two)
      const s = yield* start(two)
      yield* download(two, dir, [s.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      const path = ResumeRecord.pathFor(stateDir, two.metainfo.infoHash)
      const n = two.metainfo.pieceCount
      const servedFirst = s.served()

      Fs.writeFileSync(path, "d7:versioni1e5:junk!")
      hasher.reset()
      yield* download(two, dir, [s.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      expect(hasher.hashedPieces()).toEqual(all(n))

      // A valid record, but for another torrent, under this torrent's name.
      const other = readRecord(two, stateDir)
      Fs.writeFileSync(path, ResumeRecord.encode({ ...other, infoHash: big.metainfo.infoHash }))
      hasher.reset()
      yield* download(two, dir, [s.port]).pipe(Effect.provide(clientWith(hasher.shape, stateDir)))
      expect(hasher.hashedPieces()).toEqual(all(n))
      expect(s.served()).toBe(servedFirst) // the data was complete: nothing fetched
      // Each run saved a good record again.
      expect(Bitfield.count(readRecord(two, stateDir).verified)).toBe(n)
    }))
})
