/**
 * Per-block micro-benchmark of the download byte path (not a test), without sockets: real wire bytes (piece
 * messages of 16 KiB blocks answering the requests the session actually sent) pushed as socket-sized chunks
 * through the real code: `PeerSession` (inbound, on an in-memory connection) → `FrameDecoder` → the session's
 * `onBlock` → `PeerState.step` → `Download`'s `TorrentHandle` (`blockBuffer`, `onBlock`) → `Picker` → pooled piece
 * buffers → a completed piece. What the finisher does after that is replaced by `--finish`:
 *
 * - `none` (default, the headline figure): the piece is marked verified and its buffer goes back to the pool, as
 *   the finisher does after hash and write: the event loop's own per-block work.
 * - `sha1`: the same after an inline SHA-1 of the piece (checked), on the same thread.
 * - `worker`: SHA-1 in the real worker pool (`Hasher.makePool`: the ArrayBuffer goes to the worker and back), the
 *   replies handled between batches; the CPU figure then includes the worker thread.
 *
 *   npx tsx bench/perblock.ts [--pieces 1024] [--piece-length 1MiB] [--chunk 256KiB] [--runs 7] [--finish none]
 *
 * Per run: a fresh torrent, session and picker; the remote peer handshakes, sends have-all and unchoke, then, round
 * after round, answers every request the session wrote with piece frames, built outside the timed part. Each
 * socket-sized chunk is copied into one 256 KiB read buffer (as `Tcp`'s shared read buffer is filled by a read) and
 * pushed into the session; only the pushes are measured (wall time, and the process's CPU time from getrusage: all
 * threads, so JIT and GC helpers count; the read-buffer copy is subtracted). The first run warms the JIT up and is
 * not counted. Printed per run, with median/min/max over runs: ns per block of CPU, of wall time, and of wall time
 * in the fastest tenth of rounds (a round answers one batch of ~250 requests in 1–3 ms: on a loaded machine those
 * are the rounds nothing interrupted, the steadiest figure); GC pauses (`PerformanceObserver`; the bench's own
 * garbage included). Compare builds by interleaving runs (`ET_PERBLOCK_TAG` labels the output).
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Deferred from "effect/Deferred"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import { PerformanceObserver } from "node:perf_hooks"
import { pathToFileURL } from "node:url"
import * as Bitfield from "../src/core/Bitfield.ts"
import type { InfoHashV1, PeerId } from "../src/core/InfoHash.ts"
import type * as Tcp from "../src/net/Tcp.ts"
import * as PeerSession from "../src/peer/PeerSession.ts"
import * as Picker from "../src/picker/Picker.ts"
import * as Hasher from "../src/storage/Hasher.ts"
import * as Download from "../src/torrent/Download.ts"
import * as Extensions from "../src/torrent/Extensions.ts"
import * as FrameDecoder from "../src/wire/FrameDecoder.ts"
import * as Handshake from "../src/wire/Handshake.ts"
import * as Message from "../src/wire/Message.ts"
import { argValue, median, parseSize } from "./harness.ts"

type Finish = "none" | "sha1" | "worker"

const pieces = Number(argValue("--pieces") ?? "1024")
const pieceLength = parseSize(argValue("--piece-length") ?? "1MiB")
const chunkSize = parseSize(argValue("--chunk") ?? "256KiB")
const runs = Number(argValue("--runs") ?? "7")
const finish = (argValue("--finish") ?? "none") as Finish
if (!["none", "sha1", "worker"].includes(finish)) throw new Error(`--finish none|sha1|worker, not ${finish}`)

const BLOCK = Message.blockLength
const infoHash = new Uint8Array(20).fill(0x11) as InfoHashV1
const ourId = new Uint8Array(20).fill(0x22) as PeerId
const theirId = new Uint8Array(20).fill(0x33) as PeerId

// One block of pseudo-random payload, the same in every block: the pieces of full length all hash alike.
const payload = new Uint8Array(BLOCK)
for (let i = 0, x = 2463534242; i < BLOCK; i++) {
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  payload[i] = x
}
const fullPiece = new Uint8Array(pieceLength)
for (let o = 0; o < pieceLength; o += BLOCK) fullPiece.set(payload.subarray(0, Math.min(BLOCK, pieceLength - o)), o)
const fullDigest = createHash("sha1").update(fullPiece).digest()

/** The session's side of an in-memory connection: what it writes is kept for the remote peer to read. */
const memoryConnection = () => {
  const closed = Deferred.unsafeMake<void, Tcp.TcpError>(FiberId.none)
  const state = { handler: undefined as ((chunk: Uint8Array) => void) | undefined, paused: false }
  const written: Array<Uint8Array> = []
  const conn: Tcp.Connection = {
    remoteAddress: "10.0.0.1:6881",
    remote: { host: "10.0.0.1", port: 6881 },
    onData: (h) => {
      state.handler = h
    },
    write: (b, done) => {
      // The session may reuse the memory once `done` runs: keep a copy (a few hundred bytes of requests per batch)
      // and report it written at once.
      written.push(b.slice())
      done?.()
    },
    pause: () => {
      state.paused = true
    },
    resume: () => {
      state.paused = false
    },
    isPaused: () => state.paused,
    close: () => Deferred.unsafeDone(closed, Exit.void),
    closed: Deferred.await(closed),
    bytesRead: () => 0,
    bytesWritten: () => 0,
    writeBacklog: () => 0
  }
  return { conn, state, written }
}

