/**
 * HashExchange (BEP 52 beyond the piece layers) with fake peers and TestClock: a failed piece's leaf hashes asked of
 * every peer that has it at once, the first verified answer taken, rejects, bad proofs and silence (the 10 s
 * timeout) leaving the piece without leaves; leaf-level requests answered from the data "on disk" only for pieces
 * we have.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Bitfield from "../../src/core/Bitfield.ts"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Merkle from "../../src/core/Merkle.ts"
import * as Metainfo from "../../src/metainfo/Metainfo.ts"
import type { PeerControl } from "../../src/peer/TorrentHandle.ts"
import * as HashExchange from "../../src/torrent/HashExchange.ts"
import * as LeafBlame from "../../src/torrent/LeafBlame.ts"
import { buildV2 } from "../support/v2.ts"

const built = buildV2({
  name: "hx",
  format: "v2",
  pieceLength: 65536,
  files: [{ path: ["d", "big.bin"], length: 9 * 65536 + 5 }, { path: ["d", "small"], length: 40_000 }]
})
const m = built.metainfo
const big = m.files.find((f) => f.path.join("/") === "hx/d/big.bin")!
const tree = Merkle.fromLeaves(Merkle.leafHashes(built.files[m.files.indexOf(big)]!))
const PIECE = 2

type Behaviour = "honest" | "liar" | "rejecter" | "silent" | "no-v2"

/** Fake peers: each records the requests it got and answers (synchronously, through `onHashes`) as it behaves. */
const peersOf = (behaviours: Record<string, Behaviour>, ex: () => HashExchange.HashExchange) => {
  const asked: Array<string> = []
  const peers = new Map<string, { control: PeerControl }>()
  for (const [peer, b] of Object.entries(behaviours)) {
    const control = {
      requestHashes: b === "no-v2" ? undefined : (r: Metainfo.HashRequest) => {
        asked.push(peer)
        if (b === "silent") return
        if (b === "rejecter") return ex().onHashes(peer, { _tag: "HashReject", ...r })
        const hashes = Merkle.proof(tree, r)!.slice()
        if (b === "liar") hashes[5]! ^= 1
        ex().onHashes(peer, { _tag: "Hashes", ...r, hashes })
      }
    } as unknown as PeerControl
    peers.set(peer, { control })
  }
  return { peers, asked }
}

const make = (behaviours: Record<string, Behaviour>, have = Bitfield.full(m.pieceCount)) =>
  Effect.gen(function*() {
    let ex: HashExchange.HashExchange | undefined
    const fake = peersOf(behaviours, () => ex!)
    ex = yield* HashExchange.make({
      metainfo: m,
      readPiece: (i) => Effect.succeed(built.payload.slice(i * m.pieceLength, (i + 1) * m.pieceLength)),
      have,
      peers: () => fake.peers,
      hasPiece: () => true
    })
    return { ex, asked: fake.asked }
  })

const truth = () => {
  const p = Metainfo.v2Piece(m, PIECE)!
  return Merkle.leafHashes(built.payload.subarray(PIECE * m.pieceLength, PIECE * m.pieceLength + p.dataLength))
}

describe("HashExchange: a failed piece's leaves", () => {
  it.scoped("every peer that has the piece is asked at once; the honest answer wins over a liar's and a rejecter's", () =>
    Effect.gen(function*() {
      const { ask, asked } = yield* Effect.map(make({ liar: "liar", rej: "rejecter", good: "honest" }), (x) => ({ ask: x.ex.askLeaves, asked: x.asked }))
      const leaves = yield* ask(PIECE, ["liar"])
      expect(Bytes.toHex(leaves!)).toBe(Bytes.toHex(truth()))
      expect(asked.sort()).toEqual(["good", "liar", "rej"])
    }))

  it.scoped("only liars and rejecters: no leaves, at once", () =>
    Effect.gen(function*() {
      const { ex } = yield* make({ liar: "liar", rej: "rejecter" })
      expect(yield* ex.askLeaves(PIECE, [])).toBeUndefined()
    }))

  it.scoped("a silent peer: no leaves after the 10 s timeout, not before (TestClock)", () =>
    Effect.gen(function*() {
      const { ex } = yield* make({ quiet: "silent", rej: "rejecter" })
      const fiber = yield* Effect.fork(ex.askLeaves(PIECE, []))
      yield* TestClock.adjust("9 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBeUndefined()
    }))

  it.scoped("peers without the hash messages (web seeds) are not asked; nobody to ask: undefined", () =>
    Effect.gen(function*() {
      const { asked, ex } = yield* make({ web: "no-v2" })
      expect(ex.canAsk(PIECE, [])).toBe(false)
      expect(yield* ex.askLeaves(PIECE, [])).toBeUndefined()
      expect(asked).toEqual([])
    }))
})

describe("HashExchange: leaf-level requests from our data", () => {
  const request = { piecesRoot: big.piecesRoot!, base: 0, index: 8, length: 4, proofLayers: Merkle.proofLayersToRoot(0, tree.blocks) }

  it.scoped("answered with the whole tree's proof when we have the pieces", () =>
    Effect.gen(function*() {
      const { ex } = yield* make({})
      const answer = yield* Effect.async<Uint8Array | undefined>((resume) => {
        expect(ex.later(request, (h) => resume(Effect.succeed(h)))).toBe(true)
      })
      expect(Bytes.toHex(answer!)).toBe(Bytes.toHex(Merkle.proof(tree, request)!))
      expect(LeafBlame.leafNeed(m, request)!.pieces).toEqual([PIECE])
    }))

  it.scoped("refused at once when a piece it needs is not ours, or it is not a leaf-level request", () =>
    Effect.gen(function*() {
      const have = Bitfield.full(m.pieceCount)
      Bitfield.clear(have, PIECE)
      const { ex } = yield* make({}, have)
      expect(ex.later(request, () => {})).toBe(false)
      expect(ex.later({ ...request, base: 2, index: 0, length: 2 }, () => {})).toBe(false)
    }))
})
