/**
 * Interop smoke test: our session downloads a payload from a real aria2c seeder on 127.0.0.1.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Bytes from "../../src/core/Bytes.ts"
import type { InfoHashV1 } from "../../src/core/InfoHash.ts"
import * as PeerSession from "../../src/peer/PeerSession.ts"
import * as Aria2Seeder from "../support/aria2Seeder.ts"
import { TestTorrent } from "./support.ts"

const pieceLength = 256 * 1024
const payload = Uint8Array.from({ length: 9 * pieceLength + 7_777 }, (_, i) => ((i * 2654435761) >>> 13) & 0xff)

describe.runIf(Aria2Seeder.shouldRun("peer interop with aria2c"))("PeerSession interop", () => {
  it.scopedLive("downloads every piece byte-exact from an aria2c seeder", () =>
    Effect.gen(function*() {
      const seeder = yield* Effect.acquireRelease(
        Effect.promise(() => Aria2Seeder.start(payload, 18)),
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
      yield* Fiber.interrupt(fiber)
    }), 30_000)
})
