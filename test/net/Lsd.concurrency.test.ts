/**
 * Local Service Discovery's registry under concurrency, as a model-based test: the map of registered torrents is
 * shared by registrations and their release, the announce loop (timers, sends), the sockets' receive callbacks and
 * the close of Lsd's scope. Sockets are in-memory (Lsd's `udp` option), time is the TestClock, and fast-check's
 * scheduler decides when each send completes, when each datagram (a LAN host's announce, garbage, or our own looped
 * back) is delivered, and how those interleave with a random sequence of registrations (the same hash twice
 * included), releases, clock advances, interface changes and the close.
 *
 * What must hold whatever the order:
 * - a peer is handed only to a registration live at that moment, for a hash the datagram named, from the host and
 *   port it named, and only if that host is inside the subnet of one of our interfaces at the last refresh; and
 *   every registration live across the delivery of such a datagram is handed it (a second registration of a hash
 *   does not take the first one's place, nor does releasing it silence the other);
 * - our own announces looped back, garbage, foreign subnets and unknown hashes are never reported;
 * - no announce names a hash whose every registration was released, nor goes out on a closed socket;
 * - announce rounds start at least `gap` (200 ms) apart on the TestClock, each socket once a round (at most 5
 *   datagrams a second on each LAN);
 * - after the scope closed: nothing sent, nothing reported, every socket closed, no fiber left; before it, the
 *   announce loop is alive (no defect killed it); no registration, release or close fails.
 * It found two bugs (fixed): an announce round went on to the remaining interfaces after its torrent's release had
 * completed, and a second registration of a hash replaced the first (whose release then silenced the second).
 * Checked against mutants, each caught within a few runs: a release that forgets the hash, no subnet check, no
 * own-cookie check, no gap between rounds, the loop forked as a daemon, senders outside Lsd's scope, a vanished
 * interface's sender left open.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as Bytes from "../../src/core/Bytes.ts"
import * as Lsd from "../../src/net/Lsd.ts"
import * as LsdMessage from "../../src/net/LsdMessage.ts"
import type * as Udp from "../../src/net/Udp.ts"

const GAP = 200
const PORT = 6881
const IFACES: ReadonlyArray<Lsd.LocalAddress> = [
  { name: "eth0", family: 4, address: "10.0.0.5", prefix: 24 },
  { name: "eth1", family: 4, address: "10.0.1.5", prefix: 24 },
  { name: "eth0", family: 6, address: "fd00::5", prefix: 64 }
]
/** LAN hosts, with the interface whose subnet they are in (-1: none of ours). */
const HOSTS: ReadonlyArray<{ readonly address: string; readonly family: 4 | 6; readonly iface: number }> = [
  { address: "10.0.0.9", family: 4, iface: 0 },
  { address: "10.0.1.9", family: 4, iface: 1 },
  { address: "192.168.7.9", family: 4, iface: -1 },
  { address: "fd00::9", family: 6, iface: 2 },
  { address: "fd01::9", family: 6, iface: -1 }
]
/** Info-hashes 0..2 are registered by the ops; 3 never is. */
const HASHES = [1, 2, 3, 4].map((n) => new Uint8Array(20).fill(n))

type Op =
  | { readonly _tag: "register"; readonly hash: number }
  /** Releases the `which`-th live registration (modulo their number). */
  | { readonly _tag: "unregister"; readonly which: number }
  | { readonly _tag: "advance"; readonly ms: number }
  /** The interfaces up from now on (a bit per entry of IFACES). */
  | { readonly _tag: "interfaces"; readonly mask: number }
  | { readonly _tag: "close" }

/** A datagram from a LAN host, sent once op `after` (modulo their number) starts, delivered when the scheduler says. */
interface Arrival {
  readonly after: number
  readonly host: number
  readonly hashes: ReadonlyArray<number>
  readonly port: number
  readonly garbage: boolean
}

const opArb: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  { weight: 12, arbitrary: FastCheck.record({ _tag: FastCheck.constant("register" as const), hash: FastCheck.nat(2) }) },
  { weight: 6, arbitrary: FastCheck.record({ _tag: FastCheck.constant("unregister" as const), which: FastCheck.nat(5) }) },
  {
    weight: 12,
    arbitrary: FastCheck.record({
      _tag: FastCheck.constant("advance" as const),
      ms: FastCheck.oneof(FastCheck.integer({ min: 0, max: 400 }), FastCheck.integer({ min: 1_000, max: 5_000 }), FastCheck.constant(300_000))
    })
  },
  { weight: 3, arbitrary: FastCheck.record({ _tag: FastCheck.constant("interfaces" as const), mask: FastCheck.nat(7) }) },
  // Rare, so that most runs get far before closing (a run that did not close closes at its end).
  { weight: 1, arbitrary: FastCheck.record({ _tag: FastCheck.constant("close" as const) }) }
)

