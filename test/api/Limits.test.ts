/**
 * Request bodies: bounded per endpoint (413, announced or discovered while reading, the connection closed after),
 * typed by media type (415), and malformed ones answered 400 with the reason; never a crash, never a reset
 * connection.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { errorOf, raw, rawSocket, start, statusOf, torrentBytes } from "./support.ts"

const limits = { torrent: 1024, text: 64, json: 256 }
const bittorrent = { "content-type": "application/x-bittorrent" }
const text = { "content-type": "text/plain; charset=utf-8" }
const json = { "content-type": "application/json" }

/** A body of exactly n bytes that the fake accepts as a .torrent. */
const torrentOf = (n: number) => {
  const head = torrentBytes("x")
  const out = new Uint8Array(n).fill(0x20)
  out.set(head)
  return out
}

describe("body limits", () => {
  it.scopedLive("a .torrent over its bound: 413 whether announced by Content-Length or sent chunked; the connection is closed; nothing added", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start({ limits })
      const ok = yield* raw(port, { method: "POST", path: "/api/torrents", headers: bittorrent, body: torrentOf(1024) })
      expect(ok.status).toBe(201)

      const declared = yield* raw(port, { method: "POST", path: "/api/torrents", headers: bittorrent, body: torrentOf(1025) })
      expect([declared.status, errorOf(declared).reason, declared.headers["connection"]]).toEqual([413, "payload-too-large", "close"])

      // no Content-Length: node:http sends the chunks with Transfer-Encoding: chunked
      const chunks = Array.from({ length: 8 }, () => torrentOf(200))
      const chunked = yield* raw(port, { method: "POST", path: "/api/torrents", headers: bittorrent, body: chunks })
      expect([chunked.status, errorOf(chunked).reason, chunked.headers["connection"]]).toEqual([413, "payload-too-large", "close"])
      expect(fake.callsOf("add").length).toBe(1)
    }))

  it.scopedLive("text (a magnet link or URL) and JSON bodies have their own, smaller bounds", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start({ limits })
      const { id } = yield* fake.seed({ name: "t", files: [] })
      const magnet = `magnet:?xt=urn:btih:${"ab".repeat(20)}&dn=${"x".repeat(40)}`
      const longText = yield* raw(port, { method: "POST", path: "/api/torrents", headers: text, body: magnet })
      expect(longText.status).toBe(413)
      const longJson = yield* raw(port, {
        method: "PUT",
        path: `/api/torrents/${id}/files`,
        headers: json,
        body: JSON.stringify({ wanted: Array.from({ length: 200 }, () => 0) })
      })
      expect(longJson.status).toBe(413)
      expect(fake.callsOf("setFiles")).toEqual([])
    }))

  it.scopedLive("a declared body over the largest bound is refused on any route, before routing", () =>
    Effect.gen(function*() {
      const { port } = yield* start({ limits })
      const r = yield* raw(port, { path: "/api/torrents", headers: { "content-length": 5000 }, body: new Uint8Array(5000) })
      expect(r.status).toBe(413)
    }))

  it.scopedLive("the default bound (16 MiB for a .torrent): refused from the headers alone, before the body is sent", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      const answer = yield* rawSocket(
        port,
        `POST /api/torrents HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/x-bittorrent\r\nContent-Length: ${16 * 1024 * 1024 + 1}\r\n\r\n`
      )
      expect(statusOf(answer)).toBe(413)
      expect(answer).toContain("payload-too-large")
      expect(answer.toLowerCase()).toContain("connection: close")
    }))
})