interface RunResult {
  readonly blocks: number
  /** Wall time of the pushes (or, with `worker`, the event loop's busy time). */
  readonly ns: number
  /** CPU time of the process during the pushes. */
  readonly cpuNs: number
  readonly chunks: number
  /**
   * Wall ns per block of each round (one batch of answers, ~250 blocks, 1–3 ms): its low percentiles are the rounds
   * no other process interrupted, the steadiest figure on a loaded machine.
   */
  readonly rounds: Array<number>
}

/** The `p`-quantile (0..1) of `xs`. */
export const quantile = (xs: ReadonlyArray<number>, p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))]!
}

/**
 * CPU time of the whole process in ns (getrusage: exact and current; every thread, so V8's compiler and GC helper
 * threads, and the hash worker with `--finish worker`). Unlike wall time it does not count time other processes ran.
 */
const processCpuNs = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) * 1000
}

/** The remote peer's outgoing stream, reused from round to round (grown when needed). */
let stream = Buffer.alloc(0)
/**
 * Each chunk is copied here before it is pushed, as a socket read fills the shared read buffer (Tcp.ts): the
 * session sees a view of one 256 KiB buffer, hot in the cache, as it does from a socket.
 */
const readBuffer = Buffer.alloc(Math.max(chunkSize, 256 * 1024))

/** One run (exported for A/B drivers that load two builds of this bench into one process). */
export const runOnce = async (hasher?: Hasher.HasherShape | undefined): Promise<RunResult> => {
  const totalLength = pieces * pieceLength
  const have = Bitfield.make(pieces)
  const picker = Picker.make({ pieceCount: pieces, pieceLength, totalLength, random: () => 0.5 })
  let verified = 0
  let pendingHashes = 0
  let hashWake: (() => void) | undefined
  let download: Download.Download | undefined
  const done = (index: number, data: Uint8Array) => {
    picker.pieceVerified(index)
    Bitfield.set(have, index)
    download!.pool.release(data)
    verified++
  }
  const checkDigest = (index: number, digest: Uint8Array, data: Uint8Array) => {
    const expected = data.length === pieceLength
      ? fullDigest
      : createHash("sha1").update(fullPiece.subarray(0, data.length)).digest()
    if (!Buffer.from(digest).equals(expected)) throw new Error(`piece ${index}: hash mismatch`)
  }
  download = Download.make({
    metainfo: { infoHash, pieceCount: pieces, pieceLength, totalLength },
    peerId: ourId,
    have,
    ext: Extensions.make({
      metadata: () => undefined,
      isPrivate: true,
      clientName: "bench",
      reqq: 250,
      onPeers: () => {}
    }, () => Date.now()),
    finished: () => verified === pieces,
    onPiece: (index, data) => {
      if (finish === "none") return done(index, data)
      if (finish === "sha1") {
        checkDigest(index, createHash("sha1").update(data).digest(), data)
        return done(index, data)
      }
      pendingHashes++
      Effect.runFork(hasher!.sha1(data).pipe(Effect.tap((r) =>
        Effect.sync(() => {
          checkDigest(index, r.digest, r.data)
          done(index, r.data)
          pendingHashes--
          if (pendingHashes === 0) hashWake?.()
        })
      )))
    },
    paused: () => false,
    onConnected: () => {},
    onPeerPort: () => {},
    publish: () => {}
  })
  download.setPicker(picker)

  const { conn, state, written } = memoryConnection()
  const fiber = Effect.runFork(PeerSession.accept({ handle: download.handle, connection: conn }))
  // Let the session install its data handler.
  for (let i = 0; i < 100 && state.handler === undefined; i++) await new Promise((r) => setImmediate(r))
  const push = state.handler
  if (push === undefined) throw new Error("the session never read")
  push(Buffer.from(Handshake.encode({ reserved: Handshake.reserved({ fast: true, extensionProtocol: true }), infoHash, peerId: theirId })))
  push(Buffer.from(Message.encodeBatch([Message.HaveAll(), Message.Unchoke()])))

  // The remote peer: reads what the session wrote (after its handshake), answers every request.
  let skipHandshake = true
  const requests: Array<{ index: number; begin: number; length: number }> = []
  const reader = FrameDecoder.make({
    onMessage: (m) => {
      if (m._tag === "Request") requests.push({ index: m.index, begin: m.begin, length: m.length })
    },
    onBlock: () => {}
  })
  const takeRequests = () => {
    for (const w of written) {
      let bytes = w
      if (skipHandshake) {
        skipHandshake = false
        bytes = w.subarray(Handshake.length)
      }
      const err = reader.push(bytes)
      if (err !== undefined) throw err
    }
    written.length = 0
  }

  let ns = 0
  let cpuNs = 0
  let blocks = 0
  let chunks = 0
  const rounds: Array<number> = []
  while (verified < pieces) {
    takeRequests()
    if (requests.length === 0) {
      if (finish === "worker" && pendingHashes > 0) {
        const c0 = processCpuNs()
        const t0 = process.hrtime.bigint()
        await new Promise<void>((r) => (hashWake = r))
        hashWake = undefined
        ns += Number(process.hrtime.bigint() - t0)
        cpuNs += processCpuNs() - c0
        continue
      }
      throw new Error(`no requests, ${verified} of ${pieces} pieces verified`)
    }
    const frameLength = Message.pieceHeaderLength + BLOCK
    if (stream.length < requests.length * frameLength) stream = Buffer.alloc(requests.length * frameLength)
    let o = 0
    for (const r of requests) {
      o = Message.writePieceHeader(stream, o, r.index, r.begin, r.length)
      stream.set(payload.subarray(0, r.length), o)
      o += r.length
    }
    const roundBlocks = requests.length
    blocks += roundBlocks
    requests.length = 0
    const c0 = processCpuNs()
    const t0 = process.hrtime.bigint()
    let copyNs = 0
    for (let c = 0; c < o; c += chunkSize) {
      const k0 = process.hrtime.bigint()
      const n = stream.copy(readBuffer, 0, c, Math.min(o, c + chunkSize))
      copyNs += Number(process.hrtime.bigint() - k0)
      push(readBuffer.subarray(0, n))
      chunks++
    }
    // With the worker, its replies (and the session's tick fiber) run between batches, as between socket reads.
    if (finish === "worker") await new Promise((r) => setImmediate(r))
    const roundNs = Number(process.hrtime.bigint() - t0) - copyNs
    ns += roundNs
    cpuNs += processCpuNs() - c0 - copyNs
    rounds.push(roundNs / roundBlocks)
  }
  await Effect.runPromise(Fiber.interrupt(fiber))
  return { blocks, ns, cpuNs, chunks, rounds }
}