const arrivalArb: FastCheck.Arbitrary<Arrival> = FastCheck.record({
  after: FastCheck.nat(29),
  // Mostly hosts on our subnets naming hashes that get registered: those are the deliveries that must be reported.
  host: FastCheck.oneof({ weight: 3, arbitrary: FastCheck.constantFrom(0, 1, 3) }, FastCheck.constantFrom(2, 4)),
  hashes: FastCheck.uniqueArray(FastCheck.oneof({ weight: 3, arbitrary: FastCheck.nat(2) }, FastCheck.constant(3)), {
    minLength: 1,
    maxLength: 3
  }),
  port: FastCheck.integer({ min: 1, max: 65535 }),
  garbage: FastCheck.oneof({ weight: 4, arbitrary: FastCheck.constant(false) }, FastCheck.constant(true))
})

interface Registration {
  readonly id: number
  readonly hash: number
  readonly scope: Scope.CloseableScope
  registered: boolean
  releasing: boolean
  released: boolean
}

interface FakeSocket {
  readonly label: string
  readonly options: Udp.Options
  closed: boolean
  handler: ((d: Udp.Datagram) => void) | undefined
}

/** What one delivery to a receiver must hand over. */
interface Delivery {
  readonly label: string
  readonly reports: Array<{ readonly reg: number; readonly host: string; readonly port: number }>
}

const familyOf = (o: Udp.Options): 4 | 6 => (o.family === "udp4" ? 4 : 6)

