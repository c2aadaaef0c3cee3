/**
 * `effect-torrent download <torrent | magnet> [-o DIR] [--peer host:port]... [--only INDEX|GLOB]... [--json]
 * [--quiet] [--max-peers N] [--max-open-files N] [--no-trackers] [--no-peers-timeout SECONDS] [--port N] [--bind HOST] [--up-limit RATE]
 * [--down-limit RATE] [--seed [--seed-ratio R] [--seed-time SECONDS]] [--state-dir DIR] [--no-resume]
 * [--resume-interval SECONDS] [--save-torrent FILE] [--no-dht] [--dht-bootstrap host:port]... [--no-pex]
 * [--no-web-seeds] [--encryption prefer|require|off]`.
 *
 * A magnet link first fetches its metadata from peers (its `x.pe`, `--peer`, its trackers, the DHT, PEX), shown as
 * "fetching metadata"; `--save-torrent FILE` writes the resulting `.torrent` (for a `.torrent` source, a copy).
 *
 * Fast resume: a record per torrent in `--state-dir` (ResumeRecord.ts) lets a restart — after Ctrl-C or a crash —
 * trust the pieces verified before, re-hashing only pieces of files changed since the record was saved.
 *
 * It accepts inbound peers on `--port` and serves them while downloading. With `--seed` it keeps seeding after
 * completion until the upload ratio reaches `--seed-ratio`, `--seed-time` seconds pass, or Ctrl-C.
 *
 * Output: on a TTY one progress line redrawn 4 times a second and a per-file summary at the end; on a pipe a plain
 * progress line every 5 seconds; `--json` one JSON object per event and line; `--quiet` only errors (stderr).
 * Exit 0 when every wanted piece is verified, 1 with one line when the download cannot finish.
 *
 * `--only` takes file numbers as `effect-torrent info` lists them (torrent order, pad files left out, from 0) or
 * globs over the file's path (`*` within a component, `**` across, `?` one character), matched against the path
 * with and without the torrent's directory name; a glob without "/" also matches the file name alone. A magnet's
 * `so` selects the same numbers.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Magnet from "../metainfo/Magnet.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import * as Client from "../session/Client.ts"
import * as FileSelection from "../torrent/FileSelection.ts"
import * as TorrentEvent from "../torrent/TorrentEvent.ts"
import { CliFailure, colorEnabled, formatBytes, sanitizeText, style } from "./Output.ts"
import {
  bindOpt,
  downLimitOpt,
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
import { dhtBootstrapOpt, encryptionOpt, noDhtOpt, noLsdOpt, noPexOpt, noPortMappingOpt, noWebSeedsOpt, peerSourceOptions, transportOpt } from "./PeerSources.ts"
import * as Source from "./Source.ts"

const sourceArg = Args.text({ name: "torrent | magnet" }).pipe(Args.withDescription("a .torrent file or a magnet: URI"))
const outputOpt = Options.text("output").pipe(
  Options.withAlias("o"),
  Options.withDescription("directory to download into (default: the current directory)"),
  Options.withDefault(".")
)
const peerOpt = Options.text("peer").pipe(
  Options.withDescription("a peer to dial, host:port (repeatable)"),
  Options.repeated
)
const onlyOpt = Options.text("only").pipe(
  Options.withDescription("download only this file: a number as `info` lists them, or a glob over its path"),
  Options.repeated
)
const jsonOpt = Options.boolean("json").pipe(Options.withDescription("print one JSON object per event and line"))
const quietOpt = Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("print only errors"))
const maxPeersOpt = Options.integer("max-peers").pipe(
  Options.withDescription("connections at most (default 50)"),
  Options.optional
)
const noTrackersOpt = Options.boolean("no-trackers").pipe(Options.withDescription("do not contact trackers"))
const noPeersOpt = Options.integer("no-peers-timeout").pipe(
  Options.withDescription("seconds to wait for a first peer (or an answering tracker) before giving up (default 60)"),
  Options.optional
)

const resumeIntervalOpt = Options.float("resume-interval").pipe(
  Options.withDescription("seconds between fast-resume saves while pieces arrive (default 10; also every 256 MiB)"),
  Options.optional
)
const saveTorrentOpt = Options.text("save-torrent").pipe(
  Options.withDescription("also write the .torrent file here (for a magnet link: once its metadata arrived)"),
  Options.optional
)
const seedOpt = Options.boolean("seed").pipe(Options.withDescription("keep seeding after the download completes"))
const seedRatioOpt = Options.float("seed-ratio").pipe(
  Options.withDescription("with --seed: stop once uploaded / size reaches this ratio"),
  Options.optional
)
const seedTimeOpt = Options.integer("seed-time").pipe(
  Options.withDescription("with --seed: stop after seeding this many seconds"),
  Options.optional
)

const usage = (message: string) => new CliFailure({ message, exitCode: 2 })

/** `host:port` or `[v6]:port`. */
export const parsePeer = (text: string): { host: string; port: number } | undefined => {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text)
  if (m === null) return undefined
  const port = Number(m[2])
  return port > 0 && port < 65536 ? { host: m[1]!, port } : undefined
}

