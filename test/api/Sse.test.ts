/**
 * `GET /api/events` on the wire: the framing (one `event:`/`data:` pair per SessionEvent, JSON through its Schema),
 * keep-alive comments, the subscription released when the client goes away, the stream ended when the server
 * stops; and the client-side parser.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Sse from "../../src/api/Sse.ts"
import type * as TorrentInfo from "../../src/session/TorrentInfo.ts"
import { start } from "./support.ts"

interface Open {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  /** Everything received so far. */
  readonly text: () => string
  /** "end": the response ended as HTTP says (last chunk); "error": the connection was cut. */
  readonly ended: () => "no" | "end" | "error"
  readonly destroy: () => void
}

const open = (port: number, path = "/api/events") =>
  Effect.acquireRelease(
    Effect.async<Open, Error>((resume) => {
      let text = ""
      let ended: "no" | "end" | "error" = "no"
      const req = Http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        res.setEncoding("utf8")
        res.on("data", (c: string) => (text += c))
        res.on("end", () => (ended = "end"))
        res.on("error", () => (ended = "error"))
        resume(Effect.succeed({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: () => text,
          ended: () => ended,
          destroy: () => req.destroy()
        }))
      })
      req.on("error", (e) => resume(Effect.fail(e)))
    }),
    (o) => Effect.sync(() => o.destroy())
  )

const until = (condition: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if (condition()) return
      yield* Effect.sleep("10 millis")
    }
    throw new Error(`timed out waiting for ${what}`)
  })

const hash = "aa".repeat(20)

describe("GET /api/events", () => {
  it.scopedLive("headers, a first comment at once, then one event:/data: frame per event, JSON through the Schema", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start({ transmission: false })
      const stream = yield* open(port)
      expect(stream.status).toBe(200)
      expect(stream.headers["content-type"]).toBe("text/event-stream")
      expect(stream.headers["cache-control"]).toBe("no-cache")
      yield* until(() => stream.text().length > 0, "the first comment")
      expect(stream.text()).toBe(": effect-torrent events\n\n")
      yield* until(() => fake.subscribers() === 1, "the subscription")

      const events: ReadonlyArray<TorrentInfo.SessionEvent> = [
        { _tag: "PieceVerified", id: 1, infoHash: hash, index: 7 },
        { _tag: "Progress", id: 1, infoHash: hash, progress: 0.5, downloadRate: 1e6, uploadRate: 0, peers: 3 },
        { _tag: "Removed", id: 1, infoHash: hash },
        { _tag: "Stats", stats: { torrents: 0, active: 0, paused: 0, downloadRate: 0, uploadRate: 0, downloaded: 1, uploaded: 2, peers: 0, uptime: 5 } }
      ]
      for (const e of events) yield* fake.publish(e)
      yield* until(() => stream.text().split("\n\n").length >= 6, "four frames")
      const frames = stream.text().split("\n\n").slice(1, 5)
      expect(frames.map((f) => f.split("\n").map((l) => l.slice(0, l.indexOf(":"))))).toEqual(
        events.map(() => ["event", "data"])
      )
      expect(frames.map((f) => f.split("\n")[0])).toEqual(events.map((e) => `event: ${e._tag}`))
      expect(frames.map((f) => JSON.parse(f.split("\n")[1]!.slice("data: ".length)))).toEqual(events)
      expect(Sse.parseText(stream.text()).map((e) => [e.event, JSON.parse(e.data)])).toEqual(events.map((e) => [e._tag, e]))
    }))

  it.scopedLive("an idle stream gets keep-alive comments", () =>
    Effect.gen(function*() {
      const { port } = yield* start({ eventsKeepAlive: "100 millis", transmission: false })
      const stream = yield* open(port)
      yield* until(() => stream.text().split(": keep-alive\n\n").length >= 3, "two keep-alives")
      expect(stream.text().startsWith(": effect-torrent events\n\n: keep-alive\n\n: keep-alive\n\n")).toBe(true)
      expect(Sse.parseText(stream.text())).toEqual([])
    }))

  it.scopedLive("the client going away ends the subscription (and the server keeps serving)", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start({ transmission: false })
      const a = yield* open(port)
      const b = yield* open(port)
      yield* until(() => fake.subscribers() === 2, "two subscriptions")
      a.destroy()
      yield* until(() => fake.subscribers() === 1, "one subscription released")
      yield* fake.publish({ _tag: "Completed", id: 1, infoHash: hash })
      yield* until(() => b.text().includes("event: Completed"), "the event on the other stream")
      b.destroy()
      yield* until(() => fake.subscribers() === 0, "none left")
    }))

  it.scopedLive("the server stopping ends open streams cleanly, at once", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { fake, port } = yield* start({ transmission: false }).pipe(Scope.extend(scope))
      const stream = yield* open(port)
      yield* until(() => fake.subscribers() === 1, "the subscription")
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - started).toBeLessThan(2000)
      yield* until(() => stream.ended() !== "no", "the end of the stream")
      expect(stream.ended()).toBe("end")
      expect(fake.subscribers()).toBe(0)
    }))
})

describe("Sse parser", () => {
  it("fields, comments, CRLF and CR line ends, several data lines, an event split across chunks", () => {
    const feed = Sse.makeParser()
    expect(feed(": hi\n\nevent: A\ndata: {\"x\"")).toEqual([])
    expect(feed(":1}\n\n")).toEqual([{ event: "A", data: "{\"x\":1}", id: undefined }])
    // a CR ends a line at once; the LF of a CRLF split across chunks is not a second (blank) line
    expect(feed("data: one\r\ndata: two\r\n\r")).toEqual([{ event: "message", data: "one\ntwo", id: undefined }])
    expect(feed("\nid: 5\rdata:three\r\r")).toEqual([{ event: "message", data: "three", id: "5" }])
    expect(feed("event: Empty\n\n")).toEqual([])
  })

  it("frames round-trip", () => {
    const text = Sse.comment("x") + Sse.frame("Added", "{\"a\":1}") + Sse.frame("Removed", "{}")
    expect(Sse.parseText(text)).toEqual([
      { event: "Added", data: "{\"a\":1}", id: undefined },
      { event: "Removed", data: "{}", id: undefined }
    ])
  })
})
