/**
 * Host name resolution (node:dns `lookup`, which honours /etc/hosts like every other client on the machine).
 */
import * as Dns from "node:dns"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Net from "node:net"

export class DnsError extends Data.TaggedError("DnsError")<{
  readonly host: string
  readonly cause: unknown
}> {
  override get message(): string {
    const code = (this.cause as { code?: unknown } | null)?.code
    return `cannot resolve host ${this.host}${typeof code === "string" ? ` (${code})` : ""}`
  }
}

export interface Address {
  readonly address: string
  readonly family: 4 | 6
}

/** Resolves a host name (or passes an IP literal through) to one address. Interruptible; never throws. */
export const lookup = (host: string): Effect.Effect<Address, DnsError> => {
  const literal = Net.isIP(host)
  if (literal === 4 || literal === 6) return Effect.succeed({ address: host, family: literal })
  return Effect.async<Address, DnsError>((resume) => {
    Dns.lookup(host, { verbatim: true }, (cause, address, family) => {
      if (cause || (family !== 4 && family !== 6)) resume(Effect.fail(new DnsError({ host, cause })))
      else resume(Effect.succeed({ address, family }))
    })
  })
}
