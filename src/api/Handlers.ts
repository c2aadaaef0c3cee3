/**
 * The API's handlers: every endpoint of Api.ts answered from the {@link Session} in context. Bodies are read by
 * Body.ts (bounded, typed errors) rather than by the platform's payload decoder (`handleRaw`), the file endpoint
 * streams `Session.readFile`, the events endpoint writes Server-Sent Events, and {@link failuresLive} turns every
 * failure the handlers and the router can produce into an {@link ApiError.ApiError} body.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Metrics from "../session/Metrics.ts"
import { Session, type SessionError, type SessionShape, type Source } from "../session/Session.ts"
import * as TorrentInfo from "../session/TorrentInfo.ts"
import { type AddParams, Api, openApiPath, SseContentType, TorrentContentType } from "./Api.ts"
import * as ApiError from "./ApiError.ts"
import * as Body from "./Body.ts"
import * as Mime from "./Mime.ts"
import * as Prometheus from "./Prometheus.ts"
import * as Range from "./Range.ts"
import * as Sse from "./Sse.ts"

export interface Config {
  readonly limits: Body.Limits
  /** Between keep-alive comments on an idle event stream. */
  readonly eventsKeepAlive: Duration.DurationInput
  /** Completes when the server shuts down: open event streams end then. */
  readonly shutdown: Effect.Effect<void>
}

const call = <A>(effect: Effect.Effect<A, SessionError>): Effect.Effect<A, ApiError.ApiError> =>
  Effect.mapError(effect, ApiError.fromSessionError)

/**
 * A success body encoded here rather than by the platform: HttpApiBuilder reports a value that fails its success
 * schema as an HttpApiDecodeError, a 400 blaming the client; here it is a defect (logged, 500 "internal").
 */
const respond = <A, I>(schema: Schema.Schema<A, I>, status = 200) => (value: A) =>
  Schema.encode(schema)(value).pipe(
    Effect.orDie,
    Effect.flatMap((encoded) => Effect.orDie(HttpServerResponse.json(encoded, { status })))
  )

const answer = <A, I, E>(schema: Schema.Schema<A, I>, effect: Effect.Effect<A, E>) =>
  Effect.flatMap(effect, respond(schema))

// ---------------------------------------------------------------------------------------------------------------
// torrents

const readSource = (
  request: HttpServerRequest.HttpServerRequest,
  limits: Body.Limits
): Effect.Effect<Source, ApiError.ApiError> =>
  Effect.gen(function*() {
    const type = Body.mediaType(request)
    if (type === TorrentContentType || type === "application/octet-stream") {
      const bytes = yield* Body.read(request, limits.torrent, "a .torrent")
      if (bytes.length === 0) {
        return yield* Effect.fail(ApiError.make("bad-request", "the body is empty: expected the bytes of a .torrent file"))
      }
      return { _tag: "Metainfo", bytes } as const
    }
    if (type === "text/plain") {
      const bytes = yield* Body.read(request, limits.text, "a magnet link or URL")
      const text = yield* Effect.try({
        try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes).trim(),
        catch: () => ApiError.make("bad-request", "the body is not UTF-8 text")
      })
      if (/^magnet:/i.test(text)) return { _tag: "Magnet", uri: text } as const
      if (/^https?:\/\//i.test(text)) return { _tag: "Url", url: text } as const
      return yield* Effect.fail(
        ApiError.make("invalid-source", "expected a magnet link (magnet:?xt=…) or an http(s) URL of a .torrent")
      )
    }
    return yield* Effect.fail(
      ApiError.make(
        "unsupported-media-type",
        `send a .torrent as ${TorrentContentType}, or a magnet link or URL as text/plain (not ${type === "" ? "no type" : type})`
      )
    )
  })

/** The query of `POST /api/torrents` as the session's AddOptions (only what was given). */
export const toAddOptions = (p: AddParams): TorrentInfo.AddOptions => {
  const options: { -readonly [K in keyof TorrentInfo.TorrentOptions]?: TorrentInfo.TorrentOptions[K] } = {}
  if (p.downloadLimit !== undefined) options.downloadLimit = p.downloadLimit
  if (p.uploadLimit !== undefined) options.uploadLimit = p.uploadLimit
  if (p.seedRatio !== undefined) options.seedRatio = p.seedRatio
  if (p.seedTime !== undefined) options.seedTime = p.seedTime
  if (p.maxPeers !== undefined) options.maxPeers = p.maxPeers
  return {
    ...(p.downloadDir !== undefined ? { downloadDir: p.downloadDir } : {}),
    ...(p.paused !== undefined ? { paused: p.paused } : {}),
    ...(p.files !== undefined ? { files: p.files } : {}),
    ...(p.unwanted !== undefined ? { unwanted: p.unwanted } : {}),
    ...(p.priorityHigh !== undefined ? { priorityHigh: p.priorityHigh } : {}),
    ...(p.priorityLow !== undefined ? { priorityLow: p.priorityLow } : {}),
    ...(p.peers !== undefined ? { peers: p.peers } : {}),
    ...(Object.keys(options).length > 0 ? { options } : {})
  }
}

