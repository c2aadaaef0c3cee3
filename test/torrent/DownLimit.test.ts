/** `--down-limit`: sessions stop reading while the bucket is in debt; they resume unless the torrent holds them. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import type { PeerId } from "../../src/core/InfoHash.ts"
import * as DownLimit from "../../src/torrent/DownLimit.ts"
import * as RateLimit from "../../src/torrent/RateLimit.ts"
import { TestTorrent } from "../peer/support.ts"
import { recordingControl } from "../support/peerControl.ts"

const fake = () => {
  const f = {
    paused: false,
    control: recordingControl({
      pauseReading: () => void (f.paused = true),
      resumeReading: () => void (f.paused = false)
    }).c
  }
  return f
}

describe("DownLimit", () => {
  it.effect("pauses every session while over the rate, resumes when the debt is paid (TestClock)", () =>
    Effect.scoped(Effect.gen(function*() {
      const inner = new TestTorrent({ payload: new Uint8Array(65536), pieceLength: 32768 })
      const handle = (yield* DownLimit.make(16384))({ ...inner, onBlock: () => true })
      const a = fake()
      const b = fake()
      const peerId = new Uint8Array(20) as PeerId
      const info = {
        peerId,
        fast: true,
        extensionProtocol: true,
        dht: false,
        direction: "outbound" as const,
        encryption: "none" as const,
        remote: { host: "127.0.0.1", port: 1 }
      }
      handle.onConnected("a", info, a.control)
      handle.onConnected("b", info, b.control)
      handle.onBlock("a", 0, 0, 16384) // within the burst
      expect(a.paused || b.paused).toBe(false)
      handle.onBlock("a", 0, 16384, 16384) // over: everyone stops reading
      expect(a.paused && b.paused).toBe(true)
      // The torrent's own backpressure holds b.
      inner.controls.get("b")!.pauseReading()
      yield* TestClock.adjust("2 seconds")
      expect(a.paused).toBe(false)
      expect(b.paused).toBe(true)
      inner.controls.get("b")!.resumeReading()
      expect(b.paused).toBe(false)
    })))
})

describe("DownLimit (adjustable, shared)", () => {
  const info = {
    peerId: new Uint8Array(20) as PeerId,
    fast: true,
    extensionProtocol: true,
    dht: false,
    direction: "outbound" as const,
    encryption: "none" as const,
    remote: { host: "127.0.0.1", port: 1 }
  }

  it.effect("setRate takes effect at once: a limit holds the next block over it, lifting it resumes reading now", () =>
    Effect.scoped(Effect.gen(function*() {
      const inner = new TestTorrent({ payload: new Uint8Array(65536), pieceLength: 32768 })
      const limit = yield* DownLimit.makeAdjustable(0)
      const handle = limit.wrap({ ...inner, onBlock: () => true })
      const a = fake()
      handle.onConnected("a", info, a.control)
      for (let i = 0; i < 8; i++) handle.onBlock("a", 0, 0, 16384)
      expect(a.paused).toBe(false) // unlimited
      limit.setRate(16384)
      expect(limit.rate()).toBe(16384)
      handle.onBlock("a", 0, 0, 16384 + 13) // the burst (MIN_BURST)
      handle.onBlock("a", 0, 0, 16384) // over
      expect(a.paused).toBe(true)
      limit.setRate(0)
      expect(a.paused).toBe(false) // at once, no clock moved
    })))

  it.effect("a shared bucket limits two torrents together; its rate can change under them", () =>
    Effect.scoped(Effect.gen(function*() {
      const shared = RateLimit.makeAdjustable(32768, { now: 0 })
      const one = yield* DownLimit.makeAdjustable(0, shared)
      const two = yield* DownLimit.makeAdjustable(0, shared)
      const t1 = new TestTorrent({ payload: new Uint8Array(65536), pieceLength: 32768 })
      const t2 = new TestTorrent({ payload: new Uint8Array(65536), pieceLength: 32768 })
      const h1 = one.wrap({ ...t1, onBlock: () => true })
      const h2 = two.wrap({ ...t2, onBlock: () => true })
      const a = fake()
      const b = fake()
      h1.onConnected("a", info, a.control)
      h2.onConnected("b", info, b.control)
      h1.onBlock("a", 0, 0, 16384)
      h2.onBlock("b", 0, 0, 16384)
      expect(a.paused || b.paused).toBe(false) // 32 KiB: the shared burst
      h2.onBlock("b", 0, 0, 16384)
      expect(b.paused).toBe(true) // the second torrent pays for the first's bytes too
      expect(a.paused).toBe(false)
      yield* TestClock.adjust("1 second")
      expect(b.paused).toBe(false)
      h1.onBlock("a", 0, 0, 65536)
      expect(a.paused).toBe(true)
      // The session lifts its limit: within the 250 ms re-check, without the 2 s the debt would take.
      RateLimit.setRate(shared, 0, 1000)
      yield* TestClock.adjust("250 millis")
      expect(a.paused).toBe(false)
    })))
})
