/**
 * The remote CLI: `add`, `list`, `show`, `pause`, `resume`, `recheck`, `remove` against a running daemon, through the
 * typed API client (api/RemoteClient.ts). `--api URL` (default `EFFECT_TORRENT_API`, else http://127.0.0.1:9091);
 * credentials from `--token` / `EFFECT_TORRENT_TOKEN`, or `--user` / `EFFECT_TORRENT_USER` with the password in
 * `EFFECT_TORRENT_PASSWORD` (never on the command line, where `ps` shows it). Torrents are named by their id (as
 * `list` shows) or info-hash. A daemon that is not running is one line, exit 1.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as RemoteClient from "../api/RemoteClient.ts"
import type * as Session from "../session/Session.ts"
import type * as TorrentInfo from "../session/TorrentInfo.ts"
import { CliFailure, formatBytes, sanitizeText } from "./Output.ts"

const apiOpt = Options.text("api").pipe(
  Options.withDescription("the daemon's URL (default $EFFECT_TORRENT_API, else http://127.0.0.1:9091)"),
  Options.optional
)
const tokenOpt = Options.text("token").pipe(
  Options.withDescription("an API token (default $EFFECT_TORRENT_TOKEN)"),
  Options.optional
)
const userOpt = Options.text("user").pipe(
  Options.withDescription("a user name (default $EFFECT_TORRENT_USER); the password comes from $EFFECT_TORRENT_PASSWORD"),
  Options.optional
)
const jsonOpt = Options.boolean("json").pipe(Options.withDescription("print JSON"))
const refsArg = Args.text({ name: "id|info-hash" }).pipe(Args.atLeast(1))
const common = { api: apiOpt, token: tokenOpt, user: userOpt }

type Common = {
  readonly api: Option.Option<string>
  readonly token: Option.Option<string>
  readonly user: Option.Option<string>
}

const failure = (message: string, exitCode = 1) => new CliFailure({ message: sanitizeText(message), exitCode })

/** Runs `f` with a client for the daemon named by the flags; its errors become one line. */
const withClient = <A>(input: Common, f: (c: RemoteClient.RemoteClientShape) => Effect.Effect<A, RemoteClient.RemoteError | CliFailure>) =>
  Effect.gen(function*() {
    const client = yield* RemoteClient.RemoteClient
    return yield* f(client)
  }).pipe(
    Effect.provide(RemoteClient.layer({
      baseUrl: Option.getOrElse(input.api, () => process.env["EFFECT_TORRENT_API"] ?? RemoteClient.defaultBaseUrl),
      auth: authOf(input)
    })),
    Effect.catchTag("RemoteError", (e) => Effect.fail(failure(e.message)))
  )

const authOf = (input: Common): RemoteClient.Credentials | undefined => {
  const env = process.env
  const token = Option.getOrElse(input.token, () => env["EFFECT_TORRENT_TOKEN"] ?? "")
  if (token !== "") return { token }
  const user = Option.getOrElse(input.user, () => env["EFFECT_TORRENT_USER"] ?? "")
  return user === "" ? undefined : { username: user, password: env["EFFECT_TORRENT_PASSWORD"] ?? "" }
}

const out = (s: string) => Effect.sync(() => void process.stdout.write(s))
const json = (v: unknown) => out(JSON.stringify(v, null, 2) + "\n")

// --- add ---

