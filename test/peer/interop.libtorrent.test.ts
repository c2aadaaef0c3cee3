/**
 * Interop smoke test: our session downloads a few pieces from a real libtorrent 2.0 seeder on 127.0.0.1.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1 } from "../../src/core/InfoHash.ts"
import * as PeerSession from "../../src/peer/PeerSession.ts"
import * as LibtorrentSeeder from "../support/libtorrentSeeder.ts"
import { TestTorrent } from "./support.ts"

const pieceLength = 256 * 1024
// 12 full pieces and a short last one, pseudo-random.
const payload = (() => {
  const out = new Uint8Array(12 * pieceLength + 54_321)
  let x = 0x9e3779b9
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
})()

describe.runIf(LibtorrentSeeder.shouldRun("peer interop with libtorrent"))("PeerSession interop", () => {
  it.scopedLive("downloads every piece byte-exact from a libtorrent 2.0 seeder", () =>
    Effect.gen(function*() {
      const seeder = yield* Effect.acquireRelease(
        Effect.promise(() => LibtorrentSeeder.start(payload, pieceLength)),
        (s) => Effect.promise(() => s.stop())
      )
      const t = new TestTorrent({ payload, pieceLength, infoHash: Bytes.fromHex(seeder.infoHash) as InfoHashV1 })
      const complete = yield* Deferred.make<void>()
      t.onComplete = () => Deferred.unsafeDone(complete, Exit.void)
      const fiber = yield* Effect.fork(PeerSession.connect({ host: "127.0.0.1", port: seeder.port, handle: t }))
      const ended = Fiber.join(fiber).pipe(
        Effect.catchAll((e) => Effect.dieMessage(`session ended early: ${e.message}\n${seeder.log()}`))
      )
      yield* Deferred.await(complete).pipe(Effect.raceFirst(ended), Effect.timeout("20 seconds"))
      expect(t.hashFailures).toBe(0)
      expect(Bytes.equals(t.data, payload)).toBe(true)
      expect(t.events).toContain("unchoked")
      yield* Fiber.interrupt(fiber)
    }), 30_000)
})
