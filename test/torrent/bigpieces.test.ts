/**
 * Torrents whose pieces are larger than 1 MiB (4 MiB and 8 MiB, with a short last piece), downloaded with the
 * default hasher (a worker pool for pieces over 1 MiB, as the CLI runs it): from the in-process test seeder, from
 * our own `Client.seed` and from python3-libtorrent. Byte-identical; with libtorrent (out of process) the peak growth
 * of our `arrayBuffers` is measured and bounded.
 *
 * Regression: a piece hashed in a worker has its buffer transferred (detached, length 0), and the torrent took the
 * piece's size from that buffer when it left the hash/write backlog; the backlog never shrank, so reading paused for
 * good once it passed its 64 MiB budget (16 pieces of 4 MiB, 8 of 8 MiB) and the download stalled.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import { writeData } from "../support/data.ts"
import { download, noTracker, readFile, tempDir } from "../support/download.ts"
import { MiB, probe } from "../support/memory.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built, seed } from "../support/seeder.ts"

const stops: Array<() => Promise<void>> = []
afterAll(() => Promise.all(stops.map((s) => s())))

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const client = (options: Client.ClientOptions = {}) =>
  Client.layerWith({
    noPeersTimeout: "20 seconds",
    peerConfig: { requestTimeout: 5_000, connectTimeout: 2_000 },
    ...options
  }).pipe(Layer.provide(noTracker), Layer.provide(Hasher.layer))

/** Enough pieces that they exceed the backlog budget (48 MiB; 64 MiB when the stall was found); a short last piece; two files. */
const big = (pieceLength: number, pieces: number) =>
  build({
    name: `big-${pieceLength / MiB}m`,
    pieceLength,
    files: [
      { path: ["a.bin"], length: pieceLength * (pieces - 1) + 777_777 },
      { path: ["b.bin"], length: 123_457 }
    ]
  })

const identical = (b: Built, dir: string) =>
  b.metainfo.files.forEach((_, i) => expect(sha(readFile(b, dir, i))).toBe(sha(b.files[i]!)))

const bounded = <A, E, R>(self: Effect.Effect<A, E, R>, log: () => string = () => "") =>
  Effect.timeoutFail(self, { duration: "60 seconds", onTimeout: () => new Error(`download timed out ${log()}`) })

const cases = [
  { pieceLength: 4 * MiB, pieces: 18 },
  { pieceLength: 8 * MiB, pieces: 10 }
]

describe("pieces larger than 1 MiB (worker hasher)", () => {
  for (const c of cases) {
    const label = `${c.pieceLength / MiB} MiB pieces`
    const b = big(c.pieceLength, c.pieces)

    it.live(`${label} from the in-process test seeder`, () =>
      Effect.gen(function*() {
        const s = yield* Effect.promise(() => seed(b))
        stops.push(s.stop)
        const dir = tempDir("big")
        yield* bounded(download(b, dir, [s.port]))
        identical(b, dir)
      }).pipe(Effect.provide(client())), 90_000)

    it.scopedLive(`${label} from our own Client.seed`, () =>
      Effect.gen(function*() {
        const data = tempDir("big-seed")
        writeData(b, data)
        const seeding = yield* Layer.build(client({ listen: { host: "127.0.0.1", port: 0 } }))
        yield* Client.seed(b.metainfo, { dataDir: data, trackers: false }).pipe(Effect.provide(seeding))
        const listener = yield* Effect.flatMap(Client.Client, (cl) => cl.listener).pipe(Effect.provide(seeding))
        const dir = tempDir("big")
        yield* bounded(download(b, dir, [listener!.address.port])).pipe(Effect.provide(client()))
        identical(b, dir)
      }), 90_000)

    it.live.skipIf(!Real.shouldRun("libtorrent"))(`${label} from a python3-libtorrent seeder; memory bounded`, () =>
      Effect.gen(function*() {
        const s = yield* Effect.promise(() => Real.libtorrent(b))
        stops.push(s.stop)
        const dir = tempDir("big")
        const memory = probe()
        yield* bounded(download(b, dir, [s.port]), s.log)
        const peak = memory.stop()
        console.log(`${label} from libtorrent: peak arrayBuffers growth ${(peak.arrayBuffers / MiB).toFixed(1)} MiB`)
        identical(b, dir)
        // The 64 MiB hash/write backlog budget, the pieces in flight (about one per peer here) and socket chunks.
        expect(peak.arrayBuffers).toBeLessThan(112 * MiB)
      }).pipe(Effect.provide(client())), 90_000)
  }
})
