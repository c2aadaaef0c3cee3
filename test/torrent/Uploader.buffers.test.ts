/**
 * The uploader's piece buffers, as a model-based concurrency test: reads go into buffers recycled from evicted
 * cache entries (`readPieceInto`), complete (or fail) in an order fast-check's scheduler picks, interleaved with
 * peers' requests, cancels and disconnections, and with the torrent's scope closing while reads are in flight.
 *
 * What must hold whatever the interleaving: a buffer is lent to at most one read at a time and is never in the
 * cache while a read fills it (else a block could be sliced from memory being overwritten); every block sent is the
 * payload's bytes; nothing is sent after the scope closed, even when a read finishes after it (the reads' fibers
 * are interrupted; the storage may still complete the read into its buffer, which is never recycled then).
 * Checked against a mutant that releases evicted buffers without dropping them from the cache: caught at once.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Scope from "effect/Scope"
import type { PeerId } from "../../src/core/InfoHash.ts"
import { PeerError } from "../../src/peer/PeerError.ts"
import type { PeerControl, TorrentHandle } from "../../src/peer/TorrentHandle.ts"
import { StorageError } from "../../src/storage/Storage.ts"
import * as Uploader from "../../src/torrent/Uploader.ts"

const pieceLength = 32 * 1024
const pieceCount = 6
/** Pseudo-random bytes: no period, so a block of one piece never equals the same block of another. */
const payload = (() => {
  const out = new Uint8Array((pieceCount - 1) * pieceLength + 5000)
  let x = 0x9e3779b9
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
})()
const pieceSize = (i: number) => Math.min(pieceLength, payload.length - i * pieceLength)

type Step =
  | { readonly op: "request"; readonly peer: number; readonly index: number; readonly block: number }
  | { readonly op: "cancel"; readonly peer: number; readonly index: number; readonly block: number }
  | { readonly op: "close"; readonly peer: number }
  | { readonly op: "failNextRead" }

const peerArb = FastCheck.nat(2)
const stepArb: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  {
    weight: 8,
    arbitrary: FastCheck.record({
      op: FastCheck.constant("request" as const),
      peer: peerArb,
      index: FastCheck.nat(pieceCount - 1),
      block: FastCheck.nat(1)
    })
  },
  {
    weight: 2,
    arbitrary: FastCheck.record({
      op: FastCheck.constant("cancel" as const),
      peer: peerArb,
      index: FastCheck.nat(pieceCount - 1),
      block: FastCheck.nat(1)
    })
  },
  { weight: 1, arbitrary: FastCheck.record({ op: FastCheck.constant("close" as const), peer: peerArb }) },
  { weight: 1, arbitrary: FastCheck.record({ op: FastCheck.constant("failNextRead" as const) }) }
)

const noop = () => {}
const inner: TorrentHandle = {
  infoHash: new Uint8Array(20) as never,
  peerId: new Uint8Array(20) as never,
  pieceCount,
  features: {},
  onConnected: noop,
  onPeerBitfield: () => false,
  onPeerHave: () => false,
  onPeerHaveAll: () => false,
  onPeerHaveNone: () => false,
  nextRequests: () => [],
  blockBuffer: () => undefined,
  onBlock: () => true,
  onChoked: noop,
  onUnchoked: noop,
  onReturned: noop,
  onRequestTimeout: noop,
  onClosed: noop
} as unknown as TorrentHandle

