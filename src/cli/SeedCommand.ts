/**
 * `effect-torrent seed <torrent> <path> [--port N] [--bind HOST] [--up-limit RATE] [--peer host:port]...
 * [--no-trackers] [--max-peers N] [--max-open-files N] [--quiet] [--json] [--state-dir DIR] [--no-resume] [--no-dht] [--dht-bootstrap host:port]...
 * [--no-pex] [--encryption prefer|require|off]`: checks the data in `path` (the
 * directory `download -o` wrote into), then serves it — listening, announcing to the trackers, answering peers —
 * until Ctrl-C. Incomplete data: one line naming the first missing or mismatching file, exit 1. Pieces the
 * fast-resume record in `--state-dir` vouches for (files unchanged since) are not re-read.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Client from "../session/Client.ts"
import * as TorrentEvent from "../torrent/TorrentEvent.ts"
import { parsePeer } from "./DownloadCommand.ts"
import { CliFailure, sanitizeText } from "./Output.ts"
import {
  bindOpt,
  listenOptions,
  noResumeOpt,
  portOpt,
  resumeOptions,
  showSeeding,
  maxOpenFiles,
  maxOpenFilesOpt,
  stateDirOpt,
  upLimit,
  upLimitOpt
} from "./Seeding.ts"
import { type PeerSourceInput, peerSourceOptions, peerSourceOpts } from "./PeerSources.ts"
import * as Hints from "./Hints.ts"
import * as Source from "./Source.ts"

const usage = (message: string) => new CliFailure({ message, exitCode: 2 })

const run = (input: PeerSourceInput & {
  readonly torrent: string
  readonly path: string
  readonly port: Option.Option<number>
  readonly bind: Option.Option<string>
  readonly upLimit: Option.Option<string>
  readonly peer: ReadonlyArray<string>
  readonly noTrackers: boolean
  readonly maxPeers: Option.Option<number>
  readonly maxOpenFiles: Option.Option<number>
  readonly quiet: boolean
  readonly json: boolean
  readonly stateDir: Option.Option<string>
  readonly noResume: boolean
}) =>
  Effect.gen(function*() {
    const loaded = yield* Source.load(input.torrent)
    if (loaded._tag === "Magnet") return yield* usage("seed needs a .torrent file, not a magnet link")
    const listen = yield* listenOptions(input.port, input.bind)
    const limit = yield* upLimit(input.upLimit)
    const sources = yield* peerSourceOptions(input)
    const openFiles = yield* maxOpenFiles(input.maxOpenFiles)
    const peers: Array<{ host: string; port: number }> = []
    for (const p of input.peer) {
      const parsed = parsePeer(p)
      if (parsed === undefined) return yield* usage(`--peer ${sanitizeText(p)}: expected host:port`)
      peers.push(parsed)
    }
    yield* Effect.scoped(Effect.gen(function*() {
      const d = yield* Client.seed(loaded.metainfo, {
        dataDir: input.path,
        peers,
        trackers: !input.noTrackers,
        maxPeers: Option.getOrUndefined(input.maxPeers),
        upLimit: limit
      })
      const client = yield* Client.Client
      const listener = yield* client.listener
      if (input.json) {
        // As `download --json`: one event per line (PeerConnected, PieceUploaded totals in Progress, …).
        yield* Effect.forkScoped(Stream.runForEach(d.events, (e) =>
          Effect.sync(() => process.stdout.write(`${JSON.stringify(TorrentEvent.toJson(e))}\n`))))
      } else if (!input.quiet) {
        const where = listener === undefined ? "" : ` on port ${listener.address.port}`
        process.stdout.write(`seeding ${sanitizeText(d.name)}${where} (Ctrl-C to stop)\n`)
      }
      yield* showSeeding(d, input.quiet || input.json)
      return yield* d.failed // until Ctrl-C, or a failure stops the torrent (a file deleted under it, a failing disk)
    }).pipe(
      Effect.catchTag("TorrentError", (e) =>
        Effect.fail(new CliFailure({
          message: Hints.explain(e, { seedDir: input.path, metainfo: loaded.metainfo }),
          exitCode: 1
        }))),
      Effect.provide(Client.layer({
          listen,
          upLimit: limit,
          maxPeers: Option.getOrUndefined(input.maxPeers),
          maxOpenFiles: openFiles,
          ...resumeOptions(input.stateDir, input.noResume),
          ...sources
        }))
    ))
  })

export const seed = Command.make(
  "seed",
  {
    torrent: Args.text({ name: "torrent" }).pipe(Args.withDescription("the .torrent file")),
    path: Args.text({ name: "path" }).pipe(
      Args.withDescription("directory holding the torrent's data (where `download -o` put it)")
    ),
    port: portOpt,
    bind: bindOpt,
    upLimit: upLimitOpt,
    stateDir: stateDirOpt,
    noResume: noResumeOpt,
    ...peerSourceOpts,
    peer: Options.text("peer").pipe(
      Options.withDescription("a peer to dial, host:port (repeatable)"),
      Options.repeated
    ),
    noTrackers: Options.boolean("no-trackers").pipe(Options.withDescription("do not contact trackers")),
    maxOpenFiles: maxOpenFilesOpt,
    maxPeers: Options.integer("max-peers").pipe(
      Options.withDescription("connections at most (default 50)"),
      Options.optional
    ),
    quiet: Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("print only errors")),
    json: Options.boolean("json").pipe(Options.withDescription("print one JSON object per event and line"))
  },
  run
).pipe(Command.withDescription("check a torrent's data and seed it until Ctrl-C"))
