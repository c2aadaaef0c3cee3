/**
 * Hostile peers as whole downloads: each adversary (test/support/adversary.ts, or a misbehaving in-process seeder)
 * runs on loopback next to an honest seeder, and our client dials both. In every scenario:
 * - the download completes from the honest peer, byte-identical (the honest seeder keeps us choked until the
 *   misbehaviour has been seen, so the adversary always gets its chance before the download can end);
 * - memory stays within a byte budget: the peak growth of `arrayBuffers` (socket chunks, write queues, piece
 *   buffers: where a hostile peer's bytes, or the bytes it makes us send, would pile up) stays under 32 MiB, while
 *   the floods below push or ask for 9 MiB to 320 MiB (and the JS heap, garbage included, under 64 MiB);
 * - the misbehaviour is logged exactly once, with the adversary's address as the `peer` annotation (nothing at info
 *   or above for an ordinary disconnect), and the honest peer is never logged.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Message from "../../src/wire/Message.ts"
import { type Adversary, adversary, type AdversaryOptions, bitfieldOf, repeated, times } from "../support/adversary.ts"
import { download, readFile, tempDir, testClient } from "../support/download.ts"
import { MiB, probe } from "../support/memory.ts"
import { build, seed } from "../support/seeder.ts"

// 31 pieces: not a multiple of 8, so a bitfield has spare bits.
const built = build({ name: "hostile.bin", single: true, files: [{ path: ["hostile.bin"], length: 1_000_003 }], pieceLength: 32768 })
const n = built.metainfo.pieceCount

const stops: Array<() => Promise<void>> = []
afterAll(() => Promise.all(stops.map((s) => s())))
const started = <A extends { readonly stop: () => Promise<void> }>(p: Promise<A>) =>
  Effect.promise(() => p).pipe(Effect.tap((a) => Effect.sync(() => stops.push(a.stop))))

interface Line {
  readonly level: LogLevel.LogLevel
  readonly message: string
  readonly peer: string | undefined
}

const capture = () => {
  const lines: Array<Line> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    const peer = HashMap.get(annotations, "peer").pipe(Option.map(String), Option.getOrUndefined)
    lines.push({ level: logLevel, message: text, peer })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}
const loud = (l: Line) => LogLevel.greaterThanEqual(l.level, LogLevel.Info)

interface Scenario {
  readonly name: string
  /** The adversary; `seeder` options make it a misbehaving seeder (support/seeder.ts) instead. */
  readonly adversary?: AdversaryOptions
  readonly seeder?: Parameters<typeof seed>[1]
  /** The one line logged for the adversary at info or above; undefined: none. */
  readonly logged: RegExp | undefined
  /** It ends banned (a `PeerBanned` event). */
  readonly banned: boolean
  /** The honest seeder starts serving once the adversary marked this (default: once it was logged). */
  readonly releaseOnMark?: string
  /** An ungated honest seeder with the first pieces, so that we have something to serve from the start. */
  readonly partialSeeder?: boolean
}

