/**
 * The daemon seen from another process (the remote CLI): one function per operation of the API, built on the client
 * `HttpApiClient` derives from Api.ts, with one error type.
 *
 * ```ts
 * const remote = yield* RemoteClient                       // RemoteClient.layer({ baseUrl, auth })
 * const added = yield* remote.add({ _tag: "Magnet", uri }, { paused: true })
 * yield* remote.events.pipe(Stream.runForEach(Console.log))
 * ```
 *
 * Every failure is a {@link RemoteError}: the daemon's own ({@link ApiError.ApiError}: its `reason`, status and
 * message), "unreachable" when nothing answers (connection refused: one message saying so and naming the URL),
 * "timeout", or "protocol" when the answer is not what this version of the API expects.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Range, Source, TorrentRef } from "../session/Session.ts"
import * as TorrentInfo from "../session/TorrentInfo.ts"
import { Api, type AddParams, openApiPath } from "./Api.ts"
import * as ApiError from "./ApiError.ts"
import * as Sse from "./Sse.ts"

export const defaultBaseUrl = "http://127.0.0.1:9091"

export type Credentials =
  | { readonly token: string }
  | { readonly username: string; readonly password: string }

export interface Options {
  /** Default http://127.0.0.1:9091. */
  readonly baseUrl?: string | undefined
  readonly auth?: Credentials | undefined
  /** For each call (not the event stream); default 30 s. */
  readonly timeout?: Duration.DurationInput | undefined
}

export type RemoteReason = ApiError.Reason | "unreachable" | "timeout" | "protocol"

export class RemoteError extends Data.TaggedError("RemoteError")<{
  readonly reason: RemoteReason
  /** The HTTP status, when the daemon answered. */
  readonly status: number | undefined
  readonly message: string
  readonly cause?: unknown
}> {}

export interface RemoteClientShape {
  readonly baseUrl: string
  readonly list: Effect.Effect<ReadonlyArray<TorrentInfo.Summary>, RemoteError>
  readonly add: (source: Source, options?: TorrentInfo.AddOptions) => Effect.Effect<TorrentInfo.Added, RemoteError>
  readonly get: (ref: TorrentRef) => Effect.Effect<TorrentInfo.Detail, RemoteError>
  readonly remove: (ref: TorrentRef, options?: { readonly deleteData?: boolean }) => Effect.Effect<void, RemoteError>
  readonly pause: (ref: TorrentRef) => Effect.Effect<void, RemoteError>
  readonly resume: (ref: TorrentRef, options?: { readonly now?: boolean }) => Effect.Effect<void, RemoteError>
  readonly verify: (ref: TorrentRef) => Effect.Effect<void, RemoteError>
  readonly reannounce: (ref: TorrentRef) => Effect.Effect<void, RemoteError>
  readonly setFiles: (ref: TorrentRef, changes: TorrentInfo.FileChanges) => Effect.Effect<void, RemoteError>
  readonly setOptions: (ref: TorrentRef, options: Partial<TorrentInfo.TorrentOptions>) => Effect.Effect<void, RemoteError>
  readonly queueMove: (ref: TorrentRef, to: "top" | "up" | "down" | "bottom") => Effect.Effect<void, RemoteError>
  readonly peers: (ref: TorrentRef) => Effect.Effect<ReadonlyArray<TorrentInfo.PeerInfo>, RemoteError>
  readonly trackers: (ref: TorrentRef) => Effect.Effect<ReadonlyArray<TorrentInfo.TrackerInfo>, RemoteError>
  /** A file's bytes (all, or `range`, end exclusive), in memory. */
  readonly readFile: (ref: TorrentRef, index: number, range?: Range) => Effect.Effect<Uint8Array, RemoteError>
  readonly stats: Effect.Effect<TorrentInfo.SessionStats, RemoteError>
  readonly settings: Effect.Effect<TorrentInfo.Settings, RemoteError>
  readonly updateSettings: (patch: Partial<TorrentInfo.Settings>) => Effect.Effect<TorrentInfo.Settings, RemoteError>
  /** The daemon's events from now on (Server-Sent Events), until the daemon ends the stream or the caller stops. */
  readonly events: Stream.Stream<TorrentInfo.SessionEvent, RemoteError>
  /** The Prometheus text of `GET /metrics`. */
  readonly metrics: Effect.Effect<string, RemoteError>
  /** The OpenAPI document. */
  readonly openApi: Effect.Effect<unknown, RemoteError>
}

