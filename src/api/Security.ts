/**
 * What stands between the network and the API. A daemon is a server, and the usual attacker is a web page in the
 * user's own browser (a request to 127.0.0.1 from any site, or DNS rebinding of a site's name to 127.0.0.1), so:
 *
 * - **Binding**: 127.0.0.1 by default; Server.ts refuses any other address unless credentials are configured
 *   ({@link isLoopback}).
 * - **Host** (DNS rebinding): the `Host` header must name this server: `localhost`, `127.0.0.1`, `[::1]`, the bound
 *   address, or a configured name; anything else (a missing Host too) is refused with 421 before routing.
 * - **Origin** (cross-site requests): a state-changing request (anything but GET, HEAD, OPTIONS) whose `Origin` is
 *   not this server's own (`http(s)://<allowed host>:<port>`) or a configured one is refused with 403, and so is one
 *   without `Origin` that a browser marks `Sec-Fetch-Site: cross-site`. No CORS headers are ever sent, so a page of
 *   another origin cannot read any answer either.
 * - **Credentials**: the {@link Api.Authorization} middleware ({@link authorizationLayer}), when configured: a
 *   bearer token or HTTP Basic user and password, checked against scrypt hashes (Auth.ts); 401 with
 *   `WWW-Authenticate` otherwise.
 * - **Bodies**: a declared `Content-Length` over the largest body any endpoint takes is refused (413) before
 *   routing; each endpoint reads its body with its own bound (Body.ts). A 413 closes the connection.
 * - **Answers**: `nosniff`, a `sandbox` CSP, `no-referrer`, `no-store` on everything, so that a file served from a
 *   torrent can never run in the daemon's origin (see Mime.ts); the file endpoint serves only what
 *   `Session.readFile` returns for a torrent and an index, never a path taken from the request.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { Authorization } from "./Api.ts"
import * as ApiError from "./ApiError.ts"
import * as Auth from "./Auth.ts"

/** 127.0.0.0/8, ::1 (also as an IPv4-mapped address), `localhost`. */
export const isLoopback = (host: string): boolean => {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1")
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h
  return /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(v4) && v4.split(".").every((n) => Number(n) <= 255)
}

/** The wildcard addresses: bound to every interface. */
export const isWildcard = (host: string): boolean => {
  const h = host.replace(/^\[(.*)\]$/, "$1")
  return h === "0.0.0.0" || h === "::" || h === "0:0:0:0:0:0:0:0"
}

/** A host name as the `Host` header would carry it: lower case, no trailing dot, IPv6 in brackets. */
export const normalizeHostName = (name: string): string => {
  const h = name.trim().toLowerCase().replace(/\.$/, "")
  return h.includes(":") && !h.startsWith("[") ? `[${h}]` : h
}

/** The host name of a `Host` header value (`name`, `name:port`, `[v6]`, `[v6]:port`), or undefined if malformed. */
export const hostOfHeader = (value: string): string | undefined => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/@]+)(?::(\d{1,5}))?$/.exec(value.trim())
  return m === null ? undefined : normalizeHostName(m[1]!)
}

export interface Config {
  /** The address the server is bound to. */
  readonly host: string
  /** The port it listens on (the real one when asked for 0). */
  readonly port: number
  /** More names the `Host` header may carry (a LAN name, a reverse proxy's). */
  readonly allowedHosts: ReadonlyArray<string>
  /** More origins allowed to make state-changing requests (`https://ui.example`). */
  readonly allowedOrigins: ReadonlyArray<string>
  /** The largest declared body any endpoint takes. */
  readonly maxBody: number
}

export const allowedHostNames = (config: Config): ReadonlySet<string> => {
  const names = new Set(["localhost", "127.0.0.1", "[::1]"])
  if (!isWildcard(config.host)) names.add(normalizeHostName(config.host))
  for (const h of config.allowedHosts) names.add(normalizeHostName(h))
  return names
}

const normalizeOrigin = (origin: string): string | undefined => {
  try {
    const url = new URL(origin)
    return url.origin === "null" ? undefined : url.origin
  } catch {
    return undefined
  }
}

