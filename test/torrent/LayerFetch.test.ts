/**
 * The piece-layer fetch's state machine (BEP 52 hash requests after a btmh magnet): which requests go where, what
 * happens on answers, rejects, timeouts and departures, and that only verified hashes are kept. Times are passed in
 * (the machine is pure), as MetadataFetch's one-second ticker passes them.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { randomBytes } from "node:crypto"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import type { HashRequest } from "../../src/metainfo/Metainfo.ts"
import * as LayerFetch from "../../src/torrent/LayerFetch.ts"

interface TestFile {
  readonly file: LayerFetch.File
  readonly tree: Merkle.Tree
  readonly layer: Uint8Array
}

/** A file of `blocks` random leaves (the last block `tail` bytes short of 16 KiB). */
const makeFile = (blocks: number, pieceLength: number, tail = 0): TestFile => {
  const leaves = new Uint8Array(randomBytes(blocks * 32))
  return {
    file: { piecesRoot: Merkle.fileRoot(leaves), length: blocks * Merkle.BLOCK_SIZE - tail },
    tree: Merkle.fromLeaves(leaves),
    layer: Merkle.pieceLayer(leaves, pieceLength)
  }
}

const answer = (files: ReadonlyArray<TestFile>, r: HashRequest): Uint8Array => {
  const f = files.find((t) => Bytes.equals(t.file.piecesRoot, r.piecesRoot))!
  return Merkle.proof(f.tree, r)!
}

const corrupt = (hashes: Uint8Array, bit: number): Uint8Array => {
  const bad = hashes.slice()
  bad[(bit >> 3) % bad.length]! ^= 1 << (bit & 7)
  return bad
}

describe("LayerFetch: requests", () => {
  it("each file's layer in libtorrent's shape: 512 hashes from index 0, the last request what is left, proofs to the root, every request valid", () =>
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(FastCheck.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 4 }),
        FastCheck.constantFrom(16384, 32768, 262144),
        (sizes, pieceLength) => {
          const perPiece = pieceLength / Merkle.BLOCK_SIZE
          const files = sizes.map((blocks) => ({ piecesRoot: new Uint8Array(randomBytes(32)), length: (blocks + perPiece) * 16384 }))
          const jobs = LayerFetch.jobsOf(files, pieceLength)
          files.forEach((f, i) => {
            const mine = jobs.filter((j) => j.file === i).map((j) => j.request)
            const pieces = Merkle.pieceLayerCount(f.length, pieceLength)
            expect(mine.reduce((n, r) => n + r.length, 0)).toBe(pieces)
            mine.forEach((r, k) => {
              expect(r.index).toBe(k * 512)
              expect(r.length).toBe(Math.min(512, pieces - k * 512))
              expect(r.base).toBe(Merkle.pieceLayerIndex(pieceLength))
              expect(Merkle.checkRange(r, Merkle.blockCount(f.length))).toBeUndefined()
              expect(r.proofLayers).toBe(Merkle.proofLayersToRoot(r.base, Merkle.blockCount(f.length)))
            })
          })
        }
      ),
      { numRuns: 100 }
    ))

  it("files of the same content (one root) are asked once", () => {
    const a = makeFile(40, 32768)
    const s = LayerFetch.make([a.file, a.file], 32768)
    expect(s.jobs.length).toBe(1)
  })

  it("at most maxOutstandingPerPeer in flight at a peer, one range at one peer at a time", () => {
    const big = makeFile(600 * 4, 16384) // 2400 pieces: 5 requests
    let s = LayerFetch.make([big.file], 16384, { maxOutstandingPerPeer: 2 })
    const [s1, a] = LayerFetch.nextRequests(s, "a", 0)
    const [s2, b] = LayerFetch.nextRequests(s1, "b", 0)
    const [s3, again] = LayerFetch.nextRequests(s2, "a", 0)
    expect(a.map((r) => r.index)).toEqual([0, 512])
    expect(b.map((r) => r.index)).toEqual([1024, 1536])
    expect(again).toEqual([])
    s = s3
    expect(LayerFetch.outstanding(s, "a")).toBe(2)
    expect(s.inFlight.size).toBe(4)
  })
})

