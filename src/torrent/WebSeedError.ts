/** Why a web seed request failed; `reason` decides what the torrent does with the server (WebSeedBackoff.ts). */
import * as Data from "effect/Data"

export type Reason =
  | "unsupported-url" // not an http(s) URL: never used
  | "network" // connect refused, reset, DNS: back off
  | "timeout" // nothing received for the idle deadline: back off
  | "http-status" // 5xx, 429 and other unexpected statuses: back off
  | "redirects" // too many redirects, a loop, or to a scheme other than http(s): back off
  | "missing-file" // 404 or 410 for one file: that file's pieces are not asked of this server again
  | "bad-response" // wrong Content-Range, wrong or short length: bad data, the server is dropped

export class WebSeedError extends Data.TaggedError("WebSeedError")<{
  readonly reason: Reason
  /** The URL requested (after redirects, when it got that far). */
  readonly url: string
  readonly detail: string
  /** HTTP status, when there was a response. */
  readonly status?: number | undefined
  /** Seconds from a `Retry-After` header (429, 503). */
  readonly retryAfter?: number | undefined
}> {
  override get message(): string {
    return `web seed ${this.url}: ${this.detail}`
  }
}
