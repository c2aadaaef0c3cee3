/**
 * BEP 55 as a model-based concurrency test: the real `Extensions` (with its `Holepunch` policy) and the real `Swarm`,
 * wired as Torrent.ts wires them (a failed dial → `dialFailed` → rendezvous; a relay's `connect` → `swarm.punch`).
 * fast-check generates what the peers do (PEX introductions, relays connecting and disconnecting, stray connects and
 * errors, our dials, the scope closing); its scheduler decides when each dial fails and when each relay's answer to a
 * rendezvous arrives, interleaved with all of that. Relays also ask us to introduce them to each other (the relay role).
 *
 * What must hold whatever the order: a rendezvous goes only to a connected relay that speaks ut_holepunch and
 * introduced the address; a `connect` is followed (dialled) exactly when it comes from the relay we asked and still
 * wait on (unsolicited connects are limited to 0 here), so an answer from a relay that left, or for an address whose
 * rendezvous is over, is ignored without error; a rendezvous asked of us is answered once (connect to both, or an
 * error) and only to peers still connected; nothing is dialled after the scope closed; no call throws; and once
 * every relay has left, the policy holds no state (no address, no rate window).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import * as Tcp from "../../src/net/Tcp.ts"
import type { PeerInfo } from "../../src/peer/TorrentHandle.ts"
import * as Extensions from "../../src/torrent/Extensions.ts"
import * as Swarm from "../../src/torrent/Swarm.ts"
import * as ExtensionHandshake from "../../src/wire/ExtensionHandshake.ts"
import * as UtHolepunch from "../../src/wire/UtHolepunch.ts"
import * as UtPex from "../../src/wire/UtPex.ts"
import { TestTorrent } from "../peer/support.ts"
import { recordingControl } from "../support/peerControl.ts"

/** The relays' extension ids (ours come from the default registry). */
const PEX = 4
const HP = 5
const ourHp = ExtensionHandshake.ourId(ExtensionHandshake.defaultRegistry(), ExtensionHandshake.UtHolepunch)!
const ourPex = ExtensionHandshake.ourId(ExtensionHandshake.defaultRegistry(), ExtensionHandshake.UtPex)!

const relays = ["r0", "r1", "r2"]
const targets = [0, 1, 2, 3].map((k) => ({ ip: `10.9.0.${k + 1}`, port: 7000 }))
const tkey = (t: { readonly ip: string; readonly port: number }) => `${t.ip}:${t.port}`

type Step =
  | { readonly op: "pex"; readonly relay: number; readonly target: number }
  | { readonly op: "dial"; readonly target: number }
  | { readonly op: "leave"; readonly relay: number }
  | { readonly op: "join"; readonly relay: number }
  | { readonly op: "stray"; readonly relay: number; readonly target: number; readonly connect: boolean }
  | { readonly op: "ask"; readonly relay: number; readonly other: number }

const relayArb = FastCheck.nat(relays.length - 1)
const targetArb = FastCheck.nat(targets.length - 1)
const stepArb: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  { weight: 2, arbitrary: FastCheck.record({ op: FastCheck.constant("ask" as const), relay: relayArb, other: relayArb }) },
  { weight: 4, arbitrary: FastCheck.record({ op: FastCheck.constant("pex" as const), relay: relayArb, target: targetArb }) },
  { weight: 5, arbitrary: FastCheck.record({ op: FastCheck.constant("dial" as const), target: targetArb }) },
  { weight: 2, arbitrary: FastCheck.record({ op: FastCheck.constant("leave" as const), relay: relayArb }) },
  { weight: 2, arbitrary: FastCheck.record({ op: FastCheck.constant("join" as const), relay: relayArb }) },
  {
    weight: 2,
    arbitrary: FastCheck.record({
      op: FastCheck.constant("stray" as const),
      relay: relayArb,
      target: targetArb,
      connect: FastCheck.boolean()
    })
  }
)

const relayInfo = (n: number): PeerInfo => ({
  transport: "utp",
  peerId: new Uint8Array(20).fill(n + 1) as PeerId,
  fast: true,
  extensionProtocol: true,
  dht: false,
  direction: "outbound",
  encryption: "none",
  remote: { host: `10.0.0.${n + 1}`, port: 6881 }
})
const relayHandshake = ExtensionHandshake.encode({
  m: new Map([[ExtensionHandshake.UtPex, PEX], [ExtensionHandshake.UtHolepunch, HP]])
})