describe("LayerFetch: answers", () => {
  it("a verified answer is kept; once all are in, the layers are the files' layers", () => {
    const files = [makeFile(600, 16384, 100), makeFile(9, 16384, 3)]
    let s = LayerFetch.make(files.map((f) => f.file), 16384)
    for (let round = 0; !LayerFetch.isDone(s) && round < 10; round++) {
      const [next, requests] = LayerFetch.nextRequests(s, "honest", round)
      s = next
      for (const r of requests) {
        const [after, outcome] = LayerFetch.onHashes(s, "honest", r, answer(files, r))
        expect(outcome._tag).toBe("Accepted")
        s = after
      }
    }
    const layers = LayerFetch.layers(s)!
    for (const f of files) expect(Bytes.toHex(layers.get(Bytes.toHex(f.file.piecesRoot))!)).toBe(Bytes.toHex(f.layer))
  })

  it("a proof with any flipped bit bans its sender; the range is asked of another peer", () =>
    FastCheck.assert(
      FastCheck.property(FastCheck.nat(), (bit) => {
        const files = [makeFile(21, 16384, 7)]
        let s = LayerFetch.make(files.map((f) => f.file), 16384)
        const [s1, [r]] = LayerFetch.nextRequests(s, "liar", 0)
        const [s2, outcome] = LayerFetch.onHashes(s1, "liar", r!, corrupt(answer(files, r!), bit))
        expect(outcome._tag).toBe("Bad")
        expect(s2.banned.has("liar")).toBe(true)
        expect(LayerFetch.nextRequests(s2, "liar", 1)[1]).toEqual([])
        // even a correct answer from it later is not taken
        expect(LayerFetch.onHashes(s2, "liar", r!, answer(files, r!))[1]._tag).toBe("Ignored")
        const [s3, [again]] = LayerFetch.nextRequests(s2, "honest", 1)
        expect(again).toEqual(r)
        s = LayerFetch.onHashes(s3, "honest", again!, answer(files, again!))[0]
        expect(LayerFetch.isDone(s)).toBe(true)
      }),
      { numRuns: 100 }
    ))

  it("the wrong number of hashes is a bad proof too", () => {
    const files = [makeFile(21, 16384)]
    const [s1, [r]] = LayerFetch.nextRequests(LayerFetch.make(files.map((f) => f.file), 16384), "p", 0)
    const full = answer(files, r!)
    expect(LayerFetch.onHashes(s1, "p", r!, full.subarray(0, full.length - 32))[1]._tag).toBe("Bad")
  })

  it("hashes nobody asked for, or for another root, are ignored", () => {
    const files = [makeFile(21, 16384)]
    const other = makeFile(21, 16384)
    const s = LayerFetch.make(files.map((f) => f.file), 16384)
    const r: HashRequest = { ...s.jobs[0]!.request, piecesRoot: other.file.piecesRoot }
    expect(LayerFetch.onHashes(s, "p", r, Merkle.proof(other.tree, r)!)[1]._tag).toBe("Ignored")
  })

  it("a reject sends the range elsewhere; the rejecting peer is asked again only after retryAfter", () => {
    const files = [makeFile(21, 16384)]
    let s = LayerFetch.make(files.map((f) => f.file), 16384, { retryAfter: 5_000 })
    const [s1, [r]] = LayerFetch.nextRequests(s, "a", 0)
    s = LayerFetch.onReject(s1, "a", r!, 100)
    expect(s.inFlight.size).toBe(0)
    expect(LayerFetch.nextRequests(s, "a", 5_099)[1]).toEqual([])
    expect(LayerFetch.nextRequests(s, "b", 200)[1]).toEqual([r])
    expect(LayerFetch.nextRequests(s, "a", 5_100)[1]).toEqual([r])
    // a reject of something not in flight there changes nothing
    expect(LayerFetch.onReject(s, "z", r!, 0)).toBe(s)
  })

  it("a request past its deadline goes elsewhere; the late answer is still taken", () => {
    const files = [makeFile(21, 16384)]
    let s = LayerFetch.make(files.map((f) => f.file), 16384, { requestTimeout: 10_000, retryAfter: 5_000 })
    const [s1, [r]] = LayerFetch.nextRequests(s, "slow", 0)
    expect(LayerFetch.expire(s1, 9_999)[1]).toEqual([])
    const [s2, late] = LayerFetch.expire(s1, 10_000)
    expect(late).toEqual(["slow"])
    expect(LayerFetch.nextRequests(s2, "slow", 10_001)[1]).toEqual([])
    const [s3, [again]] = LayerFetch.nextRequests(s2, "fast", 10_001)
    expect(again).toEqual(r)
    s = LayerFetch.onHashes(s3, "slow", r!, answer(files, r!))[0]
    expect(LayerFetch.isDone(s)).toBe(true)
    expect(s.inFlight.size).toBe(0)
  })

  it("a peer leaving gives its requests back", () => {
    const files = [makeFile(21, 16384)]
    const [s1] = LayerFetch.nextRequests(LayerFetch.make(files.map((f) => f.file), 16384), "a", 0)
    const s2 = LayerFetch.peerLeft(s1, "a")
    expect(s2.inFlight.size).toBe(0)
    expect(LayerFetch.nextRequests(s2, "b", 0)[1].length).toBe(1)
  })
})

