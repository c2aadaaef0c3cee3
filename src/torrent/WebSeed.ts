/**
 * BEP 19 web seeds: HTTP servers holding the torrent's files (`url-list`, magnet `ws=`), used as piece sources
 * beside the peers. A server is not a wire session but talks to the torrent through the same `TorrentHandle`, as
 * a peer that has every piece (less the files it turned out not to have): the picker hands it blocks, its bytes go
 * through `blockBuffer`/`onBlock` into the piece buffers, pieces are verified by the finishers with the same
 * strike and ban rule, and the download limit and the hash/write backlog pause it through `pauseReading`. It shows
 * in `peers()` (client "web seed") and in the stats' peer count while it is usable.
 *
 * Per server (the URL is its key):
 * - `connections` workers, each a loop: ask `nextRequests` for about `requestBytes` (whole pieces when it can:
 *   the piece after the last one fetched is suggested, BEP 6 style, so runs of pieces come in order), group the
 *   blocks into runs of adjacent bytes (WebSeedRange.ts), and fetch each run with one `Range` request per file
 *   segment, in sequence, over HTTP/1.1 keep-alive (one `http.Agent` per server, at most `connections` sockets).
 *   Nothing to ask: wait for `requestMore` or a second.
 * - The byte path is synchronous: each body chunk is cut into blocks inside node's `data` handler (a block split
 *   over chunks is assembled in a 16 KiB scratch buffer); Effect is crossed once per HTTP request.
 * - Redirects are followed up to `maxRedirects`, only to http(s); the last target of each file is remembered until
 *   an error.
 * - Failures (WebSeedError.ts, WebSeedBackoff.ts): a network error, idle timeout, unexpected status or redirect
 *   trouble backs the whole server off (it leaves the picker, its requests go back, every request of it is
 *   aborted) and it rejoins after the wait. 404/410 marks the file missing there: its pieces are not asked of this
 *   server again (its bitfield shrinks; a server with nothing left is dropped). A bad answer (wrong range or
 *   length, short body) drops the server for good, as does a ban for data that failed hash checks (the finisher
 *   closes it like a peer).
 * - Endgame: a block someone else delivered first is cancelled here; a request none of whose remaining blocks is
 *   still wanted from this server is aborted.
 */
import * as Http from "node:http"
import * as Https from "node:https"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Bitfield from "../core/Bitfield.ts"
import * as Bytes from "../core/Bytes.ts"
import { PeerId } from "../core/InfoHash.ts"
import * as FileLayout from "../metainfo/FileLayout.ts"
import type * as Metainfo from "../metainfo/Metainfo.ts"
import * as Destination from "../net/Destination.ts"
import * as WebSeedUrl from "../metainfo/WebSeedUrl.ts"
import { PeerError } from "../peer/PeerError.ts"
import type { BlockRef, PeerControl, PeerInfo, TorrentHandle } from "../peer/TorrentHandle.ts"
import * as Picker from "../picker/Picker.ts"
import * as Backoff from "./WebSeedBackoff.ts"
import { WebSeedError } from "./WebSeedError.ts"
import * as WebSeedRange from "./WebSeedRange.ts"

export { WebSeedError } from "./WebSeedError.ts"

export interface Options {
  readonly urls: ReadonlyArray<string>
  readonly metainfo: Pick<
    Metainfo.Metainfo,
    "isMultiFile" | "files" | "pieceLength" | "pieceCount" | "totalLength"
  >
  /** The torrent's handle (the wrapped one: download limit and uploader see the blocks). */
  readonly handle: TorrentHandle
  /** Every wanted piece is verified: servers leave the picker (no longer counted as peers) until more is wanted. */
  readonly finished?: (() => boolean) | undefined
  /** Connections per server at most (default 4). */
  readonly connections?: number | undefined
  /** Bytes asked per batch (default the larger of one piece and 2 MiB). */
  readonly requestBytes?: number | undefined
  readonly backoff?: Backoff.Policy | undefined
  /** A request receiving nothing this long fails (default 30 s; time paused by the torrent does not count). */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Redirects followed per request (default 5). */
  readonly maxRedirects?: number | undefined
  /** A server's state changed (for logs and events). */
  readonly onState?: ((url: string, state: Backoff.State, error: WebSeedError | undefined) => void) | undefined
}

/** A server as `WebSeed.servers()` shows it. */
export interface ServerStatus {
  readonly url: string
  readonly state: Backoff.State
  /** Payload bytes of blocks it delivered that were kept. */
  readonly downloaded: number
  /** Body bytes read from it for the ranges asked (kept or not: another source may have been first). */
  readonly received: number
  /** Files (torrent order) it answered 404/410 for. */
  readonly missingFiles: ReadonlyArray<number>
}

