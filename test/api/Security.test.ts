/**
 * The security checks with real requests: the Host header (DNS rebinding), cross-origin state changes, no CORS,
 * credentials (bearer token, HTTP Basic) hashed with scrypt, the refusal to listen beyond loopback without them,
 * and the headers on every answer.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Auth from "../../src/api/Auth.ts"
import * as Security from "../../src/api/Security.ts"
import * as Server from "../../src/api/Server.ts"
import { Session } from "../../src/session/Session.ts"
import * as FakeSession from "./FakeSession.ts"
import { client, errorOf, raw, rawSocket, start, statusOf } from "./support.ts"

describe("Host header (DNS rebinding)", () => {
  it.scopedLive("this server's names pass; any other name, or none, is refused with 421 before routing", () =>
    Effect.gen(function*() {
      const { port } = yield* start({ allowedHosts: ["nas.local", "Media.Example."] })
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST.:${port}`, `[::1]:${port}`, "127.0.0.1", "nas.local:8080", `media.example:${port}`]) {
        const r = yield* raw(port, { path: "/api/torrents", headers: { host } })
        expect([host, r.status]).toEqual([host, 200])
      }
      for (const host of [`evil.example:${port}`, `127.0.0.1.evil.example:${port}`, "localhost.evil", `[::2]:${port}`, "a b", `user@127.0.0.1:${port}`]) {
        const r = yield* raw(port, { path: "/api/torrents", headers: { host } })
        expect([host, r.status, errorOf(r).reason]).toEqual([host, 421, "misdirected-host"])
      }
      // unknown routes too: the check comes first
      const unknown = yield* raw(port, { path: "/nowhere", headers: { host: "evil.example" } })
      expect(unknown.status).toBe(421)
      // HTTP/1.0 needs no Host header; we do
      const noHost = yield* rawSocket(port, "GET /api/torrents HTTP/1.0\r\n\r\n")
      expect(statusOf(noHost)).toBe(421)
    }))

  it("the allowed names: localhost, 127.0.0.1, [::1], the bound address (not a wildcard), configured ones", () => {
    const config = { host: "192.168.1.5", port: 9091, allowedHosts: ["NAS.local", "fe80::1"], allowedOrigins: [], maxBody: 1 }
    expect([...Security.allowedHostNames(config)].sort()).toEqual(
      ["127.0.0.1", "192.168.1.5", "[::1]", "[fe80::1]", "localhost", "nas.local"].sort()
    )
    expect([...Security.allowedHostNames({ ...config, host: "0.0.0.0", allowedHosts: [] })].sort()).toEqual(
      ["127.0.0.1", "[::1]", "localhost"].sort()
    )
    expect(Security.hostOfHeader("[::1]:9091")).toBe("[::1]")
    expect(Security.hostOfHeader("Example.COM.")).toBe("example.com")
    expect(Security.hostOfHeader("a:b:c")).toBeUndefined()
  })
})

describe("cross-origin requests", () => {
  it.scopedLive("a state change from another origin (or 'null', or a browser's cross-site fetch) is refused with 403 and never reaches the session", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start()
      const { id } = yield* fake.seed({ name: "t", files: [] })
      const pause = (headers: Record<string, string>, method = "POST", path = `/api/torrents/${id}/pause`) =>
        raw(port, { method, path, headers })
      for (const origin of ["http://evil.example", "null", `http://127.0.0.1:${port + 1}`, `https://evil.example:${port}`, "garbage"]) {
        const r = yield* pause({ origin })
        expect([origin, r.status, errorOf(r).reason]).toEqual([origin, 403, "forbidden-origin"])
      }
      const crossSite = yield* pause({ "sec-fetch-site": "cross-site" })
      expect(crossSite.status).toBe(403)
      const del = yield* pause({ origin: "http://evil.example" }, "DELETE", `/api/torrents/${id}`)
      expect(del.status).toBe(403)
      const patch = yield* raw(port, {
        method: "PATCH",
        path: "/api/settings",
        headers: { origin: "http://evil.example", "content-type": "application/json" },
        body: "{\"dht\":false}"
      })
      expect(patch.status).toBe(403)
      expect(fake.callsOf("pause")).toEqual([])
      expect(fake.callsOf("remove")).toEqual([])
      expect(fake.callsOf("updateSettings")).toEqual([])
    }))

  it.scopedLive("this server's own origins, configured ones, and requests without Origin (the CLI, curl) pass", () =>
    Effect.gen(function*() {
      const { fake, port } = yield* start({ allowedOrigins: ["https://ui.example"] })
      const { id } = yield* fake.seed({ name: "t", files: [] })
      for (const headers of [
        {},
        { origin: `http://127.0.0.1:${port}` },
        { origin: `http://localhost:${port}` },
        { origin: `http://[::1]:${port}` },
        { origin: "https://ui.example" },
        { "sec-fetch-site": "same-origin" }
      ]) {
        const r = yield* raw(port, { method: "POST", path: `/api/torrents/${id}/pause`, headers })
        expect([headers, r.status]).toEqual([headers, 204])
      }
    }))

  it.scopedLive("no CORS: reads from another origin get no Access-Control headers; a preflight finds nothing", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      const get = yield* raw(port, { path: "/api/torrents", headers: { origin: "http://evil.example" } })
      expect(get.status).toBe(200)
      const preflight = yield* raw(port, {
        method: "OPTIONS",
        path: "/api/torrents",
        headers: { origin: "http://evil.example", "access-control-request-method": "POST" }
      })
      expect(preflight.status).toBe(404)
      for (const r of [get, preflight]) {
        expect(Object.keys(r.headers).filter((h) => h.startsWith("access-control-"))).toEqual([])
      }
    }))
})

describe("credentials", () => {
  const password = "correct:horse bätterý"
  const makeAuth = Effect.gen(function*() {
    const withUser = yield* Auth.addUser(Auth.empty, "alice", password)
    const { file, token } = yield* Auth.addToken(withUser, "laptop")
    return { file, token }
  })
  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`

  it.scopedLive("with credentials configured, every route needs a valid token or user:password; 401 says how", () =>
    Effect.gen(function*() {
      const { file, token } = yield* makeAuth
      const { fake, port } = yield* start({ auth: file })
      const { id } = yield* fake.seed({ name: "t", files: [] })
      expect(JSON.stringify(file)).not.toContain(password)
      expect(JSON.stringify(file)).not.toContain(token.split(".")[1])

      for (const authorization of [null, `Bearer ${token}x`, `Bearer ${token.split(".")[0]}.wrong`, "Bearer deadbeef.x", basic("alice", "wrong"), basic("bob", password), basic("alice", password.split(":")[0]!), "Basic !!!", "Digest x"]) {
        for (const path of ["/api/torrents", "/api/openapi.json", "/metrics", "/api/events", "/nowhere"]) {
          const r = yield* raw(port, { path, headers: { authorization } })
          expect([authorization, path, r.status]).toEqual([authorization, path, 401])
          expect(errorOf(r).reason).toBe("unauthorized")
          expect(r.headers["www-authenticate"]).toBe(`Bearer realm="effect-torrent", Basic realm="effect-torrent", charset="UTF-8"`)
        }
      }
      const refused = yield* raw(port, { method: "POST", path: `/api/torrents/${id}/pause` })
      expect(refused.status).toBe(401)
      expect(fake.callsOf("pause")).toEqual([])

      for (const authorization of [`Bearer ${token}`, `bearer ${token}`, basic("alice", password)]) {
        const r = yield* raw(port, { path: "/api/torrents", headers: { authorization } })
        expect([authorization, r.status]).toEqual([authorization, 200])
        const again = yield* raw(port, { method: "POST", path: `/api/torrents/${id}/pause`, headers: { authorization } })
        expect(again.status).toBe(204)
      }
    }), 120_000) // 45 refused requests, each an scrypt check (~16 MiB, tens of ms; much more on a loaded machine)

  it.scopedLive("the typed client sends them; without them it gets 'unauthorized'", () =>
    Effect.gen(function*() {
      const { file, token } = yield* makeAuth
      const { url } = yield* start({ auth: file })
      expect(yield* (yield* client(url, { token })).list).toEqual([])
      expect(yield* (yield* client(url, { username: "alice", password })).stats).toMatchObject({ torrents: 0 })
      const e = yield* Effect.flip((yield* client(url)).list)
      expect([e.reason, e.status]).toEqual(["unauthorized", 401])
      const wrong = yield* Effect.flip((yield* client(url, { username: "alice", password: "nope" })).list)
      expect(wrong.reason).toBe("unauthorized")
    }))

  it.scopedLive("listening beyond loopback needs credentials", () =>
    Effect.gen(function*() {
      const fake = yield* FakeSession.make()
      const refused = yield* Effect.flip(
        Server.start({ host: "0.0.0.0", port: 0 }).pipe(Effect.provideService(Session, fake))
      )
      expect(refused.reason).toBe("insecure-bind")
      expect(refused.message).toContain("without authentication")
      const empty = yield* Effect.flip(Server.checkOptions({ host: "192.168.1.5", auth: Auth.empty }))
      expect(empty.reason).toBe("insecure-bind")
      const { file } = yield* makeAuth
      yield* Server.checkOptions({ host: "192.168.1.5", auth: file })
      yield* Server.checkOptions({ host: "127.0.0.2" })
      yield* Server.checkOptions({ host: "::1" })
      yield* Server.checkOptions({})
    }))
})

describe("answers", () => {
  it.scopedLive("every answer (success, error, refusal) carries nosniff, a sandboxing CSP, no-referrer, no-store", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      for (const req of [
        { path: "/api/torrents" },
        { path: "/api/torrents/999" },
        { path: "/nowhere" },
        { path: "/api/torrents", headers: { host: "evil.example" } },
        { method: "POST", path: "/api/torrents/1/pause", headers: { origin: "http://evil.example" } }
      ]) {
        const r = yield* raw(port, req)
        expect(r.headers["x-content-type-options"]).toBe("nosniff")
        expect(r.headers["content-security-policy"]).toBe("default-src 'none'; frame-ancestors 'none'; sandbox")
        expect(r.headers["referrer-policy"]).toBe("no-referrer")
        expect(r.headers["cache-control"]).toBe("no-store")
        expect(r.headers["content-type"]).toBe("application/json")
      }
    }))

  it.scopedLive("unknown routes and methods: 404 JSON 'no-route'", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      for (const [method, path] of [["GET", "/nowhere"], ["DELETE", "/api/stats"], ["GET", "/api/torrents/1/bogus"], ["PUT", "/metrics"]] as const) {
        const r = yield* raw(port, { method, path })
        expect([method, path, r.status, errorOf(r).reason]).toEqual([method, path, 404, "no-route"])
        expect(errorOf(r).message).toBe(`no route ${method} ${path}`)
      }
    }))
})
