/**
 * Serving rules and choker wiring of the Uploader, driven synchronously through its wrapped handle with fake
 * session controls; reads from an in-memory payload (optionally held back), time from TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as TestClock from "effect/TestClock"
import * as Bitfield from "../../src/core/Bitfield.ts"
import type { PeerId } from "../../src/core/InfoHash.ts"
import type { BlockRef, PeerControl, PeerKey, TorrentHandle } from "../../src/peer/TorrentHandle.ts"
import { PeerError } from "../../src/peer/PeerError.ts"
import * as Uploader from "../../src/torrent/Uploader.ts"
import { TestTorrent } from "../peer/support.ts"

const pieceLength = 32 * 1024
const payload = Uint8Array.from({ length: 4 * pieceLength + 1000 }, (_, i) => (i * 31 + 7) & 0xff)
const pieceCount = 5

interface Fake {
  readonly control: PeerControl
  readonly sent: Array<{ index: number; begin: number; data: Uint8Array }>
  readonly rejected: Array<BlockRef>
  /** `sendBlock` calls made while we choked the peer: the session refuses them, the uploader must not even try. */
  readonly refused: Array<{ index: number; begin: number }>
  readonly calls: Array<string>
  choking: boolean
  /** Completes once `cond` holds, checked again after each `sendBlock` and `reject` (a signal, not a clock or poll). */
  readonly until: (cond: () => boolean) => Effect.Effect<void>
}

const fakeControl = (): Fake => {
  let pulse = Deferred.unsafeMake<void>(FiberId.none)
  const beat = () => {
    const done = pulse
    pulse = Deferred.unsafeMake<void>(FiberId.none)
    Deferred.unsafeDone(done, Exit.void)
  }
  const until = (cond: () => boolean): Effect.Effect<void> =>
    Effect.suspend(() => (cond() ? Effect.void : Effect.zipRight(Deferred.await(pulse), until(cond))))
  const f: Fake = {
    sent: [],
    rejected: [],
    refused: [],
    calls: [],
    choking: true,
    until,
    control: {
      sendHave: () => {},
      setInterested: () => {},
      requestMore: () => {},
      cancel: () => {},
      choke: () => {
        f.choking = true
        f.calls.push("choke")
      },
      unchoke: () => {
        f.choking = false
        f.calls.push("unchoke")
      },
      sendBlock: (index, begin, data) => {
        if (f.choking) f.refused.push({ index, begin })
        else f.sent.push({ index, begin, data: Uint8Array.from(data) })
        beat()
        return !f.choking
      },
      reject: (b) => {
        f.rejected.push(b)
        beat()
      },
      sendExtended: () => {},
      allowFast: () => {},
      pauseReading: () => {},
      resumeReading: () => {},
      close: (detail) => void f.calls.push(`close:${detail}`)
    }
  }
  return f
}

const idOf = (n: number) => new Uint8Array(20).fill(n) as PeerId

interface Setup {
  readonly up: Uploader.Uploader
  readonly handle: TorrentHandle
  readonly connect: (key: PeerKey, n: number) => Fake
  readonly gate: Deferred.Deferred<void> | undefined
}

interface SetupOptions {
  readonly have?: ReadonlyArray<number>
  readonly gated?: boolean
  readonly upLimit?: number
  readonly slots?: number
  readonly downloading?: boolean
}

