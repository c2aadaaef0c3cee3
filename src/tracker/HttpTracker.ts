/**
 * HTTP(S) trackers (BEP 3, 23, 7, 48) over @effect/platform's HttpClient.
 *
 * Redirects are followed here, not with `HttpClient.followRedirects`: that helper re-parses the query into text
 * parameters and re-encodes them, which corrupts a binary `info_hash`. We resolve `Location` against the current
 * URL with WHATWG `URL`, which keeps `%XX` escapes byte for byte.
 */
import { STATUS_CODES } from "node:http"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as Bytes from "../core/Bytes.ts"
import * as HttpCodec from "./HttpCodec.ts"
import type { AnnounceRequest, AnnounceResponse, ScrapeResponse } from "./Tracker.ts"
import { TrackerError } from "./TrackerError.ts"

export interface Options {
  /** Deadline for one request, redirects and body included. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Larger bodies are refused (`bad-response`) without reading further. */
  readonly maxBodyBytes?: number | undefined
  readonly maxRedirects?: number | undefined
  readonly userAgent?: string | undefined
}

export const defaults = {
  timeout: Duration.seconds(15),
  maxBodyBytes: 2 * 1024 * 1024,
  maxRedirects: 5,
  userAgent: "effect-torrent/0.1"
} as const

export interface HttpTracker {
  readonly announce: (url: string, request: AnnounceRequest) => Effect.Effect<AnnounceResponse, TrackerError>
  readonly scrape: (url: string, infoHashes: ReadonlyArray<Uint8Array>) => Effect.Effect<ScrapeResponse, TrackerError>
}

const hostOf = (url: string): string => {
  try {
    return new URL(url).hostname
  } catch {
    return url
  }
}

const networkDetail = (url: string, e: HttpClientError.RequestError): string => {
  const cause = e.cause as { code?: unknown; message?: unknown } | undefined
  const code = typeof cause?.code === "string" ? cause.code : undefined
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") {
    return `cannot resolve host ${hostOf(url)} (${code})`
  }
  const msg = typeof cause?.message === "string" && cause.message !== "" ? cause.message : e.message
  return code !== undefined && !msg.includes(code) ? `${code}: ${msg}` : msg
}

export const make = (options?: Options): Effect.Effect<HttpTracker, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const timeout = options?.timeout ?? defaults.timeout
    const maxBody = options?.maxBodyBytes ?? defaults.maxBodyBytes
    const maxRedirects = options?.maxRedirects ?? defaults.maxRedirects
    const headers = { "user-agent": options?.userAgent ?? defaults.userAgent, "accept-encoding": "identity" }

    const readBody = (url: string, res: HttpClientResponse.HttpClientResponse) => {
      const tooBig = new TrackerError({ reason: "bad-response", url, detail: `response larger than ${maxBody} bytes` })
      const declared = Number(res.headers["content-length"])
      if (Number.isFinite(declared) && declared > maxBody) return Effect.fail(tooBig)
      return res.stream.pipe(
        Stream.mapError((e) => new TrackerError({ reason: "network", url, detail: e.message, cause: e })),
        Stream.runFoldEffect({ parts: [] as Array<Uint8Array>, size: 0 }, (acc, chunk) => {
          const size = acc.size + chunk.length
          if (size > maxBody) return Effect.fail(tooBig)
          acc.parts.push(chunk)
          return Effect.succeed({ parts: acc.parts, size })
        }),
        Effect.map((acc) => Bytes.concat(acc.parts))
      )
    }

    // GET with manual redirects; `display` is the tracker URL as configured (no per-request query) for errors.
    const get = (display: string, requestUrl: string): Effect.Effect<Uint8Array, TrackerError> => {
      const loop = (url: string, redirects: number): Effect.Effect<Uint8Array, TrackerError> =>
        client.get(url, { headers }).pipe(
          Effect.mapError((e) =>
            e._tag === "RequestError" && e.reason === "InvalidUrl"
              ? new TrackerError({ reason: "unsupported", url: display, detail: "invalid URL", cause: e })
              : new TrackerError({
                reason: "network",
                url: display,
                detail: e._tag === "RequestError" ? networkDetail(url, e) : e.message,
                cause: e
              })
          ),
          Effect.flatMap((res) => {
            const location = res.headers["location"]
            if (res.status >= 300 && res.status < 400 && location !== undefined) {
              if (redirects >= maxRedirects) {
                return Effect.fail(
                  new TrackerError({ reason: "http-status", url: display, status: res.status, detail: "too many redirects" })
                )
              }
              let next: URL
              try {
                next = new URL(location, url)
              } catch {
                return Effect.fail(
                  new TrackerError({ reason: "bad-response", url: display, detail: `bad redirect location ${location}` })
                )
              }
              if (next.protocol !== "http:" && next.protocol !== "https:") {
                return Effect.fail(
                  new TrackerError({ reason: "unsupported", url: display, detail: `redirect to ${next.protocol} URL` })
                )
              }
              return loop(next.href, redirects + 1)
            }
            if (res.status !== 200) {
              return Effect.fail(
                new TrackerError({ reason: "http-status", url: display, status: res.status, detail: STATUS_CODES[res.status] ?? "" })
              )
            }
            return readBody(display, res)
          })
        )
      return loop(requestUrl, 0).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new TrackerError({ reason: "timeout", url: display, detail: `no answer within ${Duration.format(timeout)}` })
        })
      )
    }

    const decoded = <A>(url: string, r: Either.Either<A, HttpCodec.DecodeFailure>) =>
      Either.isRight(r)
        ? Effect.succeed(r.right)
        : Effect.fail(new TrackerError({ reason: r.left.reason, url, detail: r.left.detail }))

    const announce = (url: string, request: AnnounceRequest) =>
      get(url, HttpCodec.announceUrl(url, request)).pipe(
        Effect.flatMap((body) => decoded(url, HttpCodec.decodeAnnounce(body)))
      )

    const scrape = (url: string, infoHashes: ReadonlyArray<Uint8Array>) => {
      const scrapeUrl = HttpCodec.scrapeUrlOf(url)
      if (scrapeUrl === undefined) {
        return Effect.fail(
          new TrackerError({ reason: "unsupported", url, detail: "announce URL does not end in /announce: no scrape" })
        )
      }
      return get(url, HttpCodec.scrapeRequestUrl(scrapeUrl, infoHashes)).pipe(
        Effect.flatMap((body) => decoded(url, HttpCodec.decodeScrape(body)))
      )
    }

    return { announce, scrape }
  })
