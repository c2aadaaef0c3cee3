/**
 * Run by Holepunch.test.ts inside a network namespace (`ip netns exec`): one effect-torrent client (transport uTP,
 * listening on `port`, no DHT/LSD/port mapping/trackers) that downloads (or seeds, with `seed`) the torrent in
 * `torrent` into `dir`, dialling `peers`. Its log lines (the BEP 55 ones included) go to stdout; JSON lines say
 * `{"event":"ready"}` once listening and `{"event":"done","transfers":[{address,downloaded}]}` when the download
 * completed. It stays (serving) until
 * stdin closes.
 */
import { readFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import { noTracker } from "../support/download.ts"

interface Args {
  readonly torrent: string
  readonly dir: string
  readonly port: number
  readonly peers: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly seed: boolean
  /** Download limit, bytes/s (default none). */
  readonly downLimit?: number
  /** Upload limit, bytes/s (default none). */
  readonly upLimit?: number
}
const args = JSON.parse(process.argv[2]!) as Args

const program = Effect.scoped(Effect.gen(function*() {
  const m = yield* Metainfo.decodeEffect(new Uint8Array(readFileSync(args.torrent)))
  const d = args.seed
    ? yield* Client.seed(m, {
      dataDir: args.dir,
      peers: args.peers,
      trackers: false,
      ...(args.upLimit === undefined ? {} : { upLimit: args.upLimit })
    })
    : yield* Client.download(m, { outputDir: args.dir, peers: args.peers, trackers: false, seed: true, noPeersTimeout: "120 seconds",
      ...(args.downLimit === undefined ? {} : { downLimit: args.downLimit })
    })
  console.log(JSON.stringify({ event: "ready" }))
  const stdinEnd = Effect.async<void>((resume) => {
    process.stdin.on("end", () => resume(Effect.void))
    process.stdin.resume()
  })
  const done = args.seed ? Effect.never : Effect.andThen(
    d.done,
    Effect.sync(() => console.log(JSON.stringify({ event: "done", transfers: d.transfers().map(({ address, downloaded }) => ({ address, downloaded })) })))
  )
  yield* Effect.raceFirst(Effect.andThen(done, Effect.never), stdinEnd)
})).pipe(
  Effect.provide(
    Client.layerWith({
      listen: { host: "0.0.0.0", port: args.port },
      transport: "utp",
      pex: true,
      resume: false,
      peerConfig: { connectTimeout: 3_000 }
    }).pipe(Layer.provide(noTracker), Layer.provide(Hasher.layerInline))
  ),
  Logger.withMinimumLogLevel(LogLevel.Info)
)

Effect.runPromise(program).then(() => process.exit(0), (e: unknown) => {
  console.error(e)
  process.exit(1)
})