const setup = (options: SetupOptions = {}) =>
  Effect.gen(function*() {
    const have = Bitfield.make(pieceCount)
    for (const i of options.have ?? [0, 1, 2, 3, 4]) Bitfield.set(have, i)
    const gate = options.gated === true ? yield* Deferred.make<void>() : undefined
    const up = yield* Uploader.make({
      storage: {
        readPiece: (i) =>
          Effect.andThen(
            gate === undefined ? Effect.void : Deferred.await(gate),
            Effect.sync(() => payload.slice(i * pieceLength, Math.min(payload.length, (i + 1) * pieceLength)))
          )
      },
      pieceCount,
      pieceLength,
      totalLength: payload.length,
      has: (i) => Bitfield.has(have, i),
      seeding: () => options.downloading !== true,
      upLimit: options.upLimit,
      slots: options.slots,
      random: () => 0.5
    })
    const inner = new TestTorrent({ payload, pieceLength, have: true })
    // Blocks "received" in tests always count as kept.
    const handle = up.wrap({ ...inner, onBlock: () => true })
    const connect = (key: PeerKey, n: number): Fake => {
      const f = fakeControl()
      handle.onConnected(key, {
        peerId: idOf(n),
        fast: true,
        extensionProtocol: true,
        dht: false,
        direction: "inbound",
        encryption: "none",
        remote: { host: "127.0.0.1", port: 1 }
      }, f.control)
      handle.onPeerHaveNone(key)
      return f
    }
    return { up, handle, connect, gate } satisfies Setup
  })

const block = (index: number, begin: number, length = 16384): BlockRef => ({ index, begin, length })
const expected = (b: BlockRef) => {
  const at = b.index * pieceLength + b.begin
  return payload.subarray(at, at + b.length)
}

