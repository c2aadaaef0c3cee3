/**
 * What `seed`, `download --seed` and `demo` share: the listening socket (`--port`, `--bind`), `--up-limit`, and the
 * status shown while seeding.
 */
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Destination from "../net/Destination.ts"
import type * as Client from "../session/Client.ts"
import * as ResumeRecord from "../storage/ResumeRecord.ts"
import * as RateLimit from "../torrent/RateLimit.ts"
import { CliFailure, sanitizeText } from "./Output.ts"
import { columns, seedLine } from "./Progress.ts"

export const portOpt = Options.integer("port").pipe(
  Options.withDescription("port to accept peers on (default 6881, or any free port when 6881 is taken)"),
  Options.optional
)
export const bindOpt = Options.text("bind").pipe(
  Options.withDescription("address to listen on: 0.0.0.0 (default), 127.0.0.1, :: (IPv6), ..."),
  Options.optional
)
export const upLimitOpt = Options.text("up-limit").pipe(
  Options.withDescription("upload limit, e.g. 500K, 2M, 1MB/s (default unlimited)"),
  Options.optional
)

const usage = (message: string) => new CliFailure({ message, exitCode: 2 })

export const downLimitOpt = Options.text("down-limit").pipe(
  Options.withDescription("download limit, e.g. 500K, 2M, 1MB/s (default unlimited)"),
  Options.optional
)

export const stateDirOpt = Options.text("state-dir").pipe(
  Options.withDescription(
    "directory of fast-resume records (default $XDG_STATE_HOME/effect-torrent or ~/.local/state/effect-torrent)"
  ),
  Options.optional
)
export const maxOpenFilesOpt = Options.integer("max-open-files").pipe(
  Options.withDescription("file descriptors the torrent's files may keep open (default 64; fewer when the process runs out)"),
  Options.optional
)
/** `--max-open-files`, checked. */
export const maxOpenFiles = (n: Option.Option<number>): Effect.Effect<number | undefined, CliFailure> =>
  Option.match(n, {
    onNone: () => Effect.succeed(undefined),
    onSome: (v) => (v >= 1 ? Effect.succeed(v) : Effect.fail(usage("--max-open-files must be at least 1")))
  })

export const noResumeOpt = Options.boolean("no-resume").pipe(
  Options.withDescription("neither read nor save a fast-resume record (re-check all data on start)")
)

/** `Client` options for `--state-dir` / `--no-resume`. */
export const resumeOptions = (stateDir: Option.Option<string>, noResume: boolean) => ({
  stateDir: Option.getOrElse(stateDir, () => ResumeRecord.defaultStateDir()),
  resume: !noResume
})

/** The client's listening socket from `--port`/`--bind`. */
export const listenOptions = (
  port: Option.Option<number>,
  bind: Option.Option<string>
): Effect.Effect<Client.ListenOptions, CliFailure> => {
  if (Option.isSome(port) && (port.value < 0 || port.value > 65535)) {
    return Effect.fail(usage(`--port ${port.value}: expected 0..65535`))
  }
  const host = Option.getOrElse(bind, () => (Destination.loopbackOnly() ? "127.0.0.1" : "0.0.0.0"))
  return Effect.succeed(
    Option.isSome(port) ? { host, port: port.value } : { host, port: 6881, orAnyPort: true }
  )
}

/** `--up-limit` / `--down-limit` text as bytes/s (undefined: unlimited). */
export const upLimit = (
  text: Option.Option<string>,
  flag = "--up-limit"
): Effect.Effect<number | undefined, CliFailure> =>
  Option.match(text, {
    onNone: () => Effect.succeed(undefined),
    onSome: (t) =>
      Either.match(RateLimit.parseRate(t), {
        onLeft: (e) => Effect.fail(usage(`${flag} ${sanitizeText(t)}: ${e.message}`)),
        onRight: (n) => Effect.succeed(n === 0 ? undefined : n)
      })
  })

/** One line about a seeding torrent, for `width` columns. */
export const seedingLine = (d: Client.Download, upRate: number, width: number): string => {
  const st = d.stats()
  return seedLine({ name: sanitizeText(d.name), uploaded: st.uploaded, total: st.total, upRate, peers: st.peers }, width)
}

/** Shows the seeding status (TTY: redrawn; pipe: every 30 s) while the scope lives. */
export const showSeeding = (d: Client.Download, quiet: boolean) =>
  Effect.gen(function*() {
    if (quiet) return
    const out = process.stdout
    const tty = out.isTTY === true
    let last = d.stats().uploaded
    let lastAt = Date.now()
    const every = tty ? "1 second" : "30 seconds"
    yield* Effect.forkScoped(
      Effect.sleep(every).pipe(
        Effect.andThen(Effect.sync(() => {
          const now = Date.now()
          const up = d.stats().uploaded
          const upRate = now > lastAt ? ((up - last) * 1000) / (now - lastAt) : 0
          last = up
          lastAt = now
          out.write(
            tty
              ? `\r\x1b[K${seedingLine(d, upRate, columns(out))}`
              : `${seedingLine(d, upRate, Number.POSITIVE_INFINITY)}\n`
          )
        })),
        Effect.forever
      )
    )
  })