const globToRegExp = (glob: string): RegExp => {
  let re = ""
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*"
      i++
      if (glob[i + 1] === "/") i++
    } else if (c === "*") re += "[^/]*"
    else if (c === "?") re += "[^/]"
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&")
  }
  return new RegExp(`^${re}$`)
}

/** `--only` specs as file numbers (`info` numbering); `undefined` when there are none. */
export const selectFiles = (
  m: Metainfo.Metainfo,
  specs: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<number> | undefined, CliFailure> => {
  if (specs.length === 0) return Effect.succeed(undefined)
  const data = FileSelection.dataFiles(m)
  const out = new Set<number>()
  for (const spec of specs) {
    if (/^\d+$/.test(spec)) {
      const n = Number(spec)
      if (n >= data.length) {
        return Effect.fail(usage(`--only ${spec}: the torrent has ${data.length} files (numbered from 0)`))
      }
      out.add(n)
      continue
    }
    const re = globToRegExp(spec)
    let matched = false
    data.forEach((f, n) => {
      const path = m.files[f]!.path
      const full = path.join("/")
      const hit = re.test(full) || (m.isMultiFile && re.test(path.slice(1).join("/"))) ||
        (!spec.includes("/") && re.test(path.at(-1) ?? ""))
      if (hit) {
        out.add(n)
        matched = true
      }
    })
    if (!matched) return Effect.fail(usage(`--only ${sanitizeText(spec)}: matches no file of the torrent`))
  }
  return Effect.succeed([...out].sort((a, b) => a - b))
}

const formatEta = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--"
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0")
  const ss = String(s % 60).padStart(2, "0")
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

export interface View {
  metadata?: { peers: number; sources: number; received: number; total: number } | undefined
  checking: { checked: number; total: number } | undefined
  downRate: number
  peers: number
}

export const statusLine = (d: Client.Download, view: View, bar: boolean, color: boolean): string => {
  const s = style(color)
  const md = view.metadata
  if (md !== undefined) {
    const pieces = md.total > 0 ? `, ${md.received}/${md.total} pieces` : ""
    return `fetching metadata: ${md.peers} peers, ${md.sources} offering it${pieces}`
  }
  if (view.checking !== undefined) return `checking ${view.checking.checked}/${view.checking.total} pieces`
  const st = d.stats()
  const done = st.total - st.bytesLeft
  const pct = st.total === 0 ? 100 : (done * 100) / st.total
  const width = 24
  const filled = Math.round((pct / 100) * width)
  const gauge = bar ? ` ${s.cyan("█".repeat(filled))}${s.dim("░".repeat(width - filled))}` : ""
  const eta = view.downRate > 0 ? st.bytesLeft / view.downRate : Number.POSITIVE_INFINITY
  return `${pct.toFixed(1).padStart(5)}%${gauge} ${formatBytes(done)}/${formatBytes(st.total)}  ` +
    `${formatBytes(view.downRate)}/s  ${view.peers} peers  ETA ${formatEta(eta)}`
}

/** Seeds until the ratio or time limit (or forever, until Ctrl-C). */
const seedAfter = (
  d: Client.Download,
  input: {
    readonly quiet: boolean
    readonly seedRatio: Option.Option<number>
    readonly seedTime: Option.Option<number>
  }
) =>
  Effect.scoped(Effect.gen(function*() {
    const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener)
    const where = listener === undefined ? "" : ` on port ${listener.address.port}`
    if (!input.quiet) process.stdout.write(`${sanitizeText(d.name)}: seeding${where} (Ctrl-C to stop)\n`)
    yield* showSeeding(d, input.quiet)
    const byRatio = Option.match(input.seedRatio, {
      onNone: () => Effect.never,
      onSome: (r) =>
        Effect.sleep("1 second").pipe(
          Effect.repeat({ until: () => d.stats().total === 0 || d.stats().uploaded / d.stats().total >= r })
        )
    })
    const byTime = Option.match(input.seedTime, {
      onNone: () => Effect.never,
      onSome: (t) => Effect.sleep(Duration.seconds(t))
    })
    yield* Effect.raceFirst(Effect.race(byRatio, byTime), d.failed) // a failure (a file deleted under us) ends it too
    if (process.stdout.isTTY === true && !input.quiet) process.stdout.write("\r\x1b[K")
    if (!input.quiet) {
      const st = d.stats()
      process.stdout.write(`${sanitizeText(d.name)}: seeded ${formatBytes(st.uploaded)}, stopping\n`)
    }
  }))

