/**
 * The one error body of the HTTP API: `{ "error": { "reason": "...", "message": "..." } }`, its status decided by
 * the reason. The session's reasons (`SessionError`) pass through unchanged; the HTTP layer adds its own (a
 * malformed request, an unknown route, a refused host or origin, a body too large, …).
 *
 * In the `HttpApi` the status comes from a schema annotation, not from a value, so {@link at} gives one refinement
 * of {@link ApiError} per status ("an ApiError whose reason answers 404"): the server picks the member whose
 * refinement holds when it encodes a failure, and the derived client decodes a response by its status into the same
 * `ApiError` type.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Schema from "effect/Schema"
import type { SessionError } from "../session/Session.ts"

export const Reason = Schema.Literal(
  // the session's (SessionError.reason)
  "not-found",
  "invalid-source",
  "invalid-argument",
  "unsupported",
  "storage",
  "closed",
  // the HTTP layer's
  "bad-request",
  "no-route",
  "unauthorized",
  "forbidden-origin",
  "misdirected-host",
  "payload-too-large",
  "unsupported-media-type",
  "range-not-satisfiable",
  "internal"
).annotations({ identifier: "ErrorReason" })
export type Reason = typeof Reason.Type

const STATUS: { readonly [R in Reason]: number } = {
  "not-found": 404,
  "invalid-source": 400,
  "invalid-argument": 400,
  unsupported: 422,
  storage: 500,
  closed: 503,
  "bad-request": 400,
  "no-route": 404,
  unauthorized: 401,
  "forbidden-origin": 403,
  "misdirected-host": 421,
  "payload-too-large": 413,
  "unsupported-media-type": 415,
  "range-not-satisfiable": 416,
  internal: 500
}

/** The HTTP status a reason answers with. */
export const statusOf = (reason: Reason): number => STATUS[reason]

export class ApiError extends Schema.Class<ApiError>("ApiError")(
  { error: Schema.Struct({ reason: Reason, message: Schema.String }) },
  { description: "Every failure of the API: a reason (which decides the status) and a message for people" }
) {
  /** For `Effect.catchTag`; not part of the JSON body. */
  get _tag(): "ApiError" {
    return "ApiError"
  }
  get reason(): Reason {
    return this.error.reason
  }
  get message(): string {
    return this.error.message
  }
  get status(): number {
    return statusOf(this.error.reason)
  }
}

export const make = (reason: Reason, message: string): ApiError => new ApiError({ error: { reason, message } })

export const fromSessionError = (e: SessionError): ApiError => make(e.reason, e.message)

const cache = new Map<number, Schema.Schema<ApiError, { readonly error: { readonly reason: Reason; readonly message: string } }>>()

/** The ApiErrors answered with `status`, as a schema carrying that status (see the module comment). */
export const at = (status: number) => {
  let schema = cache.get(status)
  if (schema === undefined) {
    schema = ApiError.pipe(Schema.filter((e) => statusOf(e.error.reason) === status)).annotations(
      HttpApiSchema.annotations({ status })
    )
    cache.set(status, schema)
  }
  return schema
}

/** Every status an ApiError can have, once each. */
export const statuses: ReadonlyArray<number> = [...new Set(Object.values(STATUS))].sort((a, b) => a - b)

/**
 * The error as a finished response, for the places that answer outside the `HttpApi` encoder (the security
 * middleware, a 416 that needs its `Content-Range`).
 */
export const toResponse = (
  error: ApiError,
  headers?: Record<string, string> | undefined
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(JSON.stringify({ error: { reason: error.reason, message: error.message } }), {
    status: error.status,
    contentType: "application/json",
    ...(headers !== undefined ? { headers } : {})
  })
