import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import type { PeerId } from "../../src/core/InfoHash.ts"
import type { PeerInfo } from "../../src/peer/TorrentHandle.ts"
import * as Extensions from "../../src/torrent/Extensions.ts"
import * as ExtensionHandshake from "../../src/wire/ExtensionHandshake.ts"
import * as UtMetadata from "../../src/wire/UtMetadata.ts"
import * as UtPex from "../../src/wire/UtPex.ts"
import { recordingControl } from "../support/peerControl.ts"

const info = new Uint8Array(40_000).map((_, i) => i % 251)

const control = recordingControl

const peerInfo = (
  direction: "outbound" | "inbound",
  host: string,
  port: number,
  encryption: PeerInfo["encryption"] = "none"
): PeerInfo => ({
  peerId: new Uint8Array(20) as PeerId,
  fast: true,
  extensionProtocol: true,
  dht: false,
  direction,
  encryption,
  remote: { host, port }
})

/** The peer's extension handshake: it numbers ut_metadata 3 and ut_pex 4. */
const theirHandshake = (p?: number) =>
  ExtensionHandshake.encode({
    m: new Map([[ExtensionHandshake.UtMetadata, 3], [ExtensionHandshake.UtPex, 4]]),
    ...(p === undefined ? {} : { p })
  })

const setup = (isPrivate = false) => {
  const found: Array<UtPex.PexPeer> = []
  let now = 1_000_000
  const ext = Extensions.make({
    metadata: () => info,
    isPrivate,
    listenPort: 6881,
    clientName: "test",
    reqq: 250,
    onPeers: (_from, peers) => void found.push(...peers)
  }, () => now)
  return { ext, found, advance: (ms: number) => void (now += ms), now: () => now }
}

