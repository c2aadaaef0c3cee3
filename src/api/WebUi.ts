/**
 * effect-torrent's own web UI (src/webui/, built by scripts/webui.mjs into `dist/webui/`) served at `/`: its
 * `index.html` there, its script and style sheet under `/webui/`. The files are read once when the server starts
 * (a few tens of KiB) and kept with their gzip form, served when the browser accepts it.
 *
 * Caching: the asset names carry a content hash, so they are `immutable` for a year; `index.html` is revalidated on
 * every load (`no-cache` with an ETag). With credentials configured, the API's Authorization middleware guards these
 * routes as every other (Security.ts answers a browser's page request with a Basic challenge: the browser prompts
 * once, then sends the credentials with every request of the page, its event stream included). The page is a
 * place where the daemon runs scripts, so its answers carry their own Content-Security-Policy in place of
 * Security.ts's `sandbox`: its own script, styles and images only, fetches to its own origin, no framing.
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"

export const assetPrefix = "/webui/"

export interface Options {
  /** The built UI: index.html and the files it names (scripts/webui.mjs). */
  readonly directory: string
}

export const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "media-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon"
}

export const immutable = "public, max-age=31536000, immutable"

interface Asset {
  readonly type: string
  readonly bytes: Uint8Array
  readonly gzip: Uint8Array | undefined
  readonly etag: string
  readonly cacheControl: string
}

/** The directory's files (flat), keyed by request path: `/` for index.html, `/webui/<name>` for the others. */
export const load = (directory: string): Effect.Effect<ReadonlyMap<string, Asset>> =>
  Effect.promise(async () => {
    const assets = new Map<string, Asset>()
    let names: Array<string>
    try {
      names = await Fs.readdir(directory)
    } catch {
      return assets
    }
    for (const name of names) {
      const type = TYPES[Path.extname(name).toLowerCase()]
      if (type === undefined) continue
      const full = Path.join(directory, name)
      if (!(await Fs.stat(full)).isFile()) continue
      const bytes = new Uint8Array(await Fs.readFile(full))
      const gzipped = Zlib.gzipSync(bytes, { level: 9 })
      const index = name === "index.html"
      assets.set(index ? "/" : assetPrefix + name, {
        type,
        bytes,
        gzip: gzipped.length < bytes.length ? new Uint8Array(gzipped) : undefined,
        etag: `"${Crypto.createHash("sha1").update(bytes).digest("base64url")}"`,
        cacheControl: index ? "no-cache" : immutable
      })
    }
    return assets
  })

/** Whether an `Accept-Encoding` value admits gzip (a `q=0` refuses it). */
export const acceptsGzip = (header: string | undefined): boolean =>
  header !== undefined &&
  header.split(",").some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(";")
    if (coding !== "gzip" && coding !== "*") return false
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined)
    return q === undefined || Number(q) > 0
  })

const notBuilt = HttpServerResponse.text(
  "<!doctype html><title>effect-torrent</title><p>The web UI is not built: run <code>npm run build</code>, or use the API at /api/.</p>",
  { status: 404, contentType: "text/html; charset=utf-8" }
)

export const layer = (options: Options) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const assets = yield* load(options.directory)

      const serve = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const path = request.url.split("?")[0]!
        const asset = assets.get(path)
        if (asset === undefined) return path === "/" ? notBuilt : HttpServerResponse.text("not found", { status: 404 })
        // After Security.ts's handler (appended before this route ran): the page's policy replaces its sandbox.
        yield* HttpApp.appendPreResponseHandler((_request, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, "content-security-policy", contentSecurityPolicy))
        )
        const headers: Record<string, string> = { etag: asset.etag, "cache-control": asset.cacheControl, vary: "accept-encoding" }
        if (request.headers["if-none-match"] === asset.etag) return HttpServerResponse.empty({ status: 304, headers })
        const gzip = asset.gzip !== undefined && acceptsGzip(request.headers["accept-encoding"])
        return HttpServerResponse.uint8Array(gzip ? asset.gzip! : asset.bytes, {
          contentType: asset.type,
          headers: gzip ? { ...headers, "content-encoding": "gzip" } : headers
        })
      })

      yield* router.get("/", serve)
      yield* router.get("/webui/*", serve)
    })
  )
