import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import type { InfoHashV1, PeerId } from "../../src/core/InfoHash.ts"
import * as Tcp from "../../src/net/Tcp.ts"
import type { PeerInfo } from "../../src/peer/TorrentHandle.ts"
import * as Extensions from "../../src/torrent/Extensions.ts"
import * as Holepunch from "../../src/torrent/Holepunch.ts"
import * as Swarm from "../../src/torrent/Swarm.ts"
import * as ExtensionHandshake from "../../src/wire/ExtensionHandshake.ts"
import * as UtHolepunch from "../../src/wire/UtHolepunch.ts"
import * as UtPex from "../../src/wire/UtPex.ts"
import { memoryConnection, TestTorrent } from "../peer/support.ts"
import { recordingControl } from "../support/peerControl.ts"

/** The peers' extension ids: ut_pex 4, ut_holepunch 5 (ours come from the default registry). */
const PEX = 4
const HP = 5
const ourHp = ExtensionHandshake.ourId(ExtensionHandshake.defaultRegistry(), ExtensionHandshake.UtHolepunch)!
const ourPex = ExtensionHandshake.ourId(ExtensionHandshake.defaultRegistry(), ExtensionHandshake.UtPex)!

const peerInfo = (
  direction: "outbound" | "inbound",
  host: string,
  port: number,
  transport: "tcp" | "utp" = "tcp"
): PeerInfo => ({
  transport,
  peerId: new Uint8Array(20) as PeerId,
  fast: true,
  extensionProtocol: true,
  dht: false,
  direction,
  encryption: "none",
  remote: { host, port }
})

const control = () => {
  const { c, sent } = recordingControl()
  const holepunch = () =>
    sent.filter((s) => s.id === HP).map((s) => Either.getOrThrow(UtHolepunch.decode(s.payload)))
  const pex = () => sent.filter((s) => s.id === PEX).map((s) => Either.getOrThrow(UtPex.decode(s.payload)))
  return { c, sent, holepunch, pex }
}

const handshake = (o: { holepunch?: boolean; p?: number; yourip?: Uint8Array } = {}) =>
  ExtensionHandshake.encode({
    m: new Map([[ExtensionHandshake.UtPex, PEX], ...(o.holepunch === false ? [] : [[ExtensionHandshake.UtHolepunch, HP] as const])]),
    ...(o.p === undefined ? {} : { p: o.p }),
    ...(o.yourip === undefined ? {} : { yourip: o.yourip })
  })

const setup = (config?: Partial<Holepunch.Config>) => {
  let now = 1_000_000
  const punches: Array<string> = []
  const log: Array<string> = []
  const ext = Extensions.make({
    metadata: () => undefined,
    isPrivate: false,
    listenPort: 6881,
    clientName: "test",
    reqq: 250,
    onPeers: () => {},
    onPunch: (from, to) => void punches.push(`${from}>${to.host}:${to.port}`),
    onHolepunchLog: (l) => void log.push(l),
    holepunch: config
  }, () => now)
  const peer = (key: string, info: PeerInfo, o?: Parameters<typeof handshake>[0]) => {
    const c = control()
    ext.connected(key, info, c.c)
    ext.onExtended(key, 0, handshake(o))
    return c
  }
  return { ext, peer, punches, log, advance: (ms: number) => void (now += ms), now: () => now }
}

const rendezvous = (ip: string, port: number) => UtHolepunch.encode(UtHolepunch.rendezvous({ ip, port }))!
const ends = (ms: ReadonlyArray<UtHolepunch.Message>) => ms.map((m) => `${m._tag} ${m.ip}:${m.port} ${m.error}`)