describe("Uploader serving rules", () => {
  it.scopedLive("a choked peer gets nothing; once interested and unchoked it gets the exact bytes", () =>
    Effect.gen(function*() {
      const { connect, handle, up } = yield* setup()
      const a = connect("a", 1)
      handle.onPeerRequest!("a", block(0, 0))
      expect(a.sent).toEqual([])
      handle.onPeerInterest!("a", true)
      expect(a.calls).toEqual(["unchoke"])
      expect(up.isUnchoked("a")).toBe(true)
      handle.onPeerRequest!("a", block(0, 16384))
      handle.onPeerRequest!("a", block(4, 0, 1000))
      yield* a.until(() => a.sent.length >= 2)
      // Served in request order: had the request made while choked been kept, it would have gone first.
      expect(a.sent.map((s) => [s.index, s.begin])).toEqual([[0, 16384], [4, 0]])
      expect(a.refused).toEqual([])
      expect(a.sent[0]!.data).toEqual(expected(block(0, 16384)))
      expect(a.sent[1]!.data).toEqual(expected(block(4, 0, 1000)))
      expect(up.uploaded()).toBe(16384 + 1000)
    }))

  it.scopedLive("out-of-range, oversized and unverified requests are rejected, never served", () =>
    Effect.gen(function*() {
      const { connect, handle } = yield* setup({ have: [0, 1, 2, 3] })
      const a = connect("a", 1)
      handle.onPeerInterest!("a", true)
      const bad = [
        block(5, 0), // no such piece
        block(-1, 0),
        block(0, 32768), // begins past the piece
        block(0, 24576), // runs past the piece
        block(0, 0, 32768), // longer than 16 KiB
        block(0, 0, 0),
        block(4, 0, 1000) // not verified (yet)
      ]
      for (const b of bad) handle.onPeerRequest!("a", b)
      // Then a valid request. A peer's requests are served in order, so once it has been answered, anything taken
      // from `bad` would have been sent (or tried) before it.
      handle.onPeerRequest!("a", block(1, 0))
      yield* a.until(() => a.sent.length >= 1)
      expect(a.sent.map((s) => [s.index, s.begin, s.data.length])).toEqual([[1, 0, 16384]])
      expect(a.refused).toEqual([])
      expect(a.rejected).toEqual(bad)
    }))

  it.scopedLive("a cancelled request not yet sent is dropped", () =>
    Effect.gen(function*() {
      const { connect, handle, gate } = yield* setup({ gated: true })
      const a = connect("a", 1)
      handle.onPeerInterest!("a", true)
      handle.onPeerRequest!("a", block(1, 0))
      handle.onPeerRequest!("a", block(1, 16384))
      handle.onPeerRequest!("a", block(2, 0))
      handle.onPeerCancel!("a", block(1, 16384))
      yield* Deferred.succeed(gate!, undefined)
      yield* a.until(() => a.sent.length >= 2)
      expect(a.sent.map((s) => [s.index, s.begin])).toEqual([[1, 0], [2, 0]])
    }))

  it.scopedLive("choking a peer rejects its queued requests and nothing more is sent", () =>
    Effect.gen(function*() {
      const { connect, handle, gate } = yield* setup({ gated: true, slots: 0 })
      const a = connect("a", 1)
      handle.onPeerInterest!("a", true) // the optimistic slot
      expect(a.choking).toBe(false)
      handle.onPeerRequest!("a", block(3, 0))
      handle.onPeerInterest!("a", false) // not interested: choked
      expect(a.calls).toEqual(["unchoke", "choke"])
      expect(a.rejected).toEqual([block(3, 0)])
      yield* Deferred.succeed(gate!, undefined)
      // Interested again: unchoked again (the optimistic slot), it asks for another block of the same piece. That one
      // leaves only after the read of piece 3 completed, and a peer's requests are served in order: a block(3, 0)
      // still queued would be sent (or tried) first.
      handle.onPeerInterest!("a", true)
      expect(a.calls).toEqual(["unchoke", "choke", "unchoke"])
      handle.onPeerRequest!("a", block(3, 16384))
      yield* a.until(() => a.sent.length >= 1)
      expect(a.sent.map((s) => [s.index, s.begin])).toEqual([[3, 16384]])
      expect(a.refused).toEqual([])
      expect(a.rejected).toEqual([block(3, 0)])
    }))

  it.scopedLive("a second connection with the same peer id is refused", () =>
    Effect.gen(function*() {
      const { connect } = yield* setup()
      connect("a", 1)
      const dup = connect("b", 1)
      expect(dup.calls).toEqual(["close:duplicate connection to the same peer"])
    }))

  it.scopedLive("transfers: bytes sent to and kept from each peer id, kept across disconnects and reconnects", () =>
    Effect.gen(function*() {
      const { connect, handle, up } = yield* setup()
      const a = connect("a", 1)
      connect("b", 2)
      handle.onPeerInterest!("a", true)
      handle.onPeerRequest!("a", block(0, 0))
      handle.onPeerRequest!("a", block(4, 0, 1000))
      yield* a.until(() => a.sent.length >= 2)
      handle.onBlock("b", 1, 0, 16384)
      handle.onBlock("b", 1, 16384, 16384)
      const byId = () => new Map(up.transfers().map((t) => [t.peerId[0], t]))
      expect(byId().get(1)).toMatchObject({ address: "a", uploaded: 16384 + 1000, downloaded: 0, connected: true })
      expect(byId().get(2)).toMatchObject({ address: "b", uploaded: 0, downloaded: 32768, connected: true })
      // b leaves, then comes back on another address: the same entry, added to.
      handle.onClosed("b", new PeerError({ reason: "closed", address: "b", detail: "bye" }), [])
      expect(byId().get(2)).toMatchObject({ downloaded: 32768, connected: false })
      connect("b2", 2)
      handle.onBlock("b2", 2, 0, 16384)
      expect(byId().get(2)).toMatchObject({ address: "b2", downloaded: 49152, connected: true })
      // A refused duplicate connection changes nothing.
      connect("a2", 1)
      expect(byId().get(1)).toMatchObject({ address: "a", connected: true })
      expect(up.transfers().length).toBe(2)
    }))

  it.effect("up-limit: blocks leave at the bucket's rate (TestClock)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { connect, handle, up } = yield* setup({ upLimit: 16384 })
      const a = connect("a", 1)
      handle.onPeerInterest!("a", true)
      for (let b = 0; b < 4; b++) handle.onPeerRequest!("a", block(b >> 1, (b & 1) * 16384))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      expect(a.sent.length).toBe(1) // the burst
      yield* TestClock.adjust("1 second")
      expect(a.sent.length).toBe(2)
      yield* TestClock.adjust("2 seconds")
      expect(a.sent.length).toBe(4)
      expect(up.uploaded()).toBe(4 * 16384)
    })))

  it.effect("up-limit: peers waiting for the bucket share it, none drains it alone (TestClock)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { connect, handle } = yield* setup({ upLimit: 4 * 16384 })
      const order: Array<string> = []
      for (const k of ["a", "b", "c"]) {
        const f = connect(k, k.charCodeAt(0))
        const send = f.control.sendBlock
        ;(f.control as { sendBlock: typeof send }).sendBlock = (index, begin, data) => {
          order.push(k)
          return send(index, begin, data)
        }
        handle.onPeerInterest!(k, true)
        // 8 valid blocks each (pieces 0-3): more than the bucket gives in the time below.
        for (let b = 0; b < 8; b++) handle.onPeerRequest!(k, block(b >> 1, (b & 1) * 16384))
      }
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      for (let s = 0; s < 4; s++) yield* TestClock.adjust("1 second")
      // The burst (4 blocks) goes to the first asker; then 4 blocks/s, one peer after the other.
      expect(order.length).toBe(20)
      expect(order.slice(0, 4)).toEqual(["a", "a", "a", "a"])
      const next = order.slice(4, 16)
      for (const k of ["a", "b", "c"]) expect(next.filter((x) => x === k).length, next.join("")).toBe(4)
    })))
})

