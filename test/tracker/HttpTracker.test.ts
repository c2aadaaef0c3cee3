/**
 * HTTP(S) trackers against in-process fakes for what real trackers won't do: garbage, hangs, refusals, redirects,
 * oversized bodies, error statuses, private-tracker passkeys, and HTTPS with a self-signed certificate made at
 * test time (openssl).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as Http from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Bytes from "../../src/core/Bytes.ts"
import * as NetHttp from "../../src/net/Http.ts"
import * as HttpCodec from "../../src/tracker/HttpCodec.ts"
import * as HttpTracker from "../../src/tracker/HttpTracker.ts"
import { infoHash, request } from "./fixtures.ts"

const okBody = HttpCodec.encodeAnnounce({ interval: 1800, peers: [{ ip: "10.1.2.3", port: 51413 }, { ip: "2001:db8::7", port: 6881 }] })

const handler = (seen: Array<string>) => (req: Http.IncomingMessage, res: Http.ServerResponse) => {
  seen.push(req.url ?? "")
  const path = (req.url ?? "").split("?")[0]
  switch (path) {
    case "/announce":
    case "/pk/announce":
      return res.end(okBody)
    case "/x/scrape":
      return res.end(HttpCodec.encodeScrape(new Map([["ab".repeat(20), { seeders: 5, completed: 9, leechers: 2 }]])))
    case "/garbage":
      return res.end("<html><body>502 Bad Gateway</body></html>")
    case "/failure":
      return res.end("d14:failure reason24:passkey not found, sorrye")
    case "/warning":
      return res.end("d8:intervali60e5:peers0:15:warning message9:slow downe")
    case "/status":
      res.statusCode = 503
      return res.end("busy")
    case "/redirect":
      res.statusCode = 302
      res.setHeader("location", "/announce?" + (req.url ?? "").split("?")[1])
      return res.end()
    case "/loop":
      res.statusCode = 301
      res.setHeader("location", "/loop")
      return res.end()
    case "/big":
      res.setHeader("content-length", String(10 * 1024 * 1024))
      return res.end()
    case "/stream-big": {
      // No content-length: the limit must apply while reading.
      const chunk = Buffer.alloc(64 * 1024, 0x61)
      let sent = 0
      const pump = () => {
        while (sent < 200 && res.write(chunk)) sent++
        if (sent < 200) res.once("drain", pump)
        else res.end()
      }
      return pump()
    }
    case "/truncated":
      res.setHeader("content-length", "500")
      res.write("d8:interval")
      return setTimeout(() => res.destroy(), 10)
    case "/hang":
      return // accept and never answer
    default:
      res.statusCode = 404
      return res.end()
  }
}

const listen = (server: Http.Server | Https.Server) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)))

const withClient = <A, E>(
  f: (t: HttpTracker.HttpTracker) => Effect.Effect<A, E>,
  layer = NetHttp.layer
) =>
  // 3 s: only /hang may reach it; 500 ms let every answer time out on a loaded machine (CI caught it).
  Effect.flatMap(HttpTracker.make({ timeout: Duration.seconds(3), maxBodyBytes: 1024 * 1024 }), f).pipe(
    Effect.provide(layer)
  )

describe("HttpTracker against fakes", () => {
  const seen: Array<string> = []
  const server = Http.createServer(handler(seen))
  let base = ""
  beforeAll(async () => {
    base = `http://127.0.0.1:${await listen(server)}`
  })
  afterAll(() => {
    server.closeAllConnections()
    server.close()
  })

  it.live("announces with the exact percent-encoded info_hash, keeping a passkey query", () =>
    withClient((t) =>
      Effect.gen(function*() {
        const ih = Uint8Array.from({ length: 20 }, (_, i) => 0xc8 + i)
        const r = yield* t.announce(`${base}/pk/announce?passkey=s3cr3t`, request({ infoHash: ih }))
        expect(r.peers).toEqual([{ ip: "10.1.2.3", port: 51413 }, { ip: "2001:db8::7", port: 6881 }])
        const url = seen.find((u) => u.startsWith("/pk/announce"))!
        expect(url).toContain(`/pk/announce?passkey=s3cr3t&info_hash=${HttpCodec.percentEncode(ih)}&peer_id=`)
        expect(url).toContain("&event=started&numwant=50&key=1234abcd")
      })
    ))

  it.live("follows redirects without re-encoding the binary query", () =>
    withClient((t) =>
      Effect.gen(function*() {
        const ih = Uint8Array.from({ length: 20 }, (_, i) => 0xff - i)
        const r = yield* t.announce(`${base}/redirect`, request({ infoHash: ih }))
        expect(r.interval).toBe(1800)
        const after = seen.filter((u) => u.startsWith("/announce?")).at(-1)!
        expect(after).toContain(`info_hash=${HttpCodec.percentEncode(ih)}&`)
        const err = yield* Effect.flip(t.announce(`${base}/loop`, request({ infoHash: ih })))
        expect(err).toMatchObject({ reason: "http-status", detail: "too many redirects" })
      })
    ))

  it.live("scrapes by the BEP 48 convention, and refuses when it does not apply", () =>
    withClient((t) =>
      Effect.gen(function*() {
        const ih = Bytes.fromHex("ab".repeat(20))!
        const s = yield* t.scrape(`${base}/x/announce`, [ih])
        expect(s.get("ab".repeat(20))).toEqual({ seeders: 5, completed: 9, leechers: 2 })
        expect(seen.at(-1)).toBe(`/x/scrape?info_hash=${"%AB".repeat(20)}`)
        const err = yield* Effect.flip(t.scrape(`${base}/tracker.php`, [ih]))
        expect(err.reason).toBe("unsupported")
      })
    ))

  it.live("hostile and broken answers become typed errors", () =>
    withClient((t) =>
      Effect.gen(function*() {
        const reasonOf = (path: string) =>
          Effect.flip(t.announce(`${base}${path}`, request({ infoHash: infoHash() }))).pipe(
            Effect.map((e) => [path, e.reason, e.detail] as const)
          )
        const results = yield* Effect.all(
          ["/garbage", "/failure", "/status", "/big", "/stream-big", "/truncated", "/hang"].map(reasonOf),
          { concurrency: "unbounded" }
        )
        expect(results.map(([p, r]) => [p, r])).toEqual([
          ["/garbage", "bad-response"],
          ["/failure", "failure"],
          ["/status", "http-status"],
          ["/big", "bad-response"],
          ["/stream-big", "bad-response"],
          ["/truncated", "network"],
          ["/hang", "timeout"]
        ])
        expect(results[1]![2]).toBe("passkey not found, sorry")
        expect(results[0]![2]).toContain("<html>")
      })
    ))

  it.live("a warning message comes through with a successful response", () =>
    withClient((t) =>
      Effect.map(t.announce(`${base}/warning`, request({ infoHash: infoHash() })), (r) =>
        expect(r).toEqual({ interval: 60, peers: [], warning: "slow down" }))
    ))

  it.live("connection refused is a network error", () =>
    withClient((t) =>
      Effect.map(Effect.flip(t.announce("http://127.0.0.1:1/announce", request({ infoHash: infoHash() }))), (e) =>
        expect(e.reason).toBe("network"))
    ))
})

describe("HttpTracker over HTTPS (self-signed, made at test time)", () => {
  let dir = ""
  let cert: Buffer
  let server: Https.Server
  let base = ""
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tracker-tls-"))
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")
    ], { stdio: "ignore" })
    cert = readFileSync(join(dir, "cert.pem"))
    server = Https.createServer({ key: readFileSync(join(dir, "key.pem")), cert }, handler([]))
    base = `https://127.0.0.1:${await listen(server)}`
  })
  afterAll(() => {
    server?.closeAllConnections()
    server?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it.live("announces when the certificate is trusted", () =>
    withClient(
      (t) => Effect.map(t.announce(`${base}/announce`, request({ infoHash: infoHash() })), (r) => expect(r.interval).toBe(1800)),
      NetHttp.layerWithAgent({ ca: cert })
    ))

  it.live("an untrusted certificate is a network error", () =>
    withClient((t) =>
      Effect.map(Effect.flip(t.announce(`${base}/announce`, request({ infoHash: infoHash() }))), (e) => {
        expect(e.reason).toBe("network")
        expect(e.detail).toMatch(/certificate/i)
      }), Layer.fresh(NetHttp.layer)))
})
