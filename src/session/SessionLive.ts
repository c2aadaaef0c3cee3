/**
 * The `Session` service (Session.ts): many torrents in one long-lived client.
 *
 * - Registry: one entry per torrent, keyed by info-hash, with a small numeric id. Its persisted part
 *   (SessionRecord.ts) is written atomically on every change that matters, so a restart — even after `kill -9` —
 *   brings back every torrent with its options, selection, queue position and paused/finished state; the fast-resume
 *   records (written by each running torrent) mean verified pieces are trusted, not fetched or hashed again.
 * - Runs: a running torrent is one `Client.download` in a scope of its own (seeding after completion), opened and
 *   closed by `reconcile` as QueuePlan.ts says (download and seed slots, forced starts). Closing a run is a clean stop:
 *   sessions closed, `stopped` announced, resume data saved.
 * - Changes go through one lock, so add, remove, pause and the queue never interleave; a run's own events (progress,
 *   completion, failure) update its entry from the run's fibers, which are plain synchronous updates.
 * - Seed goals (ratio, time: the torrent's, else the session's) end seeding with state `finished`.
 * - A failure stops the torrent with state `error` and its reason; `resume` tries again. A daemon waits for peers
 *   forever (no no-peers timeout).
 * - Events: a sliding hub of `SessionEvent`s (added, removed, changed, progress once a second, pieces, completion).
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Bitfield from "../core/Bitfield.ts"
import * as Bytes from "../core/Bytes.ts"
import type { InfoHashV1 } from "../core/InfoHash.ts"
import * as InfoHash from "../core/InfoHash.ts"
import * as FileLayout from "../metainfo/FileLayout.ts"
import * as Magnet from "../metainfo/Magnet.ts"
import * as Metainfo from "../metainfo/Metainfo.ts"
import * as Destination from "../net/Destination.ts"
import * as FileStorage from "../storage/FileStorage.ts"
import * as ResumeRecord from "../storage/ResumeRecord.ts"
import * as ConnectionBudget from "../torrent/ConnectionBudget.ts"
import * as FileSelection from "../torrent/FileSelection.ts"
import * as RateLimit from "../torrent/RateLimit.ts"
import type * as Picker from "../picker/Picker.ts"
import type { TorrentError } from "../torrent/TorrentError.ts"
import * as Client from "./Client.ts"
import * as QueuePlan from "./QueuePlan.ts"
import * as Session from "./Session.ts"
import * as SessionConfig from "./SessionConfig.ts"
import * as SessionRecord from "./SessionRecord.ts"
import * as StateFiles from "./StateFiles.ts"
import * as TorrentInfo from "./TorrentInfo.ts"
import type * as TorrentEvent from "../torrent/TorrentEvent.ts"

export interface Options {
  /** Where session.json, the torrents' metadata and their resume records live (the Client's `stateDir`). */
  readonly stateDir: string
  /** Settings given explicitly (command-line flags): over those saved at run time, over `effect/Config`. */
  readonly settings?: Partial<TorrentInfo.Settings> | undefined
  /** Between watch-folder scans (default 2 s). */
  readonly watchInterval?: Duration.DurationInput | undefined
  /** Between saves of the counters while torrents run (default 30 s). */
  readonly saveInterval?: Duration.DurationInput | undefined
}

/** A torrent's run: one `Client.download` in its own scope. */
interface Run {
  readonly scope: Scope.CloseableScope
  download: Client.Download | undefined
  /** Closed on purpose (pause, queue, remove, shutdown): its end is not a failure. */
  stopping: boolean
  /** Its totals when the run started (the download's stats count from 0). */
  readonly baseDownloaded: number
  readonly baseUploaded: number
  seedingSince: number | undefined
  downRate: number
  upRate: number
  peers: number
  readonly ended: Deferred.Deferred<void>
  /** The running torrent (controls, introspection), once it runs; `ready` settles then, or with its failure. */
  running: Client.Running | undefined
  readonly ready: Deferred.Deferred<Client.Running, TorrentError>
}

interface Entry {
  p: SessionRecord.Persisted
  metainfo: Metainfo.Metainfo | undefined
  readonly magnet: Magnet.Magnet | undefined
  state: TorrentInfo.State
  forced: boolean
  run: Run | undefined
  /** Verified pieces when it last ran (or from its resume record at start-up); the running torrent's are live. */
  have: Bitfield.Bitfield | undefined
}

const MAX_URL_BYTES = 16 * 1024 * 1024
const hexOf = (h: InfoHashV1) => InfoHash.toHex(h)
/** The info-hash of a persisted hex string (validated by its Schema). */
const infoHashOf = (hex: string): InfoHashV1 => InfoHash.InfoHashV1(Bytes.fromHex(hex) ?? new Uint8Array(0))
const fail = (reason: Session.Reason, message: string, cause?: unknown) =>
  new Session.SessionError({ reason, message, cause })

/** Data files (pad files left out), numbered as `info` lists them. */
const dataFiles = (m: Metainfo.Metainfo) => m.files.filter((f) => !f.pad)

/** Bytes of the wanted pieces, as a running torrent counts them (`Torrent.Stats.total`, what Transmission shows). */
const wantedBytes = (m: Metainfo.Metainfo, files: ReadonlyArray<number> | null): number => {
  const pieces = wantedPiecesOf(m, files)
  const total = m.files.reduce((n, f) => n + f.length, 0)
  let n = 0
  for (const p of Bitfield.indices(pieces)) n += Math.min(m.pieceLength, total - p * m.pieceLength)
  return n
}

/**
 * The torrent's file layout (FileLayout.ts), built once per metainfo. A decoded metainfo always has one (decoding
 * checked the same lengths); if that ever fails, it is a defect, said loudly.
 */
const layouts = new WeakMap<Metainfo.Metainfo, FileLayout.FileLayout>()
const layoutOf = (m: Metainfo.Metainfo): FileLayout.FileLayout => {
  let layout = layouts.get(m)
  if (layout === undefined) {
    layout = Either.getOrThrowWith(FileLayout.make(m.files, m.pieceLength), (e) => e)
    layouts.set(m, layout)
  }
  return layout
}

/** The pieces of the wanted files (all verified once a torrent is complete). */
const wantedPiecesOf = (m: Metainfo.Metainfo, files: ReadonlyArray<number> | null): Bitfield.Bitfield =>
  FileSelection.wantedPieces(layoutOf(m), FileSelection.wantedFiles(m, files ?? undefined))

/** Verified bytes of each data file. */
const completedBytes = (m: Metainfo.Metainfo, have: Bitfield.Bitfield): Array<number> => {
  const starts = layoutOf(m).starts
  const L = m.pieceLength
  return FileSelection.dataFiles(m).map((f) => {
    const start = starts[f]!
    const end = starts[f + 1]!
    let n = 0
    for (let p = Math.floor(start / L); p * L < end; p++) {
      if (Bitfield.has(have, p)) n += Math.min(end, (p + 1) * L) - Math.max(start, p * L)
    }
    return n
  })
}

