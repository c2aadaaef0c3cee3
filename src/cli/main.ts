/**
 * The `effect-torrent` command line: wiring only. Commands live in their own modules; this file assembles them,
 * turns every failure into one line on stderr and an exit code, and runs the program on Node.
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { create } from "./CreateCommand.ts"
import { demo } from "./DemoCommand.ts"
import { download } from "./DownloadCommand.ts"
import { info } from "./InfoCommand.ts"
import * as Log from "./Log.ts"
import { magnetToTorrent } from "./MagnetCommand.ts"
import { seed } from "./SeedCommand.ts"
import { CliFailure, colorEnabled, stripAnsi } from "./Output.ts"
import { trackers } from "./TrackersCommand.ts"
import { verify } from "./VerifyCommand.ts"
import { daemon } from "./DaemonCommand.ts"
import { auth } from "./AuthCommand.ts"
import { remoteCommands } from "./RemoteCommands.ts"

const root = Command.make("effect-torrent").pipe(
  Command.withDescription("A BitTorrent client and library built on Effect"),
  Command.withSubcommands([
    info,
    trackers,
    download,
    seed,
    verify,
    create,
    magnetToTorrent,
    demo,
    daemon,
    auth,
    ...remoteCommands
  ])
)

const cli = Command.run(root, { name: "effect-torrent", version: "0.1.0" })

// @effect/cli colours its help and errors unconditionally; keep escapes off pipes and out of NO_COLOR terminals.
const plainStream = (stream: NodeJS.WriteStream) => {
  if (colorEnabled(stream)) return
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: Array<unknown>) => boolean
  stream.write = ((chunk: unknown, ...rest: Array<unknown>) =>
    write(typeof chunk === "string" ? stripAnsi(chunk) : chunk, ...rest)) as typeof stream.write
}
plainStream(process.stdout)
plainStream(process.stderr)

// The seed client's shorthand: `effect-torrent FILE -d DIR` is `download FILE -o DIR`; `-s DIR` is `seed FILE DIR`.
const rewrite = (argv: ReadonlyArray<string>): ReadonlyArray<string> | string => {
  const [node = "node", script = "effect-torrent", first, ...rest] = argv
  // Only a .torrent path or a magnet link: subcommand names (and their own -d/-s flags) pass through untouched.
  if (first === undefined || !/\.torrent$|^magnet:/i.test(first)) return argv
  const flag = rest.findIndex((a) => a === "-d" || a === "-s")
  if (flag < 0) return argv
  if (rest[flag] === "-s") {
    const dir = rest[flag + 1]
    if (dir === undefined) return "-s needs a directory"
    return [node, script, "seed", ...rest.slice(0, flag), ...rest.slice(flag + 2), first, dir]
  }
  const args = [...rest]
  args[flag] = "-o"
  return [node, script, "download", first, ...args]
}
const argv = rewrite(process.argv)
if (typeof argv === "string") {
  process.stderr.write(`effect-torrent: ${argv}\n`)
  process.exit(1)
}

// SIGINT/SIGTERM interrupt the program (NodeRuntime closes every scope: sockets, files, `stopped` announces); the
// exit code then says which signal it was (128 + signal number) — except for the daemon, for which a signal is the
// normal way to stop: a clean stop exits 0 (as transmission-daemon does; a service manager counts it a success),
// the deadline below exits 1.
// Stopping is bounded whatever state we are in: 10 s after the first signal (a system call that never returns, a
// finalizer that hangs) the process exits anyway with one line; a second signal exits at once.
let signalled: number | undefined
const STOP_DEADLINE_MS = 10_000
const isDaemon = argv[2] === "daemon"
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

const program = cli(argv).pipe(
  Effect.catchAll((e) =>
    ValidationError.isValidationError(e)
      ? Effect.fail(new CliFailure({ message: "", exitCode: 2 })) // @effect/cli has already printed the problem
      : Effect.fail(e)
  ),
  Effect.tapError((e) => (e.message === "" ? Effect.void : Console.error(`effect-torrent: ${e.message}`))),
  Effect.provide(NodeContext.layer),
  // Log lines go to stderr, warnings and up unless EFFECT_TORRENT_LOG says otherwise (Log.ts).
  Effect.provide(Log.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) return onExit(0)
    if (Cause.isInterruptedOnly(exit.cause)) return onExit(isDaemon ? 0 : signalled ?? 0)
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some" && failure.value instanceof CliFailure) return onExit(failure.value.exitCode)
    // A defect is a bug in effect-torrent: still one line, never a stack trace.
    process.stderr.write(`effect-torrent: internal error: ${Cause.pretty(exit.cause).split("\n")[0]}\n`)
    onExit(70)
  }
})
