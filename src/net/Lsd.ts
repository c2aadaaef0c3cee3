/**
 * BEP 14 Local Service Discovery: finds peers of the same torrents on the local network, with no tracker and no DHT.
 *
 * One receiving socket per family bound to the group's port (6771, shared with other clients on the host through
 * SO_REUSEADDR) joins the group on every interface that has an address; one sending socket per interface address
 * sends through that interface, so every LAN the host is on hears us, from the address it can reach us at. Like
 * libtorrent: hop limit 32, our own datagrams loop back to the host (two clients on one machine find each other)
 * and are recognised by our cookie; announces are taken only from addresses inside the subnet of one of our
 * interfaces. Interfaces are looked at again before each announce, so a daemon follows addresses that come and go.
 *
 * Pacing (LsdPacing.ts): each torrent announced at registration, 2 s and 4 s later, then every 5 minutes, at most 5
 * datagrams a second in all; each source host's announces rate-limited. Private torrents are never registered
 * (the caller's rule: BEP 27).
 */
import { BlockList, isIPv4 } from "node:net"
import * as Os from "node:os"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Bytes from "../core/Bytes.ts"
import * as LsdMessage from "./LsdMessage.ts"
import * as LsdPacing from "./LsdPacing.ts"
import * as Udp from "./Udp.ts"

/** An address of a local interface that can carry multicast. */
export interface LocalAddress {
  readonly name: string
  readonly family: 4 | 6
  readonly address: string
  /** Prefix length of its subnet. */
  readonly prefix: number
}

/** The host's non-loopback addresses (IPv6: not link-local, whose announces could not be dialled without a scope). */
export const localAddresses = (): ReadonlyArray<LocalAddress> =>
  Object.entries(Os.networkInterfaces()).flatMap(([name, list]) =>
    (list ?? []).flatMap((a): Array<LocalAddress> => {
      if (a.internal || a.cidr === null) return []
      const prefix = Number(a.cidr.slice(a.cidr.indexOf("/") + 1))
      if (a.family === "IPv4") return [{ name, family: 4, address: a.address, prefix }]
      if (a.family === "IPv6" && !a.address.toLowerCase().startsWith("fe80")) {
        return [{ name, family: 6, address: a.address, prefix }]
      }
      return []
    })
  )

export interface Options {
  /** The port we accept peers on, announced; without one we only listen (nobody could connect to us). */
  readonly port?: number | undefined
  readonly ipv6?: boolean | undefined
  /** The addresses to use, asked before each announce (default {@link localAddresses}; tests pass their own). */
  readonly addresses?: (() => ReadonlyArray<LocalAddress>) | undefined
  readonly schedule?: LsdPacing.ScheduleConfig | undefined
  readonly intake?: LsdPacing.IntakeConfig | undefined
  /** Opens the sockets (default {@link Udp.make}; the concurrency test passes in-memory ones). */
  readonly udp?: ((options: Udp.Options) => Effect.Effect<Udp.MulticastSocket, Udp.UdpError, Scope.Scope>) | undefined
}

export interface Lsd {
  /**
   * Announces `infoHash` (20 bytes) on the LAN and hands the peers announced for it to `onPeer`, for the lifetime of
   * the current scope.
   */
  readonly register: (
    infoHash: Uint8Array,
    onPeer: (host: string, port: number) => void
  ) => Effect.Effect<void, never, Scope.Scope>
  /** Announces sent and peers taken so far (for stats and tests). */
  readonly counters: () => { readonly sent: number; readonly received: number; readonly peers: number }
}

interface Sender {
  readonly local: LocalAddress
  readonly socket: Udp.MulticastSocket
  readonly scope: Scope.CloseableScope
}