describe("Uploader: pieces read from disk are verified once per version of their files", () => {
  /** A disk: `disk` bytes, per-piece versions the test bumps, hash calls counted; the cache holds one piece. */
  const verifying = () =>
    Effect.gen(function*() {
      const disk = Uint8Array.from(payload)
      const versions = Array.from({ length: pieceCount }, () => 0 as number | undefined)
      let hashes = 0
      const corrupt: Array<number> = []
      /** Bumped while a read is in flight (set by the test), to model a change during the read. */
      let duringRead: number | undefined
      const slice = (i: number) => disk.slice(i * pieceLength, Math.min(disk.length, (i + 1) * pieceLength))
      const up = yield* Uploader.make({
        storage: {
          readPiece: (i) =>
            Effect.sync(() => {
              if (duringRead === i) versions[i] = (versions[i] ?? 0) + 1
              return slice(i)
            }),
          pieceVersion: (i) => Effect.sync(() => (versions[i] === undefined ? undefined : String(versions[i]))),
          verifyPiece: (i, data) =>
            Effect.sync(() => {
              hashes++
              return { ok: Buffer.compare(data, payload.subarray(i * pieceLength, (i + 1) * pieceLength)) === 0, data }
            })
        },
        onCorrupt: (i) => Effect.sync(() => void corrupt.push(i)),
        cacheBytes: pieceLength,
        pieceCount,
        pieceLength,
        totalLength: payload.length,
        has: () => true,
        seeding: () => true,
        random: () => 0.5
      })
      const inner = new TestTorrent({ payload, pieceLength, have: true })
      const handle = up.wrap({ ...inner, onBlock: () => true })
      const f = fakeControl()
      handle.onConnected("a", {
        peerId: idOf(1),
        fast: true,
        extensionProtocol: true,
        encryption: "none",
        dht: false,
        direction: "inbound",
        remote: { host: "127.0.0.1", port: 1 }
      }, f.control)
      handle.onPeerInterest!("a", true)
      /** Asks for the first block of `piece` and waits until it was answered or refused. */
      const ask = (piece: number) =>
        Effect.gen(function*() {
          const before = f.sent.length + f.rejected.length
          handle.onPeerRequest!("a", block(piece, 0, 1000))
          yield* f.until(() => f.sent.length + f.rejected.length > before)
        })
      return {
        ask,
        f,
        disk,
        versions,
        corrupt,
        hashes: () => hashes,
        changeDuringRead: (i: number | undefined) => void (duringRead = i)
      }
    })

  it.scopedLive("an unchanged piece read again is not hashed again; a changed one is, and refused if bad", () =>
    Effect.gen(function*() {
      const t = yield* verifying()
      yield* t.ask(0)
      yield* t.ask(1) // evicts piece 0 (the cache holds one piece)
      expect(t.hashes()).toBe(2)
      yield* t.ask(0) // read from disk again, same version: served without hashing
      expect(t.hashes()).toBe(2)
      expect(t.f.sent.map((s) => s.index)).toEqual([0, 1, 0])
      // Piece 0 changes on disk (its version too): hashed again, fails, refused.
      t.disk[10] = t.disk[10]! ^ 0xff
      t.versions[0] = 1
      yield* t.ask(1)
      yield* t.ask(0)
      expect(t.hashes()).toBe(3)
      expect(t.corrupt).toEqual([0])
      expect(t.f.rejected).toEqual([block(0, 0, 1000)])
      expect(t.f.sent.map((s) => s.index)).toEqual([0, 1, 0, 1])
    }))

  it.scopedLive("a version that changes during the read, or is unknown, means hashing every time", () =>
    Effect.gen(function*() {
      const t = yield* verifying()
      t.changeDuringRead(2)
      yield* t.ask(2)
      yield* t.ask(3)
      yield* t.ask(2)
      expect(t.hashes()).toBe(3) // 2 was never read at one version: hashed both times
      t.changeDuringRead(undefined)
      t.versions[3] = undefined
      yield* t.ask(2)
      yield* t.ask(3)
      yield* t.ask(2)
      yield* t.ask(3)
      // 2: now stable, hashed once more (first read at its final version), then trusted; 3: unknown, always.
      expect(t.hashes()).toBe(3 + 1 + 2)
      expect(t.f.sent.length).toBe(7)
      expect(t.corrupt).toEqual([])
    }))
})

