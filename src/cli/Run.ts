/**
 * Runs one command of the command line through @effect/cli, loading only that command's module (main.ts has
 * already answered `--help`/`--version` and checked the options against Help.ts): `info` never loads the
 * daemon, the HTTP API or the peer wire. Every failure becomes one line on stderr and an exit code.
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Log from "./Log.ts"
import { CliFailure, colorEnabled, stripAnsi } from "./Output.ts"

type Program = (argv: ReadonlyArray<string>) => Effect.Effect<void, unknown, CliApp.CliApp.Environment>

const withRoot = <Name extends string, E, A>(
  subcommands: readonly [Command.Command<Name, CliApp.CliApp.Environment, E, A>, ...Array<Command.Command<Name, CliApp.CliApp.Environment, E, A>>],
  version: string
): Program =>
  Command.run(
    Command.make("effect-torrent").pipe(Command.withSubcommands(subcommands)),
    { name: "effect-torrent", version }
  )

const loaders: Record<string, (version: string) => Promise<Program>> = {
  download: (v) => import("./DownloadCommand.ts").then((m) => withRoot([m.download], v)),
  seed: (v) => import("./SeedCommand.ts").then((m) => withRoot([m.seed], v)),
  verify: (v) => import("./VerifyCommand.ts").then((m) => withRoot([m.verify], v)),
  info: (v) => import("./InfoCommand.ts").then((m) => withRoot([m.info], v)),
  create: (v) => import("./CreateCommand.ts").then((m) => withRoot([m.create], v)),
  trackers: (v) => import("./TrackersCommand.ts").then((m) => withRoot([m.trackers], v)),
  "magnet-to-torrent": (v) => import("./MagnetCommand.ts").then((m) => withRoot([m.magnetToTorrent], v)),
  demo: (v) => import("./DemoCommand.ts").then((m) => withRoot([m.demo], v)),
  daemon: (v) => import("./DaemonCommand.ts").then((m) => withRoot([m.daemon], v)),
  auth: (v) => import("./AuthCommand.ts").then((m) => withRoot([m.auth], v)),
  add: (v) => import("./RemoteCommands.ts").then((m) => withRoot([m.remoteCommands[0]], v)),
  list: (v) => import("./RemoteCommands.ts").then((m) => withRoot([m.remoteCommands[1]], v)),
  show: (v) => import("./RemoteCommands.ts").then((m) => withRoot([m.remoteCommands[2]], v)),
  pause: (v) => import("./RemoteCommands.ts").then((m) => withRoot([m.remoteCommands[3]], v)),
  resume: (v) => import("./RemoteCommands.ts").then((m) => withRoot([m.remoteCommands[4]], v)),
  recheck: (v) => import("./RemoteCommands.ts").then((m) => withRoot([m.remoteCommands[5]], v)),
  remove: (v) => import("./RemoteCommands.ts").then((m) => withRoot([m.remoteCommands[6]], v))
}

// @effect/cli colours its messages unconditionally; keep escapes off pipes and out of NO_COLOR terminals.
const plainStream = (stream: NodeJS.WriteStream) => {
  if (colorEnabled(stream)) return
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: Array<unknown>) => boolean
  stream.write = ((chunk: unknown, ...rest: Array<unknown>) =>
    write(typeof chunk === "string" ? stripAnsi(chunk) : chunk, ...rest)) as typeof stream.write
}

/**
 * @effect/cli prints what it could not parse (`'abc' is not a integer`, `Missing argument <path>`) with
 * `Console.error`, over several lines: here it becomes our one line, with the command and a pointer to its help.
 */
const oneLineConsole = (command: string, base: Console.Console): Console.Console => {
  const error = (...args: ReadonlyArray<unknown>) => {
    const line = stripAnsi(args.map(String).join(" ")).split("\n").map((l) => l.trim()).filter((l) => l !== "")
      .join("; ")
    if (line.startsWith("effect-torrent: ")) process.stderr.write(`${line}\n`) // a command's own warning
    else if (line !== "") process.stderr.write(`effect-torrent: ${command}: ${line} (see \`effect-torrent ${command} --help\`)\n`)
  }
  return { ...base, error: (...args) => Effect.sync(() => error(...args)), unsafe: { ...base.unsafe, error } }
}

export const run = async (argv: ReadonlyArray<string>, command: string, version: string): Promise<void> => {
  plainStream(process.stdout)
  plainStream(process.stderr)
  const program = await loaders[command]!(version)

  // SIGINT/SIGTERM interrupt the program (NodeRuntime closes every scope: sockets, files, `stopped` announces); the
  // exit code then says which signal it was (128 + signal number) — except for the daemon, for which a signal is
  // the normal way to stop: a clean stop exits 0 (as transmission-daemon does; a service manager counts it a
  // success), the deadline below exits 1.
  // Stopping is bounded whatever state we are in: 10 s after the first signal (a system call that never returns, a
  // finalizer that hangs) the process exits anyway with one line; a second signal exits at once.
  let signalled: number | undefined
  const STOP_DEADLINE_MS = 10_000
  const isDaemon = command === "daemon"
  const onSignal = (code: number) => {
    if (signalled !== undefined) {
      process.stderr.write(`effect-torrent: second signal: exiting without cleaning up\n`)
      process.exit(signalled)
    }
    signalled = code
    setTimeout(() => {
      process.stderr.write(`effect-torrent: did not stop within ${STOP_DEADLINE_MS / 1000} s: exiting without cleaning up\n`)
      process.exit(isDaemon ? 1 : code)
    }, STOP_DEADLINE_MS).unref()
  }
  process.on("SIGINT", () => onSignal(130))
  process.on("SIGTERM", () => onSignal(143))

  const main = program(argv).pipe(
    Effect.catchAll((e) =>
      ValidationError.isValidationError(e)
        ? Effect.fail(new CliFailure({ message: "", exitCode: 2 })) // already printed, as one line (oneLineConsole)
        : Effect.fail(e)
    ),
    Effect.tapError((e) =>
      Effect.sync(() => {
        const message = e instanceof Error ? e.message : String(e)
        if (message !== "") process.stderr.write(`effect-torrent: ${message}\n`)
      })
    ),
    (self) => Effect.consoleWith((base) => Effect.withConsole(self, oneLineConsole(command, base))),
    // What @effect/cli needs (CliApp.Environment), not all of NodeContext: its command executor and worker modules
    // (child_process, worker_threads' wrappers) cost every start ~10 ms to load and were never used.
    Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)),
    // Log lines go to stderr, warnings and up unless EFFECT_TORRENT_LOG says otherwise (Log.ts).
    Effect.provide(Log.layer)
  )

  NodeRuntime.runMain(main, {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit)) return onExit(0)
      if (Cause.isInterruptedOnly(exit.cause)) return onExit(isDaemon ? 0 : signalled ?? 0)
      const failure = Cause.failureOption(exit.cause)
      if (failure._tag === "Some" && failure.value instanceof CliFailure) return onExit(failure.value.exitCode)
      if (failure._tag === "Some" && failure.value instanceof Error) return onExit(1)
      // A defect is a bug in effect-torrent: still one line, never a stack trace.
      process.stderr.write(`effect-torrent: internal error: ${Cause.pretty(exit.cause).split("\n")[0]}\n`)
      onExit(70)
    }
  })
}