const run = (input: {
  readonly source: string
  readonly output: string
  readonly peer: ReadonlyArray<string>
  readonly only: ReadonlyArray<string>
  readonly json: boolean
  readonly quiet: boolean
  readonly maxPeers: Option.Option<number>
  readonly noTrackers: boolean
  readonly noPeersTimeout: Option.Option<number>
  readonly port: Option.Option<number>
  readonly bind: Option.Option<string>
  readonly upLimit: Option.Option<string>
  readonly downLimit: Option.Option<string>
  readonly seed: boolean
  readonly seedRatio: Option.Option<number>
  readonly seedTime: Option.Option<number>
  readonly stateDir: Option.Option<string>
  readonly noResume: boolean
  readonly resumeInterval: Option.Option<number>
  readonly maxOpenFiles: Option.Option<number>
  readonly saveTorrent: Option.Option<string>
  readonly noDht: boolean
  readonly dhtBootstrap: ReadonlyArray<string>
  readonly noPex: boolean
  readonly noLsd: boolean
  readonly noWebSeeds: boolean
  readonly noPortMapping: boolean
  readonly encryption: Option.Option<string>
  readonly transport: Option.Option<string>
}) =>
  Effect.gen(function*() {
    const loaded = yield* Source.load(input.source)
    const peers: Array<{ host: string; port: number }> = []
    for (const p of input.peer) {
      const parsed = parsePeer(p)
      if (parsed === undefined) return yield* usage(`--peer ${sanitizeText(p)}: expected host:port`)
      peers.push(parsed)
    }
    if (Option.isSome(input.maxPeers) && input.maxPeers.value < 1) return yield* usage("--max-peers must be at least 1")
    if (Option.isSome(input.noPeersTimeout) && input.noPeersTimeout.value < 1) {
      return yield* usage("--no-peers-timeout must be at least 1 second")
    }
    const listen = yield* listenOptions(input.port, input.bind)
    const limit = yield* upLimit(input.upLimit)
    const downLimit = yield* upLimit(input.downLimit, "--down-limit")
    if (!input.seed && (Option.isSome(input.seedRatio) || Option.isSome(input.seedTime))) {
      return yield* usage("--seed-ratio and --seed-time need --seed")
    }
    if (Option.isSome(input.seedRatio) && !(input.seedRatio.value > 0)) return yield* usage("--seed-ratio must be > 0")
    if (Option.isSome(input.seedTime) && input.seedTime.value < 0) return yield* usage("--seed-time must be >= 0")
    if (Option.isSome(input.resumeInterval) && !(input.resumeInterval.value >= 0.05)) {
      return yield* usage("--resume-interval must be at least 0.05 seconds")
    }
    const sources = yield* peerSourceOptions(input)
    const openFiles = yield* maxOpenFiles(input.maxOpenFiles)
    let only: ReadonlyArray<number> | undefined
    let source: Metainfo.Metainfo | Magnet.Magnet
    let onlyFor: Client.DownloadOptions["onlyFor"]
    if (loaded._tag === "Magnet") {
      only = Client.selectOnlyOf(loaded.magnet)
      source = loaded.magnet
      // --only globs need the file list: applied once the metadata is here (they override the magnet's `so`).
      if (input.only.length > 0) {
        onlyFor = (m) =>
          selectFiles(m, input.only).pipe(
            Effect.mapError((e) => new Client.TorrentError({ reason: "invalid-selection", detail: e.message }))
          )
      }
    } else {
      only = yield* selectFiles(loaded.metainfo, input.only)
      source = loaded.metainfo
    }
    const saveTorrent = Option.getOrUndefined(input.saveTorrent)
    const out = process.stdout
    const tty = out.isTTY === true && !input.json && !input.quiet
    const color = colorEnabled(out)
    const startedAt = Date.now()
    yield* Effect.scoped(Effect.gen(function*() {
      const d = yield* Client.download(source, {
        outputDir: input.output,
        peers,
        only,
        trackers: !input.noTrackers,
        maxPeers: Option.getOrUndefined(input.maxPeers),
        noPeersTimeout: Option.match(input.noPeersTimeout, {
          onNone: () => undefined,
          onSome: (n) => Duration.seconds(n)
        }),
        seed: input.seed,
        upLimit: limit,
        downLimit,
        onlyFor,
        saveTorrent: loaded._tag === "Magnet" ? saveTorrent : undefined
      })
      if (saveTorrent !== undefined && loaded._tag === "Torrent") yield* Client.writeTorrentFile(saveTorrent, loaded.bytes)
      const view: View = { checking: undefined, downRate: 0, peers: 0 }
      // `--quiet` without `--json` prints nothing the events feed, so nothing consumes them: a wake-up and ~30
      // runtime ops per event (one per piece) saved. The subscription slides, so the torrent never waits for it.
      if (!input.quiet || input.json) yield* Effect.forkScoped(Stream.runForEach(d.events, (e) =>
        Effect.sync(() => {
          if (input.json) out.write(`${JSON.stringify(TorrentEvent.toJson(e))}\n`)
          TorrentEvent.$match(e, {
            MetadataProgress: (p) => void (view.metadata = { ...p }),
            MetadataReceived: () => void (view.metadata = undefined),
            Checking: (c) => void (view.checking = { checked: c.checked, total: c.total }),
            Started: () => void (view.checking = undefined),
            Progress: (p) => {
              view.downRate = p.downRate
              view.peers = p.peers
            },
            PeerConnected: () => void view.peers++,
            PeerDisconnected: () => void (view.peers = Math.max(0, view.peers - 1)),
            PieceVerified: () => {},
            PieceFailed: () => {},
            PeerBanned: () => {},
            TrackerWarning: () => {},
            TrackerError: () => {},
            Completed: () => {}
          })
        })))
      if (tty) {
        yield* Effect.forkScoped(
          Effect.sync(() => out.write(`\r\x1b[K${statusLine(d, view, true, color)}`)).pipe(
            Effect.andThen(Effect.sleep("250 millis")),
            Effect.forever
          )
        )
      } else if (!input.json && !input.quiet) {
        yield* Effect.forkScoped(
          Effect.sleep("5 seconds").pipe(
            Effect.andThen(Effect.sync(() => {
              out.write(`${sanitizeText(d.name)}: ${statusLine(d, view, false, false)}\n`)
            })),
            Effect.forever
          )
        )
      }
      const result = yield* Effect.either(d.done)
      if (tty) out.write("\r\x1b[K")
      if (result._tag === "Left") {
        return yield* new CliFailure({ message: sanitizeText(result.left.message), exitCode: 1 })
      }
      if (input.json || input.quiet) return
      const st = d.stats()
      const secs = (Date.now() - startedAt) / 1000
      out.write(`${sanitizeText(d.name)}: complete, ${formatBytes(st.total)} in ${secs.toFixed(1)} s\n`)
      if (tty) {
        const s = style(color)
        const m = yield* d.metainfo
        const wanted = FileSelection.wantedFiles(m, onlyFor === undefined ? only : yield* onlyFor(m))
        m.files.forEach((f, i) => {
          if (f.pad || wanted[i] !== true) return
          out.write(`  ${s.green("✓")} ${formatBytes(f.length).padStart(10)}  ${sanitizeText(f.path.join("/"))}\n`)
        })
      }
      if (input.seed) yield* seedAfter(d, input)
    }).pipe(
      Effect.catchTag("TorrentError", (e) =>
        Effect.fail(new CliFailure({ message: sanitizeText(e.message), exitCode: 1 }))),
      Effect.provide(Client.layer({
        maxPeers: Option.getOrUndefined(input.maxPeers),
        maxOpenFiles: openFiles,
        listen,
        upLimit: limit,
        ...resumeOptions(input.stateDir, input.noResume),
        ...sources,
        resumeSave: Option.match(input.resumeInterval, {
          onNone: () => undefined,
          onSome: (s) => ({ interval: Duration.millis(Math.round(s * 1000)) })
        })
      }))
    ))
  })

export const download = Command.make(
  "download",
  {
    source: sourceArg,
    output: outputOpt,
    peer: peerOpt,
    only: onlyOpt,
    json: jsonOpt,
    quiet: quietOpt,
    maxPeers: maxPeersOpt,
    maxOpenFiles: maxOpenFilesOpt,
    noTrackers: noTrackersOpt,
    noPeersTimeout: noPeersOpt,
    port: portOpt,
    bind: bindOpt,
    upLimit: upLimitOpt,
    downLimit: downLimitOpt,
    seed: seedOpt,
    seedRatio: seedRatioOpt,
    seedTime: seedTimeOpt,
    stateDir: stateDirOpt,
    noResume: noResumeOpt,
    resumeInterval: resumeIntervalOpt,
    saveTorrent: saveTorrentOpt,
    noDht: noDhtOpt,
    dhtBootstrap: dhtBootstrapOpt,
    noPex: noPexOpt,
    noLsd: noLsdOpt,
    noWebSeeds: noWebSeedsOpt,
    noPortMapping: noPortMappingOpt,
    encryption: encryptionOpt,
    transport: transportOpt
  },
  run
).pipe(Command.withDescription("download a torrent into a directory (resumes from data already there)"))