describe("malformed requests", () => {
  it.scopedLive("POST /api/torrents: a type other than .torrent or text is 415; an empty .torrent, text that is no magnet/URL, a bad query are 400", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start({ limits })
      const post = (headers: Record<string, string>, body: string | Uint8Array, query = "") =>
        raw(port, { method: "POST", path: `/api/torrents${query}`, headers, body })
      const form = yield* post({ "content-type": "application/x-www-form-urlencoded" }, "a=b")
      expect([form.status, errorOf(form).reason]).toEqual([415, "unsupported-media-type"])
      const none = yield* post({}, torrentBytes("x"))
      expect(none.status).toBe(415)
      const empty = yield* post(bittorrent, new Uint8Array(0))
      expect([empty.status, errorOf(empty).reason]).toEqual([400, "bad-request"])
      const notMagnet = yield* post(text, "hello")
      expect([notMagnet.status, errorOf(notMagnet).reason]).toEqual([400, "invalid-source"])
      const notUtf8 = yield* post(text, new Uint8Array([0xff, 0xfe]))
      expect(notUtf8.status).toBe(400)
      for (const query of ["?paused=maybe", "?files=a", "?files=-1", "?maxPeers=1.5", "?downloadLimit=-3", "?seedRatio=Infinity"]) {
        const r = yield* post(bittorrent, torrentBytes("q"), query)
        expect([query, r.status, errorOf(r).reason]).toEqual([query, 400, "bad-request"])
      }
      expect(fake.callsOf("add")).toEqual([])
      // both forms of index lists reach the session as numbers
      const lists = yield* post(bittorrent, torrentBytes("lists"), "?files=0,2&files=5&unwanted=1")
      expect(lists.status).toBe(201)
      expect(fake.callsOf("add")[0]![1]).toEqual({ files: [0, 2, 5], unwanted: [1] })
    }))

  it.scopedLive("JSON bodies: not JSON, the wrong type, unknown properties, bad values are 400 with the path; not application/json is 415", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start({ limits })
      const { id } = yield* fake.seed({ name: "t", files: [] })
      const put = (path: string, body: string, headers: Record<string, string> = json, method = "PUT") =>
        raw(port, { method, path, headers, body })
      const files = `/api/torrents/${id}/files`
      const cases: ReadonlyArray<readonly [string, string, string, string]> = [
        ["PUT", files, "{", "the body is not JSON"],
        ["PUT", files, "[]", "Expected"],
        ["PUT", files, "{\"wanted\":[\"a\"]}", "wanted.0"],
        ["PUT", files, "{\"wantd\":[1]}", "wantd"],
        ["PUT", `/api/torrents/${id}/options`, "{\"maxPeers\":1.5}", "maxPeers"],
        ["PATCH", "/api/settings", "{\"encryption\":\"sometimes\"}", "encryption"],
        ["PATCH", "/api/settings", "{\"peerPort\":\"80\"}", "peerPort"]
      ]
      for (const [method, path, body, mention] of cases) {
        const r = yield* put(path, body, json, method)
        expect([body, r.status, errorOf(r).reason]).toEqual([body, 400, "bad-request"])
        expect(errorOf(r).message).toContain(mention)
      }
      const plain = yield* put(files, "{\"wanted\":[0]}", text)
      expect([plain.status, errorOf(plain).reason]).toEqual([415, "unsupported-media-type"])
      expect(fake.callsOf("setFiles")).toEqual([])
      expect(fake.callsOf("setOptions")).toEqual([])
      expect(fake.callsOf("updateSettings")).toEqual([])
    }))

  it.scopedLive("path and query parameters: a bad ref, a bad queue move, a bad flag are 400", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start()
      const { id } = yield* fake.seed({ name: "t", files: [] })
      for (const [method, path] of [
        ["GET", "/api/torrents/abc"],
        ["GET", `/api/torrents/${"a".repeat(39)}`],
        ["POST", `/api/torrents/${id}/queue/sideways`],
        ["DELETE", `/api/torrents/${id}?deleteData=yes`],
        ["POST", `/api/torrents/${id}/resume?now=1`]
      ] as const) {
        const r = yield* raw(port, { method, path })
        expect([method, path, r.status, errorOf(r).reason]).toEqual([method, path, 400, "bad-request"])
      }
      expect(fake.callsOf("remove")).toEqual([])
    }))
})
