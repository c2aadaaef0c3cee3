import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Bytes from "../../src/core/Bytes.ts"
import * as InfoHash from "../../src/core/InfoHash.ts"
import * as UtMetadata from "../../src/wire/UtMetadata.ts"

const bin = (s: string): Uint8Array => Bytes.fromBinaryString(s)
const text = (b: Uint8Array): string => Bytes.toBinaryString(b)
const K = UtMetadata.pieceLength

const decodeRight = (payload: Uint8Array): UtMetadata.Message => {
  const r = UtMetadata.decode(payload)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}
const reasonOf = (payload: Uint8Array): string | undefined => {
  const r = UtMetadata.decode(payload)
  return Either.isLeft(r) ? r.left.reason : undefined
}

const info = (size: number): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff)

describe("UtMetadata codec", () => {
  it("reads and writes the BEP 9 examples", () => {
    expect(decodeRight(bin("d8:msg_typei0e5:piecei0ee"))).toEqual(UtMetadata.Request({ piece: 0 }))
    expect(decodeRight(bin("d8:msg_typei2e5:piecei0ee"))).toEqual(UtMetadata.Reject({ piece: 0 }))
    const block = new Uint8Array(K).fill(0x78)
    const data = Bytes.concat([bin("d8:msg_typei1e5:piecei0e10:total_sizei34256ee"), block])
    expect(decodeRight(data)).toEqual(UtMetadata.Data({ piece: 0, totalSize: 34256, bytes: block }))

    expect(text(UtMetadata.encode(UtMetadata.Request({ piece: 0 })))).toBe("d8:msg_typei0e5:piecei0ee")
    expect(text(UtMetadata.encode(UtMetadata.Reject({ piece: 0 })))).toBe("d8:msg_typei2e5:piecei0ee")
    expect(UtMetadata.encode(UtMetadata.Data({ piece: 0, totalSize: 34256, bytes: block }))).toEqual(data)
  })

  it("checks the last piece's length (34256 = 2 × 16 KiB + 1488)", () => {
    const head = bin("d8:msg_typei1e5:piecei2e10:total_sizei34256ee")
    expect(decodeRight(Bytes.concat([head, new Uint8Array(1488)]))._tag).toBe("Data")
    expect(reasonOf(Bytes.concat([head, new Uint8Array(1487)]))).toBe("bad-piece")
    expect(reasonOf(Bytes.concat([head, new Uint8Array(K)]))).toBe("bad-piece")
    expect(reasonOf(bin("d8:msg_typei1e5:piecei3e10:total_sizei34256ee"))).toBe("bad-piece")
  })

  it("rejects malformed messages", () => {
    expect(reasonOf(bin("d8:msg_typei0e5:piecei0e"))).toBe("bad-bencode")
    expect(reasonOf(bin("li0ee"))).toBe("not-a-dict")
    expect(reasonOf(bin("d5:piecei0ee"))).toBe("bad-message")
    expect(reasonOf(bin("d8:msg_typei3e5:piecei0ee"))).toBe("unknown-message")
    expect(reasonOf(bin("d8:msg_typei0ee"))).toBe("bad-piece")
    expect(reasonOf(bin("d8:msg_typei0e5:piecei-1ee"))).toBe("bad-piece")
    expect(reasonOf(bin("d8:msg_typei0e5:piecei1024ee"))).toBe("bad-piece")
    expect(reasonOf(bin("d8:msg_typei0e5:piecei0eeX"))).toBe("trailing-bytes")
    expect(reasonOf(bin("d8:msg_typei1e5:piecei0e10:total_sizei0ee"))).toBe("bad-size")
    expect(reasonOf(bin("d8:msg_typei1e5:piecei0e10:total_sizei16777217ee"))).toBe("bad-size")
    expect(reasonOf(bin("d8:msg_typei1e5:piecei0ee"))).toBe("bad-size")
  })

  it("serves pieces and rejects what it cannot serve", () => {
    const i = info(40000)
    expect(UtMetadata.piecesOf(i)).toBe(3)
    const last = UtMetadata.servePiece(i, 2)
    expect(last).toEqual(UtMetadata.Data({ piece: 2, totalSize: 40000, bytes: i.subarray(2 * K) }))
    expect(decodeRight(UtMetadata.encode(last!))).toEqual(last)
    expect(UtMetadata.servePiece(i, 3)).toBeUndefined()
    expect(UtMetadata.servePiece(i, -1)).toBeUndefined()
    expect(UtMetadata.answer(i, 3)).toEqual(UtMetadata.Reject({ piece: 3 }))
    expect(UtMetadata.answer(undefined, 0)).toEqual(UtMetadata.Reject({ piece: 0 }))
  })
})

