/**
 * `GET /api/openapi.json`: valid JSON, OpenAPI 3.1, every endpoint of Api.ts with its method, the error body,
 * and the credentials as security schemes that apply to every operation.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Api } from "../../src/api/Api.ts"
import { raw, start } from "./support.ts"

interface Operation {
  readonly operationId: string
  readonly security?: ReadonlyArray<unknown>
  readonly responses: Record<string, unknown>
}
interface Spec {
  readonly openapi: string
  readonly info: { readonly title: string }
  readonly paths: Record<string, Record<string, Operation>>
  readonly components: { readonly schemas: Record<string, unknown>; readonly securitySchemes: Record<string, { readonly type: string; readonly scheme?: string }> }
  readonly security: ReadonlyArray<Record<string, ReadonlyArray<string>>>
}

/** Every endpoint of the API as [method, OpenAPI path]. */
const endpoints = (): Array<readonly [string, string]> =>
  Object.values(Api.groups).flatMap((group) =>
    Object.values(group.endpoints).map((e) => [e.method.toLowerCase(), e.path.replace(/:(\w+)/g, "{$1}")] as const)
  )

describe("GET /api/openapi.json", () => {
  it.scopedLive("valid JSON, OpenAPI 3.1, every path and method of the API", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      const r = yield* raw(port, { path: "/api/openapi.json" })
      expect(r.status).toBe(200)
      expect(r.headers["content-type"]).toBe("application/json")
      const spec = JSON.parse(r.text) as Spec
      expect(spec.openapi).toBe("3.1.0")
      expect(spec.info.title).toBe("effect-torrent daemon")
      const expected = endpoints()
      expect(expected.length).toBe(20) // torrents 13, files 2, session 3, events 1, metrics 1
      for (const [method, path] of expected) {
        expect(spec.paths[path]?.[method], `${method} ${path}`).toBeDefined()
      }
      const documented = Object.entries(spec.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`))
      expect(documented.sort()).toEqual(expected.map(([m, p]) => `${m} ${p}`).sort())
      for (const path of ["/api/torrents", "/api/torrents/{ref}", "/api/torrents/{ref}/files/{index}", "/api/events", "/metrics", "/api/settings", "/api/stats"]) {
        expect(Object.keys(spec.paths)).toContain(path)
      }
    }))

  it.scopedLive("the error body, statuses per endpoint, the add body's two media types", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      const spec = (yield* raw(port, { path: "/api/openapi.json" })).json() as Spec
      expect(spec.components.schemas["ApiError"]).toMatchObject({
        type: "object",
        required: ["error"],
        properties: { error: { type: "object", required: ["reason", "message"] } }
      })
      const add = spec.paths["/api/torrents"]!["post"]! as Operation & { readonly requestBody: { readonly content: Record<string, unknown> } }
      expect(Object.keys(add.requestBody.content).sort()).toEqual(["application/x-bittorrent", "text/plain"])
      expect(Object.keys(add.responses)).toEqual(expect.arrayContaining(["200", "201", "400", "401", "403", "404", "413", "415", "421", "503"]))
      const read = spec.paths["/api/torrents/{ref}/files/{index}"]!["get"]!
      expect(Object.keys(read.responses)).toEqual(expect.arrayContaining(["200", "206", "416"]))
    }))

  it.scopedLive("bearer and basic security schemes, required by every operation (no operation overrides them with [])", () =>
    Effect.gen(function*() {
      const { port } = yield* start()
      const spec = (yield* raw(port, { path: "/api/openapi.json" })).json() as Spec
      expect(spec.components.securitySchemes).toEqual({
        bearer: { type: "http", scheme: "bearer" },
        basic: { type: "http", scheme: "basic" }
      })
      expect(spec.security).toEqual([{ bearer: [] }, { basic: [] }])
      for (const ops of Object.values(spec.paths)) {
        for (const op of Object.values(ops)) expect(op.security, op.operationId).toBeUndefined()
      }
    }))
})
