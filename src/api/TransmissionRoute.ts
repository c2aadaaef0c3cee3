/**
 * `POST /transmission/rpc` (and `/transmission/rpc/`, where transmission-remote posts): Transmission's RPC served
 * from the {@link Session} in context, so that Transmission's tools (transmission-remote, its web client, the
 * *arr apps, Python's transmission-rpc …) drive this daemon. The mappings are TransmissionRpc.ts; this module is
 * the HTTP side:
 *
 * 1. the daemon's credentials, when it has some (HTTP Basic, as Transmission; a bearer token also passes): 401;
 * 2. the CSRF handshake of rpc-spec 2.3.1: a request without this server's `X-Transmission-Session-Id` is answered
 *    409 carrying it, and the client sends the request again with it;
 * 3. the JSON request (bounded like every body here), dispatched by `method`; the answer echoes `tag`, and a failure
 *    is `{ "result": "<what went wrong>" }` with status 200, as Transmission answers.
 *
 * The route sits behind Security.ts's middleware like every other one (Host and Origin checks, the declared-length
 * bound, the answers' headers).
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { Session, type SessionError, type SessionShape, type Source } from "../session/Session.ts"
import type * as TorrentInfo from "../session/TorrentInfo.ts"
import * as Auth from "./Auth.ts"
import * as Body from "./Body.ts"
import * as Rpc from "./TransmissionRpc.ts"

/** The router ignores a trailing slash: this path is also `/transmission/rpc/`. */
export const path = "/transmission/rpc"
export const SESSION_ID_HEADER = "x-transmission-session-id"

/** Transmission's `RECENTLY_ACTIVE_SECONDS`. */
const RECENTLY_ACTIVE_MS = 60_000

export interface Options {
  /** The daemon's users and tokens; none (or empty): no authentication. */
  readonly auth?: Auth.AuthFile | undefined
  /** The largest request body (a torrent-add's base64 `metainfo` is the large one). */
  readonly maxBody: number
  /** What `session-close` runs (after answering); absent: session-close is refused. */
  readonly onSessionClose?: Effect.Effect<void> | undefined
  /** session-get's `config-dir` (the daemon's state directory); default "". */
  readonly configDir?: string | undefined
  /** This program's version, in session-get's `version`. */
  readonly version?: string | undefined
}

type Json = string | number | boolean | null | ReadonlyArray<Json> | { readonly [k: string]: Json }
type Args = { readonly [k: string]: Json }

const fail = (message: string) => Effect.fail(new Rpc.RpcError({ message }))
const call = <A>(e: Effect.Effect<A, SessionError>): Effect.Effect<A, Rpc.RpcError> =>
  Effect.mapError(e, (err) => new Rpc.RpcError({ message: err.message }))

const decode = <A, I>(schema: Schema.Schema<A, I>, args: unknown): Effect.Effect<A, Rpc.RpcError> =>
  Schema.decodeUnknown(schema, { errors: "all" })(args ?? {}).pipe(
    Effect.mapError((e) => new Rpc.RpcError({ message: `invalid arguments: ${Body.issuesMessage(e)}` }))
  )

/** Free bytes (and the whole size) of the file system holding `path`. */
const freeSpace = (path: string): Effect.Effect<{ readonly free: number; readonly total: number }, Rpc.RpcError> =>
  Effect.tryPromise({
    try: () => Fs.statfs(path),
    catch: (e) => new Rpc.RpcError({ message: `${path}: ${e instanceof Error ? e.message : String(e)}` })
  }).pipe(Effect.map((s) => ({ free: s.bavail * s.bsize, total: s.blocks * s.bsize })))

/** A `.torrent` named by a path on the daemon's machine (torrent-add's `filename`), at most `limit` bytes. */
const readTorrentFile = (path: string, limit: number): Effect.Effect<Uint8Array, Rpc.RpcError> =>
  Effect.tryPromise({
    try: async () => {
      const stat = await Fs.stat(path)
      if (!stat.isFile()) throw new Error("not a file")
      if (stat.size > limit) throw new Error(`larger than ${limit} bytes`)
      return new Uint8Array(await Fs.readFile(path))
    },
    catch: (e) => new Rpc.RpcError({ message: `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}` })
  })

