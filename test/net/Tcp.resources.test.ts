/**
 * The listening socket's close paths: a connection that nobody will accept (the listener failed, e.g. accept hit
 * EMFILE, or it is closing) is destroyed at once, never left open with its descriptor; the listener's release
 * completes. `node:net` is wrapped so the test can reach the server the module made and make it fail.
 */
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { vi } from "vitest"
import * as Tcp from "../../src/net/Tcp.ts"

const hooks = vi.hoisted(() => ({ servers: [] as Array<import("node:net").Server> }))

vi.mock("node:net", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:net")>()
  const createServer = ((...args: Array<unknown>) => {
    const s = (real.createServer as (...a: Array<unknown>) => import("node:net").Server)(...args)
    hooks.servers.push(s)
    return s
  }) as typeof real.createServer
  return { ...real, createServer, default: { ...real, createServer } }
})

/** Connects to `port` and resolves when the server side closes the connection (or after `ms`: "open"). */
const closedByServer = (port: number, ms: number) =>
  Effect.async<"closed" | "open">((resume) => {
    const c = Net.createConnection({ host: "127.0.0.1", port })
    const timer = setTimeout(() => {
      c.destroy()
      resume(Effect.succeed("open"))
    }, ms)
    c.on("error", () => {})
    c.on("close", () => {
      clearTimeout(timer)
      resume(Effect.succeed("closed"))
    })
    c.resume()
  })

describe("Tcp listener resources", () => {
  it.live("after the listener failed (accept error), new connections are destroyed, not leaked; release completes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* Scope.extend(Tcp.listen({ host: "127.0.0.1", port: 0 }), scope)
      const server = hooks.servers[hooks.servers.length - 1]!
      server.emit("error", Object.assign(new Error("accept EMFILE"), { code: "EMFILE" }))
      const err = yield* Effect.flip(Effect.scoped(listener.accept))
      expect(err.reason).toBe("listen-failed")
      // Before: the connection sat in a closed mailbox, open forever (paused, so it never saw our side).
      expect(yield* closedByServer(listener.address.port, 1000)).toBe("closed")
      const exit = yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("2 seconds"), Effect.exit)
      expect(Exit.isSuccess(exit)).toBe(true)
    }))

  it.live("connections still pending (never accepted) when the listener closes are destroyed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* Scope.extend(Tcp.listen({ host: "127.0.0.1", port: 0 }), scope)
      const pending = Effect.runPromise(closedByServer(listener.address.port, 3000))
      yield* Effect.sleep("100 millis") // it reaches the mailbox
      yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("2 seconds"))
      expect(yield* Effect.promise(() => pending)).toBe("closed")
    }))
})
