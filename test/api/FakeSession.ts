/**
 * An in-memory `SessionShape` for the API's tests: small, but every operation does what the interface says on its
 * own data (torrents with real file bytes, a queue, settings, an event hub), validates its arguments the way the
 * real one does (not-found, invalid-source, invalid-argument), and records each call with its arguments so tests
 * can check what the server passed. `failNext` makes the next call of an operation fail with a given reason;
 * `close` makes everything fail with "closed".
 */
import * as Crypto from "node:crypto"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { type Reason, SessionError, type SessionShape, type TorrentRef } from "../../src/session/Session.ts"
import type * as TorrentInfo from "../../src/session/TorrentInfo.ts"

export interface FakeFile {
  readonly path: string
  readonly data: Uint8Array
}

export interface Seed {
  readonly name: string
  readonly files: ReadonlyArray<FakeFile>
  readonly infoHash?: string
  readonly paused?: boolean
}

interface Entry {
  summary: TorrentInfo.Summary
  files: Array<FakeFile & { wanted: boolean; priority: TorrentInfo.Priority }>
  options: TorrentInfo.TorrentOptions
  peers: ReadonlyArray<TorrentInfo.PeerInfo>
  trackers: ReadonlyArray<TorrentInfo.TrackerInfo>
}

export interface Call {
  readonly op: string
  readonly args: ReadonlyArray<unknown>
}

export interface Fake extends SessionShape {
  readonly calls: () => ReadonlyArray<Call>
  readonly callsOf: (op: string) => ReadonlyArray<ReadonlyArray<unknown>>
  /** Adds a torrent with these files directly (not counted as a call). */
  readonly seed: (seed: Seed) => Effect.Effect<TorrentInfo.Added>
  readonly publish: (event: TorrentInfo.SessionEvent) => Effect.Effect<void>
  /** Event streams open now. */
  readonly subscribers: () => number
  readonly failNext: (op: string, reason: Reason) => void
  readonly close: () => void
  /** Delay between the chunks of file bodies (a slow disk or network). */
  readonly setChunkDelay: (ms: number) => void
  /** File bodies being streamed now. */
  readonly openBodies: () => number
}

export const pattern = (index: number, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (i * 31 + index * 7 + (i >> 8)) & 0xff
  return out
}

const defaultSettings: TorrentInfo.Settings = {
  downloadDir: "/downloads",
  peerPort: 6881,
  maxActiveDownloads: 3,
  maxActiveSeeds: 5,
  downloadLimit: 0,
  uploadLimit: 0,
  maxConnections: 200,
  maxPeersPerTorrent: 50,
  seedRatio: null,
  seedTime: null,
  watchDir: null,
  dht: true,
  pex: true,
  encryption: "prefer",
  lsd: false,
  transport: "tcp",
  portMapping: false
}

const sha1 = (data: Uint8Array | string) => Crypto.createHash("sha1").update(data).digest("hex")