describe("Extensions: ut_holepunch relay", () => {
  it("relays a rendezvous to a connected peer that speaks it: connect to both, each with the other's address", () => {
    const { ext, log, peer } = setup()
    // a dialled in over uTP from behind its NAT (its mapped port is its listening port), b too, with `p`
    const a = peer("a", peerInfo("inbound", "203.0.113.1", 6881), { p: 6881 })
    const b = peer("b", peerInfo("inbound", "::ffff:198.51.100.2", 40000), { p: 7000 })
    ext.onExtended("a", ourHp, rendezvous("198.51.100.2", 7000))
    expect(ends(a.holepunch())).toEqual(["Connect 198.51.100.2:7000 0"])
    expect(ends(b.holepunch())).toEqual(["Connect 203.0.113.1:6881 0"])
    expect(ext.holepunchStats().relayed).toBe(1)
    expect(log.join("\n")).toMatch(/relayed rendezvous from a .* to 198\.51\.100\.2:7000/)
    // the far end of the connection matches too (a peer that gave no port)
    const c = peer("c", peerInfo("inbound", "192.0.2.9", 5555))
    ext.onExtended("c", ourHp, rendezvous("203.0.113.1", 6881))
    expect(ends(c.holepunch())).toEqual(["Connect 203.0.113.1:6881 0"])
    expect(ends(a.holepunch()).at(-1)).toBe("Connect 192.0.2.9:5555 0")
  })

  it("a peer that dialled us over uTP is given as the far end of that connection (its NAT's mapping), not host + p", () => {
    const { ext, peer } = setup()
    const a = peer("a", peerInfo("inbound", "203.0.113.1", 40001, "utp"), { p: 6881 })
    const b = peer("b", peerInfo("outbound", "198.51.100.2", 7000))
    ext.onExtended("a", ourHp, rendezvous("198.51.100.2", 7000))
    expect(ends(b.holepunch())).toEqual(["Connect 203.0.113.1:40001 0"])
    expect(ends(a.holepunch())).toEqual(["Connect 198.51.100.2:7000 0"])
  })

  it("answers errors: NotConnected, NoSupport, NoSelf (the asker, or us by its yourip), NoSuchPeer", () => {
    const { ext, peer } = setup()
    const a = peer("a", peerInfo("outbound", "10.0.0.1", 6881), { yourip: Uint8Array.of(10, 0, 0, 99) })
    const b = peer("b", peerInfo("outbound", "10.0.0.2", 6882), { holepunch: false })
    ext.onExtended("a", ourHp, rendezvous("10.0.0.3", 1))
    ext.onExtended("a", ourHp, rendezvous("10.0.0.2", 6882))
    ext.onExtended("a", ourHp, rendezvous("10.0.0.1", 6881))
    ext.onExtended("a", ourHp, rendezvous("10.0.0.99", 6881))
    ext.onExtended("a", ourHp, rendezvous("0.0.0.0", 6881))
    const E = UtHolepunch.ErrorCode
    expect(ends(a.holepunch())).toEqual([
      `Error 10.0.0.3:1 ${E.NotConnected}`,
      `Error 10.0.0.2:6882 ${E.NoSupport}`,
      `Error 10.0.0.1:6881 ${E.NoSelf}`,
      `Error 10.0.0.99:6881 ${E.NoSelf}`,
      `Error 0.0.0.0:6881 ${E.NoSuchPeer}`
    ])
    expect(b.sent).toEqual([])
    expect(ext.holepunchStats().relayErrors).toBe(5)
  })

  it("rate-limits each asker (a sliding minute), ignores garbage and peers that did not enable it", () => {
    const { advance, ext, peer } = setup({ relayPerMinute: 3 })
    const a = peer("a", peerInfo("outbound", "10.0.0.1", 6881))
    for (let i = 0; i < 5; i++) ext.onExtended("a", ourHp, rendezvous("10.0.0.3", 1))
    expect(a.holepunch().length).toBe(3)
    expect(ext.holepunchStats().relayLimited).toBe(2)
    advance(60_000)
    ext.onExtended("a", ourHp, rendezvous("10.0.0.3", 1))
    expect(a.holepunch().length).toBe(4)
    ext.onExtended("a", ourHp, Uint8Array.of(9, 9, 9))
    expect(a.holepunch().length).toBe(4)
    // c never enabled ut_holepunch: we cannot answer it
    const c = peer("c", peerInfo("outbound", "10.0.0.5", 1), { holepunch: false })
    ext.onExtended("c", ourHp, rendezvous("10.0.0.1", 6881))
    expect(c.sent).toEqual([])
  })

  it("PEX flags: holepunch for peers that enabled it; reachable only for peers we dialled without a punch", () => {
    const { ext, now, peer } = setup()
    const a = peer("a", peerInfo("outbound", "10.0.0.1", 6881))
    peer("b", peerInfo("inbound", "10.0.0.2", 40000), { p: 7000, holepunch: false })
    peer("c", peerInfo("outbound", "10.0.0.3", 7001, "utp"))
    // d: we dialled it because a relay said so
    ext.onExtended("a", ourHp, UtHolepunch.encode(UtHolepunch.connect({ ip: "10.0.0.4", port: 7002 }))!)
    peer("d", peerInfo("outbound", "10.0.0.4", 7002))
    ext.tick(now())
    const flags = Object.fromEntries(a.pex()[0]!.added.map((p) => [p.ip, p.flags]))
    const { Holepunch: H, Reachable: R, SupportsUtp: U } = UtPex.Flags
    expect(flags).toEqual({ "10.0.0.2": 0, "10.0.0.3": H | R | U, "10.0.0.4": H })
  })
})

