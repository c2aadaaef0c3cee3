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
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as NodePath from "node:path"
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
import { noWebSeedsOpt, type PeerSourceInput, peerSourceOptions, peerSourceOpts } from "./PeerSources.ts"
import * as Hints from "./Hints.ts"
import * as Progress from "./Progress.ts"
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

export interface View {
  metadata?: { peers: number; sources: number; received: number; total: number } | undefined
  checking: { checked: number; total: number } | undefined
  downRate: number
  upRate?: number | undefined
  peers: number
  /** Connected peers' progress (0..1), once the torrent runs: how many of them are seeds. */
  peerProgress?: (() => ReadonlyArray<number>) | undefined
  /** Once the torrent runs: what it does to find peers, for the line shown while none is connected. */
  search?: (() => Omit<Progress.WaitingView, "name" | "done" | "total">) | undefined
  startedAt?: number | undefined
}

/** The status line for `width` columns (Infinity on a pipe: every field, no bar). */
export const statusLine = (d: Client.Download, view: View, width: number, bar: boolean, color: boolean): string => {
  const md = view.metadata
  const clip = (line: string) => (line.length < width ? line : `${line.slice(0, Math.max(1, width - 2))}…`)
  if (md !== undefined) {
    const pieces = md.total > 0 ? `, ${md.received}/${md.total} pieces` : ""
    return clip(`fetching metadata: ${Progress.formatPeers(md.peers, undefined)}, ${md.sources} offering it${pieces}`)
  }
  if (view.checking !== undefined) return clip(`checking ${view.checking.checked}/${view.checking.total} pieces`)
  const st = d.stats()
  if (view.peers === 0 && view.search !== undefined && view.startedAt !== undefined && st.bytesLeft > 0) {
    return Progress.waitingLine({ name: sanitizeText(d.name), done: st.total - st.bytesLeft, total: st.total, ...view.search() }, width)
  }
  const progress = view.peerProgress?.()
  return Progress.downloadLine({
    name: sanitizeText(d.name),
    done: st.total - st.bytesLeft,
    total: st.total,
    downRate: view.downRate,
    upRate: view.upRate ?? 0,
    peers: view.peers,
    seeds: progress === undefined ? undefined : progress.filter((p) => p >= 1).length
  }, width, { bar, color })
}

/**
 * The end of a download, truthfully: what was transferred in this run and how fast, what was already there,
 * where the files are, and what was uploaded meanwhile.
 */
export const summary = (r: {
  readonly name: string
  readonly where: string
  readonly total: number
  readonly downloaded: number
  readonly alreadyThere: number
  readonly uploaded: number
  readonly seconds: number
}): string => {
  const secs = Math.max(0.001, r.seconds)
  const head = `${r.name}: complete, ${formatBytes(r.total)} in ${r.where}\n`
  if (r.downloaded === 0) return `${head}  nothing to download: all of it was already there\n`
  const there = r.alreadyThere > 0 ? `; ${formatBytes(r.alreadyThere)} was already there` : ""
  const ratio = r.total > 0 ? r.uploaded / r.total : 0
  return head +
    `  downloaded ${formatBytes(r.downloaded)} in ${Progress.formatDuration(secs)} ` +
    `(${Progress.formatRate(r.downloaded / secs)} on average)${there}\n` +
    `  uploaded ${formatBytes(r.uploaded)} (ratio ${ratio.toFixed(2)})\n`
}

/** Seeds until the ratio or time limit (or forever, until Ctrl-C), then says why it stopped. */
const seedAfter = (
  d: Client.Download,
  input: {
    readonly quiet: boolean
    readonly json: boolean
    readonly seedRatio: Option.Option<number>
    readonly seedTime: Option.Option<number>
  }
) =>
  Effect.scoped(Effect.gen(function*() {
    const quiet = input.quiet || input.json
    const listener = yield* Effect.flatMap(Client.Client, (c) => c.listener)
    const where = listener === undefined ? "" : ` on port ${listener.address.port}`
    const limits = [
      ...Option.toArray(input.seedRatio).map((r) => `until ratio ${r}`),
      ...Option.toArray(input.seedTime).map((t) => `for ${t} s`)
    ]
    const until = limits.length > 0 ? `${limits.join(" or ")}, or Ctrl-C` : "until Ctrl-C"
    if (!quiet) process.stdout.write(`${sanitizeText(d.name)}: seeding${where} ${until}\n`)
    yield* showSeeding(d, quiet)
    const startedAt = Date.now()
    const byRatio = Option.match(input.seedRatio, {
      onNone: () => Effect.never,
      onSome: (r) =>
        Effect.sleep("1 second").pipe(
          Effect.repeat({ until: () => d.stats().total === 0 || d.stats().uploaded / d.stats().total >= r }),
          Effect.as(`ratio ${r} reached`)
        )
    })
    const byTime = Option.match(input.seedTime, {
      onNone: () => Effect.never,
      onSome: (t) => Effect.sleep(Duration.seconds(t)).pipe(Effect.as(`--seed-time ${t} s reached`))
    })
    const seeded = () => {
      const st = d.stats()
      const ratio = st.total > 0 ? st.uploaded / st.total : 0
      return `seeded ${formatBytes(st.uploaded)} (ratio ${ratio.toFixed(2)}) in ${Progress.formatDuration((Date.now() - startedAt) / 1000)}`
    }
    const clear = () => process.stdout.isTTY === true && !quiet && process.stdout.write("\r\x1b[K")
    // A failure (a file deleted under us) ends it too.
    const why = yield* Effect.raceFirst(Effect.race(byRatio, byTime), d.failed).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          clear()
          if (!quiet) process.stdout.write(`${sanitizeText(d.name)}: ${seeded()}; stopped (interrupted)\n`)
        })
      )
    )
    clear()
    if (!quiet) process.stdout.write(`${sanitizeText(d.name)}: ${seeded()}; stopping: ${why}\n`)
  }))

