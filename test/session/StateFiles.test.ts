/**
 * State files (the DHT routing table, a magnet's cached metadata): a missing one is silently absent; an unreadable
 * or unusable one is absent with one warning naming it (it used to be dropped without a word); saving goes through
 * AtomicFile (no temp file left, whatever happens).
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import type { InfoHashV1 } from "../../src/core/InfoHash.ts"
import type * as RoutingTable from "../../src/dht/RoutingTable.ts"
import * as StateFiles from "../../src/session/StateFiles.ts"

const tmpDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "state-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Runs `effect`, returning its value and the lines logged at warning and above. */
const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning" || logLevel._tag === "Error") {
        lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
      }
    })
    const value = yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return { value, lines }
  })

const infoHash = new Uint8Array(20).fill(0xcd) as InfoHashV1

describe("StateFiles", () => {
  it.scoped("a missing routing table or metadata file is absent, without a word", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const dht = yield* withLogs(StateFiles.loadDht(dir))
      const torrent = yield* withLogs(StateFiles.loadTorrent(dir, infoHash))
      expect(dht.value).toBeUndefined()
      expect(Option.isNone(torrent.value)).toBe(true)
      expect([...dht.lines, ...torrent.lines]).toEqual([])
    }))

  it.scoped("an unreadable routing table (a directory in its place) is absent with one warning naming it", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      Fs.mkdirSync(StateFiles.dhtPath(dir))
      const { value, lines } = yield* withLogs(StateFiles.loadDht(dir))
      expect(value).toBeUndefined()
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(StateFiles.dhtPath(dir))
    }))

  it.scoped("a routing table that is not JSON is absent with one warning", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      Fs.writeFileSync(StateFiles.dhtPath(dir), "{not json")
      const { value, lines } = yield* withLogs(StateFiles.loadDht(dir))
      expect(value).toBeUndefined()
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain("not valid JSON")
    }))

  it.scoped("cached metadata that is not a torrent, or another torrent's, is absent with one warning", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      Fs.writeFileSync(StateFiles.torrentPath(dir, infoHash), "garbage")
      const { value, lines } = yield* withLogs(StateFiles.loadTorrent(dir, infoHash))
      expect(Option.isNone(value)).toBe(true)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(StateFiles.torrentPath(dir, infoHash))
    }))

  it.scoped("saving and loading the routing table round-trips and leaves no temp file", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const snapshot: RoutingTable.Snapshot = { id: "ab".repeat(20), nodes: [] }
      yield* StateFiles.saveDht(dir, snapshot)
      expect(yield* StateFiles.loadDht(dir)).toEqual(snapshot)
      expect(Fs.readdirSync(dir)).toEqual(["dht.json"])
    }))

  it.scoped("a save that fails (the state directory is a file) is one warning, never a crash", () =>
    Effect.gen(function*() {
      const dir = yield* tmpDir
      const notADir = Path.join(dir, "state")
      Fs.writeFileSync(notADir, "x")
      const { lines } = yield* withLogs(StateFiles.saveDht(notADir, { id: "ab".repeat(20), nodes: [] }))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain("could not save the DHT routing table")
    }))
})
