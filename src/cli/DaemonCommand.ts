/**
 * `effect-torrent daemon`: the long-lived client. One process holds every torrent of a session (SessionLive.ts),
 * serves the HTTP API (api/Server.ts: 127.0.0.1:9091 by default, Transmission's port) and accepts peers on one port.
 * Settings: built-in defaults, under `EFFECT_TORRENT_*` environment variables (effect/Config), under those changed at
 * run time through the API (kept in the state directory), under the flags given here. SIGTERM/SIGINT stop every
 * torrent cleanly (`stopped` announced, resume data saved, the session saved), within the CLI's 10 s bound.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Auth from "../api/Auth.ts"
import * as Server from "../api/Server.ts"
import * as Client from "../session/Client.ts"
import * as Session from "../session/Session.ts"
import * as SessionLive from "../session/SessionLive.ts"
import type * as TorrentInfo from "../session/TorrentInfo.ts"
import * as ResumeRecord from "../storage/ResumeRecord.ts"
import * as Hints from "./Hints.ts"
import { CliFailure, sanitizeText } from "./Output.ts"
import { noWebSeedsOpt, parseHostPort, peerSourceOptions, peerSourceOpts } from "./PeerSources.ts"
import { bindOpt, downLimitOpt, maxOpenFiles, maxOpenFilesOpt, upLimit, upLimitOpt } from "./Seeding.ts"

/** Where Debian's transmission-common puts Transmission's web client. */
const DEBIAN_WEB = "/usr/share/transmission/web"

/**
 * The web UI the build puts beside the bundle (dist/webui/): this module is bundled into dist/cli/ (the CLI's
 * chunks), so one level up; absent when run from source unbuilt.
 */
const here = Path.dirname(fileURLToPath(import.meta.url))
const BUILT_WEB_UI = [Path.join(here, "..", "webui"), Path.join(here, "webui")]
  .find((d) => Fs.existsSync(Path.join(d, "index.html"))) ?? Path.join(here, "webui")

const usage = (message: string) => new CliFailure({ message, exitCode: 2 })

const opt = {
  downloadDir: Options.text("download-dir").pipe(
    Options.withDescription("where torrents are downloaded unless added with another (default ~/Downloads)"),
    Options.optional
  ),
  stateDir: Options.text("state-dir").pipe(
    Options.withDescription("the session: torrents, their metadata and resume data (default $XDG_STATE_HOME/effect-torrent/daemon)"),
    Options.optional
  ),
  http: Options.text("http").pipe(
    Options.withDescription("HOST:PORT of the HTTP API (default 127.0.0.1:9091); another host than loopback needs --auth-file"),
    Options.optional
  ),
  authFile: Options.text("auth-file").pipe(
    Options.withDescription("users and tokens allowed to use the API (see `effect-torrent auth`)"),
    Options.optional
  ),
  allowHost: Options.text("allow-host").pipe(
    Options.withDescription("another name the API may be reached by (Host header; repeatable)"),
    Options.repeated
  ),
  transmissionWeb: Options.text("transmission-web").pipe(
    Options.withDescription(
      `serve Transmission's web client from this directory at /transmission/web/ (default ${DEBIAN_WEB} when it exists; "none" to leave it out)`
    ),
    Options.optional
  ),
  webUi: Options.text("web-ui").pipe(
    Options.withDescription(`serve the web UI from this directory at / (default the one built beside the CLI; "none" to leave it out)`),
    Options.optional
  ),
  port: Options.integer("port").pipe(Options.withDescription("the port peers connect to (default 51413)"), Options.optional),
  bind: bindOpt,
  maxActiveDownloads: Options.integer("max-active-downloads").pipe(
    Options.withDescription("torrents downloading at once; the others wait in the queue (default 5)"),
    Options.optional
  ),
  maxActiveSeeds: Options.integer("max-active-seeds").pipe(
    Options.withDescription("complete torrents seeding at once (default 10)"),
    Options.optional
  ),
  downLimit: downLimitOpt,
  upLimit: upLimitOpt,
  maxConnections: Options.integer("max-connections").pipe(
    Options.withDescription("peer connections for all torrents together (default 500)"),
    Options.optional
  ),
  maxPeers: Options.integer("max-peers").pipe(
    Options.withDescription("connections per torrent (default 50)"),
    Options.optional
  ),
  seedRatio: Options.float("seed-ratio").pipe(Options.withDescription("stop seeding at this ratio"), Options.optional),
  seedTime: Options.integer("seed-time").pipe(
    Options.withDescription("stop seeding after this many seconds"),
    Options.optional
  ),
  watchDir: Options.text("watch-dir").pipe(
    Options.withDescription("add the .torrent files dropped in this directory"),
    Options.optional
  ),
  maxOpenFiles: maxOpenFilesOpt,
  ...peerSourceOpts,
  noWebSeeds: noWebSeedsOpt
}

type Input = Command.Command.ParseConfig<typeof opt>

const positive = (name: string, v: Option.Option<number>) =>
  Option.isSome(v) && !(Number.isInteger(v.value) && v.value >= 1)
    ? Effect.fail(usage(`${name} must be an integer >= 1`))
    : Effect.succeed(Option.getOrUndefined(v))

