/**
 * The client with transport "utp": one UDP port for uTP and the DHT (libtorrent's layout). The uTP socket binds the
 * listener's port number; the DHT node uses the same socket; a DHT ping to that port is answered while a uTP dial
 * to it connects.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DhtNode from "../../src/dht/Node.ts"
import * as UtpSocket from "../../src/net/UtpSocket.ts"
import * as Client from "../../src/session/Client.ts"
import { testClient } from "../support/download.ts"

const host = "127.0.0.1"

describe("Client with transport utp", () => {
  it.scopedLive("shares one UDP port between uTP and the DHT", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        testClient({ listen: { host, port: 0 }, transport: "utp", dht: { bootstrap: [], node: { loopbackOnly: false } } })
      )
      const client = yield* Effect.provide(Client.Client, context)
      const listener = yield* client.listener
      const utp = yield* client.utp
      const dht = yield* client.dht
      expect(utp).toBeDefined()
      expect(dht).toBeDefined()
      expect(utp!.local.port).toBe(listener!.address.port)
      expect(dht!.local.port).toBe(utp!.local.port)
      // A DHT node elsewhere pings that port: the KRPC answer comes from the shared socket.
      const other = yield* DhtNode.make({ address: host, port: 0, bootstrap: [], loopbackOnly: false })
      const id = yield* other.ping(host, utp!.local.port)
      expect(Buffer.from(id).equals(Buffer.from(dht!.id))).toBe(true)
      // And a uTP connection to the same port is accepted.
      const dialer = yield* UtpSocket.make({ host })
      const conn = yield* dialer.dial({ host, port: utp!.local.port })
      expect(conn.remote.port).toBe(utp!.local.port)
      expect(utp!.stats().otherIn).toBeGreaterThanOrEqual(1)
    }), 30_000)
})
