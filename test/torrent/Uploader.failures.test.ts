/**
 * A piece the uploader cannot read: its requests are refused and the failure is logged (a warning the first time
 * for each piece and message), never dropped; EBADF (a storage descriptor closed under it) is an error and goes to
 * `onBadDescriptor`, on which the torrent stops. Driven through the wrapped handle with a fake session control.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type { PeerId } from "../../src/core/InfoHash.ts"
import type { BlockRef, PeerControl, TorrentHandle } from "../../src/peer/TorrentHandle.ts"
import { StorageError } from "../../src/storage/Storage.ts"
import * as Uploader from "../../src/torrent/Uploader.ts"

const pieceLength = 32 * 1024
const pieceCount = 4
const noop = () => {}
const inner = {
  onConnected: noop,
  onPeerBitfield: () => false,
  onPeerHave: () => false,
  onPeerHaveAll: () => false,
  onPeerHaveNone: () => false,
  onClosed: noop
} as unknown as TorrentHandle

const failing = (code: string) =>
  new StorageError({
    reason: "read",
    path: "/data/x.bin",
    detail: `${code}: injected, read`,
    cause: Object.assign(new Error(`${code}: injected, read`), { code })
  })

const serve = (code: string) => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  const bad: Array<unknown> = []
  const rejected: Array<BlockRef> = []
  const run = Effect.gen(function*() {
    const up = yield* Uploader.make({
      storage: { readPiece: () => Effect.fail(failing(code)) },
      onBadDescriptor: (e) => Effect.sync(() => void bad.push(e)),
      pieceCount,
      pieceLength,
      totalLength: pieceCount * pieceLength,
      has: () => true,
      seeding: () => true,
      random: () => 0.5
    })
    const handle = up.wrap(inner)
    const control = {
      sendHave: noop,
      setInterested: noop,
      requestMore: noop,
      cancel: noop,
      choke: noop,
      unchoke: noop,
      sendBlock: () => true,
      reject: (b: BlockRef) => void rejected.push(b),
      sendExtended: noop,
      allowFast: noop,
      pauseReading: noop,
      resumeReading: noop,
      close: noop
    } satisfies PeerControl
    handle.onConnected("a", {
      peerId: new Uint8Array(20).fill(1) as PeerId,
      fast: true,
      extensionProtocol: true,
      dht: false,
      direction: "inbound",
      encryption: "none",
      remote: { host: "127.0.0.1", port: 1 }
    }, control)
    handle.onPeerInterest!("a", true)
    for (let round = 0; round < 3; round++) {
      handle.onPeerRequest!("a", { index: 1, begin: 0, length: 16384 })
      yield* Effect.sleep("20 millis")
    }
  })
  return Effect.scoped(run).pipe(
    Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
    Logger.withMinimumLogLevel(LogLevel.All),
    Effect.as({ lines, bad, rejected })
  )
}

describe("Uploader read failures", () => {
  it.live("a read error refuses the requests and is a warning once per piece and message (then debug)", () =>
    Effect.gen(function*() {
      const { lines, bad, rejected } = yield* serve("EIO")
      expect(rejected).toHaveLength(3)
      expect(lines.filter((l) => l.startsWith("WARN") && l.includes("piece 1 could not be read"))).toHaveLength(1)
      expect(lines.filter((l) => l.startsWith("DEBUG") && l.includes("piece 1 could not be read"))).toHaveLength(2)
      expect(bad).toEqual([])
    }))

  it.live("EBADF is an error and goes to onBadDescriptor (the torrent stops on it)", () =>
    Effect.gen(function*() {
      const { lines, bad, rejected } = yield* serve("EBADF")
      expect(rejected).toHaveLength(3)
      expect(bad).toHaveLength(3)
      expect(lines.filter((l) => l.startsWith("ERROR") && l.includes("EBADF"))).toHaveLength(3)
    }))
})