const sourceOf = (input: string): Effect.Effect<Session.Source, CliFailure> => {
  if (/^magnet:/i.test(input)) return Effect.succeed({ _tag: "Magnet", uri: input })
  if (/^https?:\/\//i.test(input)) return Effect.succeed({ _tag: "Url", url: input })
  return Effect.try({
    try: () => ({ _tag: "Metainfo" as const, bytes: new Uint8Array(Fs.readFileSync(input)) }),
    catch: (e) => failure(`${input}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(e)}`)
  })
}

const add = Command.make(
  "add",
  {
    ...common,
    source: Args.text({ name: "torrent | magnet | url" }),
    output: Options.text("output").pipe(
      Options.withAlias("o"),
      Options.withDescription("download directory (default: the daemon's)"),
      Options.optional
    ),
    paused: Options.boolean("paused").pipe(Options.withDescription("add it without starting it")),
    only: Options.integer("only").pipe(
      Options.withDescription("a file to download, numbered as `info` lists them (repeatable; default all)"),
      Options.repeated
    ),
    json: jsonOpt
  },
  (input) =>
    withClient(input, (c) =>
      Effect.gen(function*() {
        const source = yield* sourceOf(input.source)
        const options: TorrentInfo.AddOptions = {
          ...(Option.isSome(input.output) ? { downloadDir: Path.resolve(input.output.value) } : {}),
          ...(input.paused ? { paused: true } : {}),
          ...(input.only.length > 0 ? { files: input.only } : {})
        }
        const added = yield* c.add(source, options)
        if (input.json) return yield* json(added)
        yield* out(
          `${added.duplicate ? "already there" : "added"}: ${added.id}  ${sanitizeText(added.name)}  ${added.infoHash}\n`
        )
      }))
).pipe(Command.withDescription("add a torrent to the running daemon"))

// --- list ---

const STATE: Record<TorrentInfo.State, string> = {
  "fetching-metadata": "metadata",
  checking: "checking",
  queued: "queued",
  downloading: "down",
  seeding: "seed",
  paused: "paused",
  finished: "finished",
  error: "ERROR"
}

const rate = (n: number) => (n <= 0 ? "-" : `${formatBytes(n)}/s`)

/** One line per torrent, within 80 columns (the name takes what is left). */
export const listLines = (torrents: ReadonlyArray<TorrentInfo.Summary>): ReadonlyArray<string> => {
  const head = `${"ID".padStart(4)}  ${"STATE".padEnd(8)} ${"DONE".padStart(6)} ${"SIZE".padStart(9)} ${"DOWN".padStart(10)} ${
    "UP".padStart(10)
  }  NAME`
  const rows = torrents.map((t) => {
    const fixed = `${String(t.id).padStart(4)}  ${STATE[t.state].padEnd(8)} ${(t.progress * 100).toFixed(1).padStart(5)}% ${
      formatBytes(t.wantedSize).padStart(9)
    } ${rate(t.downloadRate).padStart(10)} ${rate(t.uploadRate).padStart(10)}  `
    const name = sanitizeText(t.name)
    const room = Math.max(8, 80 - fixed.length)
    return fixed + (name.length > room ? name.slice(0, room - 1) + "…" : name)
  })
  return [head, ...rows]
}

const list = Command.make("list", { ...common, json: jsonOpt }, (input) =>
  withClient(input, (c) =>
    Effect.gen(function*() {
      const torrents = yield* c.list
      if (input.json) return yield* json(torrents)
      if (torrents.length === 0) return yield* out("no torrents\n")
      yield* out(listLines(torrents).join("\n") + "\n")
      for (const t of torrents) {
        if (t.error !== null) yield* out(`  ${t.id}: ${sanitizeText(t.error.message)}\n`)
      }
    }))).pipe(Command.withDescription("list the daemon's torrents"))

// --- show ---

const show = Command.make("show", { ...common, ref: Args.text({ name: "id|info-hash" }), json: jsonOpt }, (input) =>
  withClient(input, (c) =>
    Effect.gen(function*() {
      const ref = RemoteClient.parseRef(input.ref)
      const d = yield* c.get(ref)
      const peers = yield* c.peers(ref)
      if (input.json) return yield* json({ ...d, peers })
      const lines = [
        `${sanitizeText(d.name)}`,
        `  id ${d.id}, info-hash ${d.infoHash}`,
        `  state ${d.state}${d.error === null ? "" : `: ${sanitizeText(d.error.message)}`}`,
        `  ${(d.progress * 100).toFixed(1)}% of ${formatBytes(d.wantedSize)} (${formatBytes(d.size)} in all), ` +
        `${d.pieces} pieces of ${formatBytes(d.pieceLength)}`,
        `  down ${rate(d.downloadRate)}, up ${rate(d.uploadRate)}, ${d.peers} peer(s), ratio ${d.ratio.toFixed(2)}` +
        (d.eta === null ? "" : `, ${d.eta} s left`),
        `  downloaded ${formatBytes(d.downloaded)}, uploaded ${formatBytes(d.uploaded)}, into ${sanitizeText(d.downloadDir)}`,
        `  files:`,
        ...d.files.map((f) =>
          `    ${String(f.index).padStart(3)} ${f.wanted ? " " : "-"} ${f.priority.padEnd(6)} ${formatBytes(f.length).padStart(9)}  ${
            sanitizeText(f.path)
          }`
        ),
        ...(d.trackers.length === 0 ? [] : [
          `  trackers:`,
          ...d.trackers.map((t) =>
            `    [${t.tier}] ${sanitizeText(t.url)}: ${t.status}${t.seeders === null ? "" : `, ${t.seeders} seeders`}${
              t.leechers === null ? "" : `, ${t.leechers} leechers`
            }${t.message === "" ? "" : ` (${sanitizeText(t.message)})`}`
          )
        ]),
        ...(peers.length === 0 ? [] : [
          `  peers:`,
          ...peers.map((p) =>
            `    ${p.address.padEnd(22)} ${sanitizeText(p.client).slice(0, 20).padEnd(20)} ${(p.progress * 100).toFixed(0).padStart(3)}% down ${
              rate(p.downloadRate)
            } up ${rate(p.uploadRate)} ${p.transport === "utp" ? "uTP" : "TCP"} from ${p.source}`
          )
        ])
      ]
      yield* out(lines.join("\n") + "\n")
    }))).pipe(Command.withDescription("show one of the daemon's torrents: files, trackers, peers"))

// --- pause / resume / recheck / remove ---

const each = (
  name: string,
  description: string,
  extra: Record<string, Options.Options<boolean>>,
  f: (c: RemoteClient.RemoteClientShape, ref: Session.TorrentRef, flags: Record<string, boolean>) => Effect.Effect<void, RemoteClient.RemoteError>,
  done: string
) =>
  Command.make(name, { ...common, ...extra, refs: refsArg }, (input) =>
    withClient(input, (c) =>
      Effect.forEach(input.refs, (r) =>
        Effect.zipRight(
          f(c, RemoteClient.parseRef(r), input as unknown as Record<string, boolean>),
          out(`${done}: ${sanitizeText(r)}\n`)
        ), { discard: true }))).pipe(Command.withDescription(description))

const pause = each("pause", "pause torrents of the daemon", {}, (c, ref) => c.pause(ref), "paused")
const resume = each(
  "resume",
  "resume torrents of the daemon",
  { now: Options.boolean("now").pipe(Options.withDescription("start at once, past the queue's limits")) },
  (c, ref, flags) => c.resume(ref, { now: flags["now"] === true }),
  "resumed"
)
const recheck = each("recheck", "hash a torrent's data again, trusting no resume record", {}, (c, ref) => c.verify(ref), "rechecking")
const remove = each(
  "remove",
  "remove torrents from the daemon (their data stays unless --delete-data)",
  { deleteData: Options.boolean("delete-data").pipe(Options.withDescription("delete the downloaded files too")) },
  (c, ref, flags) => c.remove(ref, { deleteData: flags["deleteData"] === true }),
  "removed"
)

export const remoteCommands = [add, list, show, pause, resume, recheck, remove] as const
