/**
 * The UDP socket's close path and its errors: an error event on the socket is logged (once per code as a warning),
 * never dropped; a second close (someone else closed our socket) is a defect of the scope's close, never swallowed
 * as "already closed". `node:dgram` is wrapped so the test can reach the socket the module made.
 */
import type * as Dgram from "node:dgram"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import { vi } from "vitest"
import * as Udp from "../../src/net/Udp.ts"

const hooks = vi.hoisted(() => ({ sockets: [] as Array<Dgram.Socket> }))

vi.mock("node:dgram", async (importOriginal) => {
  const real = await importOriginal<typeof Dgram>()
  const createSocket = ((...args: Parameters<typeof real.createSocket>) => {
    const s = real.createSocket(...args)
    hooks.sockets.push(s)
    return s
  }) as typeof real.createSocket
  return { ...real, createSocket, default: { ...real, createSocket } }
})

const lastSocket = () => hooks.sockets[hooks.sockets.length - 1]!

describe("Udp socket resources", () => {
  it.live("an error event is logged, once per code as a warning (then at debug level), never dropped", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
      })
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Udp.make({ family: "udp4", address: "127.0.0.1" })
        const s = lastSocket()
        const boom = (code: string) => Object.assign(new Error(`recvmsg ${code}`), { code })
        s.emit("error", boom("ENOMEM"))
        s.emit("error", boom("ENOMEM"))
        s.emit("error", boom("EIO"))
        yield* Effect.sleep("20 millis")
      })).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.All)
      )
      expect(lines.filter((l) => l.startsWith("WARN"))).toHaveLength(2)
      expect(lines.filter((l) => l.startsWith("WARN") && l.includes("recvmsg ENOMEM"))).toHaveLength(1)
      expect(lines.filter((l) => l.startsWith("DEBUG") && l.includes("recvmsg ENOMEM"))).toHaveLength(1)
    }))

  it.live("a socket closed under us makes the scope's close fail with a defect (not 'already closed')", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Scope.extend(Udp.make({ family: "udp4", address: "127.0.0.1" }), scope)
      lastSocket().close()
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      expect(Exit.isFailure(exit) && exit.cause._tag !== "Empty").toBe(true)
    }))

  it.live("closed by its scope exactly once: no defect, the port is free again", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const s = yield* Scope.extend(Udp.make({ family: "udp4", address: "127.0.0.1" }), scope)
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      expect(Exit.isSuccess(exit)).toBe(true)
      yield* Effect.scoped(Udp.make({ family: "udp4", address: "127.0.0.1", port: s.local.port }))
    }))
})
