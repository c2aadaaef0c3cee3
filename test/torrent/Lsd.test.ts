/**
 * A running torrent and local service discovery (the socket side is LsdNetns.test.ts): a public torrent registers
 * its info-hash while it runs (a hybrid both of its hashes) and dials the peers LSD hands it — here the only source
 * of an in-process seeder, so the download completing proves it; a private torrent never registers (BEP 27), checked
 * once its download from a given peer is complete, by which time a registration would have happened.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Bytes from "../../src/core/Bytes.ts"
import * as PeerIdentity from "../../src/core/PeerIdentity.ts"
import type * as Lsd from "../../src/net/Lsd.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as MemoryStorage from "../../src/storage/MemoryStorage.ts"
import * as Torrent from "../../src/torrent/Torrent.ts"
import * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import { noTracker } from "../support/download.ts"
import { build, type Built, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const PIECE = 32768
const b = build({ name: "lsd.bin", single: true, files: [{ path: ["lsd.bin"], length: 12 * PIECE }], pieceLength: PIECE })

const memory = (built: Built) =>
  MemoryStorage.make({
    files: built.metainfo.files.map((f) => ({ path: f.path, length: f.length, pad: f.pad })),
    pieceLength: built.metainfo.pieceLength,
    pieceHashes: built.metainfo.pieces
  }).pipe(Effect.provide(Hasher.layerInline))

/** An Lsd that records registrations and, for each, hands over `peers` at once (as a LAN announce would). */
const fakeLsd = (peers: ReadonlyArray<{ host: string; port: number }>) => {
  const registered: Array<string> = []
  const released: Array<string> = []
  const lsd: Lsd.Lsd = {
    register: (infoHash, onPeer) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          registered.push(Bytes.toHex(infoHash))
          for (const p of peers) onPeer(p.host, p.port)
        }),
        () => Effect.sync(() => released.push(Bytes.toHex(infoHash)))
      ),
    counters: () => ({ sent: 0, received: 0, peers: 0 })
  }
  return { lsd, registered, released }
}

const peerConfig = { requestTimeout: 2_000, tickInterval: 100, connectTimeout: 2_000 }

describe("Torrent with local service discovery", () => {
  it.live("a public torrent registers its info-hash and downloads from the peer LSD found; released when it ends", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => seed(b))
      seeders.push(s)
      const fake = fakeLsd([{ host: "127.0.0.1", port: s.port }])
      yield* Effect.scoped(Effect.gen(function*() {
        const storage = yield* memory(b)
        const events = yield* Torrent.makeEvents()
        const seen = yield* PubSub.subscribe(events)
        const t = yield* Torrent.start({
          metainfo: b.metainfo,
          storage,
          peerId: PeerIdentity.generate(),
          peerConfig,
          lsd: fake.lsd,
          events
        })
        yield* t.done.pipe(Effect.timeout("20 seconds"))
        expect(Buffer.compare(storage.contents(0)!, Buffer.from(b.files[0]!))).toBe(0)
        // the peer list says where it came from (issue 19 item 5)
        const connected = Chunk.toReadonlyArray(yield* Queue.takeAll(seen)).filter(TorrentEvent.$is("PeerConnected"))
        expect(connected.map((e) => [e.addr, e.transport, e.source, e.sources])).toEqual([
          [`127.0.0.1:${s.port}`, "tcp", "lsd", ["lsd"]]
        ])
        expect(fake.registered).toEqual([Bytes.toHex(b.metainfo.infoHash)])
      }))
      expect(fake.released).toEqual([Bytes.toHex(b.metainfo.infoHash)])
    }).pipe(Effect.provide(noTracker)))

  it.live("a private torrent never registers", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => seed(b))
      seeders.push(s)
      const fake = fakeLsd([])
      yield* Effect.scoped(Effect.gen(function*() {
        const storage = yield* memory(b)
        const t = yield* Torrent.start({
          metainfo: { ...b.metainfo, private: true },
          storage,
          peerId: PeerIdentity.generate(),
          peers: [{ host: "127.0.0.1", port: s.port }],
          peerConfig,
          lsd: fake.lsd
        })
        yield* t.done.pipe(Effect.timeout("20 seconds"))
      }))
      expect(fake.registered).toEqual([])
    }).pipe(Effect.provide(noTracker)))
})