export interface WebSeeds {
  readonly servers: () => ReadonlyArray<ServerStatus>
}

const BLOCK = Picker.BLOCK
const zeros = new Uint8Array(BLOCK)

/** One request in flight: its abort, and whether its remaining blocks are still wanted from this server. */
interface Active {
  readonly abort: () => void
  readonly pause: () => void
  readonly resume: () => void
}

/**
 * Starts the web seeds in the current scope (their workers end with it). URLs that are not http(s) are reported
 * through `onState` as dropped and never used.
 */
export const start = (options: Options): Effect.Effect<WebSeeds, never, Scope.Scope> =>
  Effect.gen(function*() {
    const m = options.metainfo
    const layout = Either.getOrThrow(FileLayout.make(m.files, m.pieceLength))
    const connections = Math.max(1, options.connections ?? 4)
    const requestBytes = options.requestBytes ?? Math.max(m.pieceLength, 2 * 1024 * 1024)
    const maxBlocks = Math.max(1, Math.ceil(requestBytes / BLOCK))
    const policy = options.backoff ?? Backoff.defaultPolicy
    const idleMs = Duration.toMillis(options.idleTimeout ?? Duration.seconds(30))
    const maxRedirects = options.maxRedirects ?? 5
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const handle = options.handle
    const loopbackOnly = Destination.loopbackOnly()
    const runtime = yield* FiberSet.makeRuntime<never, void, never>()
    const log = (effect: Effect.Effect<void>, url: string) => runtime(effect.pipe(Effect.annotateLogs({ peer: url })))
    const servers: Array<() => ServerStatus> = []

    for (const url of new Set(options.urls)) {
      const base = WebSeedUrl.parseBase(url)
      if (Either.isLeft(base)) {
        const state = Backoff.dropped(Backoff.initial, base.left.message)
        options.onState?.(url, state, new WebSeedError({ reason: "unsupported-url", url, detail: base.left.message }))
        log(Effect.logWarning(`web seed not used: ${base.left.message}`), url)
        const status: ServerStatus = { url, state, downloaded: 0, received: 0, missingFiles: [] }
        servers.push(() => status)
        continue
      }
      const server = yield* makeServer(url, base.right)
      servers.push(server.status)
    }
    return { servers: () => servers.map((s) => s()) }

    function makeServer(url: string, base: URL) {
      return Effect.gen(function*() {
        const key = url
        const agentOptions = { keepAlive: true, maxSockets: connections, maxFreeSockets: connections }
        const agents = { http: new Http.Agent(agentOptions), https: new Https.Agent(agentOptions) }
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            agents.http.destroy()
            agents.https.destroy()
          })
        )
        let state: Backoff.State = Backoff.initial
        let connected = false
        /** Bumped whenever the server leaves the picker: requests of an older generation are void. */
        let generation = 0
        let paused = false
        let downloaded = 0
        let received = 0
        const active = new Set<Active>()
        const missing = new Set<number>()
        const redirected = new Map<number, string>()
        /** Blocks (by torrent offset) cancelled while this server held them. */
        const cancelled = new Set<number>()
        const kick = yield* Effect.makeLatch(false)
        const peerId = PeerId(Bytes.concat([Bytes.encodeUtf8("-WS0000-"), Bytes.sha1(Bytes.encodeUtf8(url)).subarray(0, 12)]))
        const info: PeerInfo = {
          peerId,
          fast: false,
          extensionProtocol: false,
          dht: false,
          direction: "outbound",
          encryption: "none",
          remote: { host: base.hostname, port: Number(base.port) || (base.protocol === "https:" ? 443 : 80) },
          webSeed: true
        }

        const setState = (next: Backoff.State, error?: WebSeedError) => {
          if (next === state) return
          const tagChanged = next._tag !== state._tag
          state = next
          options.onState?.(url, state, error)
          if (!tagChanged && state._tag !== "Waiting") return
          const line = state._tag === "Dropped"
            ? `web seed dropped: ${state.reason}`
            : state._tag === "Waiting"
            ? `web seed backs off for ${state.until - now()} ms after ${state.failures} error(s) in a row` +
              (error === undefined ? "" : `: ${error.detail}`)
            : "web seed usable again"
          log(state._tag === "Dropped" ? Effect.logWarning(line) : Effect.logInfo(line), url)
        }
        const abortAll = () => {
          for (const a of [...active]) a.abort()
          active.clear()
        }
        /** Leaves the picker (its requests return to it), aborting what is in flight. */
        const leave = (reason: PeerError["reason"], detail: string) => {
          generation++
          abortAll()
          if (!connected) return
          connected = false
          handle.onClosed(key, new PeerError({ reason, address: key, detail }), [])
        }
        const control: PeerControl = {
          sendHave: () => {},
          setInterested: () => {},
          requestMore: () => kick.unsafeOpen(),
          // another source delivered these first (endgame) or they were deselected: not worth fetching here
          cancel: (blocks) => {
            for (const b of blocks) cancelled.add(b.index * m.pieceLength + b.begin)
          },
          choke: () => {},
          unchoke: () => {},
          sendBlock: () => false,
          reject: () => {},
          sendExtended: () => {},
          allowFast: () => {},
          pauseReading: () => {
            paused = true
            for (const a of active) a.pause()
          },
          resumeReading: () => {
            paused = false
            for (const a of active) a.resume()
            kick.unsafeOpen()
          },
          close: (detail) => {
            setState(Backoff.dropped(state, detail))
            leave("local", detail)
            kick.unsafeOpen()
          }
        }
        const bitfield = (): Bitfield.Bitfield => {
          const bf = Bitfield.full(m.pieceCount)
          for (const f of missing) {
            const range = FileLayout.piecesOfFile(layout, f)
            if (Option.isNone(range)) continue
            for (let i = range.value.first; i <= range.value.last; i++) Bitfield.clear(bf, i)
          }
          return bf
        }
        const join = () => {
          if (connected) return
          connected = true
          handle.onConnected(key, info, control)
          if (missing.size === 0) handle.onPeerHaveAll(key)
          else handle.onPeerBitfield(key, bitfield())
        }

        const fileUrl = (file: number) => redirected.get(file) ?? WebSeedUrl.fileUrl(url, m, file)

        /**
         * One HTTP request for `segment`, its body cut into the run's blocks by `sink`. Follows redirects; fails
         * with a WebSeedError; succeeds with false when it was aborted because nothing in it is wanted any more.
         */
        const fetchSegment = (segment: WebSeedRange.Segment, sink: Sink, gen: number) =>
          Effect.suspend(() => {
            const fileLength = FileLayout.fileLength(layout, segment.file)
            let last = now()
            const request = Effect.async<boolean, WebSeedError>((resume) => {
              let done = false
              let current: Http.ClientRequest | undefined
              let response: Http.IncomingMessage | undefined
              const finish = (result: Either.Either<boolean, WebSeedError>) => {
                if (done) return
                done = true
                active.delete(entry)
                resume(Either.isRight(result) ? Effect.succeed(result.right) : Effect.fail(result.left))
              }
              const entry: Active = {
                abort: () => {
                  current?.destroy()
                  finish(Either.right(false))
                },
                pause: () => response?.pause(),
                resume: () => response?.resume()
              }
              active.add(entry)
              const go = (target: string, hops: number) => {
                let parsed: URL
                try {
                  parsed = new URL(target)
                } catch {
                  return finish(Either.left(new WebSeedError({ reason: "redirects", url: target, detail: "a redirect to an invalid URL" })))
                }
                if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
                  return finish(Either.left(new WebSeedError({ reason: "redirects", url: target, detail: `a redirect to ${parsed.protocol}` })))
                }
                if (loopbackOnly && !Destination.isLoopbackHost(parsed.hostname)) {
                  const detail = "not contacted: only loopback hosts are allowed (EFFECT_TORRENT_LOOPBACK_ONLY)"
                  return finish(Either.left(new WebSeedError({ reason: "network", url: target, detail })))
                }
                const lib = parsed.protocol === "https:" ? Https : Http
                const req = lib.request(parsed, {
                  agent: parsed.protocol === "https:" ? agents.https : agents.http,
                  headers: {
                    Range: WebSeedRange.rangeHeader(segment.fileOffset, segment.length),
                    "User-Agent": "effect-torrent/0.1.0"
                  }
                })
                current = req
                req.on("error", (e) => {
                  finish(Either.left(new WebSeedError({ reason: "network", url: target, detail: e.message })))
                })
                req.on("response", (res) => {
                  if (done) return void res.destroy()
                  last = now()
                  const status = res.statusCode ?? 0
                  const location = res.headers.location
                  if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
                    res.resume() // drain: the socket goes back to the pool
                    if (hops >= maxRedirects) {
                      return finish(Either.left(new WebSeedError({ reason: "redirects", url: target, status, detail: `more than ${maxRedirects} redirects` })))
                    }
                    let next: string
                    try {
                      next = new URL(location, parsed).toString()
                    } catch {
                      return finish(Either.left(new WebSeedError({ reason: "redirects", url: target, status, detail: "a redirect to an invalid URL" })))
                    }
                    return go(next, hops + 1)
                  }
                  const answer = WebSeedRange.check(target, {
                    status,
                    contentRange: res.headers["content-range"],
                    contentLength: res.headers["content-length"],
                    retryAfter: res.headers["retry-after"]
                  }, segment.fileOffset, segment.length, fileLength)
                  if (Either.isLeft(answer)) {
                    res.resume()
                    return finish(Either.left(answer.left))
                  }
                  response = res
                  if (paused) res.pause()
                  let skip = answer.right.skip
                  let left = segment.length
                  res.on("data", (chunk: Buffer) => {
                    if (done) return
                    last = now()
                    let c: Uint8Array = chunk
                    if (skip > 0) {
                      const n = Math.min(skip, c.length)
                      skip -= n
                      c = c.subarray(n)
                    }
                    if (c.length === 0) return
                    if (c.length > left) {
                      if (status === 206) {
                        return finish(Either.left(new WebSeedError({ reason: "bad-response", url: target, status, detail: "a body longer than the range" })))
                      }
                      c = c.subarray(0, left)
                    }
                    left -= c.length
                    received += c.length
                    if (gen !== generation) return entry.abort()
                    const wanted = sink.write(c)
                    if (left === 0) {
                      redirected.set(segment.file, target)
                      // a 200 with more of the file after our range: stop reading it (a 206 ends here: its
                      // socket goes back to the pool on `end`)
                      if (status === 200 && segment.fileOffset + segment.length < fileLength) {
                        res.destroy()
                        finish(Either.right(true))
                      }
                      return
                    }
                    if (!wanted) entry.abort()
                  })
                  res.on("end", () => {
                    if (left === 0) finish(Either.right(true))
                    else {
                      finish(Either.left(new WebSeedError({ reason: "bad-response", url: target, status, detail: `the body ended ${left} bytes short` })))
                    }
                  })
                  res.on("error", (e) => {
                    finish(Either.left(new WebSeedError({ reason: "network", url: target, status, detail: e.message })))
                  })
                })
                req.end()
              }
              go(fileUrl(segment.file), 0)
              return Effect.sync(() => entry.abort())
            })
            const watchdog = Effect.gen(function*() {
              for (;;) {
                yield* Effect.sleep(Duration.millis(Math.max(1, idleMs / 4)))
                if (paused) last = now()
                else if (now() - last >= idleMs) {
                  return yield* Effect.fail(
                    new WebSeedError({ reason: "timeout", url: fileUrl(segment.file), detail: `nothing received for ${idleMs} ms` })
                  )
                }
              }
            })
            return Effect.raceFirst(request, watchdog)
          })

        /** Fetches a run; false when given up because nothing of it is wanted any more. */
        const fetchRun = (run: WebSeedRange.Run, gen: number) =>
          Effect.gen(function*() {
            const sink = makeSink(run, (b, data, at) => {
              if (gen !== generation) return
              const buf = handle.blockBuffer(key, b.index, b.begin, b.length)
              if (buf !== undefined) buf.set(data.subarray(at, at + b.length), b.begin)
              if (handle.onBlock(key, b.index, b.begin, b.length)) downloaded += b.length
            }, (b) => gen === generation && !cancelled.has(b.index * m.pieceLength + b.begin))
            for (const segment of WebSeedRange.segments(layout, run)) {
              if (segment.pad) {
                for (let left = segment.length; left > 0;) {
                  const n = Math.min(left, zeros.length)
                  sink.write(zeros.subarray(0, n))
                  left -= n
                }
                continue
              }
              const ok = yield* fetchSegment(segment, sink, gen).pipe(
                Effect.tapError(() => Effect.sync(() => redirected.delete(segment.file)))
              )
              if (!ok) return false
            }
            return true
          })

        /** `rest`: blocks of the batch not fetched (this run's included). */
        const onError = (e: WebSeedError, run: WebSeedRange.Run, gen: number, rest: ReadonlyArray<BlockRef>) =>
          Effect.suspend(() => {
            if (gen !== generation) return Effect.void
            switch (e.reason) {
              case "missing-file": {
                const file = segmentFileOf(run, e)
                if (file !== undefined) missing.add(file)
                handle.onReturned(key, rest)
                if (missing.size > 0 && Bitfield.count(bitfield()) === 0) {
                  setState(Backoff.dropped(state, "none of the torrent's files is there"), e)
                  leave("local", e.message)
                } else {
                  handle.onPeerBitfield(key, bitfield())
                  options.onState?.(url, state, e)
                  log(Effect.logInfo(`web seed lacks file ${file ?? "?"} (its pieces are asked elsewhere): ${e.message}`), url)
                }
                return Effect.void
              }
              case "bad-response":
              case "unsupported-url": {
                setState(Backoff.dropped(state, e.message), e)
                leave("protocol", e.message)
                return Effect.void
              }
              default: {
                setState(Backoff.failed(state, now(), policy, e.retryAfter), e)
                leave("closed", e.message)
                return Effect.void
              }
            }
          })
        const segmentFileOf = (run: WebSeedRange.Run, e: WebSeedError): number | undefined => {
          for (const s of WebSeedRange.segments(layout, run)) {
            if (s.pad) continue
            const u = WebSeedUrl.fileUrl(url, m, s.file)
            if (e.url === u || redirected.get(s.file) === e.url) return s.file
          }
          return WebSeedRange.segments(layout, run).find((s) => !s.pad)?.file
        }

        const piecesPerBatch = Math.max(1, Math.floor(requestBytes / m.pieceLength))
        const worker = Effect.gen(function*() {
          // each connection streams its own stretch of the torrent: the pieces after its last one are suggested
          let lastPiece = -1
          for (;;) {
            const wait = Backoff.waitFor(state, now())
            if (wait === undefined) return
            if (wait > 0) {
              yield* Effect.sleep(Duration.millis(wait))
              setState(Backoff.wake(state, now()))
              continue
            }
            if (paused) {
              kick.unsafeClose()
              yield* kick.await
              continue
            }
            if (options.finished?.() === true) {
              leave("local", "the torrent is complete")
              kick.unsafeClose()
              yield* Effect.timeout(kick.await, Duration.seconds(1)).pipe(Effect.ignore)
              continue
            }
            join()
            for (let i = lastPiece + 1; lastPiece >= 0 && i <= lastPiece + piecesPerBatch && i < m.pieceCount; i++) {
              handle.onSuggest?.(key, i)
            }
            const blocks = handle.nextRequests(key, maxBlocks)
            if (blocks.length === 0) {
              kick.unsafeClose()
              yield* Effect.timeout(kick.await, Duration.seconds(1)).pipe(Effect.ignore)
              continue
            }
            const gen = generation
            const runs = WebSeedRange.runs(blocks, m.pieceLength)
            for (let r = 0; r < runs.length; r++) {
              const run = runs[r]!
              const result = yield* Effect.either(fetchRun(run, gen))
              for (const b of run.blocks) cancelled.delete(b.index * m.pieceLength + b.begin)
              if (Either.isLeft(result)) {
                yield* onError(result.left, run, gen, runs.slice(r).flatMap((x) => x.blocks))
                break
              }
              if (gen !== generation) break
              if (result.right) setState(Backoff.succeeded(state))
              lastPiece = run.blocks[run.blocks.length - 1]!.index
            }
          }
        })
        yield* Effect.forkScoped(Effect.all(Array.from({ length: connections }, () => worker), {
          concurrency: "unbounded",
          discard: true
        }).pipe(Effect.ensuring(Effect.sync(() => leave("local", "the torrent stopped")))))

        return { status: (): ServerStatus => ({ url, state, downloaded, received, missingFiles: [...missing] }) }
      })
    }
  })

