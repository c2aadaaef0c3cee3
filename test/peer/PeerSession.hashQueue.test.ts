/**
 * The session's queue of BEP 52 leaf-hash requests as a model-based concurrency test. A real `PeerSession` over an
 * in-memory connection; the peer sends bursts of `hash request`s (one chunk each); the torrent's `v2HashesLater`
 * answers each one later (when fast-check's scheduler says), at once inside the call, or refuses it there; the
 * peer reads what we wrote or not (the write budget), answers are delivered twice, the peer disconnects or the
 * torrent closes the session — all interleaved in the order the scheduler picks.
 *
 * The model mirrors the rule: at most 8 answers being made at once, then up to 256 requests waiting in line (FIFO),
 * the rest rejected on arrival. What must hold: `v2HashesLater` sees requests in that order and never more than 8
 * at once; exactly the requests the model rejects on arrival are rejected unasked; each request gets at most one
 * answer (`hashes` or `hash reject`), and exactly one when the session is still open at the end; `hashes` only
 * for requests answered with hashes; a write never carries more hash bytes than the budget leaves over what the
 * peer has not read; nothing is written, and nothing asked of the torrent, after the session closed; no defect.
 * BEP 52 does not order answers (each repeats its request's fields), so neither does this test.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import type * as Metainfo from "../../src/metainfo/Metainfo.ts"
import * as PeerSession from "../../src/peer/PeerSession.ts"
import * as FrameDecoder from "../../src/wire/FrameDecoder.ts"
import * as Handshake from "../../src/wire/Handshake.ts"
import * as Message from "../../src/wire/Message.ts"
import { infoHash, memoryConnection, TestTorrent, theirId } from "./support.ts"

const PENDING = 8
const QUEUED = 256
const piecesRoot = new Uint8Array(32).fill(7)
/** Request n asks for 2 leaf hashes at 2n: 64 bytes of hashes, no uncles. */
const request = (n: number) => Message.HashRequest({ piecesRoot, base: 0, index: 2 * n, length: 2, proofLayers: 0 })
const hashesOf = (n: number) => new Uint8Array(64).fill(n & 0xff)

type Mode = "later" | "laterReject" | "sync" | "refuse"
type Step =
  | { readonly op: "burst"; readonly count: number }
  | { readonly op: "read" }
  | { readonly op: "again" }
  | { readonly op: "closeLocal" }
  | { readonly op: "end" }

const stepArb: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  {
    weight: 6,
    arbitrary: FastCheck.record({
      op: FastCheck.constant("burst" as const),
      count: FastCheck.oneof(FastCheck.integer({ min: 1, max: 12 }), FastCheck.integer({ min: 200, max: 300 }))
    })
  },
  { weight: 2, arbitrary: FastCheck.record({ op: FastCheck.constant("read" as const) }) },
  { weight: 2, arbitrary: FastCheck.record({ op: FastCheck.constant("again" as const) }) },
  { weight: 1, arbitrary: FastCheck.record({ op: FastCheck.constant("closeLocal" as const) }) },
  { weight: 1, arbitrary: FastCheck.record({ op: FastCheck.constant("end" as const) }) }
)
const modeArb: FastCheck.Arbitrary<Mode> = FastCheck.constantFrom("later", "later", "laterReject", "sync", "refuse")

const theirHandshake = Handshake.encode({
  reserved: Handshake.reserved({ fast: true, extensionProtocol: true, v2: true }),
  infoHash,
  peerId: theirId
})

