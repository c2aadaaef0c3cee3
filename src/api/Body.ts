/**
 * Request bodies, read with a bound. The platform's own readers (`request.arrayBuffer`, the HttpApi payload
 * decoder) turn a body over `MaxBodySize` into a defect and destroy the request stream, which resets the
 * connection: the client never sees a status. Here the body is read from the Node request directly: a declared
 * `Content-Length` over the bound is refused before a byte is read, a body growing past it is dropped from then on
 * (the socket is closed after the answer: Security.ts marks every 413 `Connection: close`), and either way the
 * answer is a 413 {@link ApiError.ApiError}.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as ApiError from "./ApiError.ts"

export interface Limits {
  /** A `.torrent` file (`application/x-bittorrent`). */
  readonly torrent: number
  /** A magnet link or URL (`text/plain`). */
  readonly text: number
  /** A JSON body (file changes, options, settings). */
  readonly json: number
}

export const defaultLimits: Limits = { torrent: 16 * 1024 * 1024, text: 8 * 1024, json: 1024 * 1024 }

/** The largest body any endpoint takes: a declared length over it is refused for every route. */
export const maxOf = (limits: Limits): number => Math.max(limits.torrent, limits.text, limits.json)

const tooLarge = (what: string, limit: number) =>
  ApiError.make("payload-too-large", `${what} is larger than ${limit} bytes`)

/** The media type of the request, lower case, without parameters ("" when absent). */
export const mediaType = (request: HttpServerRequest.HttpServerRequest): string =>
  (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()

/** The whole body, at most `limit` bytes. `what` names it in the error ("a .torrent"). */
export const read = (
  request: HttpServerRequest.HttpServerRequest,
  limit: number,
  what: string
): Effect.Effect<Uint8Array, ApiError.ApiError> =>
  Effect.async<Uint8Array, ApiError.ApiError>((resume) => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const declared = incoming.headers["content-length"]
    if (declared !== undefined && Number(declared) > limit) {
      resume(Effect.fail(tooLarge(what, limit)))
      return
    }
    if (incoming.readableEnded) {
      resume(Effect.succeed(new Uint8Array(0)))
      return
    }
    const chunks: Array<Buffer> = []
    let size = 0
    const cleanup = () => {
      incoming.off("data", onData)
      incoming.off("end", onEnd)
      incoming.off("error", onError)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        cleanup()
        chunks.length = 0
        // still flowing: the rest is read and dropped until the answer closes the connection
        resume(Effect.fail(tooLarge(what, limit)))
      } else {
        chunks.push(chunk)
      }
    }
    const onEnd = () => {
      cleanup()
      const body = Buffer.concat(chunks, size)
      resume(Effect.succeed(new Uint8Array(body.buffer, body.byteOffset, body.byteLength)))
    }
    const onError = (cause: unknown) => {
      cleanup()
      resume(
        Effect.fail(
          ApiError.make("bad-request", `the request body could not be read: ${cause instanceof Error ? cause.message : String(cause)}`)
        )
      )
    }
    incoming.on("data", onData)
    incoming.on("end", onEnd)
    incoming.on("error", onError)
    return Effect.sync(cleanup)
  })

const isJson = (type: string) => type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"))

/**
 * A JSON body (`Content-Type: application/json`, else 415) decoded by `schema`; unknown properties are refused, so
 * that a misspelt setting is a 400 and not silently nothing.
 */
export const json = <A, I>(
  request: HttpServerRequest.HttpServerRequest,
  schema: Schema.Schema<A, I>,
  limit: number
): Effect.Effect<A, ApiError.ApiError> =>
  Effect.gen(function*() {
    const type = mediaType(request)
    if (!isJson(type)) {
      return yield* Effect.fail(
        ApiError.make("unsupported-media-type", `expected an application/json body, not ${type === "" ? "none" : type}`)
      )
    }
    const bytes = yield* read(request, limit, "the JSON body")
    const value = yield* Effect.try({
      try: () => JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown,
      catch: (cause) =>
        ApiError.make("bad-request", `the body is not JSON: ${cause instanceof Error ? cause.message : String(cause)}`)
    })
    return yield* Schema.decodeUnknown(schema, { onExcessProperty: "error", errors: "all" })(value).pipe(
      Effect.mapError((e) => ApiError.make("bad-request", issuesMessage(e)))
    )
  })

/** A ParseError as one line: `path: message; path: message`. */
export const issuesMessage = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ")