describe("Extensions", () => {
  it("our handshake: ut_metadata, ut_pex and ut_holepunch ids, our port, the peer's address, the metadata size", () => {
    const { ext } = setup()
    const h = ExtensionHandshake.decode(ext.handshake("k", { host: "::ffff:10.1.2.3", port: 5 }))
    expect(Either.isRight(h)).toBe(true)
    if (Either.isLeft(h)) return
    expect([...h.right.m.keys()].sort()).toEqual(["ut_holepunch", "ut_metadata", "ut_pex"])
    expect(h.right.p).toBe(6881)
    expect([...h.right.yourip!]).toEqual([10, 1, 2, 3])
    expect(h.right.metadataSize).toBe(info.length)
    const priv = ExtensionHandshake.decode(setup(true).ext.handshake("k", { host: "10.1.2.3", port: 5 }))
    expect(Either.isRight(priv) && [...priv.right.m.keys()]).toEqual(["ut_metadata"])
  })

  it("our handshake's p: the router's external port once a port mapping has one, else the listening port", () => {
    let external: number | undefined
    const ext = Extensions.make({
      metadata: () => undefined,
      isPrivate: false,
      listenPort: 6881,
      externalPort: () => external,
      clientName: "test",
      reqq: 250,
      onPeers: () => {}
    }, () => 0)
    const p = () => {
      const h = ExtensionHandshake.decode(ext.handshake("k", { host: "10.1.2.3", port: 5 }))
      return Either.isRight(h) ? h.right.p : "undecodable"
    }
    expect(p()).toBe(6881)
    external = 40123
    expect(p()).toBe(40123)
    const none = Extensions.make({ metadata: () => undefined, isPrivate: false, clientName: "t", reqq: 1, onPeers: () => {} }, () => 0)
    const h = ExtensionHandshake.decode(none.handshake("k", { host: "10.1.2.3", port: 5 }))
    expect(Either.isRight(h) && h.right.p).toBeUndefined() // not listening: no p
  })

  it("serves metadata pieces with the peer's id, rejects out-of-range and, past 3 × the pieces, every request", () => {
    const { ext } = setup()
    const { c, sent } = control()
    ext.connected("k", peerInfo("outbound", "10.0.0.2", 7000), c)
    ext.onExtended("k", 0, theirHandshake())
    const ours = ExtensionHandshake.ourId(ExtensionHandshake.defaultRegistry(), ExtensionHandshake.UtMetadata)!
    ext.onExtended("k", ours, UtMetadata.encode(UtMetadata.Request({ piece: 1 })))
    ext.onExtended("k", ours, UtMetadata.encode(UtMetadata.Request({ piece: 9 })))
    const answers = sent.map((s) => {
      expect(s.id).toBe(3)
      return UtMetadata.decode(s.payload)
    })
    expect(answers[0]!._tag === "Right" && answers[0]!.right._tag).toBe("Data")
    if (answers[0]!._tag === "Right" && answers[0]!.right._tag === "Data") {
      expect([...answers[0]!.right.bytes]).toEqual([...info.subarray(16384, 32768)])
    }
    expect(answers[1]!._tag === "Right" && answers[1]!.right._tag).toBe("Reject")
    sent.length = 0
    for (let i = 0; i < 12; i++) ext.onExtended("k", ours, UtMetadata.encode(UtMetadata.Request({ piece: i % 3 })))
    const tags = sent.map((s) => Either.getOrThrow(UtMetadata.decode(s.payload))._tag)
    // 3 pieces: 9 data messages in all (1 above), then rejects.
    expect(tags.filter((t) => t === "Data").length).toBe(8)
    expect(tags.slice(8).every((t) => t === "Reject")).toBe(true)
  })

  it("PEX: tells each peer the listening addresses of the others, once a minute; never for a private torrent", () => {
    for (const isPrivate of [false, true]) {
      const { advance, ext, now } = setup(isPrivate)
      const a = control()
      const b = control()
      const c = control()
      ext.connected("a", peerInfo("outbound", "10.0.0.1", 1001, "rc4"), a.c)
      ext.connected("b", peerInfo("inbound", "10.0.0.2", 40000), b.c)
      ext.connected("c", peerInfo("inbound", "10.0.0.3", 40001), c.c)
      ext.onExtended("a", 0, theirHandshake())
      ext.onExtended("b", 0, theirHandshake(2002)) // inbound, tells its listening port
      ext.onExtended("c", 0, theirHandshake()) // inbound, no port: not shareable
      ext.tick(now())
      if (isPrivate) {
        expect([a, b, c].every((x) => x.sent.length === 0)).toBe(true)
        continue
      }
      const toA = UtPex.decode(a.sent[0]!.payload)
      expect(a.sent[0]!.id).toBe(4)
      expect(Either.getOrThrow(toA).added.map((p) => `${p.ip}:${p.port}`)).toEqual(["10.0.0.2:2002"])
      const toB = Either.getOrThrow(UtPex.decode(b.sent[0]!.payload))
      expect(toB.added.map((p) => `${p.ip}:${p.port}`)).toEqual(["10.0.0.1:1001"])
      expect(toB.added[0]!.flags & UtPex.Flags.Reachable).toBe(UtPex.Flags.Reachable)
      // a spoke MSE with us: flagged as preferring encryption (BEP 11 0x01); b did not.
      expect(toB.added[0]!.flags & UtPex.Flags.PrefersEncryption).toBe(UtPex.Flags.PrefersEncryption)
      expect(Either.getOrThrow(toA).added[0]!.flags & UtPex.Flags.PrefersEncryption).toBe(0)
      // Within the minute nothing more; after it, the departure of b is reported to a.
      ext.closed("b")
      advance(10_000)
      ext.tick(now())
      expect(a.sent.length).toBe(1)
      advance(60_000)
      ext.tick(now())
      expect(Either.getOrThrow(UtPex.decode(a.sent[1]!.payload)).dropped.map((p) => p.port)).toEqual([2002])
    }
  })

  it("PEX in: peers go to the torrent, a second message within 30 s is ignored, private torrents ignore it", () => {
    const { advance, ext, found } = setup()
    const a = control()
    ext.connected("a", peerInfo("outbound", "10.0.0.1", 1001), a.c)
    ext.onExtended("a", 0, theirHandshake())
    const pex = ExtensionHandshake.ourId(ExtensionHandshake.defaultRegistry(), ExtensionHandshake.UtPex)!
    const msg = (port: number) => UtPex.encode({ added: [{ ip: "10.9.9.9", port, flags: 0 }], dropped: [] })
    ext.onExtended("a", pex, msg(1))
    ext.onExtended("a", pex, msg(2))
    expect(found.map((p) => p.port)).toEqual([1])
    advance(31_000)
    ext.onExtended("a", pex, msg(3))
    expect(found.map((p) => p.port)).toEqual([1, 3])
    const priv = setup(true)
    priv.ext.connected("a", peerInfo("outbound", "10.0.0.1", 1001), a.c)
    priv.ext.onExtended("a", pex, msg(4))
    expect(priv.found).toEqual([])
  })
})
