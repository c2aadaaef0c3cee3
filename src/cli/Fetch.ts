/**
 * Fetching a magnet link's metadata from peers for `info --fetch` and `magnet-to-torrent` (the download command
 * does it as part of the download): the options they share, and the fetch itself with a progress line on a TTY.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Magnet from "../metainfo/Magnet.ts"
import * as Client from "../session/Client.ts"
import { CliFailure, sanitizeText } from "./Output.ts"
import { parseHostPort, peerSourceOptions } from "./PeerSources.ts"
import type { FetchInput } from "./FetchOptions.ts"
import { resumeOptions } from "./Seeding.ts"

export type { FetchInput } from "./FetchOptions.ts"

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
