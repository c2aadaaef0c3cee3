/**
 * `GET`/`HEAD /api/torrents/{ref}/files/{index}` on the wire, as a video player uses it: ranges (206 with
 * Content-Range), suffix and open ranges, 416, HEAD, Content-Type from the extension, If-Range, and a client that
 * goes away in the middle of a file.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import { pattern } from "./FakeSession.ts"
import { errorOf, raw, start } from "./support.ts"

const LENGTH = 100_000

const setup = Effect.gen(function*() {
  const running = yield* start()
  const added = yield* running.fake.seed({
    name: "show",
    files: [
      { path: "show/episode.mp4", data: pattern(0, LENGTH) },
      { path: "show/episode.mkv", data: pattern(1, 10) },
      { path: "show/song.MP3", data: pattern(2, 10) },
      { path: "show/page.html", data: new TextEncoder().encode("<script>alert(1)</script>") },
      { path: "show/image.svg", data: pattern(3, 10) },
      { path: "show/no-extension", data: pattern(4, 10) },
      { path: "show/empty.txt", data: new Uint8Array(0) },
      { path: "show/日本語 \"name\".srt", data: pattern(5, 10) }
    ]
  })
  const file = (index: number) => `/api/torrents/${added.id}/files/${index}`
  return { ...running, added, file }
})

describe("files: Range requests", () => {
  it.scopedLive("no Range: 200, the whole file, Accept-Ranges, Content-Length, the type, an ETag", () =>
    Effect.gen(function*() {
      const { added, file, port } = yield* setup
      const r = yield* raw(port, { path: file(0) })
      expect(r.status).toBe(200)
      expect(r.headers["accept-ranges"]).toBe("bytes")
      expect(r.headers["content-length"]).toBe(String(LENGTH))
      expect(r.headers["content-type"]).toBe("video/mp4")
      expect(r.headers["content-range"]).toBeUndefined()
      expect(r.headers["etag"]).toBe(`"${added.infoHash}-0"`)
      expect(r.headers["content-disposition"]).toBe(`inline; filename="episode.mp4"; filename*=UTF-8''episode.mp4`)
      expect(new Uint8Array(r.body)).toEqual(pattern(0, LENGTH))
    }))

  it.scopedLive("bytes=a-b, a-, -n: 206 with Content-Range and exactly those bytes; the session is asked for that range only", () =>
    Effect.gen(function*() {
      const { added, fake, file, port } = yield* setup
      const cases: ReadonlyArray<readonly [string, number, number]> = [
        ["bytes=0-0", 0, 1],
        ["bytes=1000-1999", 1000, 2000],
        ["bytes=99000-", 99_000, LENGTH],
        ["bytes=-500", LENGTH - 500, LENGTH],
        ["bytes=-200000", 0, LENGTH],
        ["bytes=50000-999999999", 50_000, LENGTH]
      ]
      for (const [range, start, end] of cases) {
        const r = yield* raw(port, { path: file(0), headers: { range } })
        expect([range, r.status]).toEqual([range, 206])
        expect(r.headers["content-range"]).toBe(`bytes ${start}-${end - 1}/${LENGTH}`)
        expect(r.headers["content-length"]).toBe(String(end - start))
        expect(new Uint8Array(r.body)).toEqual(pattern(0, LENGTH).slice(start, end))
      }
      expect(fake.callsOf("readFile")).toEqual(cases.map(([, start, end]) => [added.id, 0, { start, end }]))
    }))

  it.scopedLive("unsatisfiable: 416, Content-Range bytes */length, a JSON error; the session is not asked to read", () =>
    Effect.gen(function*() {
      const { fake, file, port } = yield* setup
      for (const [index, range] of [[0, `bytes=${LENGTH}-`], [0, "bytes=-0"], [6, "bytes=0-"]] as const) {
        const r = yield* raw(port, { path: file(index), headers: { range } })
        expect(r.status).toBe(416)
        expect(r.headers["content-range"]).toBe(`bytes */${index === 6 ? 0 : LENGTH}`)
        expect(errorOf(r).reason).toBe("range-not-satisfiable")
      }
      expect(fake.callsOf("readFile")).toEqual([])
    }))

  it.scopedLive("ignored Range headers (several ranges, nonsense, another unit, If-Range that does not match): 200, everything", () =>
    Effect.gen(function*() {
      const { added, file, port } = yield* setup
      for (const headers of [
        { range: "bytes=0-1,10-20" },
        { range: "bytes=zzz" },
        { range: "pages=1-2" },
        { range: "bytes=0-9", "if-range": "\"some-old-etag\"" },
        { range: "bytes=0-9", "if-range": "Wed, 21 Oct 2015 07:28:00 GMT" }
      ]) {
        const r = yield* raw(port, { path: file(0), headers })
        expect(r.status).toBe(200)
        expect(r.body.length).toBe(LENGTH)
      }
      const matching = yield* raw(port, { path: file(0), headers: { range: "bytes=0-9", "if-range": `"${added.infoHash}-0"` } })
      expect([matching.status, matching.body.length]).toEqual([206, 10])
    }))

  it.scopedLive("HEAD: the same headers, no body, nothing read", () =>
    Effect.gen(function*() {
      const { fake, file, port } = yield* setup
      const full = yield* raw(port, { method: "HEAD", path: file(0) })
      expect([full.status, full.headers["content-length"], full.headers["accept-ranges"], full.body.length]).toEqual([
        200,
        String(LENGTH),
        "bytes",
        0
      ])
      const part = yield* raw(port, { method: "HEAD", path: file(0), headers: { range: "bytes=-10" } })
      expect([part.status, part.headers["content-range"], part.headers["content-length"]]).toEqual([
        206,
        `bytes ${LENGTH - 10}-${LENGTH - 1}/${LENGTH}`,
        "10"
      ])
      expect(fake.callsOf("readFile")).toEqual([])
    }))

  it.scopedLive("Content-Type by extension; nothing a browser would run; an empty file; a UTF-8 name", () =>
    Effect.gen(function*() {
      const { file, port } = yield* setup
      const types = []
      for (const i of [1, 2, 3, 4, 5]) types.push((yield* raw(port, { method: "HEAD", path: file(i) })).headers["content-type"])
      expect(types).toEqual(["video/x-matroska", "audio/mpeg", "application/octet-stream", "application/octet-stream", "application/octet-stream"])
      const html = yield* raw(port, { path: file(3) })
      expect(html.headers["x-content-type-options"]).toBe("nosniff")
      expect(html.headers["content-security-policy"]).toContain("sandbox")
      const empty = yield* raw(port, { path: file(6) })
      expect([empty.status, empty.headers["content-length"], empty.body.length]).toEqual([200, "0", 0])
      const named = yield* raw(port, { method: "HEAD", path: file(7) })
      expect(named.headers["content-type"]).toBe("application/x-subrip")
      expect(named.headers["content-disposition"]).toBe(
        `inline; filename="___ _name_.srt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E%20%22name%22.srt`
      )
    }))

  it.scopedLive("a file index the torrent does not have: 404; a malformed one: 400", () =>
    Effect.gen(function*() {
      const { file, port } = yield* setup
      const missing = yield* raw(port, { path: file(8) })
      expect([missing.status, errorOf(missing).reason]).toEqual([404, "not-found"])
      const bad = yield* raw(port, { path: file(0).replace(/0$/, "-1") })
      expect([bad.status, errorOf(bad).reason]).toEqual([400, "bad-request"])
      const traversal = yield* raw(port, { path: "/api/torrents/1/files/..%2F..%2Fetc%2Fpasswd" })
      expect(traversal.status).toBe(400)
    }))

  it.scopedLive("a player that goes away in the middle: the body stops being read", () =>
    Effect.gen(function*() {
      const { fake, file, port } = yield* setup
      // 7 chunks, 250 ms apart: reading all of it would take ~1.75 s
      fake.setChunkDelay(250)
      const received = yield* Effect.async<number>((resume) => {
        let got = 0
        const req = Http.get({ host: "127.0.0.1", port, path: file(0), agent: false }, (res) => {
          res.on("data", (c: Buffer) => {
            got += c.length
            if (got >= 16384) {
              req.destroy()
              resume(Effect.succeed(got))
            }
          })
        })
        req.on("error", () => {})
      })
      const gone = Date.now()
      expect(received).toBeLessThan(LENGTH)
      for (let i = 0; i < 200 && fake.openBodies() > 0; i++) yield* Effect.sleep("10 millis")
      expect(fake.openBodies()).toBe(0)
      expect(Date.now() - gone).toBeLessThan(1000)
    }))
})