const run = (input: Input) =>
  Effect.gen(function*() {
    const http = Option.match(input.http, { onNone: () => ({ host: Server.defaultHost, port: Server.defaultPort }), onSome: parseHostPort })
    if (http === undefined) return yield* usage(`--http ${sanitizeText(Option.getOrElse(input.http, () => ""))}: expected HOST:PORT`)
    const peerPort = Option.getOrUndefined(input.port)
    if (peerPort !== undefined && !(peerPort >= 0 && peerPort <= 65535)) return yield* usage(`--port ${peerPort}: expected 0..65535`)
    const stateDir = Path.resolve(
      Option.getOrElse(input.stateDir, () => Path.join(ResumeRecord.defaultStateDir(process.env), "daemon"))
    )
    const sources = yield* peerSourceOptions(input)
    const openFiles = yield* maxOpenFiles(input.maxOpenFiles)
    const down = yield* upLimit(input.downLimit, "--down-limit")
    const up = yield* upLimit(input.upLimit)
    const settings: Partial<TorrentInfo.Settings> = {}
    const set = <K extends keyof TorrentInfo.Settings>(k: K, v: TorrentInfo.Settings[K] | undefined) => {
      if (v !== undefined) (settings as Record<string, unknown>)[k] = v
    }
    set("downloadDir", Option.getOrUndefined(Option.map(input.downloadDir, (d) => Path.resolve(d))))
    set("maxActiveDownloads", yield* positive("--max-active-downloads", input.maxActiveDownloads))
    set("maxActiveSeeds", yield* positive("--max-active-seeds", input.maxActiveSeeds))
    set("maxConnections", yield* positive("--max-connections", input.maxConnections))
    set("maxPeersPerTorrent", yield* positive("--max-peers", input.maxPeers))
    set("downloadLimit", down)
    set("uploadLimit", up)
    set("seedRatio", Option.getOrUndefined(input.seedRatio))
    set("seedTime", Option.getOrUndefined(input.seedTime))
    set("watchDir", Option.getOrUndefined(Option.map(input.watchDir, (d) => Path.resolve(d))))
    set("peerPort", peerPort)
    if (input.noDht) set("dht", false)
    if (input.noPex) set("pex", false)
    set("encryption", sources.encryption)
    const auth = Option.isNone(input.authFile)
      ? undefined
      : yield* Auth.readFile(input.authFile.value).pipe(
        Effect.provide(NodeFileSystem.layer),
        Effect.mapError((e) => new CliFailure({ message: sanitizeText(e.message), exitCode: 1 }))
      )

    const client = Client.layer({
      ...sources,
      listen: { host: Option.getOrElse(input.bind, () => "0.0.0.0"), port: peerPort ?? 51413, orAnyPort: peerPort === undefined },
      stateDir,
      maxOpenFiles: openFiles,
      noPeersTimeout: "100000 days"
    })
    const session = SessionLive.layer({ stateDir, settings })
    const web = Option.match(input.transmissionWeb, {
      onNone: () => (Fs.existsSync(Path.join(DEBIAN_WEB, "index.html")) ? DEBIAN_WEB : undefined),
      onSome: (d) => (d === "none" ? undefined : Path.resolve(d))
    })
    if (web !== undefined && !Fs.existsSync(Path.join(web, "index.html"))) {
      return yield* usage(`--transmission-web ${sanitizeText(web)}: no index.html there`)
    }
    const webUi = Option.match(input.webUi, {
      onNone: () => (Fs.existsSync(Path.join(BUILT_WEB_UI, "index.html")) ? BUILT_WEB_UI : undefined),
      onSome: (d) => (d === "none" ? undefined : Path.resolve(d))
    })
    if (webUi !== undefined && !Fs.existsSync(Path.join(webUi, "index.html"))) {
      return yield* usage(`--web-ui ${sanitizeText(webUi)}: no index.html there (npm run build makes dist/webui)`)
    }
    const server = Server.layer({
      host: http.host,
      port: http.port,
      auth,
      allowedHosts: input.allowHost,
      transmissionWeb: web,
      webUi
    })
    const announce = Effect.gen(function*() {
      const s = yield* Session.Session
      const current = yield* s.settings.get
      const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener)
      const torrents = (yield* s.list).length
      process.stdout.write(
        `effect-torrent daemon: API on ${Server.urlOf(http.host, http.port)}${webUi === undefined ? "" : ` (web UI at /)`}, peers on port ${listener?.address.port ?? "-"}, ` +
          `${torrents} torrent(s), downloads to ${current.downloadDir}, state in ${stateDir}\n`
      )
    })
    yield* Effect.zipRight(announce, Effect.never).pipe(
      Effect.provide(Layer.merge(server, session).pipe(Layer.provideMerge(session), Layer.provideMerge(client))),
      Effect.catchTag("ServerError", (e) => Effect.fail(new CliFailure({ message: Hints.explain(e), exitCode: 1 }))),
      Effect.catchTag("TorrentError", (e) => Effect.fail(new CliFailure({ message: Hints.explain(e), exitCode: 1 })))
    )
  })

export const daemon = Command.make("daemon", opt, run).pipe(
  Command.withDescription("run the long-lived client: many torrents, an HTTP API, a session that survives restarts")
)
