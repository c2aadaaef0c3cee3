/**
 * WebSeed.ts against an in-process HTTP server, only for what nginx does not do: a wrong Content-Range, a wrong
 * total, a body cut short, a connection cut mid-body, a server that sends headers and then hangs (the idle timeout,
 * on the TestClock), and the backoff's retry timing (TestClock). The torrent side is a real Picker behind a
 * minimal TorrentHandle.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as Bitfield from "../../src/core/Bitfield.ts"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import type * as Metainfo from "../../src/metainfo/Metainfo.ts"
import type { TorrentHandle } from "../../src/peer/TorrentHandle.ts"
import * as Picker from "../../src/picker/Picker.ts"
import * as WebSeed from "../../src/torrent/WebSeed.ts"
import type * as Backoff from "../../src/torrent/WebSeedBackoff.ts"

const PIECE = 32768
const FILE = 100_000
const content = Uint8Array.from({ length: FILE }, (_, i) => (i * 13) & 0xff)

const metainfo = {
  isMultiFile: false,
  files: [{ path: ["f.bin"], rawPath: ["f.bin"], length: FILE, offset: 0, pad: false, attributes: { executable: false, hidden: false } }],
  pieceLength: PIECE,
  pieceCount: Math.ceil(FILE / PIECE),
  totalLength: FILE
} satisfies Pick<Metainfo.Metainfo, "isMultiFile" | "files" | "pieceLength" | "pieceCount" | "totalLength">

/** A picker behind the handle's download methods; `pieces` collects completed pieces' bytes. */
const fakeTorrent = () => {
  const picker = Picker.make({ pieceCount: metainfo.pieceCount, pieceLength: PIECE, totalLength: FILE })
  const buffers = new Map<number, Uint8Array>()
  const pieces = new Map<number, Uint8Array>()
  const complete = Deferred.unsafeMake<void>(undefined as never)
  const handle: TorrentHandle = {
    infoHash: new Uint8Array(20) as InfoHashV1,
    peerId: new Uint8Array(20) as PeerId,
    pieceCount: metainfo.pieceCount,
    features: {},
    bitfield: () => Bitfield.make(metainfo.pieceCount),
    onConnected: (peer) => void picker.peerJoined(peer),
    onPeerBitfield: (peer, bf) => (picker.peerBitfield(peer, bf), true),
    onPeerHave: (peer, i) => picker.peerHave(peer, i),
    onPeerHaveAll: (peer) => (picker.peerHaveAll(peer), true),
    onPeerHaveNone: (peer) => (picker.peerHaveNone(peer), false),
    nextRequests: (peer, max) =>
      picker.nextRequests(peer, max).map((r) => ({ index: r.piece, begin: r.begin, length: r.length })),
    blockBuffer: (_peer, index) => {
      let b = buffers.get(index)
      if (b === undefined) {
        b = new Uint8Array(Math.min(PIECE, FILE - index * PIECE))
        buffers.set(index, b)
      }
      return b
    },
    onBlock: (peer, index, begin, length) => {
      const r = picker.blockReceived(peer, index, begin, length)
      if (r.kind === "piece-complete") {
        pieces.set(index, buffers.get(index)!)
        picker.pieceVerified(index)
        if (pieces.size === metainfo.pieceCount) Deferred.unsafeDone(complete, Effect.void)
      }
      return r.kind !== "ignored"
    },
    onChoked: () => {},
    onUnchoked: () => {},
    onReturned: (peer, blocks) => blocks.forEach((b) => picker.requestRejected(peer, b.index, b.begin)),
    onRequestTimeout: () => {},
    onClosed: (peer) => void picker.peerLeft(peer)
  }
  return { handle, picker, pieces, complete: Deferred.await(complete) }
}

type Behaviour = (req: Http.IncomingMessage, res: Http.ServerResponse, n: number) => void

const servers: Array<Http.Server> = []
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    s.close()
  }
})

/** An HTTP server on 127.0.0.1 answering request `n` (from 1) with `behaviour`; `requests` resolves per count. */
const serve = (behaviour: Behaviour) =>
  Effect.promise(() =>
    new Promise<{ url: string; count: () => number }>((resolve) => {
      let n = 0
      const s = Http.createServer((req, res) => behaviour(req, res, ++n))
      servers.push(s)
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as Net.AddressInfo).port
        resolve({ url: `http://127.0.0.1:${port}/f.bin`, count: () => n })
      })
    })
  )

const range = (req: Http.IncomingMessage): [number, number] => {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!
  return [Number(m[1]), Number(m[2])]
}

interface Change {
  readonly state: Backoff.State
  readonly error: WebSeed.WebSeedError | undefined
}

/** Starts the web seed; `until(tag)` waits for the next state change to `tag`. */
const startSeed = (url: string, config: Partial<WebSeed.Options> = {}) =>
  Effect.gen(function*() {
    const t = fakeTorrent()
    const changes = yield* Queue.unbounded<Change>()
    const seeds = yield* WebSeed.start({
      urls: [url],
      metainfo,
      handle: t.handle,
      connections: 1,
      requestBytes: PIECE,
      backoff: { base: 1_000, max: 8_000 },
      ...config,
      onState: (_url, state, error) => void Queue.unsafeOffer(changes, { state, error })
    })
    const until = (tag: Backoff.State["_tag"]): Effect.Effect<Change> =>
      Effect.flatMap(Queue.take(changes), (c) => (c.state._tag === tag ? Effect.succeed(c) : until(tag)))
    return { ...t, seeds, until }
  })

