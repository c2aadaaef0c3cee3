/**
 * One library download (`Client.download`) in a process of its own, for tests whose failure mode is a storage that
 * closes descriptor numbers it no longer owns (issue 13): in the test runner's process such a close can hit the
 * runner's own IPC channel and take the whole file down with "Channel closed" instead of a report.
 *
 *   node --import tsx test/support/manyFilesDownload.ts '<Job as JSON>'
 *
 * Announces to the torrent's trackers (loopback only), hashes as the CLI does, keeps resume records in `stateDir`.
 * Prints one JSON line, the {@link Result}, and exits 0 whatever the download did (non-zero only if it crashed).
 */
import * as Fs from "node:fs"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Cause from "effect/Cause"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as Destination from "../../src/net/Destination.ts"
import * as Client from "../../src/session/Client.ts"
import * as Hasher from "../../src/storage/Hasher.ts"
import * as Restricted from "../../src/tracker/Restricted.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"

export interface Job {
  readonly torrent: string
  readonly outputDir: string
  readonly stateDir: string
  readonly maxOpenFiles?: number | undefined
  /** Resume save thresholds (Client `resumeSave`). */
  readonly resumeSave?: { readonly bytes?: number; readonly intervalMs?: number } | undefined
  readonly timeoutMs: number
}

export interface Result {
  /** Why `done` failed (or timed out); absent when the download completed. */
  readonly failure?: string | undefined
  /** Every warning and error logged, in order. */
  readonly warnings: ReadonlyArray<string>
  readonly ms: number
}

const main = async (job: Job): Promise<Result> => {
  process.env["EFFECT_TORRENT_LOOPBACK_ONLY"] = "1"
  const decoded = Metainfo.decode(new Uint8Array(Fs.readFileSync(job.torrent)))
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  const warnings: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    if (!LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) return
    warnings.push(`${logLevel.label}: ${Array.isArray(message) ? message.map(String).join(" ") : String(message)}`)
  })
  const client = Client.layerWith({
    noPeersTimeout: "30 seconds",
    listen: { host: "127.0.0.1", port: 0 },
    peerConfig: { requestTimeout: 5_000, connectTimeout: 2_000 },
    stateDir: job.stateDir,
    maxOpenFiles: job.maxOpenFiles,
    resumeSave: job.resumeSave === undefined ? undefined : {
      ...(job.resumeSave.bytes === undefined ? {} : { bytes: job.resumeSave.bytes }),
      ...(job.resumeSave.intervalMs === undefined ? {} : { interval: job.resumeSave.intervalMs })
    }
  }).pipe(
    Layer.provide(Restricted.restrict(Destination.isLoopbackHost).pipe(Layer.provide(TrackerLive.layer()))),
    Layer.provide(Hasher.layer)
  )
  const started = Date.now()
  const exit = await Effect.runPromiseExit(
    Effect.scoped(Effect.gen(function*() {
      const d = yield* Client.download(decoded.right, { outputDir: job.outputDir })
      yield* d.done.pipe(Effect.timeoutFail({ duration: job.timeoutMs, onTimeout: () => new Error("timed out") }))
    })).pipe(Effect.provide(client), Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  )
  const failure = Exit.isFailure(exit) ? Cause.pretty(exit.cause).split("\n")[0] : undefined
  return { ...(failure === undefined ? {} : { failure }), warnings, ms: Date.now() - started }
}

const arg = process.argv[2]
if (arg !== undefined) {
  main(JSON.parse(arg) as Job).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`, () => process.exit(0))
    },
    (e) => {
      process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`)
      process.exit(1)
    }
  )
}
