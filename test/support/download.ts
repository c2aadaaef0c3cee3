/** Running `Client.download` in tests: a client without trackers (a fake that refuses), inline hashing. */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import type * as TorrentEvent from "../../src/torrent/TorrentEvent.ts"
import { Tracker } from "../../src/tracker/Tracker.ts"
import { TrackerError } from "../../src/tracker/TrackerError.ts"
import type { Built } from "./seeder.ts"

export const noTracker = Layer.succeed(
  Tracker,
  Tracker.of({
    announce: (url) => Effect.fail(new TrackerError({ reason: "network", url, detail: "no trackers in tests" })),
    scrape: (url) => Effect.fail(new TrackerError({ reason: "network", url, detail: "no trackers in tests" }))
  })
)

/** Short deadlines so stalls and reconnects happen within a test. */
export const testClient = (options: Client.ClientOptions = {}): Layer.Layer<Client.Client> =>
  Client.layerWith({
    noPeersTimeout: "10 seconds",
    peerConfig: { requestTimeout: 1_000, tickInterval: 100, connectTimeout: 2_000 },
    ...options
  }).pipe(Layer.provide(noTracker), Layer.provide(Hasher.layerInline))

export const tempDir = (prefix: string): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), `et-${prefix}-`))

export interface Outcome {
  readonly events: ReadonlyArray<TorrentEvent.TorrentEvent>
}

/** Downloads `built` from `ports` into `dir`; fails like `done`. */
export const download = (
  built: Built,
  dir: string,
  ports: ReadonlyArray<number>,
  options: Partial<Client.DownloadOptions> = {}
) =>
  Effect.scoped(Effect.gen(function*() {
    const d = yield* Client.download(built.metainfo, {
      outputDir: dir,
      peers: ports.map((port) => ({ host: "127.0.0.1", port })),
      trackers: false,
      ...options
    })
    const collector = yield* Effect.forkScoped(Stream.runCollect(d.events))
    yield* d.done
    const events = Chunk.toReadonlyArray(yield* Fiber.join(collector))
    return { events } satisfies Outcome
  }))

/** Bytes of the file at torrent-order index `f` under `dir`. */
export const readFile = (built: Built, dir: string, f: number): Buffer =>
  Fs.readFileSync(Path.join(dir, ...built.metainfo.files[f]!.path))

export const fileExists = (built: Built, dir: string, f: number): boolean =>
  Fs.existsSync(Path.join(dir, ...built.metainfo.files[f]!.path))