describe("Uploader piece buffers (model, fast-check scheduler)", () => {
  it("no buffer is filled while cached or lent twice; every block sent is right; nothing is sent after close", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.scheduler(),
        FastCheck.array(stepArb, { minLength: 1, maxLength: 60, size: "max" }),
        FastCheck.oneof(FastCheck.constant(0), FastCheck.nat(5)),
        async (s, steps, closeAfterExtra) => {
          const problems: Array<string> = []
          /** Buffers lent to reads not finished yet (by their memory). */
          const lent = new Set<ArrayBufferLike>()
          /** Memory of every buffer handed back by a successful read (what the cache may hold). */
          const served = new Set<ArrayBufferLike>()
          let failNext = false
          let closed = false
          let sentAfterClose = 0
          const readPieceInto = (index: number, into: Uint8Array) =>
            Effect.async<Uint8Array, StorageError>((resume) => {
              if (lent.has(into.buffer)) problems.push(`read ${index}: a buffer already lent to another read`)
              if (served.has(into.buffer)) {
                // Recycled: it must have left the cache (evicted) — checked below when a block is sent from it.
                served.delete(into.buffer)
              }
              lent.add(into.buffer)
              const fail = failNext
              failNext = false
              void s.schedule(Promise.resolve(), `read ${index}${fail ? " (fails)" : ""}`).then(() => {
                lent.delete(into.buffer)
                if (fail) return resume(Effect.fail(new StorageError({ reason: "read", path: "x", detail: "EIO" })))
                into.set(payload.subarray(index * pieceLength, index * pieceLength + into.length))
                served.add(into.buffer)
                resume(Effect.succeed(into))
              })
            })
          const scope = Effect.runSync(Scope.make())
          const up = Effect.runSync(Scope.extend(
            Uploader.make({
              storage: {
                readPiece: () => Effect.die("the uploader must read into its buffers"),
                readPieceInto
              },
              pieceCount,
              pieceLength,
              totalLength: payload.length,
              has: () => true,
              seeding: () => true,
              cacheBytes: 2 * pieceLength,
              readConcurrency: 2,
              slots: 4,
              random: () => 0.5
            }),
            scope
          ))
          const handle = up.wrap(inner)
          const keys = ["p0", "p1", "p2"]
          const open = new Set(keys)
          const control = (key: string): PeerControl => ({
            sendHave: noop,
            setInterested: noop,
            requestMore: noop,
            cancel: noop,
            choke: noop,
            unchoke: noop,
            sendBlock: (index, begin, data) => {
              if (closed) sentAfterClose++
              if (!open.has(key)) problems.push(`${key}: a block sent after it closed`)
              if (lent.has(data.buffer)) problems.push(`${key}: block ${index}/${begin} sliced from a buffer a read is filling`)
              const at = index * pieceLength + begin
              const want = payload.subarray(at, at + data.length)
              if (data.length !== want.length || !data.every((b, i) => b === want[i])) {
                problems.push(`${key}: block ${index}/${begin} has the wrong bytes`)
              }
              return true
            },
            reject: noop,
            sendExtended: noop,
            allowFast: noop,
            pauseReading: noop,
            resumeReading: noop,
            close: noop
          })
          keys.forEach((key, n) => {
            handle.onConnected(key, {
              peerId: new Uint8Array(20).fill(n + 1) as PeerId,
              fast: true,
              extensionProtocol: true,
              dht: false,
              direction: "inbound",
              encryption: "none",
              remote: { host: "127.0.0.1", port: 1000 + n }
            }, control(key))
            handle.onPeerHaveNone(key)
            handle.onPeerInterest!(key, true)
          })
          const block = (index: number, b: number) => {
            const begin = b * 16384
            return { index, begin, length: Math.min(16384, pieceSize(index) - begin) }
          }
          const drain = async () => {
            for (let i = 0; i < 40 && s.count() > 0; i++) {
              await s.waitAll()
              await new Promise((resolve) => setTimeout(resolve, 0))
            }
          }
          // The steps run while the scheduler delivers read completions in between, in the order it picks.
          const closeAt = Math.max(0, steps.length - closeAfterExtra)
          for (let i = 0; i < steps.length; i++) {
            if (i === closeAt) {
              // The torrent's scope closes (its sessions with it: no more peer events); reads in flight go on.
              await Effect.runPromise(Scope.close(scope, Exit.void))
              closed = true
              break
            }
            const step = steps[i]!
            const key = "peer" in step ? keys[step.peer]! : ""
            if (step.op === "request") {
              const b = block(step.index, step.block)
              if (b.length > 0) handle.onPeerRequest!(key, b)
            } else if (step.op === "cancel") handle.onPeerCancel!(key, block(step.index, step.block))
            else if (step.op === "close") {
              if (open.delete(key)) {
                handle.onClosed(key, new PeerError({ reason: "closed", address: key, detail: "gone" }), [])
              }
            } else failNext = true
            // Maybe let one pending read complete (the scheduler picks which), and the fibers it wakes run.
            if (s.count() > 0 && step.op !== "failNextRead") await s.waitOne()
            await new Promise((resolve) => setTimeout(resolve, 0))
          }
          await drain()
          if (!closed) {
            await Effect.runPromise(Scope.close(scope, Exit.void))
            closed = true
          }
          await drain() // reads still in flight finish after the close
          expect(problems).toEqual([])
          expect(sentAfterClose).toBe(0)
        }
      ),
      { numRuns: 100 }
    )
  })
})
