/** `--down-limit`: sessions stop reading while the bucket is in debt; they resume unless the torrent holds them. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import type { PeerId } from "../../src/core/InfoHash.ts"
import type { PeerControl } from "../../src/peer/TorrentHandle.ts"
import * as DownLimit from "../../src/torrent/DownLimit.ts"
import { TestTorrent } from "../peer/support.ts"

const fake = () => {
  const f = {
    paused: false,
    control: {
      sendHave: () => {},
      setInterested: () => {},
      requestMore: () => {},
      cancel: () => {},
      choke: () => {},
      unchoke: () => {},
      sendBlock: () => false,
      reject: () => {},
      sendExtended: () => {},
      allowFast: () => {},
      pauseReading: () => void (f.paused = true),
      resumeReading: () => void (f.paused = false),
      close: () => {}
    } satisfies PeerControl
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