const validMessage: FastCheck.Arbitrary<UtMetadata.Message> = FastCheck.oneof(
  FastCheck.integer({ min: 0, max: 1023 }).map((piece) => UtMetadata.Request({ piece })),
  FastCheck.integer({ min: 0, max: 1023 }).map((piece) => UtMetadata.Reject({ piece })),
  FastCheck.integer({ min: 1, max: 5 * K }).chain((total) =>
    FastCheck.integer({ min: 0, max: UtMetadata.pieceCountOf(total) - 1 }).chain((piece) =>
      FastCheck.uint8Array({
        minLength: UtMetadata.pieceLengthOf(total, piece),
        maxLength: UtMetadata.pieceLengthOf(total, piece)
      }).map((bytes) => UtMetadata.Data({ piece, totalSize: total, bytes }))
    )
  )
)

const mutate = (valid: FastCheck.Arbitrary<Uint8Array>): FastCheck.Arbitrary<Uint8Array> =>
  FastCheck.tuple(valid, FastCheck.array(FastCheck.tuple(FastCheck.nat(), FastCheck.nat(255),
    FastCheck.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => {
    const b = [...bytes]
    for (const [at, value, kind] of edits) {
      // Aim most edits at the bencoded header, where they matter.
      const i = b.length === 0 ? 0 : at % Math.min(b.length, 60)
      if (kind === 0 && b.length > 0) b[i] = value
      else if (kind === 1) b.splice(i, 0, value)
      else b.splice(i, 1)
    }
    return Uint8Array.from(b)
  })

const checkDecoded = (m: UtMetadata.Message): void => {
  expect(m.piece >= 0 && m.piece < 1024).toBe(true)
  if (m._tag === "Data") expect(m.bytes.length).toBe(UtMetadata.pieceLengthOf(m.totalSize, m.piece))
}

describe("UtMetadata codec properties", () => {
  it.prop("decode(encode(m)) is m", [validMessage], ([m]) => {
    const back = decodeRight(UtMetadata.encode(m))
    const bytesOf = (x: UtMetadata.Message) => (x._tag === "Data" ? x.bytes : new Uint8Array(0))
    expect({ ...back, bytes: undefined }).toEqual({ ...m, bytes: undefined })
    expect(Bytes.equals(bytesOf(back), bytesOf(m))).toBe(true)
  }, { fastCheck: { numRuns: 200 } })

  it.prop("never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 200 })], ([b]) => {
    const r = UtMetadata.decode(b)
    if (Either.isRight(r)) checkDecoded(r.right)
  })

  it.prop("never throws on mutated valid payloads", [mutate(validMessage.map(UtMetadata.encode))], ([b]) => {
    const r = UtMetadata.decode(b)
    if (Either.isRight(r)) checkDecoded(r.right)
  }, { fastCheck: { numRuns: 300 } })
})

const assembler = (metadata: Uint8Array, options?: UtMetadata.Options): UtMetadata.Assembler => {
  const a = UtMetadata.make(InfoHash.v1Of(metadata), metadata.length, options)
  if (Either.isLeft(a)) throw new Error(a.left.message)
  return a.right
}
const piece = (metadata: Uint8Array, i: number) => metadata.subarray(i * K, (i + 1) * K)

describe("UtMetadata assembler", () => {
  it("refuses sizes outside 1..16 MiB", () => {
    const h = InfoHash.v1Of(new Uint8Array(0))
    expect(Either.isLeft(UtMetadata.make(h, 0))).toBe(true)
    expect(Either.isLeft(UtMetadata.make(h, 16 * 1024 * 1024 + 1))).toBe(true)
    expect(Either.isRight(UtMetadata.make(h, 16 * 1024 * 1024))).toBe(true)
  })

  it("spreads pieces over peers, at most N outstanding each, and ends Done", () => {
    const m = info(7 * K + 100)
    let a = assembler(m, { ...UtMetadata.defaultOptions, maxOutstandingPerPeer: 3 })
    const asked: Record<string, Array<number>> = { A: [], B: [], C: [] }
    for (const peer of ["A", "B", "C"]) {
      for (;;) {
        const [next, p] = UtMetadata.nextRequest(a, peer, 0)
        a = next
        if (p === undefined) break
        asked[peer]!.push(p)
      }
    }
    expect(asked).toEqual({ A: [0, 1, 2], B: [3, 4, 5], C: [6, 7] })
    let outcome: UtMetadata.Outcome | undefined
    for (const [peer, ps] of Object.entries(asked)) {
      for (const p of ps) [a, outcome] = UtMetadata.onData(a, peer, p, m.length, piece(m, p))
    }
    expect(outcome).toEqual(UtMetadata.Outcome.Done({ info: m }))
    expect(UtMetadata.heldBytes(a)).toBe(0)
  })

  it("re-requests on timeout, reject and departure", () => {
    const m = info(2 * K)
    let a = assembler(m)
    let p: number | undefined
    ;[a, p] = UtMetadata.nextRequest(a, "A", 0)
    expect(p).toBe(0)
    ;[a, p] = UtMetadata.nextRequest(a, "B", 0)
    expect(p).toBe(1)
    // A rejects 0: B may take it, A is not asked for it again until the backoff ends.
    a = UtMetadata.onReject(a, "A", 0, 10)
    expect(UtMetadata.nextRequest(a, "A", 11)[1]).toBeUndefined()
    ;[a, p] = UtMetadata.nextRequest(a, "B", 11)
    expect(p).toBe(0)
    // B leaves: both pieces are free again.
    a = UtMetadata.peerLeft(a, "B")
    ;[a, p] = UtMetadata.nextRequest(a, "C", 12)
    expect(p).toBe(0)
    ;[a, p] = UtMetadata.nextRequest(a, "C", 12)
    expect(p).toBe(1)
    // C times out: after requestTimeout its requests go to D.
    expect(UtMetadata.nextRequest(a, "D", 12 + 19_999)[1]).toBeUndefined()
    ;[a, p] = UtMetadata.nextRequest(a, "D", 12 + 20_000)
    expect(p).toBe(0)
    // A late answer from C still counts.
    let o: UtMetadata.Outcome
    ;[a, o] = UtMetadata.onData(a, "C", 1, m.length, piece(m, 1))
    expect(o._tag).toBe("Pending")
    ;[a, o] = UtMetadata.onData(a, "D", 0, m.length, piece(m, 0))
    expect(o).toEqual(UtMetadata.Outcome.Done({ info: m }))
  })

  it("reports data that does not fit the metadata", () => {
    const m = info(K + 1)
    const a = assembler(m)
    expect(UtMetadata.onData(a, "A", 0, m.length + 1, piece(m, 0))[1]._tag).toBe("Invalid")
    expect(UtMetadata.onData(a, "A", 2, m.length, new Uint8Array(0))[1]._tag).toBe("Invalid")
    expect(UtMetadata.onData(a, "A", 1, m.length, new Uint8Array(2))[1]._tag).toBe("Invalid")
  })

  it("bans a lone liar, isolates a liar among several peers, and then finishes", () => {
    const m = info(2 * K)
    const bad = new Uint8Array(K)
    let a = assembler(m)
    let o: UtMetadata.Outcome
    ;[a, o] = UtMetadata.onData(a, "L", 0, m.length, bad)
    ;[a, o] = UtMetadata.onData(a, "H", 1, m.length, piece(m, 1))
    expect(o).toEqual(UtMetadata.Outcome.Failed({ contributors: ["H", "L"], liar: undefined }))
    expect(UtMetadata.heldBytes(a)).toBe(0)
    // Single-source now: L asks first and becomes the source; H gets nothing.
    ;[a] = UtMetadata.nextRequest(a, "L", 0)
    expect(UtMetadata.nextRequest(a, "H", 0)[1]).toBeUndefined()
    ;[a, o] = UtMetadata.onData(a, "H", 1, m.length, piece(m, 1))
    expect(UtMetadata.heldBytes(a)).toBe(0)
    ;[a] = UtMetadata.nextRequest(a, "L", 0)
    ;[a, o] = UtMetadata.onData(a, "L", 0, m.length, bad)
    ;[a, o] = UtMetadata.onData(a, "L", 1, m.length, piece(m, 1))
    expect(o).toEqual(UtMetadata.Outcome.Failed({ contributors: ["L"], liar: "L" }))
    expect(UtMetadata.isBanned(a, "L")).toBe(true)
    expect(UtMetadata.nextRequest(a, "L", 0)[1]).toBeUndefined()
    ;[a] = UtMetadata.nextRequest(a, "H", 0)
    ;[a] = UtMetadata.nextRequest(a, "H", 0)
    ;[a, o] = UtMetadata.onData(a, "H", 1, m.length, piece(m, 1))
    ;[a, o] = UtMetadata.onData(a, "H", 0, m.length, piece(m, 0))
    expect(o).toEqual(UtMetadata.Outcome.Done({ info: m }))
  })
})

/** mulberry32: a tiny seeded PRNG so one fast-check integer drives a whole simulation. */
const prng = (seed: number) => {
  let s = seed >>> 0
  return (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Sent {
  readonly peer: string
  readonly piece: number
}

const simulate = (size: number, honest: number, seed: number) => {
  const rand = prng(seed)
  const m = Uint8Array.from({ length: size }, () => Math.floor(rand() * 256))
  const peers = [...Array.from({ length: honest }, (_, i) => `H${i}`), "L"]
  const outstanding = 1 + Math.floor(rand() * 4)
  let a = assembler(m, { maxOutstandingPerPeer: outstanding, requestTimeout: 20_000, rejectBackoff: 30_000 })
  let now = 0
  let queue: Array<Sent> = []
  const failures: Array<UtMetadata.Outcome & { _tag: "Failed" }> = []
  for (let step = 0; step < 20_000; step++) {
    for (const peer of [...peers].sort(() => rand() - 0.5)) {
      for (;;) {
        const [next, p] = UtMetadata.nextRequest(a, peer, now)
        a = next
        if (p === undefined) break
        queue.push({ peer, piece: p })
      }
    }
    now += Math.floor(rand() * 3000)
    if (queue.length === 0) continue
    const k = Math.floor(rand() * queue.length)
    const { peer, piece: p } = queue[k]!
    queue.splice(k, 1)
    const r = rand()
    if (r < 0.1) continue // lost: times out
    if (r < 0.2) {
      a = UtMetadata.onReject(a, peer, p, now)
      continue
    }
    if (r < 0.23) {
      a = UtMetadata.peerLeft(a, peer) // it reconnects at once under the same key
      queue = queue.filter((s) => s.peer !== peer)
      continue
    }
    const bytes = new Uint8Array(piece(m, p))
    if (peer === "L" && rand() < 0.7) bytes[Math.floor(rand() * bytes.length)]! ^= 1 + Math.floor(rand() * 255)
    let o: UtMetadata.Outcome
    ;[a, o] = UtMetadata.onData(a, peer, p, m.length, bytes)
    // Plain checks: expect() on every step would dominate the run time.
    if (UtMetadata.heldBytes(a) > size) throw new Error(`holds ${UtMetadata.heldBytes(a)} > ${size} bytes`)
    for (const b of a.banned) if (b !== "L") throw new Error(`honest peer ${b} banned`)
    if (o._tag === "Done") return { info: o.info, expected: m, failures, steps: step }
    if (o._tag === "Failed") failures.push(o)
    else if (o._tag !== "Pending") throw new Error(`unexpected ${o._tag}`)
  }
  throw new Error(`no Done after 20000 steps (seed ${seed})`)
}

describe("UtMetadata assembler properties", () => {
  it.prop(
    "random peers, order, rejects, timeouts and one liar: Done with the right bytes, only the liar blamed",
    [FastCheck.integer({ min: 1, max: 6 * K }), FastCheck.integer({ min: 1, max: 4 }), FastCheck.integer()],
    ([size, honest, seed]) => {
      const r = simulate(size, honest, seed)
      expect(Bytes.equals(r.info, r.expected)).toBe(true) // toEqual walks typed arrays slowly
      for (const f of r.failures) {
        expect(f.contributors).toContain("L")
        if (f.liar !== undefined) expect(f.liar).toBe("L")
      }
      // Every failure after the first (spread) attempt is single-source, so it names the liar.
      for (const f of r.failures.slice(1)) expect(f.liar).toBe("L")
    },
    { fastCheck: { numRuns: 150 } }
  )
})
