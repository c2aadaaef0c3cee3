/**
 * Fetching a magnet link's metadata from peers for `info --fetch` and `magnet-to-torrent` (the download command
 * does it as part of the download): the options they share, and the fetch itself with a progress line on a TTY.
 */
import * as Options from "@effect/cli/Options"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Magnet from "../metainfo/Magnet.ts"
import * as Client from "../session/Client.ts"
import { CliFailure, sanitizeText } from "./Output.ts"
import {
  dhtBootstrapOpt,
  encryptionOpt,
  noDhtOpt,
  noLsdOpt,
  noPexOpt,
  parseHostPort,
  peerSourceOptions,
  transportOpt
} from "./PeerSources.ts"
import { resumeOptions, stateDirOpt } from "./Seeding.ts"

export const fetchOptions = {
  peer: Options.text("peer").pipe(
    Options.withDescription("a peer to ask for the metadata, host:port (repeatable)"),
    Options.repeated
  ),
  timeout: Options.integer("timeout").pipe(
    Options.withDescription("seconds without any peer offering the metadata before giving up (default 60)"),
    Options.optional
  ),
  noTrackers: Options.boolean("no-trackers").pipe(Options.withDescription("do not ask the magnet's trackers")),
  noDht: noDhtOpt,
  dhtBootstrap: dhtBootstrapOpt,
  noPex: noPexOpt,
  noLsd: noLsdOpt,
  encryption: encryptionOpt,
  transport: transportOpt,
  stateDir: stateDirOpt
} as const

export interface FetchInput {
  readonly peer: ReadonlyArray<string>
  readonly timeout: Option.Option<number>
  readonly noTrackers: boolean
  readonly noDht: boolean
  readonly dhtBootstrap: ReadonlyArray<string>
  readonly noPex: boolean
  readonly noLsd: boolean
  readonly encryption: Option.Option<string>
  readonly transport: Option.Option<string>
  readonly stateDir: Option.Option<string>
}

const usage = (message: string) => new CliFailure({ message, exitCode: 2 })

/** Fetches (or reads from the state directory) the magnet's metadata; failures are one-line CliFailures. */
export const fetch = (magnet: Magnet.Magnet, input: FetchInput): Effect.Effect<Client.Fetched, CliFailure> =>
  Effect.gen(function*() {
    const peers: Array<{ host: string; port: number }> = []
    for (const p of input.peer) {
      const hp = parseHostPort(p)
      if (hp === undefined) return yield* usage(`--peer ${sanitizeText(p)}: expected host:port`)
      peers.push(hp)
    }
    if (Option.isSome(input.timeout) && input.timeout.value < 1) return yield* usage("--timeout must be at least 1")
    const sources = yield* peerSourceOptions(input)
    const err = process.stderr
    const tty = err.isTTY === true
    return yield* Client.fetchMetadata(magnet, {
      peers,
      trackers: !input.noTrackers,
      timeout: Option.match(input.timeout, { onNone: () => undefined, onSome: (s) => Duration.seconds(s) }),
      onProgress: (p) => {
        if (!tty) return
        const pieces = p.total > 0 ? `, ${p.received}/${p.total} pieces` : ""
        err.write(`\r\x1b[Kfetching metadata: ${p.peers} peers, ${p.sources} offering it${pieces}`)
      }
    }).pipe(
      Effect.ensuring(Effect.sync(() => tty && err.write("\r\x1b[K"))),
      Effect.mapError((e) => new CliFailure({ message: sanitizeText(e.message), exitCode: 1 })),
      Effect.provide(Client.layer({ ...resumeOptions(input.stateDir, false), ...sources }))
    )
  })