const sourceOf = (a: Rpc.TorrentAdd, limit: number): Effect.Effect<Source, Rpc.RpcError> => {
  if (a.metainfo !== undefined) {
    const text = a.metainfo.replace(/\s+/g, "")
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text) || text.length === 0) return fail("metainfo is not base64")
    return Effect.succeed({ _tag: "Metainfo", bytes: new Uint8Array(Buffer.from(text, "base64")) })
  }
  const name = a.filename?.trim()
  if (name === undefined || name === "") return fail("torrent-add needs a filename or metainfo")
  if (/^magnet:/i.test(name)) return Effect.succeed({ _tag: "Magnet", uri: name })
  if (/^https?:\/\//i.test(name)) return Effect.succeed({ _tag: "Url", url: name })
  // A path on this machine: only `.torrent` files, so that the RPC cannot be used to probe other files.
  if (!/\.torrent$/i.test(name)) return fail(`${name}: expected a magnet link, an http(s) URL or the path of a .torrent file`)
  return Effect.map(readTorrentFile(name, limit), (bytes) => ({ _tag: "Metainfo", bytes }) as const)
}

/** Runs `f` on each torrent in turn; the failures, if any, are answered together. */
const each = <A>(
  torrents: ReadonlyArray<TorrentInfo.Summary>,
  f: (t: TorrentInfo.Summary) => Effect.Effect<A, Rpc.RpcError>
): Effect.Effect<void, Rpc.RpcError> =>
  Effect.gen(function*() {
    const problems: Array<string> = []
    for (const t of torrents) {
      const r = yield* Effect.either(f(t))
      if (r._tag === "Left") problems.push(`${t.name}: ${r.left.message}`)
    }
    if (problems.length > 0) return yield* fail(problems.join("; "))
  })