describe("WebSeed (hostile servers)", () => {
  it.scoped("a Content-Range other than the range asked: dropped as bad data", () =>
    Effect.gen(function*() {
      const s = yield* serve((req, res) => {
        const [a, b] = range(req)
        res.writeHead(206, { "Content-Range": `bytes ${a + 1}-${b + 1}/${FILE}`, "Content-Length": b - a + 1 })
        res.end(Buffer.from(content.subarray(a + 1, b + 2)))
      })
      const seed = yield* startSeed(s.url)
      const { error } = yield* seed.until("Dropped")
      expect(error?.reason).toBe("bad-response")
      expect(seed.pieces.size).toBe(0)
      expect(seed.picker.check()).toEqual([])
    }))

  it.scoped("a file of another length there (Content-Range total): dropped", () =>
    Effect.gen(function*() {
      const s = yield* serve((req, res) => {
        const [a, b] = range(req)
        res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${FILE + 1}`, "Content-Length": b - a + 1 })
        res.end(Buffer.from(content.subarray(a, b + 1)))
      })
      const seed = yield* startSeed(s.url)
      expect((yield* seed.until("Dropped")).error?.detail).toMatch(/100001 bytes there/)
    }))

  it.scoped("a body ending short (chunked, no length): dropped as bad data", () =>
    Effect.gen(function*() {
      const s = yield* serve((req, res) => {
        const [a, b] = range(req)
        res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${FILE}` })
        res.end(Buffer.from(content.subarray(a, b - 99)))
      })
      const seed = yield* startSeed(s.url)
      expect((yield* seed.until("Dropped")).error?.detail).toMatch(/100 bytes short/)
      expect(seed.picker.check()).toEqual([])
    }))

  it.scoped("a connection cut mid-body: backed off (a network error, not bad data), its blocks back to the picker", () =>
    Effect.gen(function*() {
      const s = yield* serve((req, res) => {
        const [a, b] = range(req)
        res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${FILE}`, "Content-Length": b - a + 1 })
        res.write(Buffer.from(content.subarray(a, a + 20_000)), () => res.socket?.destroy())
      })
      const seed = yield* startSeed(s.url)
      const { error } = yield* seed.until("Waiting")
      expect(error?.reason).toBe("network")
      expect(seed.picker.requestsOf(s.url)).toEqual([]) // the blocks received stay; the rest are open again
      expect(seed.picker.check()).toEqual([])
    }))

  it.scoped("headers then silence: the idle timeout (TestClock) backs it off", () =>
    Effect.gen(function*() {
      const headersSent = yield* Deferred.make<void>()
      const s = yield* serve((req, res) => {
        const [a, b] = range(req)
        res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${FILE}`, "Content-Length": b - a + 1 })
        res.flushHeaders()
        Deferred.unsafeDone(headersSent, Effect.void)
      })
      const seed = yield* startSeed(s.url, { idleTimeout: "10 seconds" })
      yield* Deferred.await(headersSent)
      yield* TestClock.adjust("11 seconds")
      const { error } = yield* seed.until("Waiting")
      expect(error?.reason).toBe("timeout")
      expect(seed.picker.check()).toEqual([])
    }))

  it.scoped("503 with backoff on the TestClock: retried after 1 s, then 2 s, then served", () =>
    Effect.gen(function*() {
      const arrivals: Array<Deferred.Deferred<void>> = yield* Effect.all(
        Array.from({ length: 4 }, () => Deferred.make<void>())
      )
      const s = yield* serve((req, res, n) => {
        Deferred.unsafeDone(arrivals[Math.min(n, 4) - 1]!, Effect.void)
        if (n <= 2) {
          res.writeHead(503, { "Content-Length": 0 })
          return res.end()
        }
        const [a, b] = range(req)
        res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${FILE}`, "Content-Length": b - a + 1 })
        res.end(Buffer.from(content.subarray(a, b + 1)))
      })
      const seed = yield* startSeed(s.url)
      const first = yield* seed.until("Waiting")
      expect(first.state).toEqual({ _tag: "Waiting", failures: 1, until: 1_000 })
      yield* TestClock.adjust("999 millis")
      expect(s.count()).toBe(1) // the only request so far; the retry waits for the clock
      yield* TestClock.adjust("1 millis")
      yield* Deferred.await(arrivals[1]!)
      const second = yield* seed.until("Waiting")
      expect(second.state).toEqual({ _tag: "Waiting", failures: 2, until: 3_000 })
      yield* TestClock.adjust("2 seconds")
      yield* Deferred.await(arrivals[2]!)
      yield* seed.complete
      for (const [i, p] of seed.pieces) expect(Buffer.from(p).equals(content.subarray(i * PIECE, i * PIECE + p.length))).toBe(true)
      expect(seed.seeds.servers()[0]!.state).toEqual({ _tag: "Up", failures: 0 })
    }))

  it.scoped("a redirect to another scheme is refused and backed off", () =>
    Effect.gen(function*() {
      const s = yield* serve((_req, res) => {
        res.writeHead(302, { Location: "ftp://127.0.0.1/f.bin", "Content-Length": 0 })
        res.end()
      })
      const seed = yield* startSeed(s.url)
      const { error } = yield* seed.until("Waiting")
      expect(error?.reason).toBe("redirects")
      expect(error?.detail).toMatch(/ftp:/)
      expect(s.count()).toBe(1)
    }))

  it.scoped("404 for the only file: nothing left to ask it, dropped", () =>
    Effect.gen(function*() {
      const s = yield* serve((_req, res) => {
        res.writeHead(404, { "Content-Length": 0 })
        res.end()
      })
      const seed = yield* startSeed(s.url)
      const { state, error } = yield* seed.until("Dropped")
      expect(error?.reason).toBe("missing-file")
      expect(state._tag === "Dropped" && state.reason).toMatch(/none of the torrent's files/)
      expect(seed.seeds.servers()[0]!.missingFiles).toEqual([0])
      expect(seed.picker.check()).toEqual([])
    }))
})
