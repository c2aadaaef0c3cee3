/**
 * Probe: every tracker at once against a real bittorrent-tracker, a silent UDP tracker, an unresolvable host, a
 * refused TCP port and an unsupported scheme; plus the pure formatter and JSON shape.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Probe from "../../src/tracker/Probe.ts"
import * as ProbeFormat from "../../src/tracker/ProbeFormat.ts"
import { TrackerError } from "../../src/tracker/TrackerError.ts"
import * as TrackerLive from "../../src/tracker/TrackerLive.ts"
import * as UdpTransaction from "../../src/tracker/UdpTransaction.ts"
import * as BittorrentTracker from "../support/bittorrentTracker.ts"
import { infoHash, peerId } from "./fixtures.ts"

const layer = TrackerLive.layer({
  http: { timeout: Duration.seconds(1) },
  udp: { bind4: "127.0.0.1", bind6: "::1", retransmit: UdpTransaction.retransmitSchedule("200 millis", 2) }
})

describe("Probe.probe", () => {
  let bt: BittorrentTracker.BittorrentTracker
  let silent: Dgram.Socket
  let refusedPort: number
  beforeAll(async () => {
    bt = await BittorrentTracker.start()
    silent = Dgram.createSocket("udp4")
    await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve))
    refusedPort = await new Promise<number>((resolve) => {
      const s = Net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as Net.AddressInfo).port
        s.close(() => resolve(p))
      })
    })
  })
  afterAll(async () => {
    silent?.close()
    await bt?.close()
  })

  it.live("answers for live trackers and a typed error for each dead one, in tier order", () =>
    Effect.gen(function*() {
      const silentUrl = `udp://127.0.0.1:${silent.address().port}`
      const tiers = [
        [bt.httpUrl, bt.udp4Url],
        [silentUrl, "http://tracker.nonexistent-host.invalid/announce"],
        ["udp://tracker.nonexistent-host.invalid:6969/announce", `http://127.0.0.1:${refusedPort}/announce`],
        ["wss://tracker.example/announce", bt.httpUrl]
      ]
      const results = yield* Probe.probe({
        tiers,
        infoHash: infoHash(),
        totalSize: 12345,
        peerId: peerId(),
        port: 6881,
        // the silent tracker is the only one that may reach it: 1 s timed out the live UDP tracker under load (CI)
        timeout: Duration.seconds(5)
      }).pipe(Effect.provide(layer))
      expect(results.map((r) => [r.tier, r.url])).toEqual([
        [0, bt.httpUrl],
        [0, bt.udp4Url],
        [1, silentUrl],
        [1, "http://tracker.nonexistent-host.invalid/announce"],
        [2, "udp://tracker.nonexistent-host.invalid:6969/announce"],
        [2, `http://127.0.0.1:${refusedPort}/announce`],
        [3, "wss://tracker.example/announce"]
      ])
      const [http, udp, quiet, dnsHttp, dnsUdp, refused, wss] = results.map((r) => r.result)
      expect(http).toMatchObject({ interval: expect.any(Number), peers: expect.any(Number), leechers: expect.any(Number) })
      expect(udp).toMatchObject({ interval: expect.any(Number), seeders: 0 })
      const errorOf = (r: Probe.Answer | Probe.Failed | undefined) => (r !== undefined && Probe.isFailed(r) ? r.error : undefined)
      expect(errorOf(quiet)?.reason).toBe("timeout")
      expect(errorOf(dnsHttp)).toMatchObject({ reason: "network", detail: expect.stringContaining("nonexistent-host.invalid") })
      expect(errorOf(dnsUdp)).toMatchObject({ reason: "network", detail: expect.stringContaining("nonexistent-host.invalid") })
      expect(errorOf(refused)?.reason).toBe("network")
      expect(errorOf(wss)?.reason).toBe("unsupported")
      const text = ProbeFormat.lines(results)
      expect(text).toHaveLength(7)
      expect(ProbeFormat.summary(results)).toBe("2 of 7 trackers answered")
    }))
})

describe("ProbeFormat", () => {
  const ok: Probe.Result = {
    url: "udp://t.example:6969",
    tier: 0,
    result: { seeders: 3, leechers: 1, completed: 7, peers: 4, interval: 1800 }
  }
  const failed: Probe.Result = {
    url: "http://t.example/announce",
    tier: 1,
    result: { error: new TrackerError({ reason: "http-status", url: "http://t.example/announce", status: 404, detail: "Not Found" }) }
  }
  const refused: Probe.Result = {
    url: "http://p.example/announce?passkey=x",
    tier: 1,
    result: { error: new TrackerError({ reason: "failure", url: "http://p.example/announce?passkey=x", detail: "unregistered torrent" }) }
  }

  it("one line per tracker", () => {
    expect(ProbeFormat.lines([ok, failed, refused])).toEqual([
      "tier 0  udp://t.example:6969  ok  seeders 3  leechers 1  completed 7  peers 4  interval 1800s",
      "tier 1  http://t.example/announce  error (http-status 404): Not Found",
      "tier 1  http://p.example/announce?passkey=x  error (failure): unregistered torrent"
    ])
    expect(ProbeFormat.summary([ok])).toBe("1 of 1 tracker answered")
  })

  it("a JSON shape with stable keys", () => {
    expect(JSON.parse(JSON.stringify(ProbeFormat.toJsonArray([ok, failed])))).toEqual([
      { url: "udp://t.example:6969", tier: 0, ok: true, seeders: 3, leechers: 1, completed: 7, peers: 4, interval: 1800, warning: null },
      {
        url: "http://t.example/announce",
        tier: 1,
        ok: false,
        error: { reason: "http-status", message: "tracker http://t.example/announce answered HTTP 404: Not Found", status: 404 }
      }
    ])
  })
})
