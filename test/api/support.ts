/**
 * The API's tests: a server on a real loopback port (port 0) over a fresh FakeSession, the typed client, and raw
 * HTTP requests (node:http, which sends exactly the headers it is given) for what the client does not cover.
 */
import * as Http from "node:http"
import * as Net from "node:net"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as RemoteClient from "../../src/api/RemoteClient.ts"
import * as Server from "../../src/api/Server.ts"
import { Session } from "../../src/session/Session.ts"
import * as FakeSession from "./FakeSession.ts"

export interface Running {
  readonly fake: FakeSession.Fake
  readonly url: string
  readonly port: number
}

/** A server on 127.0.0.1, any free port, over a new FakeSession, for the life of the scope. */
export const start = (
  options: Server.Options = {}
): Effect.Effect<Running, Server.ServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const fake = yield* FakeSession.make()
    const started = yield* Server.start({ port: 0, eventLoopLag: false, ...options }).pipe(
      Effect.provideService(Session, fake)
    )
    return { fake, url: started.url, port: started.port }
  })

/** The typed client of a running server. */
export const client = (url: string, auth?: RemoteClient.Credentials) =>
  RemoteClient.make({ baseUrl: url, ...(auth !== undefined ? { auth } : {}), timeout: "10 seconds" }).pipe(
    Effect.provide(FetchHttpClient.layer)
  )

export interface RawResponse {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
  readonly text: string
  readonly json: () => unknown
}

export interface RawRequest {
  readonly method?: string
  readonly path: string
  /** Sent as given; `host` defaults to 127.0.0.1:<port> unless set (null: no Host header at all). */
  readonly headers?: Record<string, string | number | null>
  readonly body?: Uint8Array | string | ReadonlyArray<Uint8Array>
}

/** One request with node:http (no keep-alive), its whole answer. */
export const raw = (port: number, req: RawRequest): Effect.Effect<RawResponse, Error> =>
  Effect.async<RawResponse, Error>((resume, signal) => {
    const headers: Record<string, string | number> = {}
    let setHost = true
    for (const [k, v] of Object.entries(req.headers ?? {})) {
      if (k.toLowerCase() === "host" && v === null) setHost = false
      else if (v !== null) headers[k] = v
    }
    const r = Http.request(
      { host: "127.0.0.1", port, method: req.method ?? "GET", path: req.path, headers, setHost, agent: false, signal },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("error", (e) => resume(Effect.fail(e)))
        res.on("end", () => {
          const body = Buffer.concat(chunks)
          resume(Effect.succeed({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            text: body.toString("utf8"),
            json: () => JSON.parse(body.toString("utf8"))
          }))
        })
      }
    )
    r.on("error", (e) => resume(Effect.fail(e)))
    if (Array.isArray(req.body)) {
      for (const chunk of req.body) r.write(chunk)
      r.end()
    } else if (req.body !== undefined) {
      r.end(req.body)
    } else {
      r.end()
    }
  })

/** The `{ error: { reason, message } }` body of an answer. */
export const errorOf = (res: RawResponse): { readonly reason: string; readonly message: string } =>
  (res.json() as { readonly error: { readonly reason: string; readonly message: string } }).error

/** A tiny valid-looking .torrent for the fake (it only checks the leading "d"). */
export const torrentBytes = (tag: string): Uint8Array => new TextEncoder().encode(`d4:name${tag.length}:${tag}e`)

/**
 * Bytes written as they are on a fresh TCP connection; everything the server sends until it closes (or `ms`
 * passes). For requests node:http will not send (no Host, a body announced and never sent).
 */
export const rawSocket = (port: number, request: string, ms = 5000): Effect.Effect<string, Error> =>
  Effect.async<string, Error>((resume) => {
    let text = ""
    const socket = Net.connect(port, "127.0.0.1", () => socket.write(request))
    const timer = setTimeout(() => socket.destroy(), ms)
    socket.setEncoding("utf8")
    socket.on("data", (c: string) => (text += c))
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      resume(Effect.succeed(text))
    })
    return Effect.sync(() => socket.destroy())
  })

/** The status code of a raw HTTP answer. */
export const statusOf = (answer: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0)