export class RemoteClient extends Context.Tag("effect-torrent/RemoteClient")<RemoteClient, RemoteClientShape>() {}

/** A ref as typed by a person: digits are an id, anything else an info-hash (any case). */
export const parseRef = (s: string): TorrentRef => (/^\d{1,15}$/.test(s) ? Number(s) : s.toLowerCase())

const normalizeRef = (ref: TorrentRef): TorrentRef => (typeof ref === "string" ? parseRef(ref) : ref)

/** The errno-style code somewhere in a cause chain (`ECONNREFUSED`, `ENOTFOUND`, …). */
const codeOf = (u: unknown, depth = 0): string | undefined => {
  if (depth > 5 || !Predicate.isObject(u)) return undefined
  const code = (u as { readonly code?: unknown }).code
  if (typeof code === "string") return code
  const errors = (u as { readonly errors?: unknown }).errors
  if (Array.isArray(errors)) for (const e of errors) {
    const c = codeOf(e, depth + 1)
    if (c !== undefined) return c
  }
  return codeOf((u as { readonly cause?: unknown }).cause, depth + 1)
}

/** Any failure of a call as a RemoteError. */
export const toRemoteError = (baseUrl: string) => (e: unknown): RemoteError => {
  if (e instanceof RemoteError) return e
  if (e instanceof ApiError.ApiError) {
    return new RemoteError({ reason: e.reason, status: e.status, message: e.message })
  }
  if (Predicate.isTagged(e, "RequestError")) {
    const code = codeOf((e as { readonly cause?: unknown }).cause)
    const message = code === "ECONNREFUSED"
      ? `no daemon is answering at ${baseUrl} (connection refused): is \`effect-torrent daemon\` running?`
      : code === "ENOTFOUND" || code === "EAI_AGAIN"
      ? `cannot resolve the host of ${baseUrl}`
      : `cannot reach the daemon at ${baseUrl}${code !== undefined ? ` (${code})` : ""}`
    return new RemoteError({ reason: "unreachable", status: undefined, message, cause: e })
  }
  if (Predicate.isTagged(e, "ResponseError")) {
    const status = (e as { readonly response?: { readonly status?: number } }).response?.status
    return new RemoteError({
      reason: "protocol",
      status,
      message: `unexpected answer from the daemon at ${baseUrl} (HTTP ${status ?? "?"}): is it the same version?`,
      cause: e
    })
  }
  if (Predicate.isTagged(e, "TimeoutException")) {
    return new RemoteError({ reason: "timeout", status: undefined, message: `the daemon at ${baseUrl} did not answer in time`, cause: e })
  }
  return new RemoteError({
    reason: "protocol",
    status: undefined,
    message: `the daemon's answer did not match this version of the API: ${e instanceof Error ? e.message : String(e)}`,
    cause: e
  })
}

const authorizationOf = (auth: Credentials): string =>
  "token" in auth
    ? `Bearer ${auth.token}`
    : `Basic ${Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64")}`

const toAddParams = (options: TorrentInfo.AddOptions | undefined): AddParams => {
  if (options === undefined) return {}
  const o = options.options ?? {}
  const defined = <K extends string, V>(key: K, value: V | null | undefined) =>
    value === undefined || value === null ? {} : ({ [key]: value } as { [P in K]: V })
  return {
    ...defined("downloadDir", options.downloadDir),
    ...defined("paused", options.paused),
    ...defined("files", options.files),
    ...defined("unwanted", options.unwanted),
    ...defined("priorityHigh", options.priorityHigh),
    ...defined("priorityLow", options.priorityLow),
    ...defined("peers", options.peers),
    ...defined("downloadLimit", o.downloadLimit),
    ...defined("uploadLimit", o.uploadLimit),
    ...defined("seedRatio", o.seedRatio),
    ...defined("seedTime", o.seedTime),
    ...defined("maxPeers", o.maxPeers)
  }
}

const decodeEvent = Schema.decodeUnknown(Schema.parseJson(TorrentInfo.SessionEvent))
const decodeErrorBody = Schema.decodeUnknown(Schema.parseJson(ApiError.ApiError))

