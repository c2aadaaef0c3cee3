/**
 * The daemon's HTTP API as an `HttpApi`: groups, endpoints and their Schemas (the bodies are TorrentInfo's). One
 * definition gives the server's routing and decoding (Handlers.ts), the OpenAPI document (`GET /api/openapi.json`)
 * and the typed client (RemoteClient.ts).
 *
 * | group    | endpoint                                            |                                                  |
 * |----------|-----------------------------------------------------|--------------------------------------------------|
 * | torrents | `GET /api/torrents`                                 | every torrent (Summary)                          |
 * |          | `POST /api/torrents`                                | add: `.torrent` bytes or a magnet link / URL     |
 * |          | `GET /api/torrents/{ref}`                           | Detail                                           |
 * |          | `DELETE /api/torrents/{ref}?deleteData=true`        | remove                                           |
 * |          | `POST /api/torrents/{ref}/pause`, `/resume?now=`, `/verify`, `/reannounce`                             |
 * |          | `PUT /api/torrents/{ref}/files`, `PUT …/options`, `POST …/queue/{top,up,down,bottom}`                 |
 * |          | `GET /api/torrents/{ref}/peers`, `GET …/trackers`                                                      |
 * | files    | `GET`/`HEAD /api/torrents/{ref}/files/{index}`      | a file's bytes, with `Range` (streaming)         |
 * | session  | `GET /api/stats`, `GET`/`PATCH /api/settings`       |                                                  |
 * | events   | `GET /api/events`                                   | Server-Sent Events, one per SessionEvent         |
 * | metrics  | `GET /metrics`                                      | Prometheus text format 0.0.4                     |
 *
 * `{ref}` is a torrent's info-hash (40 hex digits, any case) or its numeric id. Every failure is an
 * {@link ApiError.ApiError} body; {@link Authorization} guards every endpoint when the daemon has credentials.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as TorrentInfo from "../session/TorrentInfo.ts"
import * as ApiError from "./ApiError.ts"

/** `{ref}`: an info-hash (lower-cased) or a session id. */
export const TorrentRef = Schema.transformOrFail(
  Schema.String.pipe(
    Schema.pattern(/^(\d{1,15}|[0-9a-fA-F]{40})$/, {
      message: () => "expected a torrent id or an info-hash (40 hex digits)"
    })
  ),
  Schema.Union(Schema.NonNegativeInt, TorrentInfo.InfoHashHex),
  {
    strict: true,
    decode: (s) => ParseResult.succeed(s.length === 40 ? s.toLowerCase() : Number(s)),
    encode: (ref) => ParseResult.succeed(String(ref))
  }
).annotations({ identifier: "TorrentRef", description: "a torrent's info-hash (40 hex digits) or its id" })

export const RefPath = Schema.Struct({ ref: TorrentRef })

/** File indices in a query: the parameter repeated (`files=0&files=3`) or comma-separated (`files=0,3`). */
export const IndexList = Schema.transformOrFail(Schema.Array(Schema.String), Schema.Array(Schema.NonNegativeInt), {
  strict: true,
  decode: (parts, _, ast) => {
    const out: Array<number> = []
    for (const part of parts) {
      for (const piece of part.split(",")) {
        const s = piece.trim()
        if (s === "") continue
        if (!/^\d{1,9}$/.test(s)) return ParseResult.fail(new ParseResult.Type(ast, parts, `not a file index: "${s}"`))
        out.push(Number(s))
      }
    }
    return ParseResult.succeed(out)
  },
  encode: (ns) => ParseResult.succeed(ns.map(String))
}).annotations({ identifier: "IndexList", description: "file indices, repeated or comma-separated" })

const NonNegativeNumber = Schema.NumberFromString.pipe(Schema.finite(), Schema.nonNegative())
const NonNegativeIntParam = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())