/** The RPC methods over one Session (and what they remember between requests). */
export const makeDispatcher = (session: SessionShape, options: Options) =>
  Effect.gen(function*() {
    const remembered = yield* Ref.make(Rpc.defaultRemembered)
    const sessionId = Crypto.randomBytes(24).toString("base64url")
    const lastActive = new Map<number, number>()
    const removed: Array<{ readonly id: number; readonly at: number }> = []

    // Activity as Transmission's `recently-active` sees it: anything that happened to a torrent in the last minute.
    yield* Stream.runForEach(session.events, (e) =>
      Effect.sync(() => {
        const now = Date.now()
        switch (e._tag) {
          case "Added":
          case "Changed":
            lastActive.set(e.torrent.id, now)
            break
          case "Progress":
          case "PieceVerified":
          case "Completed":
            lastActive.set(e.id, now)
            break
          case "Removed":
            lastActive.delete(e.id)
            removed.push({ id: e.id, at: now })
            while (removed.length > 0 && now - removed[0]!.at > RECENTLY_ACTIVE_MS) removed.shift()
            break
          case "Stats":
            break
        }
      })).pipe(Effect.forkScoped)

    const recentlyActive = (now: number) => (t: TorrentInfo.Summary) =>
      t.state === "downloading" || t.state === "seeding" || t.state === "checking" ||
      t.state === "fetching-metadata" || now - (lastActive.get(t.id) ?? 0) < RECENTLY_ACTIVE_MS

    const selected = (ids: Rpc.Ids | undefined) =>
      Effect.map(session.list, (list) => Rpc.select(list, Rpc.selection(ids), recentlyActive(Date.now())))

    const settings = SubscriptionRef.get(session.settings)

    const torrentGet = (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.TorrentGet, args)
        const torrents = yield* selected(a.ids)
        const needs = Rpc.needsOf(a.fields)
        const current = yield* settings
        const now = Date.now()
        const sources: Array<Rpc.Source> = []
        for (const summary of torrents) {
          // A torrent removed meanwhile is left out.
          const detail = needs.detail ? yield* Effect.option(session.get(summary.id)) : undefined
          if (detail !== undefined && detail._tag === "None") continue
          const peers = needs.peers ? yield* Effect.option(session.peers(summary.id)) : undefined
          sources.push({
            summary: detail?._tag === "Some" ? detail.value : summary,
            detail: detail?._tag === "Some" ? detail.value : undefined,
            peers: peers?._tag === "Some" ? peers.value : needs.peers ? [] : undefined,
            settings: current,
            now
          })
        }
        const list: Json = a.format === "table"
          ? Rpc.torrentTable(a.fields, sources)
          : sources.map((s) => Rpc.torrentObject(a.fields, s))
        const recently = Rpc.selection(a.ids)._tag === "RecentlyActive"
        return {
          torrents: list,
          ...(recently ? { removed: removed.filter((r) => now - r.at < RECENTLY_ACTIVE_MS).map((r) => r.id) } : {})
        } satisfies Args
      })

    const torrentAdd = (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.TorrentAdd, args)
        if (a.cookies !== undefined && a.cookies.trim() !== "") return yield* fail("cookies are not supported (URLs are fetched without them)")
        if (a.bandwidthPriority !== undefined && a.bandwidthPriority !== 0) return yield* fail("bandwidthPriority is not supported")
        if (a.labels !== undefined && a.labels.length > 0) return yield* fail("labels are not supported")
        const source = yield* sourceOf(a, options.maxBody)
        const files = Rpc.addFileOptions(a, undefined)
        const paused = a.paused === undefined ? undefined : a.paused === true || a.paused === 1
        const added = yield* call(session.add(source, {
          ...(a["download-dir"] !== undefined ? { downloadDir: a["download-dir"] } : {}),
          ...(paused !== undefined ? { paused } : {}),
          ...files,
          ...(a["peer-limit"] !== undefined ? { options: { maxPeers: a["peer-limit"] } } : {})
        }))
        // Empty lists mean every file: known only once the torrent is there.
        const lists = [a["files-wanted"], a["files-unwanted"], a["priority-high"], a["priority-low"]]
        if (!added.duplicate && lists.some((l) => l !== undefined && l.length === 0)) {
          const detail = yield* call(session.get(added.id))
          const changes = Rpc.fileChanges({
            ...(a["files-unwanted"]?.length === 0 ? { "files-unwanted": [] } : {}),
            ...(a["files-wanted"]?.length === 0 ? { "files-wanted": [] } : {}),
            ...(a["priority-high"]?.length === 0 ? { "priority-high": [] } : {}),
            ...(a["priority-low"]?.length === 0 ? { "priority-low": [] } : {})
          }, detail.files.length)
          if (changes !== undefined) yield* call(session.setFiles(added.id, changes))
        }
        const info = { hashString: added.infoHash, id: added.id, name: added.name }
        return (added.duplicate ? { "torrent-duplicate": info } : { "torrent-added": info }) satisfies Args
      })

    const torrentSet = (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.TorrentSet, args)
        const unsupported = Rpc.unsupportedTorrentSet(a)
        if (unsupported.length > 0) return yield* fail(`not supported: ${unsupported.join("; ")}`)
        const torrents = yield* selected(a.ids)
        const r = yield* Ref.get(remembered)
        yield* each(torrents, (t) =>
          Effect.gen(function*() {
            const detail = yield* call(session.get(t.id))
            const changes = Rpc.fileChanges(a, detail.files.length)
            if (changes !== undefined) yield* call(session.setFiles(t.id, changes))
            const opts = Rpc.torrentOptions(a, detail.options, { down: r.speedDown, up: r.speedUp })
            if (Object.keys(opts).length > 0) yield* call(session.setOptions(t.id, opts))
            if (a.queuePosition !== undefined) yield* moveTo(t.id, a.queuePosition)
          }))
        return {} satisfies Args
      })

    /** Moves a torrent to a position in its queue, one step at a time (the Session moves by steps). */
    const moveTo = (id: number, target: number) =>
      Effect.gen(function*() {
        for (let guard = 0; guard < 100_000; guard++) {
          const t = (yield* session.list).find((x) => x.id === id)
          if (t === undefined || t.queuePosition === target) return
          const before = t.queuePosition
          yield* call(session.queueMove(id, target < before ? "up" : "down"))
          const after = (yield* session.list).find((x) => x.id === id)?.queuePosition
          if (after === before) return // at an end of its queue
        }
      })

    const action = (f: (t: TorrentInfo.Summary) => Effect.Effect<void, SessionError>) => (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.TorrentAction, args)
        yield* each(yield* selected(a.ids), (t) => call(f(t)))
        return {} satisfies Args
      })

    const torrentRemove = (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.TorrentRemove, args)
        const deleteData = a["delete-local-data"] === true || a["delete-local-data"] === 1
        yield* each(yield* selected(a.ids), (t) => call(session.remove(t.id, { deleteData })))
        return {} satisfies Args
      })

    const sessionInfo = Effect.gen(function*() {
      const s = yield* settings
      const free = yield* Effect.either(freeSpace(s.downloadDir))
      return Rpc.sessionArguments({
        settings: s,
        remembered: yield* Ref.get(remembered),
        version: Rpc.versionString(options.version ?? "0.1.0"),
        sessionId,
        configDir: options.configDir ?? "",
        freeSpace: free._tag === "Right" ? free.right.free : -1
      })
    })

    const sessionGet = (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.SessionGet, args)
        return Rpc.pick(yield* sessionInfo, a.fields)
      })

    const sessionSet = (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.SessionSet, args)
        const outcome = Rpc.sessionPatch(a, yield* settings, yield* Ref.get(remembered))
        if (outcome._tag === "Refused") return yield* fail(`not supported: ${outcome.problems.join("; ")}`)
        if (Object.keys(outcome.patch).length > 0) yield* call(session.updateSettings(outcome.patch))
        yield* Ref.set(remembered, outcome.remembered)
        return {} satisfies Args
      })

    const freeSpaceMethod = (args: unknown) =>
      Effect.gen(function*() {
        const a = yield* decode(Rpc.FreeSpace, args)
        const space = yield* freeSpace(a.path)
        return { path: a.path, "size-bytes": space.free, total_size: space.total } satisfies Args
      })

    const queueMove = (to: "top" | "up" | "down" | "bottom") => action((t) => session.queueMove(t.id, to))

    const methods: { readonly [name: string]: (args: unknown) => Effect.Effect<Args, Rpc.RpcError> } = {
      "torrent-get": torrentGet,
      "torrent-add": torrentAdd,
      "torrent-set": torrentSet,
      "torrent-start": action((t) => session.resume(t.id)),
      "torrent-start-now": action((t) => session.resume(t.id, { now: true })),
      "torrent-stop": action((t) => session.pause(t.id)),
      "torrent-verify": action((t) => session.verify(t.id)),
      "torrent-reannounce": action((t) => session.reannounce(t.id)),
      "torrent-remove": torrentRemove,
      "torrent-set-location": () => fail("torrent-set-location is not supported: effect-torrent cannot move a torrent's data"),
      "torrent-rename-path": () => fail("torrent-rename-path is not supported: a torrent's files keep the names it gives them"),
      "queue-move-top": queueMove("top"),
      "queue-move-up": queueMove("up"),
      "queue-move-down": queueMove("down"),
      "queue-move-bottom": queueMove("bottom"),
      "session-get": sessionGet,
      "session-set": sessionSet,
      "session-stats": () => Effect.map(session.stats, Rpc.sessionStats),
      "free-space": freeSpaceMethod,
      "port-test": () =>
        fail("port-test is not supported: it needs an outside service to connect back (Transmission asks portcheck.transmissionbt.com), and effect-torrent contacts none"),
      "blocklist-update": () => fail("blocklist-update is not supported: effect-torrent has no blocklist"),
      "session-close": () =>
        options.onSessionClose === undefined
          ? fail("session-close is not enabled on this server (stop the daemon with SIGTERM)")
          : Effect.as(Effect.forkDaemon(Effect.zipRight(Effect.sleep("100 millis"), options.onSessionClose)), {})
    }

    /** One decoded request's answer. */
    const dispatch = (request: Rpc.Request): Effect.Effect<Args> => {
      const method = methods[request.method]
      const run = method === undefined ? fail("method name not recognized") : method(request.arguments)
      return run.pipe(
        Effect.map((args): Args => ({ arguments: args, result: "success" })),
        Effect.catchAll((e) => Effect.succeed<Args>({ arguments: {}, result: e.message })),
        Effect.map((answer): Args => (typeof request.tag === "number" ? { ...answer, tag: request.tag } : answer))
      )
    }

    return { sessionId, dispatch } as const
  })

