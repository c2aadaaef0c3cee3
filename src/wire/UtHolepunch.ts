/**
 * BEP 55 `ut_holepunch`: the message that lets two peers which cannot accept connections (behind a NAT or a
 * firewall) meet through a third they are both connected to, the relay.
 *
 * Payload (binary, not bencoded): `msg_type` (1 byte: 0 rendezvous, 1 connect, 2 error), `addr_type` (1 byte: 0
 * IPv4, 1 IPv6), the address (4 or 16 bytes), the port (2 bytes), `err_code` (4 bytes, big-endian; 0 outside
 * errors). The initiator sends `rendezvous` with the target's endpoint to the relay; the relay sends `connect` to
 * both, each with the other's endpoint (both then dial uTP at once), or `error` back to the initiator with the same
 * endpoint as the rendezvous.
 *
 * Decoding is tolerant where real clients differ: libtorrent 2.0 writes `err_code` only in error messages, so a
 * missing `err_code` reads as 0, and bytes after it are ignored (future fields). A message too short for its
 * address, an unknown `msg_type` or `addr_type`, or port 0 is an `ExtensionError` ("bad-message"). Never throws.
 */
import * as Either from "effect/Either"
import { ExtensionError } from "./ExtensionHandshake.ts"
import * as UtPex from "./UtPex.ts"

export const MsgType = { Rendezvous: 0, Connect: 1, Error: 2 } as const
export type MsgType = "Rendezvous" | "Connect" | "Error"

/** BEP 55 error codes (`err_code`). Other values are kept as they come. */
export const ErrorCode = {
  /** The target endpoint is not valid. */
  NoSuchPeer: 1,
  /** The relay is not connected to the target. */
  NotConnected: 2,
  /** The target does not support ut_holepunch. */
  NoSupport: 3,
  /** The target endpoint is the relay itself (or the initiator). */
  NoSelf: 4
} as const

export interface Message {
  readonly _tag: MsgType
  /** The endpoint: the target (rendezvous, error) or the other peer (connect). */
  readonly ip: string
  readonly port: number
  /** {@link ErrorCode} for `Error`; 0 otherwise. */
  readonly error: number
}

export const rendezvous = (to: UtPex.Endpoint): Message => ({ _tag: "Rendezvous", ip: to.ip, port: to.port, error: 0 })
export const connect = (to: UtPex.Endpoint): Message => ({ _tag: "Connect", ip: to.ip, port: to.port, error: 0 })
export const error = (to: UtPex.Endpoint, code: number): Message => ({ _tag: "Error", ip: to.ip, port: to.port, error: code })

/** An error code's name, for logs. */
export const errorName = (code: number): string =>
  Object.entries(ErrorCode).find(([, v]) => v === code)?.[0] ?? `code ${code}`

/**
 * The payload of a message, or `undefined` when its endpoint is not an IP address with a port in 1..65535 (an
 * `error` code outside 0..2^32-1 is cut to 32 bits).
 */
export const encode = (m: Message): Uint8Array | undefined => {
  const c = UtPex.compact(m)
  if (c === undefined) return undefined
  const out = new Uint8Array(2 + c.length + 4)
  out[0] = MsgType[m._tag]
  out[1] = c.length === 6 ? 0 : 1
  out.set(c, 2)
  new DataView(out.buffer).setUint32(2 + c.length, m._tag === "Error" ? m.error >>> 0 : 0)
  return out
}

const bad = (detail: string) => Either.left(new ExtensionError({ reason: "bad-message", detail: `ut_holepunch: ${detail}` }))

/** Decodes a ut_holepunch payload. Never throws. */
export const decode = (payload: Uint8Array): Either.Either<Message, ExtensionError> => {
  if (payload.length < 2) return bad(`${payload.length} bytes, at least 8`)
  const type = payload[0]!
  const tag: MsgType | undefined = type === 0 ? "Rendezvous" : type === 1 ? "Connect" : type === 2 ? "Error" : undefined
  if (tag === undefined) return bad(`unknown msg_type ${type}`)
  const addrType = payload[1]!
  if (addrType !== 0 && addrType !== 1) return bad(`unknown addr_type ${addrType}`)
  const size = addrType === 0 ? 6 : 18
  if (payload.length < 2 + size) return bad(`${payload.length} bytes, an ${addrType === 0 ? "IPv4" : "IPv6"} endpoint needs ${2 + size}`)
  const endpoint = UtPex.fromCompact(payload.subarray(2, 2 + size))
  if (endpoint === undefined) return bad("port 0")
  const at = 2 + size
  const error = tag === "Error" && payload.length >= at + 4
    ? new DataView(payload.buffer, payload.byteOffset + at, 4).getUint32(0)
    : 0
  return Either.right({ _tag: tag, ip: endpoint.ip, port: endpoint.port, error })
}