/** Cuts a run's bytes, as they arrive in order, into its blocks. */
interface Sink {
  /** Takes the next bytes of the run; false when none of the run's remaining blocks is wanted any more. */
  readonly write: (bytes: Uint8Array) => boolean
}

const makeSink = (
  run: WebSeedRange.Run,
  deliver: (block: WebSeedRange.Block, data: Uint8Array, at: number) => void,
  wanted: (block: WebSeedRange.Block) => boolean
): Sink => {
  const scratch = new Uint8Array(BLOCK)
  let blockIndex = 0
  let filled = 0
  return {
    write: (bytes) => {
      let at = 0
      while (at < bytes.length && blockIndex < run.blocks.length) {
        const b = run.blocks[blockIndex]!
        if (filled === 0 && bytes.length - at >= b.length) {
          deliver(b, bytes, at) // the whole block in this chunk: copied once, straight into the piece buffer
          at += b.length
        } else {
          const n = Math.min(b.length - filled, bytes.length - at)
          scratch.set(bytes.subarray(at, at + n), filled)
          filled += n
          at += n
          if (filled < b.length) break
          deliver(b, scratch, 0)
          filled = 0
        }
        blockIndex++
      }
      for (let i = blockIndex; i < run.blocks.length; i++) if (wanted(run.blocks[i]!)) return true
      return false
    }
  }
}
