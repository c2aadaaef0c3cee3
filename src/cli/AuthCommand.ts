/**
 * `effect-torrent auth`: the daemon's credentials file (api/Auth.ts) — users with passwords and named API tokens,
 * stored as scrypt hashes, written atomically and readable by its owner only. The daemon reads it with
 * `--auth-file`; it needs one to listen on anything but loopback.
 *
 *   auth add-user NAME --file F      password from $EFFECT_TORRENT_PASSWORD, else the first line of stdin
 *   auth add-token NAME --file F     prints the token once (only its hash is kept)
 *   auth remove NAME|ID --file F     a user, or tokens by id or name
 *   auth list --file F               names and token ids, never secrets
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Auth from "../api/Auth.ts"
import { CliFailure, sanitizeText } from "./Output.ts"

const fileOpt = Options.text("file").pipe(Options.withDescription("the credentials file (created when missing)"))

const failure = (e: Auth.AuthError) => new CliFailure({ message: sanitizeText(e.message), exitCode: 1 })

/** The file as it is, or empty when it does not exist yet. */
const load = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const exists = yield* fs.exists(path).pipe(Effect.orElseSucceed(() => false))
    return exists ? yield* Auth.readFile(path) : Auth.empty
  })

const update = <A>(path: string, f: (file: Auth.AuthFile) => Effect.Effect<{ file: Auth.AuthFile; result: A }, CliFailure>) =>
  Effect.gen(function*() {
    const file = yield* load(path)
    const next = yield* f(file)
    yield* Auth.writeFile(path, next.file)
    return next.result
  }).pipe(Effect.catchTag("AuthError", (e) => Effect.fail(failure(e))), Effect.provide(NodeFileSystem.layer))

/** The password: $EFFECT_TORRENT_PASSWORD, else the first line of stdin (not echoed: nothing is prompted). */
const password = Effect.suspend(() => {
  const env = process.env["EFFECT_TORRENT_PASSWORD"]
  if (env !== undefined && env !== "") return Effect.succeed(env)
  return Effect.try({
    try: () => Fs.readFileSync(0, "utf8").split(/\r?\n/)[0] ?? "",
    catch: () => new CliFailure({ message: "no password: set EFFECT_TORRENT_PASSWORD or pipe it on stdin", exitCode: 2 })
  }).pipe(
    Effect.filterOrFail(
      (p) => p.length > 0,
      () => new CliFailure({ message: "no password: set EFFECT_TORRENT_PASSWORD or pipe it on stdin", exitCode: 2 })
    )
  )
})

const validName = (name: string) =>
  /^[^:\s]+$/.test(name)
    ? Effect.void
    : Effect.fail(new CliFailure({ message: "a name has no ':' and no spaces", exitCode: 2 }))

const addUser = Command.make("add-user", { file: fileOpt, name: Args.text({ name: "name" }) }, ({ file, name }) =>
  Effect.gen(function*() {
    yield* validName(name)
    const secret = yield* password
    yield* update(file, (f) => Effect.map(Auth.addUser(f, name, secret), (next) => ({ file: next, result: undefined })))
    process.stdout.write(`user ${name} saved in ${file}\n`)
  })).pipe(Command.withDescription("add a user (or change its password)"))

const addToken = Command.make("add-token", { file: fileOpt, name: Args.text({ name: "name" }) }, ({ file, name }) =>
  Effect.gen(function*() {
    yield* validName(name)
    const token = yield* update(file, (f) => Effect.map(Auth.addToken(f, name), (r) => ({ file: r.file, result: r.token })))
    process.stdout.write(`${token}\n`)
    process.stderr.write(`token ${name} saved in ${file}; this is the only time it is shown\n`)
  })).pipe(Command.withDescription("make an API token (printed once)"))

const remove = Command.make("remove", { file: fileOpt, name: Args.text({ name: "name|id" }) }, ({ file, name }) =>
  Effect.gen(function*() {
    const removed = yield* update(file, (f) => {
      const next = Auth.removeToken(Auth.removeUser(f, name), name)
      const count = f.users.length + f.tokens.length - next.users.length - next.tokens.length
      return count === 0
        ? Effect.fail(new CliFailure({ message: `no user or token ${sanitizeText(name)} in ${file}`, exitCode: 1 }))
        : Effect.succeed({ file: next, result: count })
    })
    process.stdout.write(`removed ${removed} credential(s) from ${file}\n`)
  })).pipe(Command.withDescription("remove a user, or tokens by id or name"))

const list = Command.make("list", { file: fileOpt }, ({ file }) =>
  Effect.gen(function*() {
    const f = yield* load(file)
    for (const u of f.users) process.stdout.write(`user  ${u.username}\n`)
    for (const t of f.tokens) process.stdout.write(`token ${t.id} ${t.name}\n`)
  }).pipe(Effect.catchTag("AuthError", (e) => Effect.fail(failure(e))), Effect.provide(NodeFileSystem.layer))).pipe(
    Command.withDescription("the users and tokens (never their secrets)")
  )

export const auth = Command.make("auth").pipe(
  Command.withDescription("manage the daemon's users and API tokens (--auth-file)"),
  Command.withSubcommands([addUser, addToken, remove, list])
)