const gc = { count: 0, ms: 0 }
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.count++
    gc.ms += e.duration
  }
})

const main = async () => {
  let pool: Hasher.HasherShape | undefined
  let close: (() => Promise<void>) | undefined
  if (finish === "worker") {
    const scope = Effect.runSync(Scope.make())
    pool = await Effect.runPromise(Scope.extend(Hasher.makePool({}), scope))
    close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
  const tag = process.env["ET_PERBLOCK_TAG"] ?? ""
  console.log(
    `perblock${tag === "" ? "" : ` [${tag}]`}: ${pieces} pieces × ${pieceLength} B (${
      Math.ceil((pieces * pieceLength) / BLOCK)
    } blocks), chunks of ${chunkSize} B, finish=${finish}, node ${process.version}`
  )
  await runOnce(pool) // warm-up
  const wall: Array<number> = []
  const cpu: Array<number> = []
  const p10: Array<number> = []
  observer.observe({ entryTypes: ["gc"] })
  for (let r = 0; r < runs; r++) {
    const res = await runOnce(pool)
    wall.push(res.ns / res.blocks)
    cpu.push(res.cpuNs / res.blocks)
    p10.push(quantile(res.rounds, 0.1))
    console.log(
      `  run ${r + 1}: ${cpu[r]!.toFixed(0)} ns/block CPU, ${wall[r]!.toFixed(0)} wall, ${
        p10[r]!.toFixed(0)
      } in the fastest tenth of rounds (${res.blocks} blocks, ${res.chunks} chunks)`
    )
  }
  // GC entries arrive asynchronously.
  await new Promise((r) => setTimeout(r, 100))
  observer.disconnect()
  const range = (xs: Array<number>) =>
    `median ${median(xs).toFixed(0)} (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`
  console.log(`  ns/block CPU: ${range(cpu)}; wall: ${range(wall)}; fastest tenth of rounds: ${range(p10)}`)
  console.log(`  GC during the ${runs} runs (the bench's own work included): ${gc.count} pauses, ${gc.ms.toFixed(1)} ms`)
  await close?.()
}

// Run only as the entry point (an A/B driver imports `runOnce` from two builds instead).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main()