const torrentsLive = (config: Config) =>
  HttpApiBuilder.group(Api, "torrents", (handlers) =>
    Effect.map(Session, (session) =>
      handlers
        .handle("list", () => answer(Schema.Array(TorrentInfo.Summary), session.list))
        .handleRaw("add", ({ request, urlParams }) =>
          readSource(request, config.limits).pipe(
            Effect.flatMap((source) => call(session.add(source, toAddOptions(urlParams)))),
            Effect.flatMap((added) => respond(TorrentInfo.Added, added.duplicate ? 200 : 201)(added))
          ))
        .handle("get", ({ path }) => answer(TorrentInfo.Detail, call(session.get(path.ref))))
        .handle("remove", ({ path, urlParams }) => call(session.remove(path.ref, { deleteData: urlParams.deleteData ?? false })))
        .handle("pause", ({ path }) => call(session.pause(path.ref)))
        .handle("resume", ({ path, urlParams }) => call(session.resume(path.ref, { now: urlParams.now ?? false })))
        .handle("verify", ({ path }) => call(session.verify(path.ref)))
        .handle("reannounce", ({ path }) => call(session.reannounce(path.ref)))
        .handleRaw("setFiles", ({ path, request }) =>
          Effect.flatMap(
            Body.json(request, TorrentInfo.FileChanges, config.limits.json),
            (changes) => call(session.setFiles(path.ref, changes))
          ))
        .handleRaw("setOptions", ({ path, request }) =>
          Effect.flatMap(
            Body.json(request, Schema.partialWith(TorrentInfo.TorrentOptions, { exact: true }), config.limits.json),
            (options) => call(session.setOptions(path.ref, options))
          ))
        .handle("queueMove", ({ path }) => call(session.queueMove(path.ref, path.to)))
        .handle("peers", ({ path }) => answer(Schema.Array(TorrentInfo.PeerInfo), call(session.peers(path.ref))))
        .handle("trackers", ({ path }) => answer(Schema.Array(TorrentInfo.TrackerInfo), call(session.trackers(path.ref))))
    ))

// ---------------------------------------------------------------------------------------------------------------
// files

/** `inline` with the file's name: an ASCII fallback and the exact UTF-8 name (RFC 6266 / 8187). */
const contentDisposition = (path: string): string => {
  const name = path.slice(path.lastIndexOf("/") + 1)
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_")
  return `inline; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`
}

const serveFile = (
  session: SessionShape,
  ref: string | number,
  index: number,
  headers: { readonly range?: string | undefined; readonly "if-range"?: string | undefined },
  head: boolean
): Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError.ApiError> =>
  Effect.gen(function*() {
    const detail = yield* call(session.get(ref))
    const file = detail.files.find((f) => f.index === index)
    if (file === undefined) {
      return yield* Effect.fail(
        ApiError.make("not-found", `torrent ${detail.infoHash} has no file ${index} (it has ${detail.files.length})`)
      )
    }
    const length = file.length
    const etag = `"${detail.infoHash}-${index}"`
    // If-Range with another validator (an older ETag, a date): the whole file.
    const ifRange = headers["if-range"]
    const range = Range.parse(ifRange !== undefined && ifRange.trim() !== etag ? undefined : headers.range, length)
    if (range._tag === "Unsatisfiable") {
      return ApiError.toResponse(
        ApiError.make("range-not-satisfiable", `${headers.range} is outside the file's ${length} bytes`),
        { "content-range": Range.unsatisfiedRange(length), "accept-ranges": "bytes" }
      )
    }
    const [status, start, end] = range._tag === "Partial" ? [206, range.start, range.end] : [200, 0, length]
    const responseHeaders: Record<string, string> = {
      "accept-ranges": "bytes",
      etag,
      "content-type": Mime.contentTypeOf(file.path),
      "content-disposition": contentDisposition(file.path),
      "content-length": String(end - start),
      ...(status === 206 ? { "content-range": Range.contentRange(start, end, length) } : {})
    }
    if (head || end === start) return HttpServerResponse.empty({ status, headers: responseHeaders })
    const stream = yield* call(session.readFile(ref, index, { start, end }))
    return HttpServerResponse.stream(stream.body, { status, headers: responseHeaders })
  })

const filesLive = HttpApiBuilder.group(Api, "files", (handlers) =>
  Effect.map(Session, (session) =>
    handlers
      .handle("read", ({ headers, path }) => serveFile(session, path.ref, path.index, headers, false))
      .handle("head", ({ headers, path }) => serveFile(session, path.ref, path.index, headers, true))))

// ---------------------------------------------------------------------------------------------------------------
// session, events, metrics

const sessionLive = (config: Config) =>
  HttpApiBuilder.group(Api, "session", (handlers) =>
    Effect.map(Session, (session) =>
      handlers
        .handle("stats", () => answer(TorrentInfo.SessionStats, session.stats))
        .handle("settings", () => answer(TorrentInfo.Settings, SubscriptionRef.get(session.settings)))
        .handleRaw("updateSettings", ({ request }) =>
          Body.json(request, Schema.partialWith(TorrentInfo.Settings, { exact: true }), config.limits.json).pipe(
            Effect.flatMap((patch) => call(session.updateSettings(patch))),
            Effect.flatMap(respond(TorrentInfo.Settings))
          ))))