/** `POST /api/torrents`'s query: AddOptions, with the per-torrent options flattened. */
export const AddParams = Schema.Struct({
  downloadDir: Schema.optional(Schema.String),
  paused: Schema.optional(Schema.BooleanFromString),
  files: Schema.optional(IndexList),
  unwanted: Schema.optional(IndexList),
  priorityHigh: Schema.optional(IndexList),
  priorityLow: Schema.optional(IndexList),
  /** Peers to dial, host:port, repeated. */
  peers: Schema.optional(Schema.Array(Schema.String)),
  downloadLimit: Schema.optional(NonNegativeNumber),
  uploadLimit: Schema.optional(NonNegativeNumber),
  seedRatio: Schema.optional(NonNegativeNumber),
  seedTime: Schema.optional(NonNegativeNumber),
  maxPeers: Schema.optional(NonNegativeIntParam)
})
export type AddParams = typeof AddParams.Type

export const TorrentContentType = "application/x-bittorrent"

/** `POST /api/torrents`'s body: a `.torrent` as bytes, or a magnet link or http(s) URL as text. */
export const AddBody = Schema.Union(
  Schema.Uint8ArrayFromSelf.pipe(HttpApiSchema.withEncoding({ kind: "Uint8Array", contentType: TorrentContentType })),
  Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain" }))
)

const AddedNew = TorrentInfo.Added.pipe(Schema.filter((a) => !a.duplicate)).annotations(
  HttpApiSchema.annotations({ status: 201, description: "added" })
)
const AddedDuplicate = TorrentInfo.Added.pipe(Schema.filter((a) => a.duplicate)).annotations(
  HttpApiSchema.annotations({ status: 200, description: "already in the client: nothing added" })
)

export const QueueMove = Schema.Literal("top", "up", "down", "bottom")