describe("Uploader choker", () => {
  it.effect("4 regular slots + 1 optimistic; the optimistic slot rotates every 30 s (TestClock)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { connect, handle, up } = yield* setup()
      const keys = ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]
      keys.forEach((k, i) => connect(k, i + 1))
      for (const k of keys) handle.onPeerInterest!(k, true)
      const unchoked = () => keys.filter((k) => up.isUnchoked(k))
      expect(unchoked().length).toBe(5)
      const before = new Set(unchoked())
      yield* TestClock.adjust("10 seconds")
      expect(unchoked().length).toBe(5)
      const seen = new Set(before)
      for (let r = 0; r < 6; r++) {
        yield* TestClock.adjust("30 seconds")
        expect(unchoked().length).toBe(5)
        for (const k of unchoked()) seen.add(k)
      }
      // Every interested peer got a turn.
      expect(seen.size).toBe(keys.length)
      // A peer that leaves while unchoked frees its slot at once.
      const gone = unchoked()[0]!
      handle.onClosed(gone, new PeerError({ reason: "closed", address: gone, detail: "bye" }), [])
      expect(unchoked().length).toBe(5)

    })))

  it.effect("downloading: the regular slot follows the peers' rates to us over the last round", () =>
    Effect.scoped(Effect.gen(function*() {
      const { connect, handle, up } = yield* setup({ downloading: true, slots: 1 })
      for (const [k, n] of [["a", 1], ["b", 2], ["c", 3]] as const) {
        connect(k, n)
        handle.onPeerInterest!(k, true)
      }
      // b sends us blocks; the others nothing.
      for (let i = 0; i < 8; i++) handle.onBlock("b", 0, 0, 16384)
      yield* TestClock.adjust("10 seconds")
      expect(up.isUnchoked("b")).toBe(true)
      const regularWithB = ["a", "b", "c"].filter((k) => up.isUnchoked(k))
      expect(regularWithB.length).toBe(2) // b + the optimistic peer
      // Next round a sends us blocks, b nothing.
      for (let i = 0; i < 8; i++) handle.onBlock("a", 0, 0, 16384)
      yield* TestClock.adjust("10 seconds")
      expect(up.isUnchoked("a")).toBe(true)
    })))
})