describe("hole punching under any order of dial outcomes and relay answers (model, fast-check scheduler)", () => {
  it("rendezvous only via live introducers; connects followed only from the relay asked; nothing after close; no state left", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.scheduler(),
        FastCheck.array(stepArb, { minLength: 1, maxLength: 50, size: "max" }),
        FastCheck.array(FastCheck.boolean(), { minLength: 1, maxLength: 8 }),
        FastCheck.nat(60),
        async (s, steps, answerKinds, closeAt) => {
          const problems: Array<string> = []
          let now = 1_000_000
          let closed = false
          let dialsAfterClose = 0
          let answersUsed = 0
          /** Connects and errors we sent as the relay; rendezvous peers asked of us. */
          const relayed = { connects: 0, errors: 0 }
          let askedOfUs = 0
          /** The model: relays connected (with the epoch of their connection), who introduced what, rendezvous out. */
          const epoch = new Map<string, number>()
          let epochs = 0
          const introducers = new Map<string, Set<string>>()
          const askedVia = new Map<string, string>()
          /** Punches expected from the connect being delivered (set just before delivery). */
          let expectPunch: string | undefined
          let punchedNow: Array<string> = []

          const deliver = (relay: string, message: UtHolepunch.Message) => {
            const to = tkey(message)
            const live = epoch.has(relay)
            expectPunch = live && message._tag === "Connect" && askedVia.get(to) === relay ? to : undefined
            punchedNow = []
            try {
              ext.onExtended(relay, ourHp, UtHolepunch.encode(message)!)
            } catch (e) {
              problems.push(`${relay}'s ${message._tag} for ${to} threw: ${String(e)}`)
            }
            if (expectPunch !== undefined && !punchedNow.includes(to)) {
              problems.push(`${relay}'s connect for ${to} (asked of it) was not followed`)
            }
            if (live && askedVia.get(to) === relay && message._tag !== "Rendezvous") askedVia.delete(to)
            expectPunch = undefined
          }

          const controlOf = (relay: string, myEpoch: number) =>
            recordingControl({
              sendExtended: (id, payload) => {
                if (id !== HP) return
                const m = Either.getOrThrow(UtHolepunch.decode(payload))
                const to = tkey(m)
                if (epoch.get(relay) !== myEpoch) problems.push(`${m._tag} for ${to} sent to ${relay}, which left`)
                // as the relay: our connects and errors answer a rendezvous a connected peer sent us
                if (m._tag !== "Rendezvous") return void (m._tag === "Error" ? relayed.errors++ : relayed.connects++)
                if (introducers.get(to)?.has(relay) !== true) {
                  problems.push(`rendezvous for ${to} sent to ${relay}, which did not introduce it`)
                }
                askedVia.set(to, relay)
                const connect = answerKinds[answersUsed++ % answerKinds.length]!
                const answer = connect
                  ? UtHolepunch.connect({ ip: m.ip, port: m.port })
                  : UtHolepunch.error({ ip: m.ip, port: m.port }, UtHolepunch.ErrorCode.NotConnected)
                // The relay's answer arrives when the scheduler says; on a connection that is gone, it never does.
                void s.schedule(Promise.resolve(), `${relay} answers ${answer._tag} for ${to}`).then(() => {
                  if (epoch.get(relay) === myEpoch) deliver(relay, answer)
                })
              }
            }).c

          const ext = Extensions.make({
            metadata: () => undefined,
            isPrivate: false,
            listenPort: 6881,
            clientName: "test",
            reqq: 250,
            onPeers: () => {},
            onPunch: (from, to) => {
              const k = `${to.host}:${to.port}`
              punchedNow.push(k)
              if (expectPunch !== k) problems.push(`connect from ${from} for ${k} followed, but ${askedVia.get(k) ?? "no relay"} was asked`)
              swarm.punch(to.host, to.port)
            },
            // unsolicited connects are never followed, so "followed" means "asked of this relay"
            holepunch: { connectsPerMinute: 0, maxAttempts: 3, retryAfterMs: 0, relayPerMinute: 2 }
          }, () => now)

          const scope = Effect.runSync(Scope.make())
          const swarm: Swarm.Swarm = Effect.runSync(Scope.extend(
            Swarm.make({
              handle: new TestTorrent({ payload: new Uint8Array(100), pieceLength: 64, infoHash: new Uint8Array(20) as InfoHashV1 }),
              maxPeers: 8,
              // Every dial fails (a NAT drops the SYN), when the scheduler says.
              dial: (a) =>
                Effect.async<Tcp.Connection, Tcp.TcpError>((resume) => {
                  if (closed) dialsAfterClose++
                  void s.schedule(Promise.resolve(), `dial ${a.host}:${a.port} fails`).then(() =>
                    resume(Effect.fail(new Tcp.TcpError({ reason: "connect-failed", address: `${a.host}:${a.port}`, cause: "refused" })))
                  )
                }),
              reconnect: Schedule.stop,
              reconnectKnown: Schedule.stop,
              close: () => {},
              onDialFailed: (host, port) => {
                try {
                  ext.dialFailed({ host, port })
                } catch (e) {
                  problems.push(`dialFailed(${host}:${port}) threw: ${String(e)}`)
                }
              }
            }),
            scope
          ))
          await Effect.runPromise(Scope.extend(swarm.start, scope))

          const join = (n: number) => {
            const r = relays[n]!
            if (epoch.has(r)) return
            const e = ++epochs
            epoch.set(r, e)
            ext.connected(r, relayInfo(n), controlOf(r, e))
            ext.onExtended(r, 0, relayHandshake)
          }
          const leave = (r: string) => {
            if (!epoch.delete(r)) return
            ext.closed(r)
            for (const set of introducers.values()) set.delete(r)
            for (const [t, via] of askedVia) if (via === r) askedVia.delete(t)
          }
          relays.forEach((_, n) => join(n))
          const settle = () => new Promise((resolve) => setTimeout(resolve, 0))
          const drain = async () => {
            for (let i = 0; i < 40 && s.count() > 0; i++) {
              await s.waitAll()
              await settle()
            }
          }

          for (let i = 0; i < steps.length; i++) {
            if (i === closeAt) {
              await Effect.runPromise(Scope.close(scope, Exit.void))
              closed = true
            }
            const step = steps[i]!
            try {
              if (step.op === "pex") {
                const r = relays[step.relay]!
                const t = targets[step.target]!
                now += 30_001 // one PEX message per peer per 30 s is read
                ext.onExtended(r, ourPex, UtPex.encode({ added: [{ ...t, flags: UtPex.Flags.Holepunch }], dropped: [] }))
                if (epoch.has(r)) introducers.set(tkey(t), (introducers.get(tkey(t)) ?? new Set()).add(r))
              } else if (step.op === "dial") swarm.add(targets[step.target]!.ip, targets[step.target]!.port, "pex")
              else if (step.op === "leave") leave(relays[step.relay]!)
              else if (step.op === "join") join(step.relay)
              else if (step.op === "ask") {
                // a relay asks us to introduce it to another (itself: NoSelf; one that left: NotConnected)
                const r = relays[step.relay]!
                if (epoch.has(r)) askedOfUs++
                const other = relayInfo(step.other).remote
                ext.onExtended(r, ourHp, UtHolepunch.encode(UtHolepunch.rendezvous({ ip: other.host, port: other.port }))!)
              }
              else {
                const t = targets[step.target]!
                const r = relays[step.relay]!
                deliver(r, step.connect ? UtHolepunch.connect(t) : UtHolepunch.error(t, UtHolepunch.ErrorCode.NoSupport))
              }
            } catch (e) {
              problems.push(`step ${JSON.stringify(step)} threw: ${String(e)}`)
            }
            // Let one pending dial or answer complete (the scheduler picks which), and the fibers it wakes run.
            if (s.count() > 0) await s.waitOne()
            await settle()
          }
          await drain()
          // Every relay leaves; answers still scheduled find their connection gone.
          relays.forEach(leave)
          await drain()
          if (!closed) {
            await Effect.runPromise(Scope.close(scope, Exit.void))
            closed = true
          }
          await drain()
          expect(problems).toEqual([])
          expect(dialsAfterClose).toBe(0)
          const stats = ext.holepunchStats()
          // each rendezvous asked of us answered once (connect to both ends, or an error to the asker), or limited
          expect(relayed.connects / 2 + relayed.errors + stats.relayLimited).toBe(askedOfUs)
          expect({ targets: stats.targets, peerWindows: stats.peerWindows }).toEqual({ targets: 0, peerWindows: 0 })
        }
      ),
      { numRuns: 150 }
    )
  })
})
