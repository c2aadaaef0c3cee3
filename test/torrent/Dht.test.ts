/**
 * The client's DHT node with our own clients on loopback: a seeder announces through the DHT, a magnet link with
 * nothing but `xt` finds it there, fetches the metadata and downloads; the routing table is kept in the state
 * directory between runs. (Against libtorrent's DHT: test/torrent/swarm.interop.test.ts.)
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import { createHash } from "node:crypto"
import * as Client from "../../src/session/Client.ts"
import * as StateFiles from "../../src/session/StateFiles.ts"
import { writeData } from "../support/data.ts"
import { readFile, tempDir, testClient } from "../support/download.ts"
import { build, deadPort } from "../support/seeder.ts"

const host = "127.0.0.1"
const node = { queryTimeout: "1 second", queriesPerSecond: 1000, burst: 100 } as const
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const b = build({ name: "dht", pieceLength: 32768, files: [{ path: ["x.bin"], length: 500_000 }] })

describe("DHT peer source", () => {
  it.scopedLive("a magnet with only xt finds our seeder through the DHT and downloads", () =>
    Effect.gen(function*() {
      const data = tempDir("dht-seed")
      writeData(b, data)
      const seederState = tempDir("dht-seed-state")
      const a = yield* Layer.build(testClient({
        listen: { host, port: 0 },
        stateDir: seederState,
        dht: { host, bootstrap: [], node, interval: "500 millis" }
      }))
      yield* Client.seed(b.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(a))
      const aNode = yield* Effect.flatMap(Client.Client, (c) => c.dht).pipe(Effect.provide(a))
      expect(aNode).toBeDefined()
      // The leecher knows nothing but the info-hash and one DHT node to start from.
      const out = tempDir("dht-out")
      yield* Effect.scoped(Effect.gen(function*() {
        const magnet = { infoHashes: { v1: b.metainfo.infoHash }, trackers: [], webSeeds: [], peers: [] }
        const d = yield* Client.download(magnet, { outputDir: out, trackers: false })
        yield* d.done.pipe(Effect.timeout("30 seconds"))
      })).pipe(
        Effect.provide(testClient({
          dht: { host, bootstrap: [{ host, port: aNode!.local.port }], node, interval: "500 millis" }
        }))
      )
      expect(sha(readFile(b, out, 0))).toBe(sha(b.files[0]!))
    }), 60_000)

  it.scopedLive("every tracker down: the DHT alone finds the seeder and the download completes", () =>
    Effect.gen(function*() {
      const [p1, p2] = [yield* Effect.promise(deadPort), yield* Effect.promise(deadPort)]
      const t = build({
        name: "dht-no-trackers.bin",
        single: true,
        pieceLength: 32768,
        files: [{ path: ["dht-no-trackers.bin"], length: 300_001 }],
        announceList: [[`http://127.0.0.1:${p1}/announce`], [`udp://127.0.0.1:${p2}`]]
      })
      const data = tempDir("dht-td-seed")
      writeData(t, data)
      const a = yield* Layer.build(testClient({ listen: { host, port: 0 }, dht: { host, bootstrap: [], node, interval: "500 millis" } }))
      yield* Client.seed(t.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(a))
      const aNode = (yield* Effect.flatMap(Client.Client, (c) => c.dht).pipe(Effect.provide(a)))!
      const out = tempDir("dht-td-out")
      const events = yield* Effect.scoped(Effect.gen(function*() {
        const d = yield* Client.download(t.metainfo, { outputDir: out, trackers: true })
        const collected = yield* Effect.forkScoped(Stream.runCollect(d.events))
        yield* d.done.pipe(Effect.timeout("30 seconds"))
        return Chunk.toReadonlyArray(yield* Fiber.join(collected))
      })).pipe(
        Effect.provide(
          Client.layerWith({
            noPeersTimeout: "20 seconds",
            dht: { host, bootstrap: [{ host, port: aNode.local.port }], node, interval: "500 millis" }
          }).pipe(Layer.provide(TrackerLive.layer()), Layer.provide(Hasher.layerInline))
        )
      )
      expect(events.filter((e) => e._tag === "TrackerError").length).toBeGreaterThan(0)
      expect(events.at(-1)?._tag).toBe("Completed")
      expect(sha(readFile(t, out, 0))).toBe(sha(t.files[0]!))
    }), 60_000)

  it.scopedLive("the routing table is saved in the state directory and reloaded", () =>
    Effect.gen(function*() {
      const stateA = tempDir("dht-state-a")
      const stateB = tempDir("dht-state-b")
      const a = yield* Layer.build(testClient({ stateDir: stateA, dht: { host, bootstrap: [], node } }))
      const aNode = (yield* Effect.flatMap(Client.Client, (c) => c.dht).pipe(Effect.provide(a)))!
      // B learns A at bootstrap, then closes: its table goes to dht.json.
      const idB = yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Client.Client
        const n = (yield* client.dht)!
        yield* Effect.repeat(n.table, {
          schedule: Schedule.spaced("50 millis"),
          until: (t) => t.buckets.some((bk) => bk.nodes.length > 0)
        }).pipe(
          Effect.timeout("10 seconds")
        )
        return n.id
      }).pipe(Effect.provide(testClient({ stateDir: stateB, dht: { host, bootstrap: [{ host, port: aNode.local.port }], node } }))))
      const saved = yield* StateFiles.loadDht(stateB)
      expect(saved?.id).toBe(Buffer.from(idB).toString("hex"))
      expect(saved?.nodes.map((x) => x.port)).toContain(aNode.local.port)
      // A new run without any bootstrap node starts from the saved table (same id, A known).
      const reloaded = yield* Effect.scoped(Effect.gen(function*() {
        const n = (yield* (yield* Client.Client).dht)!
        return { id: n.id, table: yield* n.table }
      }).pipe(Effect.provide(testClient({ stateDir: stateB, dht: { host, bootstrap: [], node } }))))
      expect(Buffer.from(reloaded.id).toString("hex")).toBe(saved!.id)
      expect(reloaded.table.buckets.flatMap((bk) => bk.nodes).map((x) => x.port)).toContain(aNode.local.port)
      expect(Fs.existsSync(StateFiles.dhtPath(stateB))).toBe(true)
    }), 30_000)
})