/** The client, on the HttpClient in context. */
export const make = (options: Options = {}): Effect.Effect<RemoteClientShape, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const baseUrl = (options.baseUrl ?? defaultBaseUrl).replace(/\/+$/, "")
    const timeout = options.timeout ?? Duration.seconds(30)
    const withAuth = (client: HttpClient.HttpClient): HttpClient.HttpClient =>
      options.auth === undefined
        ? client
        : HttpClient.mapRequest(client, HttpClientRequest.setHeader("authorization", authorizationOf(options.auth)))
    const http = withAuth(yield* HttpClient.HttpClient)
    const api = yield* HttpApiClient.makeWith(Api, { httpClient: http, baseUrl })
    const toRemote = toRemoteError(baseUrl)
    const run = <A>(effect: Effect.Effect<A, unknown>): Effect.Effect<A, RemoteError> =>
      effect.pipe(Effect.timeout(timeout), Effect.mapError(toRemote))

    const rangeHeader = (range: Range | undefined) =>
      range === undefined ? {} : { range: `bytes=${range.start}-${Math.max(range.start, range.end - 1)}` }

    const raw = (path: string) =>
      Effect.flatMap(http.get(`${baseUrl}${path}`), (response) =>
        response.status === 200
          ? Effect.succeed(response)
          : Effect.flatMap(response.text, (body) =>
            Effect.flatMap(Effect.orElseSucceed(decodeErrorBody(body), () => undefined), (error) =>
              Effect.fail(
                error ?? new RemoteError({ reason: "protocol", status: response.status, message: `HTTP ${response.status} from ${baseUrl}${path}` })
              ))))

    return {
      baseUrl,
      list: run(api.torrents.list()),
      add: (source, addOptions) => {
        const urlParams = toAddParams(addOptions)
        return run(
          source._tag === "Metainfo"
            ? api.torrents.add({ urlParams, payload: source.bytes })
            : api.torrents.add({ urlParams, payload: source._tag === "Magnet" ? source.uri : source.url })
        )
      },
      get: (ref) => run(api.torrents.get({ path: { ref: normalizeRef(ref) } })),
      remove: (ref, o) =>
        run(api.torrents.remove({ path: { ref: normalizeRef(ref) }, urlParams: o?.deleteData === true ? { deleteData: true } : {} })),
      pause: (ref) => run(api.torrents.pause({ path: { ref: normalizeRef(ref) } })),
      resume: (ref, o) =>
        run(api.torrents.resume({ path: { ref: normalizeRef(ref) }, urlParams: o?.now === true ? { now: true } : {} })),
      verify: (ref) => run(api.torrents.verify({ path: { ref: normalizeRef(ref) } })),
      reannounce: (ref) => run(api.torrents.reannounce({ path: { ref: normalizeRef(ref) } })),
      setFiles: (ref, changes) => run(api.torrents.setFiles({ path: { ref: normalizeRef(ref) }, payload: changes })),
      setOptions: (ref, o) => run(api.torrents.setOptions({ path: { ref: normalizeRef(ref) }, payload: o })),
      queueMove: (ref, to) => run(api.torrents.queueMove({ path: { ref: normalizeRef(ref), to } })),
      peers: (ref) => run(api.torrents.peers({ path: { ref: normalizeRef(ref) } })),
      trackers: (ref) => run(api.torrents.trackers({ path: { ref: normalizeRef(ref) } })),
      readFile: (ref, index, range) =>
        run(api.files.read({ path: { ref: normalizeRef(ref), index }, headers: rangeHeader(range) })),
      stats: run(api.session.stats()),
      settings: run(api.session.settings()),
      updateSettings: (patch) => run(api.session.updateSettings({ payload: patch })),
      events: Stream.unwrapScoped(
        Effect.map(raw("/api/events"), (response) =>
          Sse.parseBytes(response.stream).pipe(
            Stream.filter((event) => event.event !== "message" || event.data !== ""),
            Stream.mapEffect((event) => decodeEvent(event.data))
          ))
      ).pipe(Stream.mapError(toRemote)),
      metrics: run(api.metrics.metrics()),
      openApi: run(Effect.flatMap(raw(openApiPath), (response) => response.json))
    }
  })

/** The client as a layer, over the platform's fetch client. */
export const layer = (options: Options = {}): Layer.Layer<RemoteClient> =>
  Layer.effect(RemoteClient, make(options)).pipe(Layer.provide(FetchHttpClient.layer))