export const make = (): Effect.Effect<Fake, never, Scope.Scope> =>
  Effect.gen(function*() {
    const torrents = new Map<number, Entry>()
    const log: Array<Call> = []
    const failures = new Map<string, Reason>()
    let nextId = 1
    let closed = false
    let subscribers = 0
    let chunkDelay = 0
    let openBodies = 0
    const startedAt = Date.now()
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<TorrentInfo.SessionEvent>(), PubSub.shutdown)
    const settings = yield* SubscriptionRef.make(defaultSettings)

    const fail = (reason: Reason, message: string) => Effect.fail(new SessionError({ reason, message }))

    /** Records the call, then fails if closed or told to. */
    const enter = (op: string, ...args: ReadonlyArray<unknown>): Effect.Effect<void, SessionError> =>
      Effect.suspend(() => {
        log.push({ op, args })
        if (closed) return fail("closed", "the session is shutting down")
        const reason = failures.get(op)
        if (reason !== undefined) {
          failures.delete(op)
          return fail(reason, `${op} failed (${reason}, as the test asked)`)
        }
        return Effect.void
      })

    const find = (ref: TorrentRef): Effect.Effect<Entry, SessionError> => {
      const entry = typeof ref === "number"
        ? torrents.get(ref)
        : [...torrents.values()].find((e) => e.summary.infoHash === ref)
      return entry === undefined ? fail("not-found", `no torrent ${ref}`) : Effect.succeed(entry)
    }

    const refresh = (e: Entry) => {
      const wanted = e.files.filter((f) => f.wanted)
      const size = e.files.reduce((n, f) => n + f.data.length, 0)
      const wantedSize = wanted.reduce((n, f) => n + f.data.length, 0)
      e.summary = { ...e.summary, size, wantedSize, progress: wantedSize === 0 ? 1 : e.summary.haveSize / wantedSize }
    }

    const detail = (e: Entry): TorrentInfo.Detail => ({
      ...e.summary,
      pieceLength: 16384,
      pieces: Math.max(1, Math.ceil(e.summary.size / 16384)),
      bitfield: "AA==",
      comment: "",
      createdBy: "fake",
      creationDate: null,
      files: e.files.map((f, index) => ({
        index,
        path: f.path,
        length: f.data.length,
        wanted: f.wanted,
        priority: f.priority,
        completed: f.data.length
      })),
      trackers: e.trackers,
      options: e.options
    })

    const insert = (
      infoHash: string,
      name: string,
      files: ReadonlyArray<FakeFile>,
      options: TorrentInfo.AddOptions | undefined
    ): Effect.Effect<TorrentInfo.Added> =>
      Effect.gen(function*() {
        const existing = [...torrents.values()].find((e) => e.summary.infoHash === infoHash)
        if (existing !== undefined) {
          return { id: existing.summary.id, infoHash, name: existing.summary.name, duplicate: true }
        }
        const id = nextId++
        const s = yield* SubscriptionRef.get(settings)
        const entry: Entry = {
          summary: {
            id,
            infoHash,
            name,
            state: options?.paused === true ? "paused" : files.length === 0 ? "fetching-metadata" : "downloading",
            complete: false,
            progress: 0,
            size: 0,
            wantedSize: 0,
            haveSize: 0,
            downloaded: 0,
            uploaded: 0,
            downloadRate: 0,
            uploadRate: 0,
            peers: 0,
            ratio: 0,
            eta: null,
            error: null,
            downloadDir: options?.downloadDir ?? s.downloadDir,
            addedAt: Date.now(),
            completedAt: null,
            queuePosition: torrents.size,
            private: false,
            magnet: `magnet:?xt=urn:btih:${infoHash}`
          },
          files: files.map((f, i) => ({
            ...f,
            wanted: (options?.files === undefined || options.files.includes(i)) && !(options?.unwanted ?? []).includes(i),
            priority: (options?.priorityHigh ?? []).includes(i)
              ? "high"
              : (options?.priorityLow ?? []).includes(i)
              ? "low"
              : "normal"
          })),
          options: {
            downloadLimit: options?.options?.downloadLimit ?? null,
            uploadLimit: options?.options?.uploadLimit ?? null,
            seedRatio: options?.options?.seedRatio ?? null,
            seedTime: options?.options?.seedTime ?? null,
            maxPeers: options?.options?.maxPeers ?? null
          },
          peers: [
            {
              address: "127.0.0.1:51413",
              client: "Transmission 4.0",
              encryption: "plaintext",
              incoming: false,
              transport: "utp",
              source: "tracker",
              sources: ["tracker", "pex"],
              downloadRate: 1000,
              uploadRate: 0,
              downloaded: 5000,
              uploaded: 0,
              progress: 1,
              choked: true,
              chokingUs: false,
              interested: false,
              interestedInUs: false
            }
          ],
          trackers: [
            {
              url: "http://127.0.0.1:6969/announce",
              tier: 0,
              status: "working",
              lastAnnounceAt: null,
              nextAnnounceAt: null,
              seeders: 1,
              leechers: 0,
              peers: 1,
              message: ""
            }
          ]
        }
        refresh(entry)
        torrents.set(id, entry)
        yield* PubSub.publish(hub, { _tag: "Added", torrent: entry.summary })
        return { id, infoHash, name, duplicate: false }
      })

    const indicesOk = (e: Entry, indices: ReadonlyArray<number> | undefined) =>
      (indices ?? []).every((i) => Number.isInteger(i) && i >= 0 && i < e.files.length)

    const session: SessionShape = {
      add: (source, options) =>
        Effect.gen(function*() {
          yield* enter("add", source, options)
          if (options?.downloadDir !== undefined && !options.downloadDir.startsWith("/")) {
            return yield* fail("invalid-argument", `download directory ${options.downloadDir} is not absolute`)
          }
          switch (source._tag) {
            case "Metainfo": {
              if (source.bytes[0] !== 0x64 /* d */) return yield* fail("invalid-source", "not a .torrent (bencoded dictionary)")
              const infoHash = sha1(source.bytes)
              return yield* insert(infoHash, `torrent-${infoHash.slice(0, 8)}`, [{ path: "data.bin", data: pattern(0, 1024) }], options)
            }
            case "Magnet": {
              const m = /xt=urn:btih:([0-9a-fA-F]{40})/.exec(source.uri)
              if (m === null) return yield* fail("invalid-source", "a magnet link without a v1 info-hash")
              const dn = /[?&]dn=([^&]*)/.exec(source.uri)
              return yield* insert(m[1]!.toLowerCase(), dn ? decodeURIComponent(dn[1]!) : m[1]!.toLowerCase(), [], options)
            }
            case "Url": {
              if (!source.url.endsWith(".torrent")) return yield* fail("invalid-source", `${source.url}: not a .torrent`)
              return yield* insert(sha1(source.url), source.url.split("/").pop()!, [{ path: "from-url.bin", data: pattern(1, 100) }], options)
            }
          }
        }),
      list: Effect.sync(() => [...torrents.values()].map((e) => e.summary).sort((a, b) => a.id - b.id)),
      get: (ref) => Effect.zipRight(enter("get", ref), Effect.map(find(ref), detail)),
      peers: (ref) => Effect.zipRight(enter("peers", ref), Effect.map(find(ref), (e) => e.peers)),
      trackers: (ref) => Effect.zipRight(enter("trackers", ref), Effect.map(find(ref), (e) => e.trackers)),
      pause: (ref) =>
        Effect.zipRight(enter("pause", ref), Effect.flatMap(find(ref), (e) => {
          e.summary = { ...e.summary, state: "paused" }
          return PubSub.publish(hub, { _tag: "Changed", torrent: e.summary })
        })),
      resume: (ref, options) =>
        Effect.zipRight(enter("resume", ref, options), Effect.flatMap(find(ref), (e) => {
          e.summary = { ...e.summary, state: options?.now === true ? "downloading" : "queued" }
          return PubSub.publish(hub, { _tag: "Changed", torrent: e.summary })
        })),
      remove: (ref, options) =>
        Effect.zipRight(enter("remove", ref, options), Effect.flatMap(find(ref), (e) => {
          torrents.delete(e.summary.id)
          return PubSub.publish(hub, { _tag: "Removed", id: e.summary.id, infoHash: e.summary.infoHash })
        })),
      verify: (ref) => Effect.zipRight(enter("verify", ref), Effect.asVoid(find(ref))),
      reannounce: (ref) => Effect.zipRight(enter("reannounce", ref), Effect.asVoid(find(ref))),
      setFiles: (ref, changes) =>
        Effect.zipRight(enter("setFiles", ref, changes), Effect.flatMap(find(ref), (e) => {
          const lists = [changes.wanted, changes.unwanted, changes.priorityHigh, changes.priorityNormal, changes.priorityLow]
          if (!lists.every((l) => indicesOk(e, l))) return fail("invalid-argument", `a file index out of range (0..${e.files.length - 1})`)
          for (const i of changes.wanted ?? []) e.files[i]!.wanted = true
          for (const i of changes.unwanted ?? []) e.files[i]!.wanted = false
          for (const i of changes.priorityHigh ?? []) e.files[i]!.priority = "high"
          for (const i of changes.priorityNormal ?? []) e.files[i]!.priority = "normal"
          for (const i of changes.priorityLow ?? []) e.files[i]!.priority = "low"
          refresh(e)
          return Effect.void
        })),
      setOptions: (ref, options) =>
        Effect.zipRight(enter("setOptions", ref, options), Effect.flatMap(find(ref), (e) => {
          if (Object.values(options).some((v) => typeof v === "number" && v < 0)) {
            return fail("invalid-argument", "a negative limit")
          }
          e.options = { ...e.options, ...options }
          return Effect.void
        })),
      queueMove: (ref, to) =>
        Effect.zipRight(enter("queueMove", ref, to), Effect.flatMap(find(ref), (e) => {
          const order = [...torrents.values()].sort((a, b) => a.summary.queuePosition - b.summary.queuePosition)
          const from = order.indexOf(e)
          order.splice(from, 1)
          const at = to === "top" ? 0 : to === "bottom" ? order.length : to === "up" ? Math.max(0, from - 1) : Math.min(order.length, from + 1)
          order.splice(at, 0, e)
          order.forEach((t, i) => (t.summary = { ...t.summary, queuePosition: i }))
          return Effect.void
        })),
      readFile: (ref, index, range) =>
        Effect.zipRight(enter("readFile", ref, index, range), Effect.flatMap(find(ref), (e) => {
          const file = e.files[index]
          if (file === undefined) return fail("invalid-argument", `no file ${index}`)
          const start = range?.start ?? 0
          const end = range?.end ?? file.data.length
          if (!(0 <= start && start <= end && end <= file.data.length)) {
            return fail("invalid-argument", `range ${start}-${end} outside ${file.data.length} bytes`)
          }
          const chunks: Array<Uint8Array> = []
          for (let at = start; at < end; at += 16384) chunks.push(file.data.slice(at, Math.min(end, at + 16384)))
          const body = Stream.unwrap(Effect.sync(() => {
            openBodies++
            return Stream.fromIterable(chunks).pipe(
              Stream.tap(() => (chunkDelay > 0 ? Effect.sleep(chunkDelay) : Effect.void)),
              Stream.ensuring(Effect.sync(() => openBodies--))
            )
          }))
          return Effect.succeed({ index, path: file.path, length: file.data.length, range: { start, end }, body })
        })),
      stats: Effect.sync(() => {
        const all = [...torrents.values()].map((e) => e.summary)
        return {
          torrents: all.length,
          active: all.filter((t) => t.state === "downloading" || t.state === "seeding").length,
          paused: all.filter((t) => t.state === "paused").length,
          downloadRate: all.reduce((n, t) => n + t.downloadRate, 0),
          uploadRate: all.reduce((n, t) => n + t.uploadRate, 0),
          downloaded: all.reduce((n, t) => n + t.downloaded, 0),
          uploaded: all.reduce((n, t) => n + t.uploaded, 0),
          peers: all.reduce((n, t) => n + t.peers, 0),
          uptime: Date.now() - startedAt
        }
      }),
      settings,
      updateSettings: (patch) =>
        Effect.gen(function*() {
          yield* enter("updateSettings", patch)
          if (Object.values(patch).some((v) => typeof v === "number" && v < 0)) {
            return yield* fail("invalid-argument", "a negative setting")
          }
          return yield* SubscriptionRef.updateAndGet(settings, (s) => ({ ...s, ...patch }))
        }),
      events: Stream.unwrapScoped(
        Effect.gen(function*() {
          yield* Effect.acquireRelease(Effect.sync(() => subscribers++), () => Effect.sync(() => subscribers--))
          return Stream.fromQueue(yield* PubSub.subscribe(hub))
        })
      )
    }

    const fake: Fake = {
      ...session,
      calls: () => [...log],
      callsOf: (op) => log.filter((c) => c.op === op).map((c) => c.args),
      seed: (seed) =>
        insert(seed.infoHash ?? sha1(seed.name), seed.name, seed.files, seed.paused === true ? { paused: true } : undefined),
      publish: (event) => Effect.asVoid(PubSub.publish(hub, event)),
      subscribers: () => subscribers,
      failNext: (op, reason) => void failures.set(op, reason),
      close: () => void (closed = true),
      setChunkDelay: (ms) => void (chunkDelay = ms),
      openBodies: () => openBodies
    }
    return fake
  })