const encodeEvent = Schema.encode(TorrentInfo.SessionEvent)

/** The event stream of `GET /api/events`: a first comment (so the client gets the headers at once), then frames. */
export const eventStream = (
  events: Stream.Stream<TorrentInfo.SessionEvent>,
  keepAlive: Duration.DurationInput,
  shutdown: Effect.Effect<void>
): Stream.Stream<Uint8Array> =>
  Stream.make(Sse.comment("effect-torrent events")).pipe(
    Stream.concat(
      Stream.merge(
        Stream.filterMap(
          Stream.mapEffect(events, (event) =>
            encodeEvent(event).pipe(
              Effect.map((encoded) => Option.some(Sse.frame(event._tag, JSON.stringify(encoded)))),
              Effect.catchAll((e) => Effect.as(Effect.logWarning(`an event left out of /api/events: ${e.message}`), Option.none()))
            )),
          (frame) => frame
        ),
        Stream.tick(keepAlive).pipe(Stream.drop(1), Stream.as(Sse.comment("keep-alive"))),
        { haltStrategy: "left" }
      )
    ),
    Stream.interruptWhen(shutdown),
    Stream.encodeText
  )

const eventsLive = (config: Config) =>
  HttpApiBuilder.group(Api, "events", (handlers) =>
    Effect.map(Session, (session) =>
      handlers.handle("events", () =>
        Effect.succeed(
          HttpServerResponse.stream(eventStream(session.events, config.eventsKeepAlive, config.shutdown), {
            contentType: SseContentType,
            headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
          })
        ))))

const metricsLive = HttpApiBuilder.group(Api, "metrics", (handlers) =>
  Effect.gen(function*() {
    const session = yield* Session
    const sample = yield* Metrics.makeSampler(session)
    yield* Metrics.register
    return handlers.handle("metrics", () =>
      Effect.zipRight(
        sample,
        Effect.map(Prometheus.exposition, (text) => HttpServerResponse.text(text, { contentType: Prometheus.contentType }))
      ))
  }))

// ---------------------------------------------------------------------------------------------------------------
// failures

const describe = (u: unknown): string => (u instanceof Error ? u.message : String(u))

/**
 * Every failure as an ApiError: the platform's decode errors (path, query, headers) are 400s with the issues on one
 * line, an unknown route is a 404 "no-route", anything unexpected (a defect, an unknown error) is logged and
 * answered 500 "internal". Interruptions (the client went away) pass through.
 */
export const toApiError = (cause: Cause.Cause<unknown>): Effect.Effect<ApiError.ApiError> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (e instanceof ApiError.ApiError) return Effect.succeed(e)
    if (e instanceof HttpApiError.HttpApiDecodeError) {
      const issues = e.issues.map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
      return Effect.succeed(ApiError.make("bad-request", issues.length > 0 ? issues.join("; ") : e.message))
    }
    if (Predicate.isTagged(e, "RouteNotFound")) {
      const request = (e as { readonly request?: HttpServerRequest.HttpServerRequest }).request
      return Effect.succeed(
        ApiError.make("no-route", request !== undefined ? `no route ${request.method} ${request.url.split("?")[0]}` : "no such route")
      )
    }
    if (Predicate.isTagged(e, "RequestError")) {
      return Effect.succeed(ApiError.make("bad-request", `the request could not be read: ${describe(e)}`))
    }
  }
  return Effect.as(
    Effect.logError("the API failed unexpectedly", cause),
    ApiError.make("internal", "internal error (logged by the daemon)")
  )
}

export const failuresLive = HttpApiBuilder.middleware(Api, (app) =>
  Effect.catchAllCause(app, (cause) =>
    Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Effect.flatMap(toApiError(cause), Effect.fail)))

/**
 * The OpenAPI document of {@link Api}. `OpenApi.fromApi` (platform 0.97) writes `security: []` on every operation,
 * which in OpenAPI 3 overrides the API-wide requirement it also writes (every operation would read as public); the
 * empty lists are removed so that the API-wide bearer/basic requirement applies.
 */
export const openApiDocument = (): OpenApi.OpenAPISpec => {
  const spec = OpenApi.fromApi(Api)
  for (const item of Object.values(spec.paths)) {
    for (const op of Object.values(item) as Array<{ security?: ReadonlyArray<unknown> }>) {
      if (Predicate.isObject(op) && Array.isArray(op.security) && op.security.length === 0) delete op.security
    }
  }
  return spec
}

/** `GET /api/openapi.json`, behind the same middleware as every endpoint. */
export const openApiLive = HttpApiBuilder.Router.use((router) =>
  Effect.flatMap(
    Effect.orDie(HttpServerResponse.json(openApiDocument())),
    (response) => router.get(openApiPath, Effect.succeed(response))
  )
)

/** Every group's handlers, given the Session. */
export const layer = (config: Config) =>
  Layer.mergeAll(torrentsLive(config), filesLive, sessionLive(config), eventsLive(config), metricsLive)