export const allowedOriginSet = (config: Config): ReadonlySet<string> => {
  const origins = new Set<string>()
  for (const name of allowedHostNames(config)) {
    for (const scheme of ["http", "https"]) {
      const o = normalizeOrigin(`${scheme}://${name}:${config.port}`)
      if (o !== undefined) origins.add(o)
    }
  }
  for (const o of config.allowedOrigins) {
    const n = normalizeOrigin(o)
    if (n !== undefined) origins.add(n)
  }
  return origins
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"])

/** What is wrong with a request before it reaches the API, if anything. */
export const makeCheck = (config: Config) => {
  const hosts = allowedHostNames(config)
  const origins = allowedOriginSet(config)
  return (request: {
    readonly method: string
    readonly headers: Readonly<Record<string, string | undefined>>
  }): ApiError.ApiError | undefined => {
    const hostHeader = request.headers["host"]
    const host = hostHeader === undefined ? undefined : hostOfHeader(hostHeader)
    if (host === undefined || !hosts.has(host)) {
      return ApiError.make(
        "misdirected-host",
        hostHeader === undefined
          ? "the request has no Host header"
          : `this server does not answer for "${hostHeader}" (allowed: ${[...hosts].join(", ")}; more with allowedHosts)`
      )
    }
    if (!SAFE_METHODS.has(request.method)) {
      const origin = request.headers["origin"]
      if (origin !== undefined) {
        const normalized = normalizeOrigin(origin)
        if (normalized === undefined || !origins.has(normalized)) {
          return ApiError.make("forbidden-origin", `requests from ${origin} may not change anything here`)
        }
      } else if (request.headers["sec-fetch-site"] === "cross-site") {
        return ApiError.make("forbidden-origin", "cross-site requests may not change anything here")
      }
    }
    const length = request.headers["content-length"]
    if (length !== undefined && Number(length) > config.maxBody) {
      return ApiError.make("payload-too-large", `the body is larger than ${config.maxBody} bytes`)
    }
    return undefined
  }
}

const challenge = `Bearer realm="effect-torrent", Basic realm="effect-torrent", charset="UTF-8"`

/**
 * The challenge when a browser asks for a page (the web UIs: a GET accepting HTML): Basic alone. Chromium reads only
 * the first challenge of a `WWW-Authenticate` line, so with Bearer first it never asks for a password.
 */
export const browserChallenge = `Basic realm="effect-torrent", charset="UTF-8"`

const asksForPage = (request: { readonly method: string; readonly headers: Readonly<Record<string, string | undefined>> }) =>
  request.method === "GET" && (request.headers["accept"] ?? "").includes("text/html")

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY"
}

/**
 * Every answer's security headers, plus `WWW-Authenticate` on a 401 (Basic alone when a browser asked for a page)
 * and `Connection: close` on a 413.
 */
export const secureResponse = (
  response: HttpServerResponse.HttpServerResponse,
  request?: Parameters<typeof asksForPage>[0]
): HttpServerResponse.HttpServerResponse => {
  const headers: Record<string, string> = { ...SECURITY_HEADERS }
  if (response.headers["cache-control"] === undefined) headers["cache-control"] = "no-store"
  if (response.status === 401) headers["www-authenticate"] = request !== undefined && asksForPage(request) ? browserChallenge : challenge
  if (response.status === 413) headers["connection"] = "close"
  return HttpServerResponse.setHeaders(response, headers)
}

/** The server middleware: host and origin checks, the declared-length bound, and the answers' headers. */
export const middleware = (config: Config): (app: HttpApp.Default) => HttpApp.Default => {
  const check = makeCheck(config)
  return (app) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const refusal = check(request)
      if (refusal !== undefined) return secureResponse(ApiError.toResponse(refusal), request)
      yield* HttpApp.appendPreResponseHandler((request, response) => Effect.succeed(secureResponse(response, request)))
      return yield* app
    })
}

const unauthorized = (authorization: string | undefined) =>
  ApiError.make(
    "unauthorized",
    authorization === undefined
      ? "authentication required: a bearer token or a user and password (HTTP Basic)"
      : "the credentials were not accepted"
  )

/**
 * The {@link Authorization} middleware: with no credentials configured every request passes; otherwise the
 * `Authorization` header must carry a valid token or user and password. Both security schemes of the API (bearer
 * and basic) run the same check on the raw header, once per request: the platform's own Basic decoding splits the
 * password at every ':' and refuses passwords containing one (RFC 7617 allows them).
 */
export const authorizationLayer = (auth: Auth.AuthFile | undefined): Layer.Layer<Authorization> =>
  Layer.effect(
    Authorization,
    Effect.gen(function*() {
      if (auth === undefined || Auth.isEmpty(auth)) {
        return Authorization.of({ bearer: () => Effect.void, basic: () => Effect.void })
      }
      const authenticator = yield* Auth.makeAuthenticator(auth)
      const outcomes = new WeakMap<object, Exit.Exit<void, ApiError.ApiError>>()
      const checkOnce = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const known = outcomes.get(request)
        if (known !== undefined) return yield* known
        const header = request.headers["authorization"]
        const ok = yield* authenticator.check(header)
        const outcome: Exit.Exit<void, ApiError.ApiError> = ok ? Exit.void : Exit.fail(unauthorized(header))
        outcomes.set(request, outcome)
        return yield* outcome
      })
      return Authorization.of({ bearer: () => checkOnce, basic: () => checkOnce })
    })
  )
