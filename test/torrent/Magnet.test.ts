/**
 * Magnet links end to end on loopback: the info dict fetched over ut_metadata (BEP 9) from in-process seeders,
 * verified against the info-hash, then the download proceeds as with a `.torrent`. Real clients: interop tests.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Bytes from "../../src/core/Bytes.ts"
import type * as Magnet from "../../src/metainfo/Magnet.ts"
import * as Client from "../../src/session/Client.ts"
import * as StateFiles from "../../src/session/StateFiles.ts"
import { readFile, tempDir, testClient } from "../support/download.ts"
import { build, type Built, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const payload = build({
  name: "magnetic",
  // Several metadata pieces: 2000 pieces × 20 bytes of hashes ≈ 40 KB of info dict = 3 ut_metadata pieces.
  pieceLength: 16384,
  files: [{ path: ["a.bin"], length: 16384 * 1500 + 77 }, { path: ["b", "c.bin"], length: 16384 * 500 }]
})

const magnetOf = (b: Built, ports: ReadonlyArray<number>): Magnet.Magnet => ({
  infoHashes: { v1: b.metainfo.infoHash },
  trackers: [],
  webSeeds: [],
  peers: ports.map((port) => ({ host: "127.0.0.1", port }))
})

const identical = (b: Built, dir: string) =>
  b.metainfo.files.forEach((_, i) => expect(sha(readFile(b, dir, i))).toBe(sha(b.files[i]!)))

describe("magnet links (BEP 9)", () => {
  it.scopedLive("fetches the metadata from a peer, then downloads; events say so", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => seed(payload, { metadata: "honest" }))
      seeders.push(s)
      const dir = tempDir("magnet")
      const d = yield* Client.download(magnetOf(payload, [s.port]), { outputDir: dir, trackers: false })
      const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
      yield* d.done
      const events = Chunk.toReadonlyArray(yield* Fiber.join(collected)).map((e) => e._tag)
      expect(events).toContain("MetadataReceived")
      expect(events.indexOf("MetadataReceived")).toBeLessThan(events.indexOf("Started"))
      expect(events.at(-1)).toBe("Completed")
      const m = yield* d.metainfo
      expect(Bytes.toHex(m.infoHash)).toBe(Bytes.toHex(payload.metainfo.infoHash))
      expect(m.name).toBe("magnetic")
      identical(payload, dir)
      expect(s.metadataServed()).toBeGreaterThanOrEqual(3)
    }).pipe(Effect.provide(testClient())), 30_000)

  it.scopedLive("a peer sending bad metadata is dropped; an honest one completes it", () =>
    Effect.gen(function*() {
      const liar = yield* Effect.promise(() => seed(payload, { metadata: "liar" }))
      const honest = yield* Effect.promise(() => seed(payload, { metadata: "honest" }))
      seeders.push(liar, honest)
      const fetched = yield* Client.fetchMetadata(magnetOf(payload, [liar.port, honest.port]), { trackers: false })
      expect(Bytes.toHex(fetched.metainfo.infoHash)).toBe(Bytes.toHex(payload.metainfo.infoHash))
      // The .torrent keeps the info dict verbatim.
      expect(Bytes.toHex(Bytes.sha1(fetched.metainfo.rawInfo))).toBe(Bytes.toHex(payload.metainfo.infoHash))
      expect(fetched.peers.map((p) => p.port)).not.toContain(liar.port)
    }).pipe(Effect.provide(testClient())), 60_000)

  it.scopedLive("keeps the metadata in the state directory: a second fetch needs no peer", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => seed(payload, { metadata: "honest" }))
      seeders.push(s)
      const stateDir = tempDir("magnet-state")
      const magnet = magnetOf(payload, [s.port])
      yield* Client.fetchMetadata(magnet, { trackers: false }).pipe(Effect.provide(testClient({ stateDir })))
      const cached = yield* StateFiles.loadTorrent(stateDir, payload.metainfo.infoHash)
      expect(Option.isSome(cached)).toBe(true)
      yield* Effect.promise(() => s.stop())
      const again = yield* Client.fetchMetadata(magnetOf(payload, []), { trackers: false }).pipe(
        Effect.provide(testClient({ stateDir }))
      )
      expect(again.metainfo.name).toBe("magnetic")
    }), 30_000)

  it.scopedLive("--save-torrent: the .torrent written is the one the info-hash names", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => seed(payload, { metadata: "honest" }))
      seeders.push(s)
      const dir = tempDir("magnet-save")
      const file = Path.join(dir, "saved.torrent")
      const d = yield* Client.download(magnetOf(payload, [s.port]), {
        outputDir: Path.join(dir, "out"),
        trackers: false,
        saveTorrent: file,
        only: [1]
      })
      yield* d.done
      const saved = new Uint8Array(Fs.readFileSync(file))
      expect(Bytes.toHex(Bytes.sha1(yield* Effect.map(d.metainfo, (m) => m.rawInfo)))).toBe(
        Bytes.toHex(payload.metainfo.infoHash)
      )
      expect(saved.length).toBeGreaterThan(payload.metainfo.rawInfo.length)
      expect(Fs.existsSync(Path.join(dir, "out", "magnetic", "a.bin"))).toBe(false)
      expect(sha(readFile(payload, Path.join(dir, "out"), 1))).toBe(sha(payload.files[1]!))
    }).pipe(Effect.provide(testClient())), 30_000)

  it.scopedLive("no peer offering metadata: fails with no-peers within the timeout", () =>
    Effect.gen(function*() {
      const plain = yield* Effect.promise(() => seed(payload)) // no extension protocol
      seeders.push(plain)
      const e = yield* Effect.flip(
        Client.fetchMetadata(magnetOf(payload, [plain.port]), { trackers: false, timeout: "2 seconds" })
      )
      expect(e.reason).toBe("no-peers")
      expect(e.message).toContain("metadata")
    }).pipe(Effect.provide(testClient())), 30_000)
})