const run = (input: PeerSourceInput & {
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
  readonly noWebSeeds: boolean
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
      const view: View & { alreadyThere?: number } = { checking: undefined, downRate: 0, peers: 0 }
      const trackerErrors = new Map<string, string>()
      yield* Effect.forkScoped(Effect.map(d.running, (r) => {
        view.peerProgress = () => r.torrent.peers().map((p) => p.progress)
        view.search = () => {
          const s = r.torrent.search()
          return {
            ...s,
            lastAttempt: s.lastAttempt === undefined ? undefined : sanitizeText(s.lastAttempt),
            trackers: r.torrent.trackers().map((t) => ({ url: sanitizeText(t.url), status: t.status, message: sanitizeText(t.message) })),
            webSeeds: r.torrent.webSeeds().length
          }
        }
      }).pipe(Effect.ignore))
      // `--quiet` without `--json` prints nothing the events feed, so nothing consumes them: a wake-up and ~30
      // runtime ops per event (one per piece) saved. The subscription slides, so the torrent never waits for it.
      if (!input.quiet || input.json) yield* Effect.forkScoped(Stream.runForEach(d.events, (e) =>
        Effect.sync(() => {
          if (input.json) out.write(`${JSON.stringify(TorrentEvent.toJson(e))}\n`)
          TorrentEvent.$match(e, {
            MetadataProgress: (p) => void (view.metadata = { ...p }),
            MetadataReceived: () => void (view.metadata = undefined),
            Checking: (c) => void (view.checking = { checked: c.checked, total: c.total }),
            Started: (e) => {
              view.checking = undefined
              view.startedAt = Date.now()
              view.alreadyThere = Math.max(0, d.stats().total - e.bytesLeft)
            },
            Progress: (p) => {
              view.downRate = p.downRate
              view.upRate = p.upRate
              view.peers = p.peers
            },
            PeerConnected: () => void view.peers++,
            PeerDisconnected: () => void (view.peers = Math.max(0, view.peers - 1)),
            PieceVerified: () => {},
            PieceFailed: () => {},
            PeerBanned: () => {},
            TrackerWarning: () => {},
            TrackerError: (t) => void trackerErrors.set(t.url, t.message),
            Completed: () => {}
          })
        })))
      const drawing = tty
        ? yield* Effect.forkScoped(
          Effect.sync(() => out.write(`\r\x1b[K${statusLine(d, view, Progress.columns(out), true, color)}`)).pipe(
            Effect.andThen(Effect.sleep("250 millis")),
            Effect.forever
          )
        )
        : !input.json && !input.quiet
        ? yield* Effect.forkScoped(
          Effect.sleep("5 seconds").pipe(
            Effect.andThen(Effect.sync(() => {
              out.write(`${statusLine(d, view, Number.POSITIVE_INFINITY, false, false)}\n`)
            })),
            Effect.forever
          )
        )
        : undefined
      const talk = !input.json && !input.quiet
      // Ctrl-C (or SIGTERM): where it stopped, and that the same command resumes.
      const result = yield* Effect.either(d.done).pipe(Effect.onInterrupt(() =>
        Effect.sync(() => {
          if (tty) out.write("\r\x1b[K")
          if (!talk) return
          const st = d.stats()
          const pct = st.total === 0 ? 100 : ((st.total - st.bytesLeft) * 100) / st.total
          out.write(
            `${sanitizeText(d.name)}: stopped at ${pct.toFixed(1)}% (${formatBytes(st.total - st.bytesLeft)} of ` +
              `${formatBytes(st.total)}) in ${sanitizeText(NodePath.resolve(input.output))}; ` +
              `run the same command again to resume\n`
          )
        })
      ))
      if (drawing !== undefined) yield* Fiber.interrupt(drawing)
      if (tty) out.write("\r\x1b[K")
      if (result._tag === "Left") {
        return yield* new CliFailure({ message: Hints.explain(result.left, { trackerErrors }), exitCode: 1 })
      }
      if (talk) {
        const st = d.stats()
        out.write(summary({
          name: sanitizeText(d.name),
          where: sanitizeText(NodePath.resolve(input.output, d.name)),
          total: st.total,
          downloaded: st.downloaded,
          alreadyThere: view.alreadyThere ?? 0,
          uploaded: st.uploaded,
          seconds: (Date.now() - (view.startedAt ?? startedAt)) / 1000
        }))
      }
      if (tty && talk) {
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
      Effect.catchTag("TorrentError", (e) => Effect.fail(new CliFailure({ message: Hints.explain(e), exitCode: 1 }))),
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
    ...peerSourceOpts,
    noWebSeeds: noWebSeedsOpt
  },
  run
).pipe(Command.withDescription("download a torrent into a directory (resumes from data already there)"))
