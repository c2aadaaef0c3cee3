/**
 * Transmission's own web client (the static files Debian's transmission-daemon package installs under
 * `/usr/share/transmission/web`, or any copy of them) served at `/transmission/web/`, where Transmission serves it;
 * its scripts talk to `../rpc`, that is TransmissionRoute.ts. `/transmission` and `/transmission/web` redirect there.
 *
 * Only regular files under the configured directory are served (no `..`, no directory listings), with the daemon's
 * credentials when it has some (the browser asks for them: HTTP Basic). These pages are the one place the daemon
 * runs scripts, so their answers carry a Content-Security-Policy of their own in place of Security.ts's `sandbox`
 * one: the page's own scripts, styles (and inline styles: jQuery UI sets them) and images, nothing from elsewhere,
 * and no framing ({@link contentSecurityPolicy}).
 */
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Auth from "./Auth.ts"

/** Where Debian's transmission-daemon package puts the web client. */
export const debianDirectory = "/usr/share/transmission/web"
export const prefix = "/transmission/web/"

export interface Options {
  /** The web client's directory (its index.html, javascript/, style/, images/). */
  readonly directory: string
  readonly auth?: Auth.AuthFile | undefined
}

/**
 * The pages' policy. jQuery 1.11 (which the web client ships) probes for `focusin` by setting an `onfocusin="t"`
 * attribute: that one inline handler, by its hash, is the only script allowed beside the page's own files.
 */
export const contentSecurityPolicy =
  "default-src 'self'; script-src 'self' 'unsafe-hashes' 'sha256-47mKTaMaEn1L3m5DAz9muidMqw636xxw7EFAK/YnPdg='; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".gif": "image/gif",
  ".jpg": "image/jpeg",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".json": "application/json"
}

export const contentTypeOf = (file: string): string => TYPES[Path.extname(file).toLowerCase()] ?? "application/octet-stream"

/**
 * The file a request path names under `root`, or undefined when it names none that may be served: outside `prefix`,
 * a `..` or NUL anywhere, a bad %-escape. The empty path is index.html.
 */
export const fileOf = (root: string, urlPath: string): string | undefined => {
  if (!urlPath.startsWith(prefix)) return undefined
  let rel: string
  try {
    rel = decodeURIComponent(urlPath.slice(prefix.length))
  } catch {
    return undefined
  }
  if (rel.includes("\0") || rel.split(/[/\\]/).some((s) => s === "..")) return undefined
  const base = Path.resolve(root)
  const full = Path.resolve(base, rel === "" || rel.endsWith("/") ? Path.join(rel, "index.html") : rel)
  return full.startsWith(base + Path.sep) ? full : undefined
}

const notFound = () =>
  HttpServerResponse.text("<h1>404: Not Found</h1>", { status: 404, contentType: "text/html; charset=utf-8" })

const redirect = HttpServerResponse.empty({ status: 301, headers: { location: prefix } })

export const layer = (options: Options) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const authenticator = options.auth === undefined || Auth.isEmpty(options.auth)
        ? undefined
        : yield* Auth.makeAuthenticator(options.auth)
      const authorized = Effect.gen(function*() {
        if (authenticator === undefined) return true
        const request = yield* HttpServerRequest.HttpServerRequest
        return yield* authenticator.check(request.headers["authorization"])
      })
      const unauthorized = HttpServerResponse.text("<h1>401: Unauthorized</h1>", {
        status: 401,
        contentType: "text/html; charset=utf-8"
      })

      const serve = Effect.gen(function*() {
        if (!(yield* authorized)) return unauthorized
        const request = yield* HttpServerRequest.HttpServerRequest
        const urlPath = request.url.split("?")[0]!
        if (!urlPath.startsWith(prefix)) return redirect // "/transmission/web"
        const file = fileOf(options.directory, urlPath)
        if (file === undefined) return notFound()
        const bytes = yield* Effect.promise(async () => {
          try {
            const stat = await Fs.stat(file)
            return stat.isFile() ? new Uint8Array(await Fs.readFile(file)) : undefined
          } catch {
            return undefined
          }
        })
        if (bytes === undefined) return notFound()
        // After Security.ts's handler (appended before this route ran): this page's policy replaces its sandbox.
        yield* HttpApp.appendPreResponseHandler((_request, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, "content-security-policy", contentSecurityPolicy))
        )
        return HttpServerResponse.uint8Array(bytes, { contentType: contentTypeOf(file) })
      })

      // The router ignores a trailing slash: the first route is both "/transmission/web" and "/transmission/web/".
      yield* router.get("/transmission/web", serve)
      yield* router.get("/transmission/web/*", serve)
      yield* router.get("/transmission", Effect.flatMap(authorized, (ok) => Effect.succeed(ok ? redirect : unauthorized)))
    })
  )