describe("PeerSession leaf-hash request queue (model, fast-check scheduler)", () => {
  it("≤ 8 answered at once, ≤ 256 waiting (FIFO), the rest rejected; one answer each; budget kept; nothing after close", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.scheduler(),
        FastCheck.array(stepArb, { minLength: 1, maxLength: 25, size: "max" }),
        FastCheck.array(modeArb, { minLength: 1, maxLength: 7 }),
        FastCheck.constantFrom(16 * 1024 * 1024, 600),
        async (s, steps, modes, budget) => {
          const problems: Array<string> = []
          const problem = (p: string) => void (problems.length < 5 && problems.push(p))
          /** The model. */
          let pending = 0
          const queue: Array<number> = []
          const seen = new Set<number>()
          const asked = new Set<number>()
          const rejectOnArrival = new Set<number>()
          let expectLater: number | undefined
          const modeOf = (n: number) => modes[n % modes.length]!
          /** The session closed (its Close pauses the socket after the last flush). */
          let closed = false
          let askedAfterClose = 0
          /** Outcomes seen on the wire, per request. */
          const outcomes = new Map<number, Array<"hashes" | "reject">>()
          let backlog = 0
          let writtenAfterClose = 0
          const answers: Array<() => void> = []

          const t = new TestTorrent({ payload: new Uint8Array(64 * 1024), pieceLength: 16 * 1024, have: true })
          const handle = Object.assign(t, {
            v2Hashes: (r: Metainfo.HashRequest) => {
              if (closed) askedAfterClose++
              const n = r.index / 2
              expectLater = undefined
              if (!seen.has(n)) {
                seen.add(n)
                if (pending < PENDING) expectLater = n
                else if (queue.length < QUEUED) queue.push(n)
                else rejectOnArrival.add(n)
              } else {
                // taken from the line when an answer ended: the oldest waiting
                const next = queue.shift()
                if (next !== n) problem(`request ${n} taken from the line, but ${next} was first`)
                if (pending >= PENDING) problem(`request ${n} taken from the line with ${pending} being answered`)
                expectLater = n
              }
              return undefined // never from the trees: always a leaf-level request answered from the data
            },
            v2HashesLater: (r: Metainfo.HashRequest, answer: (h: Uint8Array | undefined) => void) => {
              if (closed) askedAfterClose++
              const n = r.index / 2
              if (expectLater !== n) problem(`v2HashesLater(${n}), but the model expected ${expectLater}`)
              expectLater = undefined
              asked.add(n)
              pending++
              if (pending > PENDING) problem(`${pending} hash answers being made at once`)
              let ended = false
              const mode = modeOf(n)
              const give = () => {
                if (!ended) pending--
                ended = true
                answer(mode === "laterReject" ? undefined : hashesOf(n))
              }
              if (mode === "refuse") {
                pending--
                return false
              }
              if (mode === "sync") {
                give()
                return true
              }
              answers.push(give)
              void s.schedule(Promise.resolve(), `answer ${n} (${mode})`).then(give)
              return true
            }
          })

          const base = await Effect.runPromise(memoryConnection())
          const conn = {
            ...base,
            writeBacklog: () => backlog,
            pause: () => {
              closed = true
              base.pause()
            },
            write: (b: Uint8Array) => {
              if (closed) writtenAfterClose++
              if (b.length === Handshake.length && b[0] === 19) return void (backlog += b.length)
              const decoded = FrameDecoder.decodeAll(b, { v2: true, pieceCount: t.pieceCount })
              if (decoded._tag === "Left") return void problem(`we wrote undecodable bytes: ${decoded.left.message}`)
              let hashBytes = 0
              for (const m of decoded.right) {
                if (m._tag !== "Hashes" && m._tag !== "HashReject") continue
                const n = m.index / 2
                const o = outcomes.get(n) ?? []
                o.push(m._tag === "Hashes" ? "hashes" : "reject")
                outcomes.set(n, o)
                if (m._tag === "Hashes") {
                  hashBytes += m.hashes.length
                  if (modeOf(n) === "laterReject" || modeOf(n) === "refuse" || !asked.has(n)) {
                    problem(`hashes sent for request ${n}, which was to be rejected`)
                  }
                }
              }
              if (backlog + hashBytes > budget) {
                problem(`a write of ${hashBytes} hash bytes over ${backlog} unread, budget ${budget}`)
              }
              backlog += b.length
            }
          }
          const fiber = Effect.runFork(PeerSession.connect({
            host: "10.0.0.1",
            port: 6881,
            handle,
            config: { maxWriteBacklog: budget },
            dial: () => Effect.succeed(conn)
          }))
          const settle = () => new Promise((resolve) => setTimeout(resolve, 0))
          for (let i = 0; i < 50 && backlog === 0; i++) await settle()
          conn.feed(theirHandshake)

          let next = 0
          for (const step of steps) {
            if (step.op === "burst") {
              const batch = Array.from({ length: step.count }, () => request(next++))
              conn.feed(Message.encodeBatch(batch))
            } else if (step.op === "read") backlog = 0
            else if (step.op === "again") {
              // a torrent that answers twice: the second must not reach the wire
              answers.at(Math.floor(answers.length / 2))?.()
            } else if (step.op === "closeLocal") t.controls.get("10.0.0.1:6881")?.close("test closes it")
            else conn.end()
            if (s.count() > 0) await s.waitOne()
            await settle()
          }
          for (let i = 0; i < 20 && s.count() > 0; i++) {
            await s.waitAll()
            await settle()
          }
          await settle()
          for (const [n, o] of outcomes) if (o.length > 1) problem(`request ${n} answered ${o.length} times: ${o}`)
          for (const n of rejectOnArrival) {
            if (!closed && outcomes.get(n)?.[0] !== "reject") problem(`request ${n}, beyond the line, not rejected`)
          }
          for (const n of outcomes.keys()) {
            if (!asked.has(n) && !rejectOnArrival.has(n)) problem(`request ${n} rejected unasked with room in line`)
          }
          if (!closed) {
            for (const n of seen) if (outcomes.get(n)?.length !== 1) problem(`request ${n} never answered`)
            if (queue.length > 0 || pending > 0) problem(`the model still has ${queue.length} waiting, ${pending} out`)
          }
          const exit = fiber.unsafePoll()
          if (exit !== null && Exit.isFailure(exit) && exit.cause._tag !== "Fail") {
            problem(`the session died: ${String(exit.cause)}`)
          }
          await Effect.runPromise(Fiber.interrupt(fiber))
          expect(problems).toEqual([])
          expect({ writtenAfterClose, askedAfterClose }).toEqual({ writtenAfterClose: 0, askedAfterClose: 0 })
        }
      ),
      { numRuns: 100 }
    )
  })
})
