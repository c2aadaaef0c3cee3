/**
 * The typed failure of a tracker request. `reason` says what kind of failure it was; `detail` is a one-line
 * explanation for the user (for `failure` it is the tracker's own `failure reason` text, verbatim).
 */
import * as Data from "effect/Data"

export type Reason =
  | "network" // DNS failure, connection refused/reset, socket error
  | "timeout" // no (complete) answer within the deadline
  | "http-status" // an HTTP status other than 200
  | "bad-response" // an answer we cannot decode: garbage, truncated, oversized, not bencode, wrong shape
  | "failure" // the tracker refused the request and said why (`failure reason`, BEP 15 `error` action)
  | "unsupported" // a URL scheme we do not speak, or no scrape convention for this announce URL

export class TrackerError extends Data.TaggedError("TrackerError")<{
  readonly reason: Reason
  readonly url: string
  readonly detail: string
  /** The HTTP status, for `http-status`. */
  readonly status?: number | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    switch (this.reason) {
      case "failure":
        return `tracker ${this.url} refused the request: ${this.detail}`
      case "http-status":
        return `tracker ${this.url} answered HTTP ${this.status ?? "?"}${this.detail ? `: ${this.detail}` : ""}`
      default:
        return `tracker ${this.url}: ${this.detail}`
    }
  }
}