describe("Extensions: ut_holepunch initiator and target", () => {
  const pexFrom = (ext: Extensions.Extensions, from: string, peers: ReadonlyArray<UtPex.PexPeer>) =>
    ext.onExtended(from, ourPex, UtPex.encode({ added: peers, dropped: [] }))

  it("a failed dial of a peer introduced with the holepunch flag sends a rendezvous through its introducer", () => {
    const { advance, ext, peer, punches } = setup({ maxAttempts: 2, retryAfterMs: 10_000 })
    const relay = peer("r", peerInfo("outbound", "10.0.0.1", 6881))
    pexFrom(ext, "r", [
      { ip: "10.9.0.1", port: 7000, flags: UtPex.Flags.Holepunch },
      { ip: "10.9.0.2", port: 7000, flags: 0 }
    ])
    // no flag: libtorrent's rule too (the target must support it)
    expect(ext.dialFailed({ host: "10.9.0.2", port: 7000 })).toBeUndefined()
    expect(ext.dialFailed({ host: "10.9.0.1", port: 7000 })).toBe("r")
    expect(ends(relay.holepunch())).toEqual(["Rendezvous 10.9.0.1:7000 0"])
    // too soon for another; the relay's connect is followed at once
    expect(ext.dialFailed({ host: "10.9.0.1", port: 7000 })).toBeUndefined()
    ext.onExtended("r", ourHp, UtHolepunch.encode(UtHolepunch.connect({ ip: "10.9.0.1", port: 7000 }))!)
    expect(punches).toEqual(["r>10.9.0.1:7000"])
    advance(10_000)
    expect(ext.dialFailed({ host: "10.9.0.1", port: 7000 })).toBe("r")
    advance(10_000)
    // attempts used up
    expect(ext.dialFailed({ host: "10.9.0.1", port: 7000 })).toBeUndefined()
    expect(ext.holepunchStats().rendezvousSent).toBe(2)
  })

  it("no rendezvous for our own address (a peer's yourip and our port)", () => {
    const { ext, peer } = setup()
    peer("r", peerInfo("outbound", "10.0.0.1", 6881), { yourip: Uint8Array.of(10, 9, 0, 7) })
    pexFrom(ext, "r", [{ ip: "10.9.0.7", port: 6881, flags: UtPex.Flags.Holepunch }])
    expect(ext.dialFailed({ host: "10.9.0.7", port: 6881 })).toBeUndefined()
  })

  it("no rendezvous for a loopback address through a relay that is not on our machine", () => {
    const { ext, peer } = setup()
    peer("r", peerInfo("outbound", "10.0.0.1", 6881))
    pexFrom(ext, "r", [{ ip: "127.0.0.1", port: 6893, flags: UtPex.Flags.Holepunch }])
    expect(ext.dialFailed({ host: "127.0.0.1", port: 6893 })).toBeUndefined()
    peer("local", peerInfo("outbound", "127.0.0.1", 7000))
    pexFrom(ext, "local", [{ ip: "127.0.0.1", port: 6893, flags: UtPex.Flags.Holepunch }])
    expect(ext.dialFailed({ host: "127.0.0.1", port: 6893 })).toBe("local")
  })

  it("the introducer must still be connected and speak ut_holepunch; the next introducer is used", () => {
    const { ext, peer } = setup()
    peer("r1", peerInfo("outbound", "10.0.0.1", 6881))
    const r2 = peer("r2", peerInfo("outbound", "10.0.0.2", 6881))
    peer("r3", peerInfo("outbound", "10.0.0.3", 6881), { holepunch: false })
    const target = { ip: "10.9.0.1", port: 7000, flags: UtPex.Flags.Holepunch }
    pexFrom(ext, "r3", [target])
    expect(ext.dialFailed({ host: target.ip, port: target.port })).toBeUndefined()
    pexFrom(ext, "r1", [target])
    pexFrom(ext, "r2", [target])
    ext.closed("r1")
    expect(ext.dialFailed({ host: target.ip, port: target.port })).toBe("r2")
    expect(ends(r2.holepunch())).toEqual(["Rendezvous 10.9.0.1:7000 0"])
  })

  it("target: connects we did not ask for are followed up to a limit per relay a minute; errors are logged", () => {
    const { advance, ext, log, peer, punches } = setup({ connectsPerMinute: 2 })
    peer("r", peerInfo("outbound", "10.0.0.1", 6881))
    const connect = (port: number) => UtHolepunch.encode(UtHolepunch.connect({ ip: "10.8.0.1", port }))!
    for (let i = 1; i <= 3; i++) ext.onExtended("r", ourHp, connect(i))
    expect(punches).toEqual(["r>10.8.0.1:1", "r>10.8.0.1:2"])
    advance(60_000)
    ext.onExtended("r", ourHp, connect(4))
    expect(punches.length).toBe(3)
    expect(ext.holepunchStats().connectsIgnored).toBe(1)
    ext.onExtended("r", ourHp, UtHolepunch.encode(UtHolepunch.error({ ip: "10.8.0.1", port: 9 }, 2))!)
    expect(log.at(-1)).toMatch(/cannot relay to 10\.8\.0\.1:9: NotConnected/)
  })
})