const runCase = async (s: FastCheck.Scheduler, initialMask: number, ops: ReadonlyArray<Op>, arrivals: ReadonlyArray<Arrival>) => {
  const problems: Array<string> = []
  const rtScope = Effect.runSync(Scope.make())
  const runtime = await Effect.runPromise(Layer.toRuntime(TestContext.TestContext).pipe(Scope.extend(rtScope)))
  const run = Runtime.runPromiseExit(runtime)
  const clock = Runtime.runSync(runtime)(TestClock.testClock())
  const supervisor = Effect.runSync(Supervisor.track)
  const liveFibers = () => Effect.runSync(supervisor.value).length

  let mask = initialMask
  /** The mask Lsd saw at its last look at the interfaces. */
  let seenMask = initialMask
  const sockets: Array<FakeSocket> = []
  const regs: Array<Registration> = []
  let closing = false
  let closed = false
  let ownCookie: string | undefined
  let current: Delivery | undefined
  let reportsAfterClose = 0
  /** Announce rounds: each look at the interfaces starts one (time on the TestClock, sends made in it). */
  const rounds: Array<{ readonly at: number; readonly sends: Array<{ readonly socket: string; readonly hash: string }> }> = []

  const addresses = () => {
    seenMask = mask
    rounds.push({ at: clock.unsafeCurrentTimeMillis(), sends: [] })
    return IFACES.filter((_, i) => (mask & (1 << i)) !== 0)
  }

  /** Delivers a datagram to our receiver of `family`; `allowed` says which reports it may cause. */
  const deliver = (
    family: 4 | 6,
    from: string,
    data: Uint8Array,
    label: string,
    allowed: (reg: Registration, host: string, port: number) => boolean
  ) => {
    const receiver = sockets.find((f) => f.options.port === LsdMessage.PORT && familyOf(f.options) === family && !f.closed)
    if (receiver?.handler === undefined) return
    // Registrations live across the whole delivery (not mid-registration or mid-release) must each be handed it.
    const due = regs.filter((r) => r.registered && !r.releasing && allowed(r, from, -1))
    const delivery: Delivery = { label, reports: [] }
    current = delivery
    try {
      receiver.handler({ data, address: from, port: LsdMessage.PORT })
    } finally {
      current = undefined
    }
    for (const x of delivery.reports) {
      if (!allowed(regs[x.reg]!, x.host, x.port)) problems.push(`${label}: registration ${x.reg} handed ${x.host}:${x.port}`)
    }
    for (const r of due) {
      if (!delivery.reports.some((x) => x.reg === r.id)) problems.push(`${label}: registration ${r.id} (hash ${r.hash}) not handed the peer`)
    }
  }

  const udp = (options: Udp.Options): Effect.Effect<Udp.MulticastSocket, Udp.UdpError, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const f: FakeSocket = {
          label: options.port === LsdMessage.PORT ? `receiver/${options.family}` : `sender ${options.address}`,
          options,
          closed: false,
          handler: undefined
        }
        sockets.push(f)
        return f
      }),
      (f) => Effect.sync(() => {
        f.closed = true
        f.handler = undefined
      })
    ).pipe(Effect.map((f): Udp.MulticastSocket => ({
      family: options.family,
      local: { address: options.address ?? "0.0.0.0", port: options.port ?? 40000 },
      join: () => Effect.void,
      leave: () => Effect.void,
      onMessage: (h) => {
        f.handler = h
      },
      send: (data) =>
        Effect.suspend(() => {
          const decoded = LsdMessage.decode(data)
          if (Either.isLeft(decoded)) {
            problems.push(`sent an undecodable datagram: ${decoded.left.message}`)
            return Effect.void
          }
          const a = decoded.right
          ownCookie ??= a.cookie
          const hex = a.infoHashes.map(Bytes.toHex).join(",")
          if (a.cookie === undefined || a.cookie !== ownCookie) problems.push(`announce with cookie ${a.cookie}, not ours`)
          if (a.port !== PORT || a.infoHashes.length !== 1) problems.push(`announce ${hex} for port ${a.port}`)
          const hash = HASHES.findIndex((h) => Bytes.toHex(h) === hex)
          if (!regs.some((r) => r.hash === hash && !r.released)) problems.push(`announce of hash ${hash} with no registration left`)
          if (f.closed) problems.push(`send on closed ${f.label}`)
          if (closed) problems.push(`send on ${f.label} after the scope closed`)
          if (f.options.multicast === undefined) problems.push(`announce through ${f.label}`)
          // The refresh before this round closed the senders of vanished interfaces, and opened one per address.
          const senders = sockets.filter((x) => !x.closed && x.options.multicast !== undefined)
          for (const x of senders) {
            const i = IFACES.findIndex((a) => a.address === x.options.address)
            if ((seenMask & (1 << i)) === 0) problems.push(`${x.label} still open, its interface gone`)
          }
          if (new Set(senders.map((x) => x.label)).size < senders.length) problems.push("two open senders on one address")
          const round = rounds.at(-1)!
          if (round.sends.some((x) => x.socket === f.label)) problems.push(`${f.label} sent twice in one round`)
          round.sends.push({ socket: f.label, hash: hex })
          return Effect.async<void, Udp.UdpError>((resume) => {
            void s.schedule(Promise.resolve(), `send hash ${hash} on ${f.label}`).then(() => {
              resume(Effect.void)
              // The kernel loops our multicast back to the host: our own receiver hears it, later.
              if (f.closed) return
              void s.schedule(Promise.resolve(), `loopback of hash ${hash} from ${f.label}`).then(() =>
                deliver(familyOf(f.options), f.options.address!, data, `own announce of hash ${hash}`, () => false)
              )
            })
          })
        })
    })))

  const lsdScope = Effect.runSync(Scope.make())
  const made = await run(
    Lsd.make({
      port: PORT,
      addresses,
      udp,
      schedule: { interval: 300_000, gap: GAP, resends: [2_000, 4_000] },
      // No per-host limit here (it runs on the wall clock; LsdPacing.test.ts covers it).
      intake: { burst: 1e9, refill: 1, maxHosts: 256 }
    }).pipe(Scope.extend(lsdScope), Effect.supervised(supervisor))
  )
  if (Exit.isFailure(made)) throw new Error(Cause.pretty(made.cause))
  const lsd = made.value

  const onPeer = (reg: Registration) => (host: string, port: number) => {
    if (closed) reportsAfterClose++
    if (current === undefined) return void problems.push(`registration ${reg.id} handed ${host}:${port} outside any delivery`)
    current.reports.push({ reg: reg.id, host, port })
    if (reg.released) problems.push(`${current.label}: released registration ${reg.id} handed ${host}:${port}`)
  }

  const close = () => {
    closing = true
    if (liveFibers() === 0) problems.push("the announce loop ended before the scope closed")
    return run(Scope.close(lsdScope, Exit.void)).then((exit) => {
      if (Exit.isFailure(exit)) problems.push(`close: ${Cause.pretty(exit.cause)}`)
      closed = true
    })
  }

  const step = (op: Op): Promise<unknown> => {
    switch (op._tag) {
      case "register": {
        const reg: Registration = {
          id: regs.length,
          hash: op.hash,
          scope: Effect.runSync(Scope.make()),
          registered: false,
          releasing: false,
          released: false
        }
        regs.push(reg)
        return run(lsd.register(HASHES[op.hash]!, onPeer(reg)).pipe(Scope.extend(reg.scope))).then((exit) => {
          if (Exit.isFailure(exit)) problems.push(`register ${reg.id}: ${Cause.pretty(exit.cause)}`)
          reg.registered = true
        })
      }
      case "unregister": {
        const live = regs.filter((r) => !r.releasing)
        const reg = live[op.which % Math.max(1, live.length)]
        if (reg === undefined) return Promise.resolve()
        reg.releasing = true
        return run(Scope.close(reg.scope, Exit.void)).then((exit) => {
          if (Exit.isFailure(exit)) problems.push(`release ${reg.id}: ${Cause.pretty(exit.cause)}`)
          reg.released = true
        })
      }
      case "advance":
        return run(TestClock.adjust(op.ms))
      case "interfaces":
        mask = op.mask
        return Promise.resolve()
      case "close":
        return closing ? Promise.resolve() : close()
    }
  }

  // LAN hosts' datagrams: each sent as some op starts, delivered at a moment the scheduler picks.
  const send = (a: Arrival) => {
    const h = HOSTS[a.host]!
    const data = a.garbage
      ? Bytes.encodeUtf8(`BT-SEARCH * HTTP/1.1\r\nPort: x${a.port}\r\nInfohash: ${Bytes.toHex(HASHES[a.hashes[0]!]!)}\r\n\r\n`)
      : LsdMessage.encode({ port: a.port, infoHashes: a.hashes.map((i) => HASHES[i]!), cookie: "f0reign" }, h.family)
    const label = `${a.garbage ? "garbage" : "announce"} from ${h.address} of hashes ${a.hashes.join(",")}`
    void s.schedule(Promise.resolve(), label).then(() =>
      deliver(h.family, h.address, data, label, (r, host, port) =>
        !a.garbage && h.iface >= 0 && (seenMask & (1 << h.iface)) !== 0 && a.hashes.includes(r.hash) &&
        host === h.address && (port === -1 || port === a.port))
    )
  }
  s.scheduleSequence(ops.map((op, i) => ({
    label: JSON.stringify(op),
    builder: () => {
      for (const a of arrivals) if (a.after % ops.length === i) send(a)
      return step(op)
    }
  })))
  const drain = async () => {
    for (let i = 0; i < 100 && s.count() > 0; i++) {
      await s.waitAll()
      await new Promise((resolve) => setTimeout(resolve, 0))
    }
  }
  await drain()
  if (!closing) await close()
  await drain()

  if (!closed) problems.push("the scope's close never completed")
  if (reportsAfterClose > 0) problems.push(`${reportsAfterClose} peers handed over after the scope closed`)
  for (const f of sockets) if (!f.closed) problems.push(`${f.label} left open after the scope closed`)
  if (liveFibers() > 0) problems.push(`${liveFibers()} fibers left running after the scope closed`)
  for (let i = 0, last = Number.NEGATIVE_INFINITY; i < rounds.length; i++) {
    const r = rounds[i]!
    if (r.sends.length === 0) continue
    if (r.at - last < GAP) problems.push(`announce rounds ${r.at - last} ms apart`)
    if (new Set(r.sends.map((x) => x.hash)).size > 1) problems.push("one round announced several hashes")
    last = r.at
  }
  await Effect.runPromise(Scope.close(rtScope, Exit.void))
  expect(problems, `${problems.join("\n")}\n${String(s)}`).toEqual([])
}

describe("Lsd registry (model, fast-check scheduler)", () => {
  it("peers only to live registrations, announces only of registered hashes, paced, nothing after close", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(
        FastCheck.scheduler(),
        FastCheck.oneof({ weight: 3, arbitrary: FastCheck.constant(7) }, FastCheck.nat(7)),
        FastCheck.array(opArb, { minLength: 1, maxLength: 30 }),
        FastCheck.array(arrivalArb, { maxLength: 15 }),
        (s, mask, ops, arrivals) => runCase(s, mask, ops, arrivals)
      ),
      { numRuns: 200 }
    )
  }, 60_000)
})