const block = (index: number, begin: number) => Message.Request({ index, begin, length: 16384 })

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "answers for another info-hash",
    adversary: { handshake: "wrong-info-hash" },
    logged: /^peer banned: wrong-info-hash: /,
    banned: true
  },
  {
    name: "answers with our own peer id",
    adversary: { handshake: "own-peer-id" },
    logged: /^peer is ourselves/,
    banned: false
  },
  {
    name: "sends a frame length of 2^32 - 1, then 64 MiB",
    adversary: {
      script: (p) => {
        p.raw(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 7))
        p.stream(times(new Uint8Array(64 * 1024), 1024))
      }
    },
    logged: /^peer banned: protocol: .*frame-too-large/,
    banned: true
  },
  {
    name: "sends a bitfield of the wrong size",
    adversary: { script: (p) => p.send([Message.Bitfield({ bytes: new Uint8Array(Math.ceil(n / 8) + 1) })]) },
    logged: /^peer banned: protocol: /,
    banned: true
  },
  {
    name: "sends a bitfield with its spare bits set",
    adversary: { script: (p) => p.send([Message.Bitfield({ bytes: new Uint8Array(Math.ceil(n / 8)).fill(0xff) })]) },
    logged: /^peer banned: protocol: /,
    banned: true
  },
  {
    name: "sends have for a piece out of range",
    adversary: { script: (p) => p.send([Message.Have({ index: n })]) },
    logged: /^peer banned: protocol: .*\(bad-index\): piece index 31, the torrent has 31 pieces/,
    banned: true
  },
  {
    name: "floods have messages (1M, 9 MiB)",
    adversary: {
      script: (p) => {
        const one = Array.from({ length: 4096 }, (_, i) => Message.encode(Message.Have({ index: i % n })))
        const chunk = new Uint8Array(one.length * 9)
        one.forEach((m, i) => chunk.set(m, i * 9))
        p.stream(times(chunk, 256))
      }
    },
    logged: /^peer banned: protocol: more than \d+ have messages/,
    banned: true
  },
  {
    name: "floods requests while choked (100k)",
    adversary: { script: (p) => p.stream(times(repeated(block(0, 0), 4096), 25)) },
    logged: /^peer banned: protocol: \d+ requests while choked/,
    banned: true
  },
  {
    name: "floods requests once unchoked and never reads (20k requests, 320 MiB asked)",
    partialSeeder: true,
    adversary: {
      script: (p) => {
        let unchoked = false
        let piece: number | undefined
        // One block is asked and read first: the piece is then in our upload cache and every request of the flood
        // is answered as it arrives. Flooding while the piece was still being read filled the peer's queue (500)
        // and had the rest rejected: 8 MiB left unread, a bound as well, but under the ban threshold.
        let state: "waiting" | "asked" | "flooding" = "waiting"
        p.onMessage((m) => {
          if (m._tag === "Unchoke") unchoked = true
          if (m._tag === "Have") piece ??= m.index
          if (m._tag === "Bitfield") piece ??= m.bytes[0]! & 0x80 ? 0 : undefined
          if (state === "waiting" && unchoked && piece !== undefined) {
            state = "asked"
            p.send([block(piece, 0)])
          }
        })
        p.onBlock(() => {
          if (state !== "asked") return
          state = "flooding"
          p.pauseReading()
          const reqs = Array.from({ length: 1024 }, (_, i) => block(piece!, (i % 2) * 16384))
          p.stream(times(Message.encodeBatch(reqs), 20))
        })
        p.send([Message.Interested()])
      }
    },
    logged: /^peer banned: protocol: more than \d+ bytes we sent are unread/,
    banned: true
  },
  {
    name: "sends data never requested (1000 blocks, 16 MiB)",
    adversary: {
      script: (p) => {
        p.send([Message.Unchoke()])
        p.stream(times(Message.encode(Message.Piece({ index: 0, begin: 0, block: new Uint8Array(16384) })), 1000))
      }
    },
    logged: /^peer banned: protocol: 9 unsolicited messages/,
    banned: true
  },
  {
    name: "answers requests with blocks of the wrong size",
    adversary: {
      script: (p) => {
        p.send([bitfieldOf(n, true), Message.Unchoke()])
        p.onMessage((m) => {
          if (m._tag === "Request") {
            p.send([Message.Piece({ index: m.index, begin: m.begin, block: new Uint8Array(m.length - 1) })])
          }
        })
      }
    },
    logged: /^peer banned: protocol: block of \d+ bytes for a request of \d+/,
    banned: true
  },
  {
    name: "sends its handshake one byte every 200 ms (slow-loris)",
    adversary: { handshake: "slow-loris" },
    logged: /^peer stalls: handshake-timeout: /,
    banned: false
  },
  {
    name: "accepts and never speaks",
    adversary: { handshake: "silent" },
    logged: /^peer stalls: handshake-timeout: /,
    banned: false
  },
  {
    name: "unchokes and never answers a request",
    seeder: { stall: true },
    logged: /^peer stalls: snubbed: /,
    banned: false
  },
  {
    name: "sends corrupt blocks for every piece",
    seeder: { corrupt: true },
    logged: /^peer banned: sent data that failed hash checks/,
    banned: true
  },
  {
    name: "disconnects in the middle of a block",
    adversary: {
      script: (p) => {
        p.send([bitfieldOf(n, true), Message.Unchoke()])
        let cut = false
        p.onMessage((m) => {
          if (m._tag !== "Request" || cut) return
          cut = true
          const whole = Message.encode(Message.Piece({ index: m.index, begin: m.begin, block: new Uint8Array(m.length) }))
          p.raw(whole.subarray(0, 13 + m.length / 2))
          marks?.("mid-block")
          setImmediate(() => p.destroy())
        })
      }
    },
    releaseOnMark: "mid-block",
    logged: undefined,
    banned: false
  }
]

