/**
 * The daemon's HTTP server: Node's `http` server (NodeHttpServer) serving the API (HttpApiBuilder) for the
 * {@link Session} in context, behind the checks of Security.ts, with the OpenAPI document at `/api/openapi.json`
 * and the event-loop lag sampler running; beside the API, Transmission's RPC at `/transmission/rpc`
 * (TransmissionRoute.ts, docs/TRANSMISSION.md) and, given their directories, Transmission's web client (TransmissionWeb.ts)
 * and effect-torrent's own web UI at `/` (WebUi.ts, docs/WEBUI.md).
 *
 * ```ts
 * Server.layer({ host: "127.0.0.1", port: 9091, auth, allowedHosts: ["nas.local"] })  // Layer<HttpServer, ServerError, Session>
 * const { url } = yield* Server.start({ port: 0 })                                    // scoped; port 0: any free one
 * ```
 *
 * It refuses to start bound to anything but a loopback address unless `auth` holds at least one user or token.
 * When its scope closes, open event streams end, then every connection still open (a file being streamed) is cut,
 * so that closing never waits on a client.
 */
import * as Http from "node:http"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Metrics from "../session/Metrics.ts"
import type { Session } from "../session/Session.ts"
import { Api } from "./Api.ts"
import * as Auth from "./Auth.ts"
import * as Body from "./Body.ts"
import * as Handlers from "./Handlers.ts"
import * as Security from "./Security.ts"
import * as TransmissionRoute from "./TransmissionRoute.ts"
import * as TransmissionWeb from "./TransmissionWeb.ts"
import * as WebUi from "./WebUi.ts"

export const defaultHost = "127.0.0.1"
/** Transmission's port, so that its tools find the daemon. */
export const defaultPort = 9091

export interface Options {
  /** Default 127.0.0.1. Any non-loopback address needs `auth`. */
  readonly host?: string | undefined
  /** Default 9091; 0 for any free port. */
  readonly port?: number | undefined
  /** Users and tokens (Auth.readFile); none: no authentication, loopback only. */
  readonly auth?: Auth.AuthFile | undefined
  /** More names the `Host` header may carry (see Security.ts). */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** More origins allowed to make state-changing requests. */
  readonly allowedOrigins?: ReadonlyArray<string> | undefined
  readonly limits?: Partial<Body.Limits> | undefined
  /** Between keep-alive comments on idle event streams; default 15 s. */
  readonly eventsKeepAlive?: Duration.DurationInput | undefined
  /** Sample the event loop's lag into the metrics (default true; one sampler per process is enough). */
  readonly eventLoopLag?: boolean | undefined
  /** Transmission's RPC at `/transmission/rpc` (TransmissionRoute.ts): on by default; `false` leaves it out. */
  readonly transmission?: Pick<TransmissionRoute.Options, "onSessionClose" | "configDir" | "version"> | false | undefined
  /** Transmission's web client served from this directory at `/transmission/web/` (TransmissionWeb.ts); none: not served. */
  readonly transmissionWeb?: string | undefined
  /** The built web UI (scripts/webui.mjs: `dist/webui/`) served at `/` (WebUi.ts); none: not served. */
  readonly webUi?: string | undefined
}

export class ServerError extends Data.TaggedError("ServerError")<{
  readonly reason: "insecure-bind" | "listen"
  readonly message: string
  readonly cause?: unknown
}> {}

const withBrackets = (host: string) => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host)

/** The base URL clients use for a server bound to `host`:`port` (a wildcard address is reached on 127.0.0.1). */
export const urlOf = (host: string, port: number): string =>
  `http://${Security.isWildcard(host) ? "127.0.0.1" : withBrackets(host)}:${port}`

/** Fails with "insecure-bind" for a non-loopback host without at least one user or token. */
export const checkOptions = (options: Options): Effect.Effect<void, ServerError> => {
  const host = options.host ?? defaultHost
  if (Security.isLoopback(host)) return Effect.void
  if (options.auth !== undefined && !Auth.isEmpty(options.auth)) return Effect.void
  return Effect.fail(
    new ServerError({
      reason: "insecure-bind",
      message: `refusing to listen on ${host} without authentication: add a user or a token to the auth file, or listen on 127.0.0.1`
    })
  )
}