const jsonResponse = (body: Json, sessionId: string, status = 200) =>
  HttpServerResponse.text(JSON.stringify(body), {
    status,
    contentType: "application/json; charset=UTF-8",
    headers: { [SESSION_ID_HEADER]: sessionId }
  })

/** The route on the API's router (Server.ts provides it beside the HttpApi). */
export const layer = (options: Options) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const session = yield* Session
      const authenticator = options.auth === undefined || Auth.isEmpty(options.auth)
        ? undefined
        : yield* Auth.makeAuthenticator(options.auth)
      const { dispatch, sessionId } = yield* makeDispatcher(session, options)

      const handler = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (authenticator !== undefined && !(yield* authenticator.check(request.headers["authorization"]))) {
          return HttpServerResponse.text("<h1>401: Unauthorized</h1>", { status: 401, contentType: "text/html; charset=UTF-8" })
        }
        if (request.headers[SESSION_ID_HEADER] !== sessionId) {
          return HttpServerResponse.text(
            `<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p><p><code>X-Transmission-Session-Id: ${sessionId}</code></p>`,
            { status: 409, contentType: "text/html; charset=UTF-8", headers: { [SESSION_ID_HEADER]: sessionId } }
          )
        }
        if (request.method !== "POST") {
          return HttpServerResponse.text("<h1>405: Method Not Allowed</h1>", {
            status: 405,
            contentType: "text/html; charset=UTF-8",
            headers: { allow: "POST" }
          })
        }
        const body = yield* Effect.either(Body.read(request, options.maxBody, "the RPC request"))
        if (body._tag === "Left") return jsonResponse({ result: body.left.message }, sessionId, body.left.status)
        const parsed = yield* Effect.either(Effect.try(() => JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body.right)) as unknown))
        if (parsed._tag === "Left") return jsonResponse({ result: "the request is not JSON" }, sessionId, 400)
        const decoded = yield* Effect.either(Schema.decodeUnknown(Rpc.Request)(parsed.right))
        if (decoded._tag === "Left") return jsonResponse({ result: "no method name" }, sessionId, 400)
        return jsonResponse(yield* dispatch(decoded.right), sessionId)
      })

      yield* router.all(path, handler)
    })
  )
