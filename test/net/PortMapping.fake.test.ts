/**
 * PCP's negotiation with gateways that are not miniupnpd (PortMapping.test.ts runs the real one): in-process UDP
 * gateways on loopback addresses of their own, port 5351 — one that speaks only NAT-PMP (answers PCP with NAT-PMP's
 * "unsupported version": we fall back to NAT-PMP), one that speaks PCP (the mapping, then its removal with the same
 * nonce), and one that never answers (NAT-PMP, on the same port, is not asked as well). And the scope closed at each
 * point of an attempt (as the gateway takes each request, before its answer is back): nothing stays mapped.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Dgram from "node:dgram"
import * as PortMapping from "../../src/net/PortMapping.ts"
import * as Pcp from "../../src/net/Pcp.ts"

const sockets: Array<Dgram.Socket> = []
afterEach(() => {
  for (const s of sockets.splice(0)) s.close()
})

/** A gateway on `host`:5351 answering each datagram with `answer` (undefined: silence); it records what came. */
const gateway = async (host: string, answer: (d: Uint8Array) => Uint8Array | undefined) => {
  const seen: Array<Uint8Array> = []
  const s = Dgram.createSocket("udp4")
  sockets.push(s)
  s.on("message", (msg, rinfo) => {
    const d = new Uint8Array(msg)
    seen.push(d)
    const a = answer(d)
    if (a !== undefined) s.send(a, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve) => s.bind(Pcp.PORT, host, resolve))
  return seen
}

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!
const u32 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0

/** NAT-PMP answers (RFC 6886), and "unsupported version" to anything else. */
const natPmpOnly = (d: Uint8Array): Uint8Array => {
  const b = new Uint8Array(16)
  if (d[0] !== 0) return Uint8Array.from([0, 128 + (d[1]! & 0x7f), 0, 1, 0, 0, 0, 7])
  if (d[1] === 0) return Uint8Array.from([0, 128, 0, 0, 0, 0, 0, 7, 9, 9, 9, 9])
  b[1] = 128 + d[1]!
  b[7] = 7
  b.set(d.subarray(4, 6), 8) // internal port
  const internal = u16(d, 4)
  b[10] = ((internal + 1000) >> 8) & 0xff // granted: internal + 1000
  b[11] = (internal + 1000) & 0xff
  b.set(d.subarray(8, 12), 12) // lifetime as asked
  return b
}

describe("port mapping: PCP first, NAT-PMP when the gateway speaks only that, nothing twice to a silent one", () => {
  it.live("a NAT-PMP-only gateway answers PCP with 'unsupported version': the mapping is made by NAT-PMP", () =>
    Effect.gen(function*() {
      const seen = yield* Effect.promise(() => gateway("127.0.0.3", natPmpOnly))
      const mapping = yield* Effect.scoped(Effect.gen(function*() {
        const pm = yield* PortMapping.make({ port: 6000, gateway: "127.0.0.3", methods: ["pcp", "natpmp"] })
        return yield* pm.ready
      }))
      expect(mapping).toEqual({ method: "natpmp", externalAddress: "9.9.9.9", externalPort: 7000 })
      expect(seen[0]![0]).toBe(2) // PCP asked first
      // removal on close: NAT-PMP lifetime 0 for TCP and UDP
      const removals = seen.filter((d) => d[0] === 0 && d[1] !== 0 && u32(d, 8) === 0).map((d) => d[1])
      expect(removals.sort()).toEqual([1, 2])
    }))

  it.live("a PCP gateway maps TCP and UDP; the removal repeats the mapping's nonce", () =>
    Effect.gen(function*() {
      const seen = yield* Effect.promise(() =>
        gateway("127.0.0.4", (d) => {
          const r = Pcp.readRequest(d)
          if (r === undefined) return undefined
          return Pcp.mapResponse({
            result: 0,
            lifetime: r.lifetime,
            epoch: 5,
            nonce: r.nonce,
            protocol: r.protocol === 6 ? "tcp" : "udp",
            internalPort: r.internalPort,
            externalPort: u16(d, 42),
            externalAddress: "7.7.7.7"
          })
        })
      )
      const mapping = yield* Effect.scoped(Effect.gen(function*() {
        const pm = yield* PortMapping.make({ port: 6001, gateway: "127.0.0.4" })
        return yield* pm.ready
      }))
      expect(mapping).toEqual({ method: "pcp", externalAddress: "7.7.7.7", externalPort: 6001 })
      const requests = seen.map((d) => Pcp.readRequest(d)!)
      expect(requests.map((r) => [r.protocol, r.lifetime > 0 ? "map" : "delete"]).sort()).toEqual([
        [17, "delete"],
        [17, "map"],
        [6, "delete"],
        [6, "map"]
      ].sort())
      const nonces = new Set(requests.map((r) => Buffer.from(r.nonce).toString("hex")))
      expect(nonces.size).toBe(1)
      expect(requests.every((r) => r.client === "127.0.0.1" && r.internalPort === 6001)).toBe(true)
    }))

  it.live("a silent gateway: PCP is asked (and resent), NAT-PMP on the same port is not; no mapping", () =>
    Effect.gen(function*() {
      const seen = yield* Effect.promise(() => gateway("127.0.0.5", () => undefined))
      const mapping = yield* Effect.scoped(Effect.gen(function*() {
        const pm = yield* PortMapping.make({ port: 6002, gateway: "127.0.0.5", methods: ["pcp", "natpmp"] })
        return yield* pm.ready
      }))
      expect(mapping).toBeUndefined()
      expect(seen.length).toBeGreaterThanOrEqual(2)
      expect(seen.every((d) => d[0] === 2)).toBe(true)
    }), { timeout: 20_000 })
  it.live("a silent gateway: closing mid-attempt sends each removal once and does not wait for an answer", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const closed = yield* Deferred.make<void>()
      const removals = yield* Deferred.make<void>()
      const seen = yield* Effect.promise(() =>
        gateway("127.0.0.6", (d) => {
          const r = Pcp.readRequest(d)
          if (r === undefined) return undefined
          if (r.lifetime > 0 && seenMaps++ === 0) {
            Effect.runFork(Scope.close(scope, Exit.void).pipe(Effect.zipRight(Deferred.succeed(closed, undefined))))
          }
          if (r.lifetime === 0 && ++seenRemovals === 2) Deferred.unsafeDone(removals, Exit.void)
          return undefined
        })
      )
      let seenMaps = 0
      let seenRemovals = 0
      yield* PortMapping.make({ port: 6300, gateway: "127.0.0.6", methods: ["pcp"] }).pipe(Scope.extend(scope))
      yield* Deferred.await(closed)
      yield* Deferred.await(removals).pipe(Effect.timeout("5 seconds"), Effect.ignore)
      // Waiting for an answer would have resent each removal (250 ms later) before the close could end.
      const deletes = seen.map((d) => Pcp.readRequest(d)!).filter((r) => r.lifetime === 0)
      expect(deletes.map((r) => r.protocol).sort()).toEqual([17, 6])
    }))
  for (const method of ["pcp", "natpmp"] as const) {
    for (const k of [1, 2]) {
      it.live(`${method}: the scope closed as the gateway takes request ${k} of an attempt leaves nothing mapped there`, () =>
        Effect.gen(function*() {
          const host = `127.0.0.${method === "pcp" ? 10 + k : 20 + k}`
          // the gateway's table: (protocol, internal port) → external port
          const table = new Map<string, number>()
          const scope = yield* Scope.make()
          const closed = yield* Deferred.make<void>()
          // the removals of an attempt the gateway had not yet answered are sent, not awaited: they may land after close
          const emptied = yield* Deferred.make<void>()
          let n = 0
          yield* Effect.promise(() =>
            gateway(host, (d) => {
              const pcp = Pcp.readRequest(d)
              const protocol = pcp !== undefined ? (pcp.protocol === 6 ? "tcp" : "udp") : d[1] === 2 ? "tcp" : "udp"
              if (pcp === undefined && (d[0] !== 0 || d[1] === 0)) return d[0] === 0 ? undefined : natPmpOnly(d)
              const internal = pcp?.internalPort ?? u16(d, 4)
              const lifetime = pcp?.lifetime ?? u32(d, 8)
              const key = `${protocol}/${internal}`
              if (lifetime > 0) table.set(key, internal)
              else table.delete(key)
              if (n >= k && table.size === 0) Deferred.unsafeDone(emptied, Exit.void)
              if (++n === k) Effect.runFork(Scope.close(scope, Exit.void).pipe(Effect.zipRight(Deferred.succeed(closed, undefined))))
              if (pcp === undefined) return natPmpOnly(d)
              return Pcp.mapResponse({
                result: 0,
                lifetime,
                epoch: 5,
                nonce: pcp.nonce,
                protocol,
                internalPort: internal,
                externalPort: internal,
                externalAddress: "7.7.7.7"
              })
            })
          )
          yield* PortMapping.make({ port: 6200 + k, gateway: host, methods: [method] }).pipe(Scope.extend(scope))
          yield* Deferred.await(closed)
          yield* Deferred.await(emptied).pipe(Effect.timeout("5 seconds"), Effect.ignore)
          expect([...table.keys()]).toEqual([])
        }))
    }
  }
})