describe("Holepunch policy", () => {
  it("forgets introducers that left and bounds what it remembers", () => {
    const h = Holepunch.make({ maxTargets: 2 })
    const flagged = (port: number) => ({ ip: "10.0.0.1", port, flags: UtPex.Flags.Holepunch })
    h.introduced("r", [flagged(1), flagged(2), flagged(3)])
    const any = () => true
    expect(h.rendezvousVia({ ip: "10.0.0.1", port: 1 }, 0, any)).toBeUndefined() // the oldest went
    expect(h.rendezvousVia({ ip: "10.0.0.1", port: 3 }, 0, any)).toBe("r")
    h.forget("r")
    expect(h.rendezvousVia({ ip: "10.0.0.1", port: 2 }, 0, any)).toBeUndefined()
  })
})

describe("Holepunch policy properties", () => {
  const event = FastCheck.oneof(
    FastCheck.record({ t: FastCheck.constant("pex" as const), from: FastCheck.nat(3), port: FastCheck.nat(4), flag: FastCheck.boolean() }),
    FastCheck.record({ t: FastCheck.constant("fail" as const), port: FastCheck.nat(4), up: FastCheck.nat(15) }),
    FastCheck.record({ t: FastCheck.constant("connect" as const), from: FastCheck.nat(3), port: FastCheck.nat(4) }),
    FastCheck.record({ t: FastCheck.constant("forget" as const), from: FastCheck.nat(3) }),
    FastCheck.record({ t: FastCheck.constant("rendezvous" as const), from: FastCheck.nat(3) }),
    FastCheck.record({ t: FastCheck.constant("wait" as const), ms: FastCheck.integer({ min: 0, max: 30_000 }) })
  )
  it.prop("attempts bounded and spaced, relays are usable introducers, limits hold per sliding minute", [
    FastCheck.array(event, { maxLength: 200 })
  ], ([events]) => {
    const config = { maxAttempts: 3, retryAfterMs: 5_000, relayPerMinute: 4, connectsPerMinute: 2, maxTargets: 1000 }
    const h = Holepunch.make(config)
    let now = 0
    const introducers = new Map<number, Set<string>>()
    const sent = new Map<number, Array<number>>()
    const allowed = new Map<string, Array<number>>()
    const followed = new Map<string, Array<number>>()
    /** Rendezvous per address since the last forget. */
    const since = new Map<number, number>()
    for (const e of events) {
      if (e.t === "wait") now += e.ms
      else if (e.t === "pex") {
        h.introduced(`r${e.from}`, [{ ip: "10.0.0.1", port: e.port + 1, flags: e.flag ? UtPex.Flags.Holepunch : 0 }])
        if (e.flag) introducers.set(e.port, (introducers.get(e.port) ?? new Set()).add(`r${e.from}`))
      } else if (e.t === "forget") {
        h.forget(`r${e.from}`)
        for (const s of introducers.values()) s.delete(`r${e.from}`)
        allowed.delete(`r${e.from}`)
        followed.delete(`r${e.from}`)
        since.clear() // an address whose introducers all left is forgotten, its count with it
      } else if (e.t === "fail") {
        const usable = (k: string) => (Number(k.slice(1)) & e.up) !== 0
        const relay = h.rendezvousVia({ ip: "10.0.0.1", port: e.port + 1 }, now, usable)
        if (relay === undefined) continue
        expect(usable(relay)).toBe(true)
        expect(introducers.get(e.port)?.has(relay)).toBe(true)
        const times = sent.get(e.port) ?? []
        if (times.length > 0) expect(now - times.at(-1)!).toBeGreaterThanOrEqual(config.retryAfterMs)
        times.push(now)
        sent.set(e.port, times)
        since.set(e.port, (since.get(e.port) ?? 0) + 1)
        expect(since.get(e.port)).toBeLessThanOrEqual(config.maxAttempts)
      } else if (e.t === "rendezvous") {
        if (h.allowRendezvous(`r${e.from}`, now)) {
          const times = [...(allowed.get(`r${e.from}`) ?? []), now]
          allowed.set(`r${e.from}`, times)
          expect(times.filter((t) => now - t < 60_000).length).toBeLessThanOrEqual(config.relayPerMinute)
        }
      } else if (h.onConnect(`r${e.from}`, { ip: "10.0.0.1", port: e.port + 1 }, now)) {
        followed.set(`r${e.from}`, [...(followed.get(`r${e.from}`) ?? []), now])
        expect(h.punched({ ip: "10.0.0.1", port: e.port + 1 })).toBe(true)
      }
    }
    const s = h.stats()
    expect(s.rendezvousSent).toBe([...sent.values()].reduce((n, t) => n + t.length, 0))
  })
})

