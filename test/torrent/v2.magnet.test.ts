/**
 * btmh magnets against in-process fake peers (no third-party client needed): the piece layers' proofs are checked
 * before use, a peer sending a bad proof is dropped and never asked again, a v2-only fetch whose layers nobody sends
 * fails with a clear message, and an honest peer beside a lying one completes the download byte-identical.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Magnet from "../../src/metainfo/Magnet.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Client from "../../src/session/Client.ts"
import { tempDir, testClient } from "../support/download.ts"
import { type Built, seed, type Seeder } from "../support/seeder.ts"
import { buildV2 } from "../support/v2.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))
const started = async (built: Built, options: Parameters<typeof seed>[1]) => {
  const s = await seed(built, options)
  seeders.push(s)
  return s
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

/** Six files of three pieces each (six layer requests) and a small one. */
const built = buildV2({
  name: "fake-btmh",
  format: "v2",
  pieceLength: 32768,
  files: [
    ...Array.from({ length: 6 }, (_, i) => ({ path: [`f${i}.bin`], length: 2 * 32768 + 100 * (i + 1) })),
    { path: ["small"], length: 999 }
  ]
})

const magnet = (ports: ReadonlyArray<number>): Magnet.Magnet => {
  const uri = `magnet:?xt=urn:btmh:1220${Bytes.toHex(built.metainfo.infoHashV2!)}` +
    ports.map((p) => `&x.pe=127.0.0.1:${p}`).join("")
  const parsed = Magnet.parse(uri)
  if (Either.isLeft(parsed)) throw new Error(parsed.left.message)
  return parsed.right
}

describe("btmh magnets: piece layers from fake peers", () => {
  it.live("a peer whose layer proofs do not verify is dropped and not dialled again; with nobody else the fetch fails saying so", () =>
    Effect.gen(function*() {
      const liar = yield* Effect.promise(() => started(built, { metadata: "honest", hashes: "liar" }))
      const error = yield* Client.fetchMetadata(magnet([liar.port]), { trackers: false, timeout: "2 seconds" }).pipe(
        Effect.provide(testClient()),
        Effect.flip
      )
      expect(error.reason).toBe("no-peers")
      expect(error.message).toMatch(/no peer sent the piece layers/)
      // asked once (at most 4 requests in flight at a peer), then dropped on the first bad proof and never asked
      // again: a redial would have brought more requests
      expect(liar.hashRequests()).toBeGreaterThan(0)
      expect(liar.hashRequests()).toBeLessThanOrEqual(4)
    }))

  it.live("an honest peer beside a lying and a rejecting one: layers verified, the download byte-identical, the saved torrent complete", () =>
    Effect.gen(function*() {
      const liar = yield* Effect.promise(() => started(built, { metadata: "honest", hashes: "liar" }))
      const rejecter = yield* Effect.promise(() => started(built, { metadata: "honest", hashes: "reject" }))
      const honest = yield* Effect.promise(() => started(built, { metadata: "honest", hashes: "honest" }))
      const dir = tempDir("fake-btmh")
      const save = Path.join(tempDir("fake-btmh-save"), "t.torrent")
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(magnet([liar.port, rejecter.port, honest.port]), {
          outputDir: dir,
          trackers: false,
          saveTorrent: save
        })
        yield* d.done
      })).pipe(Effect.provide(testClient()))
      built.metainfo.files.forEach((f, i) => {
        if (f.pad) return
        expect(sha(Fs.readFileSync(Path.join(dir, ...f.path))), f.path.join("/")).toBe(sha(built.files[i]!))
      })
      const saved = Metainfo.decode(Fs.readFileSync(save), { v2Only: true })
      if (Either.isLeft(saved)) throw new Error(saved.left.message)
      expect(Metainfo.pieceLayerStatus(saved.right)).toEqual({ needed: 6, present: 6 })
    }))

  it.live("the layers are kept with the metadata in the state directory: a second run of the magnet, with no peer left, verifies the data on disk by Merkle roots and is complete", () =>
    Effect.gen(function*() {
      const honest = yield* Effect.promise(() => started(built, { metadata: "honest", hashes: "honest" }))
      const dir = tempDir("btmh-resume")
      const stateDir = tempDir("btmh-resume-state")
      const run = (ports: ReadonlyArray<number>) =>
        Effect.scoped(Effect.gen(function*() {
          const d = yield* Client.download(magnet(ports), { outputDir: dir, trackers: false })
          yield* d.done
          return yield* d.metainfo
        })).pipe(Effect.provide(testClient({ stateDir })))
      yield* run([honest.port])
      yield* Effect.promise(() => honest.stop())
      const again = yield* run([])
      expect(Metainfo.pieceLayerStatus(again)).toEqual({ needed: 6, present: 6 })
      built.metainfo.files.forEach((f, i) => {
        if (f.pad) return
        expect(sha(Fs.readFileSync(Path.join(dir, ...f.path))), f.path.join("/")).toBe(sha(built.files[i]!))
      })
    }))

  it.live("a hybrid by btih+btmh whose peers refuse the layers goes on after the no-peers timeout, verified by its SHA-1s", () =>
    Effect.gen(function*() {
      const hybrid = buildV2({
        name: "fake-hybrid",
        format: "hybrid",
        pieceLength: 32768,
        files: [{ path: ["a.bin"], length: 3 * 32768 + 5 }, { path: ["b"], length: 10 }]
      })
      const rejecter = yield* Effect.promise(() => started(hybrid, { metadata: "honest", hashes: "reject" }))
      const m = hybrid.metainfo
      const uri = `magnet:?xt=urn:btih:${Bytes.toHex(m.infoHash)}&xt=urn:btmh:1220${Bytes.toHex(m.infoHashV2!)}` +
        `&x.pe=127.0.0.1:${rejecter.port}`
      const parsed = Magnet.parse(uri)
      if (Either.isLeft(parsed)) throw new Error(parsed.left.message)
      const fetched = yield* Client.fetchMetadata(parsed.right, { trackers: false, timeout: "2 seconds" }).pipe(
        Effect.provide(testClient())
      )
      expect(rejecter.hashRequests()).toBeGreaterThan(0)
      expect(Metainfo.pieceLayerStatus(fetched.metainfo)).toEqual({ needed: 1, present: 0 })
      const dir = tempDir("fake-hybrid")
      yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(fetched.metainfo, { outputDir: dir, trackers: false, peers: [{ host: "127.0.0.1", port: rejecter.port }] })
        yield* d.done
      })).pipe(Effect.provide(testClient()))
      hybrid.metainfo.files.forEach((f, i) => {
        if (f.pad) return
        expect(sha(Fs.readFileSync(Path.join(dir, ...f.path))), f.path.join("/")).toBe(sha(hybrid.files[i]!))
      })
    }))
})
