/**
 * Where peers came from (issue 19 item 5): the flags and first-source bookkeeping (properties), and the swarm's
 * candidates keeping them as sources name addresses (a retry after a backoff is not a naming).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fc from "fast-check"
import type { TorrentHandle } from "../../src/peer/TorrentHandle.ts"
import * as PeerSource from "../../src/torrent/PeerSource.ts"
import * as Swarm from "../../src/torrent/Swarm.ts"

const source = fc.constantFrom(...PeerSource.sources)

describe("PeerSource", () => {
  it("the first source stays first; the flags are the set of every source that named the address", () =>
    fc.assert(fc.property(fc.array(source, { minLength: 1, maxLength: 30 }), (named) => {
      const o = named.reduce<PeerSource.Origin | undefined>((acc, s) => PeerSource.note(acc, s), undefined)!
      expect(o.first).toBe(named[0])
      expect(new Set(PeerSource.toArray(o.flags))).toEqual(new Set(named))
      expect(PeerSource.fromArray(PeerSource.toArray(o.flags))).toBe(o.flags)
      for (const s of PeerSource.sources) expect(PeerSource.has(o.flags, s)).toBe(named.includes(s))
    })))

  it("Transmission's peersFrom key: one per source, web seeds counted apart", () => {
    expect(PeerSource.sources.map(PeerSource.transmissionKey)).toEqual([
      "fromTracker",
      "fromDht",
      "fromPex",
      "fromLpd",
      "fromCache",
      "fromIncoming",
      undefined
    ])
  })
})

/** A swarm that never dials (`open` false): only its candidate bookkeeping runs. */
const idleSwarm = Swarm.make({
  handle: {} as TorrentHandle,
  maxPeers: 10,
  reconnect: Swarm.defaultReconnect,
  reconnectKnown: Swarm.defaultReconnectKnown,
  open: () => false,
  close: () => {}
})

describe("Swarm sources", () => {
  it.scoped("each candidate keeps its first source and every source that named it; addresses carry the first", () =>
    Effect.gen(function*() {
      const swarm = yield* idleSwarm
      swarm.add("10.0.0.1", 6881, "tracker")
      swarm.add("10.0.0.1", 6881, "pex")
      swarm.add("10.0.0.1", 6881, "tracker")
      swarm.add("::1", 6881, "lsd")
      swarm.add("10.0.0.2", 51413, "dht")
      swarm.add("10.0.0.2", 0, "manual") // refused: no such port
      expect(swarm.origin("10.0.0.1:6881")).toEqual({ first: "tracker", flags: PeerSource.fromArray(["tracker", "pex"]) })
      expect(swarm.origin("[::1]:6881")?.first).toBe("lsd")
      expect(swarm.origin("10.0.0.2:0")).toBeUndefined()
      expect(swarm.origin("10.0.0.9:1")).toBeUndefined()
      expect(swarm.addresses()).toEqual([
        { host: "10.0.0.1", port: 6881, source: "tracker" },
        { host: "::1", port: 6881, source: "lsd" },
        { host: "10.0.0.2", port: 51413, source: "dht" }
      ])
      // a banned candidate leaves the address list, and naming it again changes nothing of its first source
      swarm.markBanned("10.0.0.2:51413")
      swarm.add("10.0.0.2", 51413, "pex")
      expect(swarm.origin("10.0.0.2:51413")?.first).toBe("dht")
      expect(swarm.addresses().map((a) => a.host)).toEqual(["10.0.0.1", "::1"])
    }))

  it.scoped("property: whatever order sources name addresses in, origin is the fold of their namings", () =>
    Effect.gen(function*() {
      const namings = fc.sample(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), source), { minLength: 1, maxLength: 40 }),
        { numRuns: 50, seed: 19 }
      )
      for (const list of namings) {
        const swarm = yield* idleSwarm
        const expected = new Map<string, PeerSource.Origin>()
        for (const [n, s] of list) {
          swarm.add(`10.1.0.${n}`, 1000 + n, s)
          const key = `10.1.0.${n}:${1000 + n}`
          expected.set(key, PeerSource.note(expected.get(key), s))
        }
        for (const [key, o] of expected) expect(swarm.origin(key)).toEqual(o)
      }
    }))
})