type Kind = "honest" | "liar" | "rejecter" | "silent"
describe("LayerFetch: random peers and events", () => {
  it("invariants hold; only liars are banned; kept hashes are always the true ones; an honest peer finishes it", () =>
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(FastCheck.constantFrom<Kind>("honest", "liar", "rejecter", "silent"), { minLength: 1, maxLength: 4 }),
        FastCheck.array(
          FastCheck.oneof(
            FastCheck.record({ _tag: FastCheck.constant("Ask" as const), peer: FastCheck.nat(3) }),
            FastCheck.record({ _tag: FastCheck.constant("Tick" as const), ms: FastCheck.integer({ min: 0, max: 12_000 }) }),
            FastCheck.record({ _tag: FastCheck.constant("Leave" as const), peer: FastCheck.nat(3) })
          ),
          { maxLength: 60 }
        ),
        FastCheck.nat(),
        (kinds, events, bit) => {
          const files = [makeFile(1200, 32768, 5), makeFile(7, 32768)] // 600 pieces (2 requests) and 4 pieces
          const options = { maxOutstandingPerPeer: 2, requestTimeout: 10_000, retryAfter: 3_000 }
          let s = LayerFetch.make(files.map((f) => f.file), 32768, options)
          let now = 0
          const name = (i: number) => `${kinds[i % kinds.length]}-${i % kinds.length}`
          const check = () => {
            for (const [key, f] of s.inFlight) {
              expect(s.got.has(key)).toBe(false)
              expect(s.banned.has(f.peer)).toBe(false)
            }
            for (const p of new Set([...s.inFlight.values()].map((f) => f.peer))) {
              expect(LayerFetch.outstanding(s, p)).toBeLessThanOrEqual(2)
            }
            for (const b of s.banned) expect(b.startsWith("liar")).toBe(true)
            for (const job of s.jobs) {
              const got = s.got.get(job.key)
              if (got === undefined) continue
              const f = files[job.file]!
              expect(Bytes.toHex(got)).toBe(Bytes.toHex(f.layer.subarray(job.request.index * 32, (job.request.index + job.request.length) * 32)))
            }
          }
          const serve = (peer: string, requests: ReadonlyArray<HashRequest>) => {
            for (const r of requests) {
              if (peer.startsWith("honest")) s = LayerFetch.onHashes(s, peer, r, answer(files, r))[0]
              else if (peer.startsWith("liar")) s = LayerFetch.onHashes(s, peer, r, corrupt(answer(files, r), bit))[0]
              else if (peer.startsWith("rejecter")) s = LayerFetch.onReject(s, peer, r, now)
              // silent: never answers
            }
          }
          for (const e of events) {
            if (e._tag === "Ask") {
              const peer = name(e.peer)
              const [next, requests] = LayerFetch.nextRequests(s, peer, now)
              s = next
              serve(peer, requests)
            } else if (e._tag === "Tick") {
              now += e.ms
              s = LayerFetch.expire(s, now)[0]
            } else s = LayerFetch.peerLeft(s, name(e.peer))
            check()
          }
          // an honest peer arriving finishes it (after any pending timeouts)
          for (let round = 0; round < 20 && !LayerFetch.isDone(s); round++) {
            now += 10_000
            s = LayerFetch.expire(s, now)[0]
            const [next, requests] = LayerFetch.nextRequests(s, "honest-late", now)
            s = next
            serve("honest-late", requests)
            check()
          }
          expect(LayerFetch.isDone(s)).toBe(true)
          const layers = LayerFetch.layers(s)!
          for (const f of files) expect(Bytes.toHex(layers.get(Bytes.toHex(f.file.piecesRoot))!)).toBe(Bytes.toHex(f.layer))
        }
      ),
      { numRuns: 60 }
    ))
})