/** Per-piece priorities of a file priority list (data-file numbers); unwanted files count as low. */
const piecePrioritiesOf = (
  m: Metainfo.Metainfo,
  files: ReadonlyArray<number> | null,
  priorities: ReadonlyArray<readonly [number, TorrentInfo.Priority]>
): Array<Picker.Priority> => {
  const data = FileSelection.dataFiles(m)
  const wanted = FileSelection.wantedFiles(m, files ?? undefined)
  const perFile: Array<Picker.Priority> = m.files.map((_, f) => (wanted[f] ? "normal" : "low"))
  for (const [i, pr] of priorities) {
    const f = data[i]
    if (f !== undefined && wanted[f]) perFile[f] = pr
  }
  return FileSelection.piecePriorities(layoutOf(m), perFile)
}

/** Bytes/s as a rate bucket takes it: a whole number, 0 (unlimited) up to its maximum. */
const rateOf = (n: number | null | undefined): number =>
  n === null || n === undefined || !(n > 0) ? 0 : Math.min(RateLimit.MAX_RATE, Math.floor(n))

/** Streaming reads at most this many bytes at a time, and asks for this much ahead of the reader. */
const STREAM_CHUNK = 1024 * 1024
const READ_AHEAD_BYTES = 16 * 1024 * 1024

/** Reads a `.torrent` from an http(s) URL, bounded in size and time. */
const fetchTorrent = (url: string): Effect.Effect<Uint8Array, Session.SessionError> =>
  Effect.gen(function*() {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return yield* fail("invalid-source", `not a URL: ${url}`)
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      return yield* fail("invalid-source", `${url}: only http and https URLs are fetched`)
    }
    if (Destination.loopbackOnly() && !Destination.isLoopbackHost(parsed.hostname.replace(/^\[|\]$/g, ""))) {
      return yield* fail("invalid-source", `${url}: not fetched (EFFECT_TORRENT_LOOPBACK_ONLY)`)
    }
    return yield* Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]) })
        if (!response.ok) throw new Error(`HTTP ${response.status}`)
        const reader = response.body?.getReader()
        if (reader === undefined) return new Uint8Array(0)
        const chunks: Array<Uint8Array> = []
        let size = 0
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          size += value.length
          if (size > MAX_URL_BYTES) {
            await reader.cancel()
            throw new Error(`larger than ${MAX_URL_BYTES} bytes`)
          }
          chunks.push(value)
        }
        return Bytes.concat(chunks)
      },
      catch: (e) => fail("invalid-source", `${url}: ${e instanceof Error ? e.message : String(e)}`, e)
    })
  })