export const make = (options: Options = {}): Effect.Effect<Lsd, Udp.UdpError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const families: ReadonlyArray<4 | 6> = options.ipv6 === false ? [4] : [4, 6]
    const addressesOf = options.addresses ?? localAddresses
    const openSocket = options.udp ?? Udp.make
    const cookie = (Math.floor(Math.random() * 0x7fffffff) + 1).toString(16)
    // Per info-hash, every live registration's handler (one object each: the same function may be registered twice).
    // Two registrations of one hash (a magnet's metadata fetch and then its torrent) are both handed its peers, and
    // releasing one leaves the other registered.
    const handlers = new Map<string, Set<{ readonly onPeer: (host: string, port: number) => void }>>()
    const schedule = LsdPacing.makeSchedule<Uint8Array>(options.schedule)
    const intake = LsdPacing.makeIntake(options.intake)
    const wake = yield* Queue.sliding<void>(1)
    let sent = 0
    let received = 0
    let peers = 0

    // Subnets of our interfaces: announces from elsewhere are dropped (libtorrent's rule).
    let subnets = new BlockList()
    const receivers = new Map<4 | 6, Udp.MulticastSocket>()
    const joined = new Set<string>()
    const senders = new Map<string, Sender>()

    const onDatagram = (d: Udp.Datagram, now: number) => {
      const host = d.address.replace(/^::ffff:/, "")
      if (!subnets.check(host, isIPv4(host) ? "ipv4" : "ipv6")) return
      if (!LsdPacing.admit(intake, host, now)) return
      const decoded = LsdMessage.decode(d.data)
      if (Either.isLeft(decoded) || decoded.right.cookie === cookie) return
      received++
      for (const h of decoded.right.infoHashes) {
        const registered = handlers.get(Bytes.toHex(h))
        if (registered === undefined) continue
        for (const r of [...registered]) {
          peers++
          r.onPeer(host, decoded.right.port)
        }
      }
    }

    // Datagrams arrive in a node callback, outside any fiber: the intake's rate limit runs on the wall clock.
    const runtimeNow = () => Date.now()
    for (const family of families) {
      const socket = yield* openSocket({
        family: family === 4 ? "udp4" : "udp6",
        port: LsdMessage.PORT,
        reuseAddr: true
      }).pipe(
        Effect.map(Either.right),
        // IPv6 may be absent from the host: LSD then runs on IPv4 alone.
        Effect.catchAll((e) => family === 6 ? Effect.as(Effect.logDebug(`LSD over IPv6 off: ${e.message}`), Either.left(e)) : Effect.fail(e))
      )
      if (Either.isRight(socket)) {
        socket.right.onMessage((d) => onDatagram(d, runtimeNow()))
        receivers.set(family, socket.right)
      }
    }

    const groupOf = (family: 4 | 6) => (family === 4 ? LsdMessage.GROUP_V4 : LsdMessage.GROUP_V6)
    const ifaceOf = (a: LocalAddress) => (a.family === 4 ? a.address : `::%${a.name}`)
    const keyOf = (a: LocalAddress) => `${a.name}/${a.address}`

    /** Follows the host's addresses: joins the group and opens a sender on new ones, drops vanished ones. */
    const refresh = Effect.gen(function*() {
      const current = addressesOf().filter((a) => receivers.has(a.family))
      const next = new BlockList()
      for (const a of current) next.addSubnet(a.address, a.prefix, a.family === 4 ? "ipv4" : "ipv6")
      subnets = next
      const wanted = new Set(current.map(keyOf))
      for (const [key, sender] of senders) {
        if (wanted.has(key)) continue
        senders.delete(key)
        yield* Scope.close(sender.scope, Exit.void)
      }
      for (const a of current) {
        const key = keyOf(a)
        // One membership per (family, interface): several addresses on one interface share it.
        const membership = `${a.family}/${ifaceOf(a)}`
        if (!joined.has(membership)) {
          const r = yield* Effect.either(receivers.get(a.family)!.join(groupOf(a.family), ifaceOf(a)))
          if (Either.isLeft(r)) yield* Effect.logDebug(`LSD: cannot join on ${a.name} (${a.address}): ${r.left.message}`)
          else joined.add(membership)
        }
        if (senders.has(key) || options.port === undefined) continue
        const child = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const socket = yield* openSocket({
          family: a.family === 4 ? "udp4" : "udp6",
          address: a.family === 4 ? a.address : `${a.address}`,
          multicast: { ttl: 32, loopback: true, interface: ifaceOf(a) }
        }).pipe(Scope.extend(child), Effect.either)
        if (Either.isLeft(socket)) {
          yield* Scope.close(child, Exit.void)
          yield* Effect.logDebug(`LSD: no sender on ${a.name} (${a.address}): ${socket.left.message}`)
          continue
        }
        senders.set(key, { local: a, socket: socket.right, scope: child })
      }
    })

    const announce = (infoHash: Uint8Array, port: number) =>
      Effect.gen(function*() {
        const hex = Bytes.toHex(infoHash)
        yield* refresh
        for (const { local, socket } of senders.values()) {
          // Each send yields: the torrent may have been released meanwhile, and is then no longer announced.
          if (!handlers.has(hex)) return
          const datagram = LsdMessage.encode({ port, infoHashes: [infoHash], cookie }, local.family)
          const r = yield* Effect.either(socket.send(datagram, LsdMessage.PORT, groupOf(local.family)))
          // An interface going down between the refresh and the send: said once at debug level, tried next time.
          if (Either.isLeft(r)) yield* Effect.logDebug(`LSD: announce on ${local.name} failed: ${r.left.message}`)
          else sent++
        }
      })

    const loop = Effect.gen(function*() {
      yield* refresh
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        const s = LsdPacing.step(schedule, now)
        if (s._tag === "Send") {
          if (options.port !== undefined) yield* announce(s.key, options.port)
          continue
        }
        const woken = Queue.take(wake)
        yield* s.at === undefined ? woken : Effect.race(Effect.sleep(s.at - now), woken)
      }
    })
    yield* Effect.forkIn(loop, scope)

    return {
      register: (infoHash, onPeer) => {
        const hex = Bytes.toHex(infoHash)
        const registration = { onPeer }
        return Effect.acquireRelease(
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const registered = handlers.get(hex) ?? new Set()
            registered.add(registration)
            handlers.set(hex, registered)
            LsdPacing.register(schedule, hex, infoHash, now)
            yield* Queue.offer(wake, undefined)
          }),
          () =>
            Effect.sync(() => {
              const registered = handlers.get(hex)
              registered?.delete(registration)
              if (registered === undefined || registered.size > 0) return
              handlers.delete(hex)
              LsdPacing.unregister(schedule, hex)
            })
        )
      },
      counters: () => ({ sent, received, peers })
    } satisfies Lsd
  })
