/**
 * The server's life: where it listens, a port already taken, and a shutdown that does not wait for clients.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Server from "../../src/api/Server.ts"
import { Session } from "../../src/session/Session.ts"
import { pattern } from "./FakeSession.ts"
import * as FakeSession from "./FakeSession.ts"
import { raw, start } from "./support.ts"

describe("Server", () => {
  it.scopedLive("start: 127.0.0.1 by default, the real port when asked for 0, the URL clients use", () =>
    Effect.gen(function*() {
      const { port, url } = yield* start()
      expect(port).toBeGreaterThan(0)
      expect(url).toBe(`http://127.0.0.1:${port}`)
      expect((yield* raw(port, { path: "/api/stats" })).status).toBe(200)
      expect(Server.urlOf("::1", 9091)).toBe("http://[::1]:9091")
      expect(Server.urlOf("0.0.0.0", 9091)).toBe("http://127.0.0.1:9091")
      expect([Server.defaultHost, Server.defaultPort]).toEqual(["127.0.0.1", 9091])
    }))

  it.scopedLive("a port already in use: a ServerError 'listen' naming it", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      const fake = yield* FakeSession.make()
      const e = yield* Effect.flip(Server.start({ port, eventLoopLag: false }).pipe(Effect.provideService(Session, fake)))
      expect(e.reason).toBe("listen")
      expect(e.message).toContain(`127.0.0.1:${port}`)
      expect(e.message).toContain("EADDRINUSE")
    }))

  it.scopedLive("closing does not wait for a client in the middle of a slow file", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { fake, port } = yield* start().pipe(Scope.extend(scope))
      const { id } = yield* fake.seed({ name: "big", files: [{ path: "big.mkv", data: pattern(0, 1_000_000) }] })
      fake.setChunkDelay(1000)
      const first = yield* Effect.async<Http.IncomingMessage>((resume) => {
        Http.get({ host: "127.0.0.1", port, path: `/api/torrents/${id}/files/0`, agent: false }, (res) => resume(Effect.succeed(res)))
          .on("error", () => {})
      })
      expect(first.statusCode).toBe(200)
      const closed = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - closed).toBeLessThan(2000)
      for (let i = 0; i < 100 && fake.openBodies() > 0; i++) yield* Effect.sleep("10 millis")
      expect(fake.openBodies()).toBe(0)
    }))
})