/** Lets the swarm's fibers run until `cond` holds (no clock involved). */
const until = (cond: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !cond(); i++) yield* Effect.yieldNow()
    expect(cond()).toBe(true)
  })

describe("Swarm: the dial side of hole punching (TestClock)", () => {
  const refused = (o: Tcp.DialOptions) =>
    Effect.fail(new Tcp.TcpError({ reason: "connect-timeout", address: `${o.host}:${o.port}`, cause: "no answer" }))

  it.scoped("a failed dial is reported; punch dials at once, ahead of the backoff, and the skipped wait does not act", () =>
    Effect.gen(function*() {
      const dials: Array<number> = []
      const failed: Array<string> = []
      const swarm = yield* Swarm.make({
        handle: new TestTorrent({ payload: new Uint8Array(100), pieceLength: 64, infoHash: new Uint8Array(20) as InfoHashV1 }),
        maxPeers: 5,
        dial: (o) => Effect.suspend(() => {
          dials.push(0)
          return refused(o)
        }),
        reconnect: Schedule.spaced("10 seconds").pipe(Schedule.intersect(Schedule.recurs(5))),
        reconnectKnown: Swarm.defaultReconnectKnown,
        close: () => {},
        onDialFailed: (host, port) => void failed.push(`${host}:${port}`)
      })
      yield* swarm.start
      swarm.add("10.0.0.9", 7000, "pex")
      yield* until(() => failed.length === 1)
      expect(dials.length).toBe(1)
      // waiting out 10 s of backoff; a punch dials now
      yield* TestClock.adjust("3 seconds")
      expect(dials.length).toBe(1)
      swarm.punch("10.0.0.9", 7000)
      yield* until(() => failed.length === 2)
      expect(dials.length).toBe(2)
      // the wait begun before the punch (due at 10 s) does nothing; the one begun by the punched dial's end does (13 s)
      yield* TestClock.adjust("7 seconds")
      yield* until(() => true)
      expect(dials.length).toBe(2)
      yield* TestClock.adjust("3 seconds")
      yield* until(() => dials.length === 3)
      expect(failed).toEqual(["10.0.0.9:7000", "10.0.0.9:7000", "10.0.0.9:7000"])
    }))
})

describe("Swarm: crossing connections of a hole punch", () => {
  it.scoped("an inbound connection from the address we are dialling: the dial gives way, and none starts while it runs", () =>
    Effect.gen(function*() {
      let dials = 0
      let interrupted = 0
      const swarm = yield* Swarm.make({
        handle: new TestTorrent({ payload: new Uint8Array(100), pieceLength: 64, infoHash: new Uint8Array(20) as InfoHashV1 }),
        maxPeers: 5,
        // a uTP SYN that is not answered yet
        dial: () => Effect.suspend(() => {
          dials++
          return Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void interrupted++)))
        }),
        reconnect: Swarm.defaultReconnect,
        reconnectKnown: Swarm.defaultReconnectKnown,
        close: () => {}
      })
      yield* swarm.start
      swarm.add("10.0.0.1", 6881, "pex")
      yield* until(() => dials === 1)
      // the peer's SYN crossed ours: its connection comes from the address we dial (uTP: one port for both)
      const conn = yield* memoryConnection()
      expect(conn.remoteAddress).toBe("10.0.0.1:6881")
      expect(yield* swarm.accept(conn, new Uint8Array(0), Effect.void)).toBe(true)
      expect(interrupted).toBe(1)
      expect(swarm.active()).toBe(1)
      // a relay's connect (or any source) naming it again does not dial it while the inbound session runs
      swarm.punch("10.0.0.1", 6881)
      swarm.add("10.0.0.1", 6881, "tracker")
      yield* until(() => true)
      expect(dials).toBe(1)
      // once it ends, the address may be dialled again
      conn.end()
      yield* until(() => swarm.active() === 0)
      swarm.punch("10.0.0.1", 6881)
      yield* until(() => dials === 2)
    }))
})