/**
 * Credentials when the daemon has them (a bearer token, or HTTP Basic user and password); with none configured
 * (loopback only) every request passes. Implemented in Security.ts.
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("effect-torrent/api/Authorization", {
  failure: ApiError.at(401),
  security: { bearer: HttpApiSecurity.bearer, basic: HttpApiSecurity.basic }
}) {}

export const torrents = HttpApiGroup.make("torrents")
  .add(HttpApiEndpoint.get("list", "/api/torrents").addSuccess(Schema.Array(TorrentInfo.Summary)))
  .add(
    HttpApiEndpoint.post("add", "/api/torrents")
      .setUrlParams(AddParams)
      .setPayload(AddBody)
      .addSuccess(AddedNew)
      .addSuccess(AddedDuplicate)
      .addError(ApiError.at(415))
  )
  .add(HttpApiEndpoint.get("get", "/api/torrents/:ref").setPath(RefPath).addSuccess(TorrentInfo.Detail))
  .add(
    HttpApiEndpoint.del("remove", "/api/torrents/:ref")
      .setPath(RefPath)
      .setUrlParams(Schema.Struct({ deleteData: Schema.optional(Schema.BooleanFromString) }))
  )
  .add(HttpApiEndpoint.post("pause", "/api/torrents/:ref/pause").setPath(RefPath))
  .add(
    HttpApiEndpoint.post("resume", "/api/torrents/:ref/resume")
      .setPath(RefPath)
      .setUrlParams(Schema.Struct({ now: Schema.optional(Schema.BooleanFromString) }))
  )
  .add(HttpApiEndpoint.post("verify", "/api/torrents/:ref/verify").setPath(RefPath))
  .add(HttpApiEndpoint.post("reannounce", "/api/torrents/:ref/reannounce").setPath(RefPath))
  .add(
    HttpApiEndpoint.put("setFiles", "/api/torrents/:ref/files")
      .setPath(RefPath)
      .setPayload(TorrentInfo.FileChanges)
      .addError(ApiError.at(415))
  )
  .add(
    HttpApiEndpoint.put("setOptions", "/api/torrents/:ref/options")
      .setPath(RefPath)
      .setPayload(Schema.partialWith(TorrentInfo.TorrentOptions, { exact: true }))
      .addError(ApiError.at(415))
  )
  .add(
    HttpApiEndpoint.post("queueMove", "/api/torrents/:ref/queue/:to").setPath(
      Schema.Struct({ ref: TorrentRef, to: QueueMove })
    )
  )
  .add(
    HttpApiEndpoint.get("peers", "/api/torrents/:ref/peers")
      .setPath(RefPath)
      .addSuccess(Schema.Array(TorrentInfo.PeerInfo))
  )
  .add(
    HttpApiEndpoint.get("trackers", "/api/torrents/:ref/trackers")
      .setPath(RefPath)
      .addSuccess(Schema.Array(TorrentInfo.TrackerInfo))
  )
  .annotate(OpenApi.Description, "The torrents in the client")

export const FilePath = Schema.Struct({ ref: TorrentRef, index: NonNegativeIntParam })
export const RangeHeaders = Schema.Struct({
  range: Schema.optional(Schema.String),
  "if-range": Schema.optional(Schema.String)
})
const FileBytes = Schema.Uint8ArrayFromSelf.pipe(
  HttpApiSchema.withEncoding({ kind: "Uint8Array", contentType: "application/octet-stream" })
)

export const files = HttpApiGroup.make("files")
  .add(
    HttpApiEndpoint.get("read", "/api/torrents/:ref/files/:index")
      .setPath(FilePath)
      .setHeaders(RangeHeaders)
      .addSuccess(FileBytes.annotations({ description: "the whole file" }))
      .addSuccess(FileBytes.annotations({ description: "the requested range" }), { status: 206 })
      .addError(ApiError.at(416))
  )
  .add(
    HttpApiEndpoint.head("head", "/api/torrents/:ref/files/:index")
      .setPath(FilePath)
      .setHeaders(RangeHeaders)
      .addSuccess(HttpApiSchema.Empty(200))
      .addSuccess(HttpApiSchema.Empty(206))
      .addError(ApiError.at(416))
  )
  .annotate(
    OpenApi.Description,
    "A file of a torrent, with Range requests; pieces not verified yet are fetched first and waited for"
  )

export const session = HttpApiGroup.make("session")
  .add(HttpApiEndpoint.get("stats", "/api/stats").addSuccess(TorrentInfo.SessionStats))
  .add(HttpApiEndpoint.get("settings", "/api/settings").addSuccess(TorrentInfo.Settings))
  .add(
    HttpApiEndpoint.patch("updateSettings", "/api/settings")
      .setPayload(Schema.partialWith(TorrentInfo.Settings, { exact: true }))
      .addSuccess(TorrentInfo.Settings)
      .addError(ApiError.at(415))
  )

export const SseContentType = "text/event-stream"

export const events = HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("events", "/api/events").addSuccess(
      Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: SseContentType })).annotations({
        description:
          "Server-Sent Events: `event: <SessionEvent _tag>` and `data: <SessionEvent as JSON>` per event, " +
          "a comment line every 15 s"
      })
    )
  )
  .annotate(OpenApi.Description, "What happens in the client, as it happens")

export const PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

export const metrics = HttpApiGroup.make("metrics").add(
  HttpApiEndpoint.get("metrics", "/metrics").addSuccess(
    Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: PrometheusContentType }))
  )
)

/**
 * Errors any endpoint can answer with: the security checks (400, 401, 403, 413, 421), the session's reasons (404,
 * 400, 422, 500, 503), an unknown route (404).
 */
export class Api extends HttpApi.make("effect-torrent")
  .add(torrents)
  .add(files)
  .add(session)
  .add(events)
  .add(metrics)
  .addError(ApiError.at(400))
  .addError(ApiError.at(401))
  .addError(ApiError.at(403))
  .addError(ApiError.at(404))
  .addError(ApiError.at(413))
  .addError(ApiError.at(421))
  .addError(ApiError.at(422))
  .addError(ApiError.at(500))
  .addError(ApiError.at(503))
  .middleware(Authorization)
  .annotate(OpenApi.Title, "effect-torrent daemon")
  .annotate(OpenApi.Version, "1") {}

/** Where the OpenAPI document is served. */
export const openApiPath = "/api/openapi.json"