/** The API on a listening server; its output is the platform's HttpServer (for its address). */
export const layer = (options: Options = {}): Layer.Layer<HttpServer.HttpServer, ServerError, Session> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      yield* checkOptions(options)
      const host = options.host ?? defaultHost
      const limits: Body.Limits = { ...Body.defaultLimits, ...options.limits }
      const shutdown = yield* Deferred.make<void>()
      const nodeServer = Http.createServer()

      const handlers = Handlers.layer({
        limits,
        eventsKeepAlive: options.eventsKeepAlive ?? Duration.seconds(15),
        shutdown: Deferred.await(shutdown)
      })
      const api = HttpApiBuilder.api(Api).pipe(
        Layer.provide(handlers),
        Layer.provide(Security.authorizationLayer(options.auth))
      )

      // Built once the server listens (it needs the real port for the origin check); its finalizer runs before
      // the listener's own close, which would otherwise wait for every open connection.
      const serve = Layer.unwrapScoped(
        Effect.gen(function*() {
          const server = yield* HttpServer.HttpServer
          const port = server.address._tag === "TcpAddress" ? server.address.port : 0
          yield* Effect.addFinalizer(() =>
            Deferred.succeed(shutdown, undefined).pipe(
              Effect.zipRight(Effect.sleep(Duration.millis(50))),
              Effect.zipRight(Effect.sync(() => nodeServer.closeAllConnections()))
            )
          )
          return HttpApiBuilder.serve(
            Security.middleware({
              host,
              port,
              allowedHosts: options.allowedHosts ?? [],
              allowedOrigins: options.allowedOrigins ?? [],
              maxBody: Body.maxOf(limits)
            })
          )
        })
      )

      const lag = options.eventLoopLag === false ? Layer.empty : Metrics.layerEventLoopLag()
      const transmission = options.transmission === false
        ? Layer.empty
        : TransmissionRoute.layer({ ...options.transmission, auth: options.auth, maxBody: Body.maxOf(limits) })
      const transmissionWeb = options.transmissionWeb === undefined
        ? Layer.empty
        : TransmissionWeb.layer({ directory: options.transmissionWeb, auth: options.auth })
      const webUi = options.webUi === undefined ? Layer.empty : WebUi.layer({ directory: options.webUi })
      return serve.pipe(
        Layer.provide(Handlers.openApiLive),
        Layer.provide(webUi),
        Layer.provide(transmission),
        Layer.provide(transmissionWeb),
        Layer.provide(Handlers.failuresLive),
        Layer.provide(api),
        Layer.merge(lag),
        Layer.provideMerge(NodeHttpServer.layer(() => nodeServer, { host, port: options.port ?? defaultPort })),
        Layer.catchAll((e) =>
          Layer.fail(new ServerError({ reason: "listen", message: `cannot listen on ${host}:${options.port ?? defaultPort}: ${describeCause(e)}`, cause: e }))
        )
      )
    })
  ).pipe(Layer.map((ctx) => Context.pick(HttpServer.HttpServer)(ctx)))

const describeCause = (e: unknown): string => {
  const cause = (e as { readonly cause?: unknown }).cause
  return cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e)
}

export interface Started {
  /** `http://127.0.0.1:<port>` (the address clients use). */
  readonly url: string
  readonly host: string
  readonly port: number
}

/** Starts the server for the life of the scope (tests: `port: 0`); answers where it listens. */
export const start = (options: Options = {}): Effect.Effect<Started, ServerError, Session | Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(layer(options))
    const address = Context.get(context, HttpServer.HttpServer).address
    const host = options.host ?? defaultHost
    const port = address._tag === "TcpAddress" ? address.port : 0
    return { url: urlOf(host, port), host, port }
  })