/** The session over the `Client` in context; it stops every torrent cleanly when its scope closes. */
export const make = (options: Options): Effect.Effect<Session.SessionShape, never, Client.Client | Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Client.Client
    const sessionScope = yield* Effect.scope
    const stateDir = options.stateDir
    const startedAt = Date.now()
    const loaded = yield* SessionRecord.load(stateDir)
    const fromEnv = yield* Effect.orElseSucceed(SessionConfig.fromConfig, () => ({}))
    const initial: TorrentInfo.Settings = {
      ...SessionConfig.defaults(),
      ...fromEnv,
      ...loaded.settings,
      ...options.settings,
      ...Client.features(client.options)
    }
    const settings = yield* SubscriptionRef.make(initial)
    // The session's limits and connection cap, shared by every run and changed in place by `updateSettings`.
    const startNow = yield* Clock.currentTimeMillis
    const shared: Client.Shared = {
      up: RateLimit.makeAdjustable(rateOf(initial.uploadLimit), { now: startNow }),
      down: RateLimit.makeAdjustable(rateOf(initial.downloadLimit), { now: startNow }),
      connections: ConnectionBudget.make(initial.maxConnections)
    }
    let savedSettings: Partial<TorrentInfo.Settings> = loaded.settings
    let nextId = loaded.nextId
    let closing = false
    const lock = yield* Effect.makeSemaphore(1)
    const locked = lock.withPermits(1)
    const hub = yield* PubSub.sliding<TorrentInfo.SessionEvent>(4096)
    const publish = (e: TorrentInfo.SessionEvent) => void hub.unsafeOffer(e)
    // Work started from synchronous callbacks (a run's events), in the session's scope.
    const backgroundSet = yield* FiberSet.make()
    const runBackground = yield* FiberSet.runtime(backgroundSet)<never>()
    const background = (effect: Effect.Effect<void>) => void runBackground(effect)
    const entries = new Map<string, Entry>() // by info-hash hex
    const byId = new Map<number, Entry>()

    // --- what a torrent looks like from outside ---
    const summaryOf = (e: Entry): TorrentInfo.Summary => {
      const run = e.run
      const st = run?.download?.stats()
      const haveSize = st === undefined ? e.p.haveSize : st.total - st.bytesLeft
      const wanted = st === undefined ? e.p.wantedSize : st.total
      const downloaded = run === undefined ? e.p.downloaded : run.baseDownloaded + (st?.downloaded ?? 0)
      const uploaded = run === undefined ? e.p.uploaded : run.baseUploaded + (st?.uploaded ?? 0)
      const downRate = run?.downRate ?? 0
      const left = wanted - haveSize
      return {
        id: e.p.id,
        infoHash: e.p.infoHash,
        name: e.p.name,
        state: e.state,
        complete: e.p.complete,
        progress: wanted === 0 ? (e.metainfo === undefined ? 0 : 1) : haveSize / wanted,
        size: e.p.size,
        wantedSize: wanted,
        haveSize,
        downloaded,
        uploaded,
        downloadRate: downRate,
        uploadRate: run?.upRate ?? 0,
        peers: run?.peers ?? 0,
        ratio: uploaded / Math.max(haveSize, e.metainfo?.pieceLength ?? 1),
        eta: e.p.complete || downRate <= 0 || e.run === undefined ? null : Math.round(left / downRate),
        error: e.p.error,
        downloadDir: e.p.downloadDir,
        addedAt: e.p.addedAt,
        completedAt: e.p.completedAt,
        queuePosition: e.p.queuePosition,
        private: e.metainfo?.private ?? false,
        magnet: e.p.magnet ?? magnetOf(e)
      }
    }
    // Built once per torrent (it was two thirds of `GET /api/torrents` at 200 torrents: bench/daemon-scale.ts).
    const magnets = new WeakMap<Metainfo.Metainfo, string>()
    const magnetOf = (e: Entry): string => {
      const m = e.metainfo
      if (m === undefined) return `magnet:?xt=urn:btih:${e.p.infoHash}`
      let uri = magnets.get(m)
      if (uri === undefined) {
        uri = formatMagnet(e)
        magnets.set(m, uri)
      }
      return uri
    }
    // btih for v1, btmh for v2-only, both for a hybrid (as libtorrent writes them).
    const formatMagnet = (e: Entry): string =>
      e.metainfo === undefined ? `magnet:?xt=urn:btih:${e.p.infoHash}` : Magnet.format(Magnet.fromMetainfo(e.metainfo))

    /** Verified pieces: live while it runs, else as it last ran; undefined before its metadata is known. */
    const haveOf = (e: Entry): Bitfield.Bitfield | undefined => {
      const m = e.metainfo
      if (m === undefined) return undefined
      const live = e.run?.running?.torrent.have()
      if (live !== undefined) return live
      if (e.p.complete) return wantedPiecesOf(m, e.p.files)
      return e.have
    }

    const detailOf = (e: Entry): TorrentInfo.Detail => {
      const m = e.metainfo
      const wanted = e.p.files === null ? undefined : new Set(e.p.files)
      const priorities = new Map(e.p.priorities)
      const have = haveOf(e)
      const completed = m === undefined || have === undefined ? undefined : completedBytes(m, have)
      const files = m === undefined ? [] : dataFiles(m).map((f, i): TorrentInfo.FileInfo => ({
        index: i,
        path: f.path.join("/"),
        length: f.length,
        wanted: wanted === undefined || wanted.has(i),
        priority: priorities.get(i) ?? "normal",
        completed: completed?.[i] ?? 0
      }))
      return {
        ...summaryOf(e),
        pieceLength: m?.pieceLength ?? 0,
        pieces: m?.pieceCount ?? 0,
        bitfield: have === undefined ? "" : Buffer.from(have.bytes).toString("base64"),
        comment: m?.comment ?? "",
        createdBy: m?.createdBy ?? "",
        creationDate: m?.creationDate === undefined ? null : m.creationDate * 1000,
        files,
        trackers: trackersOf(e),
        options: e.p.options
      }
    }

    const trackersOf = (e: Entry): Array<TorrentInfo.TrackerInfo> => {
      const live = e.run?.running?.torrent.trackers()
      if (live !== undefined) return live.map((t) => ({ ...t }))
      return (e.metainfo?.trackers ?? []).flatMap((tier, t) =>
          tier.map((url): TorrentInfo.TrackerInfo => ({
            url,
            tier: t,
            status: "idle",
            lastAnnounceAt: null,
            nextAnnounceAt: null,
            seeders: null,
            leechers: null,
            peers: null,
            message: ""
          }))
      )
    }

    const peersOf = (e: Entry): Array<TorrentInfo.PeerInfo> =>
      (e.run?.running?.torrent.peers() ?? []).map((p) => ({
        address: p.address,
        client: p.client,
        encryption: p.encryption,
        incoming: p.incoming,
        transport: p.transport,
        source: p.source,
        sources: p.sources,
        downloadRate: p.downloadRate,
        uploadRate: p.uploadRate,
        downloaded: p.downloaded,
        uploaded: p.uploaded,
        progress: p.progress,
        choked: p.choked,
        chokingUs: p.chokingUs,
        interested: p.interested,
        interestedInUs: p.interestedInUs
      }))

    const find = (ref: Session.TorrentRef): Effect.Effect<Entry, Session.SessionError> => {
      const e = typeof ref === "number" || /^\d+$/.test(ref)
        ? byId.get(Number(ref))
        : entries.get(ref.toLowerCase())
      return e === undefined ? Effect.fail(fail("not-found", `no torrent ${ref}`)) : Effect.succeed(e)
    }

    // --- persistence ---
    const fileOf = (): SessionRecord.SessionFile => ({
      version: 1,
      nextId,
      settings: savedSettings,
      torrents: [...entries.values()].map((e) => {
        const s = e.run === undefined ? undefined : summaryOf(e)
        return s === undefined ? e.p : {
          ...e.p,
          downloaded: s.downloaded,
          uploaded: s.uploaded,
          haveSize: s.haveSize,
          wantedSize: s.wantedSize
        }
      })
    })
    const persist = Effect.suspend(() => SessionRecord.save(stateDir, fileOf())).pipe(
      Effect.catchAll((e) =>
        Effect.logError(`session state not saved: ${e.message}`).pipe(
          Effect.zipRight(Effect.fail(fail("storage", `session state not saved: ${e.message}`, e)))
        )
      )
    )
    const persistQuietly = Effect.ignore(persist)
    // Saves asked for by runs' events (completion, failure, metadata, counters) coalesce: one writer, at most one
    // save pending behind the one being written — twenty torrents completing at once cost two writes, not twenty
    // queued on the lock (each an atomic write with fsyncs) that a shutdown would wait behind.
    const saveWanted = yield* Queue.sliding<void>(1)
    const requestSave = Effect.sync(() => void saveWanted.unsafeOffer(undefined))
    yield* Effect.forkIn(Effect.forever(Effect.zipRight(Queue.take(saveWanted), locked(persistQuietly))), sessionScope)

    const changed = (e: Entry) => publish({ _tag: "Changed", torrent: summaryOf(e) })
    const setState = (e: Entry, state: TorrentInfo.State) => {
      if (e.state === state) return
      e.state = state
      changed(e)
    }

    // --- runs ---
    const stateOfStopped = (e: Entry): TorrentInfo.State =>
      e.p.error !== null ? "error" : e.p.finished ? "finished" : e.p.paused ? "paused" : "queued"

    const onlyOf = (e: Entry): ReadonlyArray<number> | undefined => e.p.files === null ? undefined : e.p.files

    const startRun = (e: Entry): Effect.Effect<void> =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const current = yield* SubscriptionRef.get(settings)
        const run: Run = {
          scope,
          download: undefined,
          stopping: false,
          baseDownloaded: e.p.downloaded,
          baseUploaded: e.p.uploaded,
          seedingSince: undefined,
          downRate: 0,
          upRate: 0,
          peers: 0,
          ended: yield* Deferred.make<void>(),
          running: undefined,
          ready: yield* Deferred.make<Client.Running, TorrentError>()
        }
        e.run = run
        setState(e, e.metainfo === undefined ? "fetching-metadata" : "checking")
        const peers = e.p.peers.flatMap((s) => {
          const i = s.lastIndexOf(":")
          const port = Number(s.slice(i + 1))
          return i > 0 && Number.isInteger(port) ? [{ host: s.slice(0, i).replace(/^\[|\]$/g, ""), port }] : []
        })
        // Its own limits here; the session's (`shared`) apply on top, to every run together.
        const downloadOptions: Client.DownloadOptions = {
          outputDir: e.p.downloadDir,
          peers,
          only: onlyOf(e),
          maxPeers: e.p.options.maxPeers ?? current.maxPeersPerTorrent,
          seed: true,
          upLimit: rateOf(e.p.options.uploadLimit),
          downLimit: rateOf(e.p.options.downloadLimit),
          noPeersTimeout: Duration.infinity,
          shared,
          priorities: e.p.priorities.length === 0 ? undefined : (m) => piecePrioritiesOf(m, e.p.files, e.p.priorities)
        }
        const body = Effect.gen(function*() {
          const source = e.metainfo ?? e.magnet!
          const d = yield* Client.download(source, downloadOptions).pipe(
            Scope.extend(scope),
            Effect.provideService(Client.Client, client)
          )
          run.download = d
          yield* Effect.forkIn(
            d.running.pipe(
              Effect.tap((r) => Effect.sync(() => (run.running = r))),
              Effect.exit,
              Effect.flatMap((exit) => Deferred.done(run.ready, exit))
            ),
            scope
          )
          if (e.metainfo === undefined) {
            yield* Effect.forkIn(
              Effect.flatMap(d.metainfo, (m) => Effect.sync(() => metadataArrived(e, m))).pipe(Effect.ignore),
              scope
            )
          }
          yield* Effect.forkIn(pump(e, run, d), scope)
          yield* Effect.forkIn(ticker(e, run, d), scope)
          // Ends when the torrent fails, or when its scope is closed (a stop: `failed` never settles then).
          const closed = yield* Deferred.make<void>()
          yield* Scope.addFinalizer(scope, Deferred.succeed(closed, undefined))
          return yield* Effect.raceFirst(d.failed, Deferred.await(closed))
        })
        yield* Effect.forkIn(
          body.pipe(
            Effect.catchAllCause((cause) => (run.stopping ? Effect.void : runFailed(e, run, cause))),
            Effect.ensuring(Deferred.succeed(run.ended, undefined))
          ),
          sessionScope
        )
      })

    const metadataArrived = (e: Entry, m: Metainfo.Metainfo) => {
      e.metainfo = m
      e.p = { ...e.p, name: m.name, size: dataFiles(m).reduce((n, f) => n + f.length, 0), wantedSize: wantedBytes(m, e.p.files) }
      if (e.state === "fetching-metadata") setState(e, "checking")
      else changed(e)
      background(requestSave)
    }

    /**
     * The download's events: `events` from its start until its first completion, then a subscription for the rest
     * of the run — a file selected later makes it incomplete, and it completes again.
     */
    const pump = (e: Entry, run: Run, d: Client.Download) =>
      Stream.runForEach(d.events, (ev) => onEvent(e, run, ev)).pipe(
        Effect.zipRight(Effect.sync(() => completed(e, run))),
        Effect.zipRight(Stream.runForEach(d.subscribe, (ev) => onEvent(e, run, ev)))
      )
    const onEvent = (e: Entry, run: Run, ev: TorrentEvent.TorrentEvent) =>
      Effect.sync(() => {
        switch (ev._tag) {
          case "Checking":
            if (e.state !== "checking" && !e.p.complete) setState(e, "checking")
            break
          case "Started":
            setState(e, ev.bytesLeft === 0 ? "seeding" : "downloading")
            break
          case "PieceVerified":
            publish({ _tag: "PieceVerified", id: e.p.id, infoHash: e.p.infoHash, index: ev.index })
            break
          case "Completed":
            completed(e, run)
            break
        }
      })

    const completed = (e: Entry, run: Run) => {
      if (run.stopping || e.run !== run) return
      const firstTime = !e.p.complete
      const st = run.download?.stats()
      e.p = {
        ...e.p,
        complete: true,
        completedAt: e.p.completedAt ?? Date.now(),
        haveSize: st === undefined ? e.p.haveSize : st.total - st.bytesLeft
      }
      run.seedingSince ??= Date.now()
      setState(e, "seeding")
      if (!firstTime) return background(requestSave) // complete at start, or again: the queue is as it was
      publish({ _tag: "Completed", id: e.p.id, infoHash: e.p.infoHash })
      // A download slot freed, a seed slot taken: the queue decides whether it keeps seeding.
      background(Effect.zipRight(requestSave, reconcileNow))
    }

    /** Once a second: rates, peers, seed goals, and a progress event when any of them changed. */
    const ticker = (e: Entry, run: Run, d: Client.Download) =>
      Effect.gen(function*() {
        let last = d.stats()
        let lastAt = Date.now()
        let said = ""
        for (;;) {
          yield* Effect.sleep("1 second")
          const st = d.stats()
          const now = Date.now()
          const dt = Math.max(1, now - lastAt) / 1000
          run.downRate = Math.max(0, Math.round((st.downloaded - last.downloaded) / dt))
          run.upRate = Math.max(0, Math.round((st.uploaded - last.uploaded) / dt))
          run.peers = st.peers
          last = st
          lastAt = now
          const progress = st.total === 0 ? 1 : (st.total - st.bytesLeft) / st.total
          // An idle seed says nothing: 200 of them cost a summary and an event each per second otherwise.
          const saying = `${progress} ${run.downRate} ${run.upRate} ${run.peers}`
          if (saying !== said) {
            said = saying
            publish({
              _tag: "Progress",
              id: e.p.id,
              infoHash: e.p.infoHash,
              progress,
              downloadRate: run.downRate,
              uploadRate: run.upRate,
              peers: run.peers
            })
          }
          if (e.state === "seeding" && (yield* goalReached(e, run))) {
            e.p = { ...e.p, finished: true, seedingMs: seedingMs(e, run) }
            yield* Effect.forkIn(Effect.zipRight(requestSave, reconcileNow), sessionScope)
            return
          }
        }
      })
    const seedingMs = (e: Entry, run: Run) => e.p.seedingMs + (run.seedingSince === undefined ? 0 : Date.now() - run.seedingSince)
    const goalReached = (e: Entry, run: Run) =>
      Effect.map(SubscriptionRef.get(settings), (current) => {
        const ratio = e.p.options.seedRatio ?? current.seedRatio
        const time = e.p.options.seedTime ?? current.seedTime
        return (ratio !== null && summaryOf(e).ratio >= ratio) || (time !== null && seedingMs(e, run) >= time * 1000)
      })

    // Runs in the run's own fiber: the run is closed without waiting for that fiber (this one) to end, and the
    // queue is re-planned in a fiber of its own (the lock may be held by someone waiting for this run to end).
    const runFailed = (e: Entry, run: Run, cause: Cause.Cause<TorrentError>) =>
      Effect.gen(function*() {
        if (e.run !== run) return
        const failure = Cause.failureOption(cause)
        const error: TorrentInfo.ErrorInfo = Option.isSome(failure)
          ? { reason: failure.value.reason, message: failure.value.message }
          : { reason: "internal", message: Cause.pretty(cause).split("\n")[0] ?? "failed" }
        yield* Effect.logWarning(`${e.p.name}: stopped: ${error.message}`)
        e.p = { ...e.p, error }
        yield* detach(e, run)
        yield* Scope.close(run.scope, Exit.void)
        setState(e, stateOfStopped(e))
        yield* Effect.forkIn(Effect.zipRight(requestSave, reconcileNow), sessionScope)
      })

    /** The run's counters into the entry; the run no longer belongs to it. */
    const detach = (e: Entry, run: Run) =>
      Effect.sync(() => {
        const st = run.download?.stats()
        e.p = {
          ...e.p,
          downloaded: run.baseDownloaded + (st?.downloaded ?? 0),
          uploaded: run.baseUploaded + (st?.uploaded ?? 0),
          seedingMs: seedingMs(e, run),
          ...(st === undefined ? {} : { haveSize: st.total - st.bytesLeft, wantedSize: st.total })
        }
        run.stopping = true
        if (run.running !== undefined) e.have = run.running.torrent.have()
        if (e.run === run) e.run = undefined
      })

    /** Closes a run cleanly (stopped announced, resume data saved) and waits for it. */
    const stopRun = (e: Entry): Effect.Effect<void> =>
      Effect.gen(function*() {
        const run = e.run
        if (run === undefined) return
        yield* detach(e, run)
        yield* Scope.close(run.scope, Exit.void)
        yield* Deferred.await(run.ended)
        setState(e, stateOfStopped(e))
      })

    /** Starts and stops runs as the queue says. */
    const reconcile = Effect.gen(function*() {
      if (closing) return
      const current = yield* SubscriptionRef.get(settings)
      const list = [...entries.values()]
      const run = QueuePlan.plan(
        list.map((e) => ({
          id: e.p.id,
          queuePosition: e.p.queuePosition,
          complete: e.p.complete,
          stopped: e.p.paused || e.p.finished || e.p.error !== null,
          forced: e.forced
        })),
        { maxDownloads: current.maxActiveDownloads, maxSeeds: current.maxActiveSeeds }
      )
      yield* Effect.forEach(list.filter((e) => e.run !== undefined && !run.has(e.p.id)), stopRun, {
        concurrency: "unbounded",
        discard: true
      })
      for (const e of list) {
        if (e.run === undefined && run.has(e.p.id)) yield* startRun(e)
        else if (e.run === undefined) setState(e, stateOfStopped(e))
      }
    })
    const reconcileNow = locked(reconcile)

    // --- operations ---
    const parseSource = (source: Session.Source) =>
      Effect.gen(function*() {
        if (source._tag === "Magnet") {
          const parsed = Magnet.parse(source.uri, { mode: "lenient" })
          if (Either.isLeft(parsed)) return yield* fail("invalid-source", parsed.left.message)
          // keyed by the swarm's 20-byte id: the v1 info-hash, else (btmh only, BEP 52) the truncated v2 one,
          // which is a v2-only torrent's `infoHash` once its metadata is in
          const { v1, v2 } = parsed.right.infoHashes
          const infoHash = v1 ?? InfoHash.truncatedV2(v2!)
          return { infoHash, magnet: parsed.right, metainfo: undefined, bytes: undefined }
        }
        const bytes = source._tag === "Url" ? yield* fetchTorrent(source.url) : source.bytes
        // v2-only torrents too (BEP 52: verified by their Merkle roots; keyed, as everywhere, by the 20-byte id —
        // the truncated v2 info-hash).
        const decoded = Metainfo.decode(bytes, { v2Only: true })
        if (Either.isLeft(decoded)) return yield* fail("invalid-source", decoded.left.message)
        return { infoHash: decoded.right.infoHash, magnet: undefined, metainfo: decoded.right, bytes }
      })

    const checkFiles = (m: Metainfo.Metainfo | undefined, indices: ReadonlyArray<number> | undefined) => {
      if (m === undefined || indices === undefined) return Effect.void
      const n = dataFiles(m).length
      const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= n)
      return bad === undefined ? Effect.void : Effect.fail(fail("invalid-argument", `no file ${bad} (the torrent has ${n})`))
    }

    const selectionOf = (
      m: Metainfo.Metainfo | undefined,
      base: ReadonlyArray<number> | null,
      wanted: ReadonlyArray<number> | undefined,
      unwanted: ReadonlyArray<number> | undefined
    ): ReadonlyArray<number> | null => {
      if (wanted === undefined && unwanted === undefined) return base
      const n = m === undefined ? 0 : dataFiles(m).length
      const set = new Set(base ?? Array.from({ length: n }, (_, i) => i))
      for (const i of wanted ?? []) set.add(i)
      for (const i of unwanted ?? []) set.delete(i)
      return set.size === n ? null : [...set].sort((a, b) => a - b)
    }

    const add = (source: Session.Source, addOptions: TorrentInfo.AddOptions = {}) =>
      Effect.gen(function*() {
        if (closing) return yield* fail("closed", "the session is shutting down")
        const parsed = yield* parseSource(source)
        const hex = hexOf(parsed.infoHash)
        const existing = entries.get(hex)
        if (existing !== undefined) {
          return { id: existing.p.id, infoHash: hex, name: existing.p.name, duplicate: true }
        }
        const m = parsed.metainfo
        yield* checkFiles(m, addOptions.files)
        yield* checkFiles(m, addOptions.unwanted)
        const current = yield* SubscriptionRef.get(settings)
        const downloadDir = Path.resolve(addOptions.downloadDir ?? current.downloadDir)
        const files = selectionOf(m, addOptions.files ?? null, undefined, addOptions.unwanted)
        if (files !== null && files.length === 0 && m !== undefined) {
          return yield* fail("invalid-argument", "no file of the torrent is wanted")
        }
        const priorities: Array<readonly [number, TorrentInfo.Priority]> = [
          ...(addOptions.priorityHigh ?? []).map((i) => [i, "high"] as const),
          ...(addOptions.priorityLow ?? []).map((i) => [i, "low"] as const)
        ]
        if (parsed.bytes !== undefined) yield* StateFiles.saveTorrent(stateDir, parsed.infoHash, parsed.bytes)
        const id = nextId++
        const position = entries.size === 0 ? 0 : Math.max(...[...entries.values()].map((e) => e.p.queuePosition)) + 1
        const p: SessionRecord.Persisted = {
          id,
          infoHash: hex,
          name: m?.name ?? parsed.magnet?.name ?? hex,
          magnet: source._tag === "Magnet" ? source.uri : null,
          downloadDir,
          addedAt: Date.now(),
          completedAt: null,
          paused: addOptions.paused === true,
          finished: false,
          queuePosition: position,
          files,
          priorities,
          options: {
            downloadLimit: addOptions.options?.downloadLimit ?? null,
            uploadLimit: addOptions.options?.uploadLimit ?? null,
            seedRatio: addOptions.options?.seedRatio ?? null,
            seedTime: addOptions.options?.seedTime ?? null,
            maxPeers: addOptions.options?.maxPeers ?? null
          },
          peers: addOptions.peers ?? [],
          downloaded: 0,
          uploaded: 0,
          seedingMs: 0,
          complete: false,
          haveSize: 0,
          wantedSize: m === undefined ? 0 : wantedBytes(m, files),
          size: m === undefined ? 0 : dataFiles(m).reduce((n, f) => n + f.length, 0),
          error: null
        }
        const e: Entry = {
          p,
          metainfo: m,
          magnet: parsed.magnet,
          state: p.paused ? "paused" : "queued",
          forced: false,
          run: undefined,
          have: undefined
        }
        entries.set(hex, e)
        byId.set(id, e)
        yield* persist.pipe(Effect.tapError(() =>
          Effect.sync(() => {
            entries.delete(hex)
            byId.delete(id)
          })
        ))
        publish({ _tag: "Added", torrent: summaryOf(e) })
        yield* reconcile
        return { id, infoHash: hex, name: p.name, duplicate: false }
      })

    const update = (ref: Session.TorrentRef, f: (e: Entry) => Effect.Effect<void, Session.SessionError>) =>
      locked(Effect.gen(function*() {
        if (closing) return yield* fail("closed", "the session is shutting down")
        const e = yield* find(ref)
        yield* f(e)
        changed(e)
        yield* persist
        yield* reconcile
      }))

    const pause = (ref: Session.TorrentRef) =>
      update(ref, (e) =>
        Effect.gen(function*() {
          e.p = { ...e.p, paused: true }
          e.forced = false
          yield* stopRun(e)
        }))

    const resume = (ref: Session.TorrentRef, o: { readonly now?: boolean } = {}) =>
      update(ref, (e) =>
        Effect.sync(() => {
          // A finished torrent resumed seeds again (until its goal is raised it stops at once: Transmission too).
          e.p = { ...e.p, paused: false, error: null, finished: false }
          e.forced = o.now === true
        }))

    const restart = (e: Entry) => (e.run === undefined ? Effect.void : stopRun(e))

    const remove = (ref: Session.TorrentRef, o: { readonly deleteData?: boolean } = {}) =>
      locked(Effect.gen(function*() {
        const e = yield* find(ref)
        yield* stopRun(e)
        entries.delete(e.p.infoHash)
        byId.delete(e.p.id)
        const infoHash = infoHashOf(e.p.infoHash)
        yield* Effect.sync(() => {
          for (const p of [ResumeRecord.pathFor(stateDir, infoHash), StateFiles.torrentPath(stateDir, infoHash)]) {
            Fs.rmSync(p, { force: true })
          }
        }).pipe(Effect.catchAllDefect((d) => Effect.logWarning(`could not remove the state of ${e.p.name}: ${String(d)}`)))
        if (o.deleteData === true && e.metainfo !== undefined) yield* deleteData(e.p.downloadDir, e.metainfo)
        yield* persist
        publish({ _tag: "Removed", id: e.p.id, infoHash: e.p.infoHash })
        yield* reconcile
      }))

    const verify = (ref: Session.TorrentRef) =>
      update(ref, (e) =>
        Effect.gen(function*() {
          yield* restart(e)
          if (e.metainfo !== undefined) {
            const path = ResumeRecord.pathFor(stateDir, e.metainfo.infoHash)
            yield* Effect.sync(() => Fs.rmSync(path, { force: true })).pipe(Effect.orDie)
          }
          e.p = { ...e.p, complete: false, error: null, finished: false }
        }))

    /** A torrent's error as the session's. */
    const fromTorrent = (err: TorrentError) =>
      fail(err.reason === "invalid-selection" ? "invalid-argument" : "storage", err.message, err)

    // Announces now when it runs; a stopped torrent announces when it starts.
    const reannounce = (ref: Session.TorrentRef) =>
      update(ref, (e) => e.run?.running?.torrent.reannounce() ?? Effect.void)

    /** The running torrent's own limits and peer cap as the entry's options and the settings say. */
    const applyOptions = (e: Entry, r: Client.Running) =>
      Effect.gen(function*() {
        const current = yield* SubscriptionRef.get(settings)
        yield* r.torrent.setLimits({ up: rateOf(e.p.options.uploadLimit), down: rateOf(e.p.options.downloadLimit) })
        yield* r.torrent.setMaxPeers(e.p.options.maxPeers ?? current.maxPeersPerTorrent)
      })

    const setFiles = (ref: Session.TorrentRef, changes: TorrentInfo.FileChanges) =>
      update(ref, (e) =>
        Effect.gen(function*() {
          const m = e.metainfo
          if (m === undefined) return yield* fail("invalid-argument", "the torrent's metadata is not known yet")
          for (const list of [changes.wanted, changes.unwanted, changes.priorityHigh, changes.priorityNormal, changes.priorityLow]) {
            yield* checkFiles(m, list)
          }
          const files = selectionOf(m, e.p.files, changes.wanted, changes.unwanted)
          if (files !== null && files.length === 0) return yield* fail("invalid-argument", "no file of the torrent is wanted")
          const priorities = new Map(e.p.priorities)
          for (const i of changes.priorityNormal ?? []) priorities.delete(i)
          for (const i of changes.priorityHigh ?? []) priorities.set(i, "high")
          for (const i of changes.priorityLow ?? []) priorities.set(i, "low")
          const grew = (files ?? dataFiles(m).map((_, i) => i)).some((i) => !(e.p.files ?? []).includes(i)) &&
            e.p.files !== null
          e.p = {
            ...e.p,
            files,
            priorities: [...priorities],
            wantedSize: wantedBytes(m, files),
            complete: e.p.complete && !grew,
            finished: e.p.finished && !grew
          }
          // Live on a running torrent: newly wanted files start downloading, pieces they share with files kept
          // before are hashed again; a torrent still starting up takes the selection when it restarts.
          const r = e.run?.running
          if (r === undefined) return yield* restart(e)
          yield* Effect.mapError(r.select(onlyOf(e)), fromTorrent)
          yield* Effect.mapError(r.torrent.setPriorities(piecePrioritiesOf(m, files, e.p.priorities)), fromTorrent)
          if (grew && e.state === "seeding") setState(e, "downloading")
        }))

    const setOptions = (ref: Session.TorrentRef, o: Partial<TorrentInfo.TorrentOptions>) =>
      update(ref, (e) =>
        Effect.gen(function*() {
          for (const [k, v] of Object.entries(o)) {
            if (v !== null && v !== undefined && (typeof v !== "number" || !(v >= 0))) {
              return yield* fail("invalid-argument", `${k} must be a number >= 0 or null`)
            }
          }
          e.p = { ...e.p, options: { ...e.p.options, ...o }, finished: false }
          // Limits and the peer cap change at once on a running torrent; seed goals are read every second.
          const r = e.run?.running
          if (r === undefined) return yield* restart(e)
          yield* applyOptions(e, r)
        }))

    const queueMove = (ref: Session.TorrentRef, to: "top" | "up" | "down" | "bottom") =>
      update(ref, (e) =>
        Effect.sync(() => {
          const positions = QueuePlan.move([...entries.values()].map((x) => x.p), e.p.id, to)
          for (const x of entries.values()) {
            const q = positions.get(x.p.id)
            if (q !== undefined && q !== x.p.queuePosition) {
              x.p = { ...x.p, queuePosition: q }
              if (x !== e) changed(x)
            }
          }
        }))

    /**
     * The running torrent of `e`, starting it ahead of the queue when it waits there (a reader needs its pieces);
     * fails when it is paused, failed or removed. A run that ends before it runs (stopped, restarted) is waited
     * past, a few times at most.
     */
    const runningFor = (e: Entry): Effect.Effect<Client.Running, Session.SessionError> =>
      Effect.gen(function*() {
        for (let attempt = 0; attempt < 5; attempt++) {
          if (entries.get(e.p.infoHash) !== e) return yield* fail("not-found", `${e.p.name} was removed`)
          if (e.p.paused) return yield* fail("invalid-argument", `${e.p.name} is paused: resume it to read its files`)
          if (e.p.error !== null) return yield* fail("storage", `${e.p.name} stopped: ${e.p.error.message}`)
          if (e.run === undefined) {
            yield* locked(Effect.suspend(() => {
              if (e.run !== undefined) return Effect.void
              e.forced = true
              return reconcile
            }))
          }
          const run = e.run
          if (run === undefined) return yield* fail("closed", "the session is shutting down")
          const ran = yield* Effect.raceFirst(
            Effect.mapError(Deferred.await(run.ready), fromTorrent),
            Effect.as(Deferred.await(run.ended), undefined)
          )
          if (ran !== undefined) return ran
        }
        return yield* fail("storage", `${e.p.name} keeps stopping before it runs`)
      })

    /**
     * Waits until piece `p` is verified, asking for it and the `ahead` pieces after it first (the streaming window).
     * A torrent complete on disk needs no run.
     */
    const pieceReady = (e: Entry, p: number, ahead: number): Effect.Effect<void, Session.SessionError> =>
      Effect.gen(function*() {
        for (let attempt = 0; attempt < 5; attempt++) {
          if (e.p.complete && e.run?.running === undefined) return
          const have = haveOf(e)
          const live = e.run?.running
          if (have !== undefined && Bitfield.has(have, p)) {
            if (live !== undefined) yield* live.torrent.prioritize(p + 1, p + ahead)
            return
          }
          const r = yield* runningFor(e)
          yield* r.torrent.prioritize(p, p + ahead)
          const verified = yield* Effect.either(r.torrent.whenVerified(p))
          if (Either.isRight(verified)) return
          // Its run stopped under us (restart, queue): try the next one; anything else is the reader's error.
          if (verified.left.reason !== "stopped") return yield* Effect.fail(fromTorrent(verified.left))
        }
        return yield* fail("storage", `${e.p.name}: piece ${p} did not become available`)
      })

    const readFile = (ref: Session.TorrentRef, index: number, range?: Session.Range) =>
      Effect.gen(function*() {
        const e = yield* find(ref)
        const m = e.metainfo
        if (m === undefined) return yield* fail("invalid-argument", "the torrent's metadata is not known yet")
        const data = dataFiles(m)
        const f = data[index]
        if (f === undefined) return yield* fail("invalid-argument", `no file ${index} (the torrent has ${data.length})`)
        const r = range ?? { start: 0, end: f.length }
        if (!(r.start >= 0 && r.end <= f.length && r.start <= r.end)) {
          return yield* fail("invalid-argument", `range ${r.start}-${r.end} outside the file's ${f.length} bytes`)
        }
        const path = yield* Either.mapLeft(
          FileStorage.resolvePath(Path.resolve(e.p.downloadDir), f.path),
          (err) => fail("invalid-argument", err.message)
        )
        // A file not selected is selected: reading it is asking for it.
        if (e.p.files !== null && !e.p.files.includes(index)) yield* setFiles(ref, { wanted: [index] })
        const fileStart = layoutOf(m).starts[FileSelection.dataFiles(m)[index]!]!
        const L = m.pieceLength
        const ahead = Math.max(1, Math.min(64, Math.ceil(READ_AHEAD_BYTES / L)))
        // Bytes come from the file on disk (a descriptor of the reader's own) once their piece is verified: the
        // torrent wrote them before it marked the piece, and a read never depends on a run that may restart.
        const body = Stream.unwrapScoped(Effect.gen(function*() {
          let handle: Fs.promises.FileHandle | undefined
          yield* Effect.addFinalizer(() =>
            handle === undefined ? Effect.void : Effect.tryPromise(() => handle!.close()).pipe(
              Effect.catchAll((err) => Effect.logWarning(`${path}: closing a reader: ${String(err.cause)}`))
            )
          )
          const read = (at: number, n: number) =>
            Effect.tryPromise({
              try: async () => {
                handle ??= await Fs.promises.open(path, "r")
                const buf = new Uint8Array(n)
                let got = 0
                while (got < n) {
                  const { bytesRead } = await handle.read(buf, got, n - got, at + got)
                  if (bytesRead === 0) throw new Error(`ends at ${at + got}, before byte ${at + n}`)
                  got += bytesRead
                }
                return buf
              },
              catch: (err) => fail("storage", `${path}: ${err instanceof Error ? err.message : String(err)}`, err)
            })
          return Stream.unfoldEffect(r.start, (at) =>
            at >= r.end ? Effect.succeed(Option.none()) : Effect.gen(function*() {
              const p = Math.floor((fileStart + at) / L)
              yield* pieceReady(e, p, ahead)
              const n = Math.min(r.end - at, STREAM_CHUNK, (p + 1) * L - fileStart - at)
              return Option.some([yield* read(at, n), at + n] as const)
            }))
        }))
        return { index, path: f.path.join("/"), length: f.length, range: r, body }
      })

    const stats = Effect.sync((): TorrentInfo.SessionStats => {
      let active = 0
      let paused = 0
      let down = 0
      let up = 0
      let downloaded = 0
      let uploaded = 0
      let peers = 0
      for (const e of entries.values()) {
        if (e.run !== undefined) active++
        if (e.p.paused) paused++
        const s = summaryOf(e)
        down += s.downloadRate
        up += s.uploadRate
        peers += s.peers
        downloaded += e.run === undefined ? 0 : s.downloaded - e.run.baseDownloaded
        uploaded += e.run === undefined ? 0 : s.uploaded - e.run.baseUploaded
      }
      return {
        torrents: entries.size,
        active,
        paused,
        downloadRate: down,
        uploadRate: up,
        downloaded,
        uploaded,
        peers,
        uptime: Date.now() - startedAt
      }
    })

    const updateSettings = (patch: Partial<TorrentInfo.Settings>) =>
      locked(Effect.gen(function*() {
        const current = yield* SubscriptionRef.get(settings)
        if (patch.peerPort !== undefined && patch.peerPort !== current.peerPort) {
          return yield* fail("invalid-argument", "the peer port changes when the daemon restarts (--port)")
        }
        for (const k of TorrentInfo.fixedSettings) {
          if (patch[k] !== undefined && patch[k] !== current[k]) {
            return yield* fail("invalid-argument", `${k} is fixed when the daemon starts (its flags)`)
          }
        }
        for (const k of ["maxActiveDownloads", "maxActiveSeeds", "maxConnections", "maxPeersPerTorrent"] as const) {
          const v = patch[k]
          if (v !== undefined && !(Number.isInteger(v) && v >= 1)) return yield* fail("invalid-argument", `${k} must be an integer >= 1`)
        }
        for (const k of ["downloadLimit", "uploadLimit"] as const) {
          const v = patch[k]
          if (v !== undefined && !(v >= 0)) return yield* fail("invalid-argument", `${k} must be >= 0`)
        }
        const next = { ...current, ...patch }
        yield* SubscriptionRef.set(settings, next)
        const now = yield* Clock.currentTimeMillis
        RateLimit.setRate(shared.up, rateOf(next.uploadLimit), now)
        RateLimit.setRate(shared.down, rateOf(next.downloadLimit), now)
        shared.connections.setMax(next.maxConnections)
        if (next.maxPeersPerTorrent !== current.maxPeersPerTorrent) {
          for (const e of entries.values()) {
            const r = e.run?.running
            if (r !== undefined && e.p.options.maxPeers === null) yield* r.torrent.setMaxPeers(next.maxPeersPerTorrent)
          }
        }
        savedSettings = { ...savedSettings, ...patch }
        yield* persist
        yield* reconcile
        return next
      }))

    // --- the watch folder: `.torrent` files dropped there are added, then renamed `*.added` (or `*.invalid`) ---
    const watchOnce = Effect.gen(function*() {
      const dir = (yield* SubscriptionRef.get(settings)).watchDir
      if (dir === null) return
      const names = yield* Effect.try(() => Fs.readdirSync(dir)).pipe(Effect.orElseSucceed(() => [] as Array<string>))
      for (const name of names) {
        if (!name.endsWith(".torrent")) continue
        const path = Path.join(dir, name)
        const bytes = yield* Effect.try(() => new Uint8Array(Fs.readFileSync(path))).pipe(Effect.option)
        if (Option.isNone(bytes)) continue
        const result = yield* Effect.either(locked(add({ _tag: "Metainfo", bytes: bytes.value })))
        const suffix = Either.isRight(result) ? ".added" : ".invalid"
        if (Either.isLeft(result)) yield* Effect.logWarning(`watch folder: ${name}: ${result.left.message}`)
        yield* Effect.try(() => Fs.renameSync(path, path + suffix)).pipe(Effect.ignore)
      }
    })
    yield* Effect.forkIn(
      Effect.forever(Effect.zipRight(watchOnce, Effect.sleep(options.watchInterval ?? Duration.seconds(2)))),
      sessionScope
    )
    // Counters move while torrents run: saved now and then (state changes are saved at once).
    yield* Effect.forkIn(
      Effect.forever(Effect.zipRight(Effect.sleep(options.saveInterval ?? Duration.seconds(30)), requestSave)),
      sessionScope
    )

    /** The verified pieces its resume record lists (shown until it runs; the run itself trusts only what checks). */
    const savedHave = (m: Metainfo.Metainfo) =>
      Effect.sync(() => {
        try {
          const bytes = new Uint8Array(Fs.readFileSync(ResumeRecord.pathFor(stateDir, m.infoHash)))
          const record = ResumeRecord.decode(bytes, { infoHash: m.infoHash, pieceCount: m.pieceCount, pieceLength: m.pieceLength })
          return Either.isRight(record) ? record.right.verified : undefined
        } catch {
          return undefined // no record yet (never ran), or unreadable: nothing to show
        }
      })

    // --- start-up: every saved torrent comes back ---
    for (const p of loaded.torrents) {
      const infoHash = infoHashOf(p.infoHash)
      const cached = yield* StateFiles.loadTorrent(stateDir, infoHash)
      const metainfo = Option.getOrUndefined(Option.map(cached, (c) => c.metainfo))
      const magnet = p.magnet === null ? undefined : Either.getOrUndefined(Magnet.parse(p.magnet, { mode: "lenient" }))
      if (metainfo === undefined && magnet === undefined) {
        yield* Effect.logWarning(`${p.name} (${p.infoHash}): its metadata is gone from ${stateDir}; dropped`)
        continue
      }
      const e: Entry = { p, metainfo, magnet, state: "queued", forced: false, run: undefined, have: undefined }
      if (metainfo !== undefined && !p.complete) e.have = yield* savedHave(metainfo)
      e.state = stateOfStopped(e)
      entries.set(p.infoHash, e)
      byId.set(p.id, e)
      if (p.id >= nextId) nextId = p.id + 1
    }
    yield* locked(reconcile)

    // Shutdown: every run stops cleanly (announces `stopped`, saves resume data) at once, then the state is saved.
    // `closing` is set before the lock is taken: work queued on it (a reconcile) then does nothing.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closing = true
        return locked(Effect.gen(function*() {
          yield* Effect.forEach([...entries.values()], stopRun, { concurrency: "unbounded", discard: true })
          yield* persistQuietly
        }))
      })
    )

    return {
      add: (source, o) => locked(add(source, o)),
      list: Effect.sync(() => [...entries.values()].sort((a, b) => a.p.id - b.p.id).map(summaryOf)),
      get: (ref) => Effect.map(find(ref), detailOf),
      peers: (ref) => Effect.map(find(ref), peersOf),
      trackers: (ref) => Effect.map(find(ref), trackersOf),
      pause,
      resume,
      remove,
      verify,
      reannounce,
      setFiles,
      setOptions,
      queueMove,
      readFile,
      stats,
      settings,
      updateSettings,
      events: Stream.fromPubSub(hub)
    } satisfies Session.SessionShape
  })

/** Deletes a torrent's files under `dir`, then the directories they were in, once empty (never `dir` itself). */
const deleteData = (dir: string, m: Metainfo.Metainfo): Effect.Effect<void, Session.SessionError> =>
  Effect.gen(function*() {
    const root = Path.resolve(dir)
    const dirs = new Set<string>()
    for (const f of m.files) {
      if (f.pad) continue
      const path = Either.getOrUndefined(FileStorage.resolvePath(root, f.path))
      if (path === undefined) continue
      yield* Effect.try({
        try: () => Fs.rmSync(path, { force: true }),
        catch: (e) => fail("storage", `cannot delete ${path}: ${e instanceof Error ? e.message : String(e)}`, e)
      })
      for (let d = Path.dirname(path); d.startsWith(root + Path.sep); d = Path.dirname(d)) dirs.add(d)
    }
    // Deepest first; a directory that still holds something else stays.
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
      try {
        Fs.rmdirSync(d)
      } catch {
        // not empty (someone else's files) or already gone: kept as it is
      }
    }
  })

/** The session as a layer over the `Client` in context. */
export const layer = (options: Options): Layer.Layer<Session.Session, never, Client.Client> =>
  Layer.scoped(Session.Session, make(options))