/** Set by the scenario running now (scripts only get their connection). */
let marks: ((what: string) => void) | undefined

const waitUntil = (what: string, f: () => boolean) =>
  Effect.sleep("20 millis").pipe(
    Effect.repeat({ until: f }),
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`gave up waiting for ${what}`) }),
    Effect.orDie
  )

describe("hostile peers: the download completes from the honest peer", () => {
  for (const s of scenarios) {
    it.live(`a peer that ${s.name}`, () =>
      Effect.gen(function*() {
        let release!: () => void
        const gate = new Promise<void>((resolve) => release = resolve)
        const honest = yield* started(seed(built, { unchokeWhen: gate }))
        const partial = s.partialSeeder === true
          ? [yield* started(seed(built, { pieces: [0, 1, 2, 3] }))]
          : []
        let bad: { readonly port: number; readonly marks: () => ReadonlyArray<string> }
        if (s.seeder !== undefined) bad = { ...(yield* started(seed(built, s.seeder))), marks: () => [] }
        else {
          const a: Adversary = yield* started(adversary(built, s.adversary))
          marks = a.mark
          bad = a
        }
        const badAddr = `127.0.0.1:${bad.port}`
        const logs = capture()
        const dir = tempDir("hostile")
        const memory = probe()
        const fiber = yield* download(built, dir, [bad.port, honest.port, ...partial.map((p) => p.port)]).pipe(
          Effect.provide(logs.layer),
          Effect.fork
        )
        yield* s.releaseOnMark === undefined
          ? waitUntil(`a log line for ${badAddr}`, () => logs.lines.some((l) => l.peer === badAddr && loud(l)))
          : waitUntil(`the adversary to mark "${s.releaseOnMark}"`, () => bad.marks().includes(s.releaseOnMark!))
        release()
        const out = yield* Fiber.join(fiber)
        const peak = memory.stop()
        console.log(
          `hostile: a peer that ${s.name}: peak growth arrayBuffers ${(peak.arrayBuffers / MiB).toFixed(1)} MiB, ` +
            `heap ${(peak.heapUsed / MiB).toFixed(1)} MiB`
        )

        expect(Buffer.compare(readFile(built, dir, 0), Buffer.from(built.files[0]!))).toBe(0)
        expect(peak.arrayBuffers).toBeLessThan(32 * MiB)
        expect(peak.heapUsed).toBeLessThan(64 * MiB) // includes garbage not yet collected
        const about = logs.lines.filter((l) => l.peer === badAddr && loud(l))
        if (s.logged === undefined) expect(about).toEqual([])
        else {
          expect(about.map((l) => l.message)).toHaveLength(1)
          expect(about[0]!.message).toMatch(s.logged)
        }
        expect(logs.lines.filter((l) => l.peer === `127.0.0.1:${honest.port}` && loud(l))).toEqual([])
        const bans = out.events.flatMap((e) => (e._tag === "PeerBanned" ? [e.addr] : []))
        expect(bans).toEqual(s.banned ? [badAddr] : [])
      }).pipe(
        Effect.provide(testClient({
          peerConfig: {
            requestTimeout: 1_000,
            tickInterval: 100,
            connectTimeout: 2_000,
            handshakeTimeout: 1_000,
            introductionTimeout: 1_000
          }
        }))
      ), 90_000)
  }
})
