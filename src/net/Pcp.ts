/**
 * PCP (Port Control Protocol, RFC 6887) MAP messages: NAT-PMP's successor, on the same gateway port (5351). Pure;
 * `decode` never throws (any datagram may arrive on the socket).
 *
 * A MAP request (60 bytes) asks the gateway to forward `suggestedPort` (any when 0) of its external address to our
 * `internalPort` for `lifetime` seconds (0 deletes). It carries our own address as the gateway sees it (IPv4 as
 * ::ffff:a.b.c.d) and a 96-bit nonce: renewals and the deletion repeat the nonce, which is how the gateway knows the
 * mapping is ours. The answer repeats the nonce and gives the external port and address assigned, the lifetime granted
 * and a result code. A gateway that speaks only NAT-PMP answers a PCP request with a NAT-PMP "unsupported version"
 * (RFC 6887 §9): `decode` reports that as `NatPmpOnly`, and the client falls back to NAT-PMP.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

export const PORT = 5351
export const VERSION = 2
const OPCODE_MAP = 1
const REQUEST_LENGTH = 60
const RESPONSE_LENGTH = 60
export const NONCE_LENGTH = 12

export type Protocol = "udp" | "tcp"
const protocolNumber = (p: Protocol): number => (p === "tcp" ? 6 : 17)

export class PcpError extends Data.TaggedError("PcpError")<{ readonly detail: string }> {
  override get message(): string {
    return `PCP: ${this.detail}`
  }
}

/** RFC 6887 §7.4 result codes. */
export const resultText = (code: number): string =>
  [
    "success",
    "unsupported version",
    "not authorized",
    "malformed request",
    "unsupported opcode",
    "unsupported option",
    "malformed option",
    "network failure",
    "no resources",
    "unsupported protocol",
    "user exceeded quota",
    "cannot provide external",
    "address mismatch",
    "excessive remote peers"
  ][code] ?? `result code ${code}`

export interface MapRequest {
  readonly nonce: Uint8Array
  readonly protocol: Protocol
  readonly internalPort: number
  /** 0: any. */
  readonly suggestedPort: number
  /** Seconds; 0 deletes the mapping. */
  readonly lifetime: number
  /** Our IPv4 address, as the gateway sees the request come from. */
  readonly clientAddress: string
}

export type Response =
  | {
    readonly _tag: "Map"
    readonly result: number
    readonly lifetime: number
    readonly epoch: number
    readonly nonce: Uint8Array
    readonly protocol: Protocol | number
    readonly internalPort: number
    readonly externalPort: number
    /** The assigned external address: dotted IPv4 for ::ffff:a.b.c.d, else the 16 bytes in hex groups. */
    readonly externalAddress: string
  }
  /** A NAT-PMP gateway's answer to our version 2: it speaks only NAT-PMP. */
  | { readonly _tag: "NatPmpOnly" }

/** ::ffff:a.b.c.d for a dotted IPv4 address (undefined for anything else). */
export const mappedIpv4 = (address: string): Uint8Array | undefined => {
  const parts = address.split(".")
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined
  const b = new Uint8Array(16)
  b[10] = 0xff
  b[11] = 0xff
  parts.forEach((p, i) => (b[12 + i] = Number(p)))
  return b
}

const addressText = (b: Uint8Array): string => {
  const isMapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff
  if (isMapped) return Array.from(b.subarray(12, 16)).join(".")
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16))
  return groups.join(":")
}

export const mapRequest = (r: MapRequest): Either.Either<Uint8Array, PcpError> => {
  const client = mappedIpv4(r.clientAddress)
  if (client === undefined) return Either.left(new PcpError({ detail: `client address ${r.clientAddress} is not IPv4` }))
  if (r.nonce.length !== NONCE_LENGTH) return Either.left(new PcpError({ detail: `nonce of ${r.nonce.length} bytes` }))
  const b = new Uint8Array(REQUEST_LENGTH)
  const v = new DataView(b.buffer)
  b[0] = VERSION
  b[1] = OPCODE_MAP
  v.setUint32(4, r.lifetime >>> 0)
  b.set(client, 8)
  b.set(r.nonce, 24)
  b[36] = protocolNumber(r.protocol)
  v.setUint16(40, r.internalPort)
  v.setUint16(42, r.suggestedPort)
  // suggested external address: ::ffff:0.0.0.0, no preference (RFC 6887 §11.1)
  b[54] = 0xff
  b[55] = 0xff
  return Either.right(b)
}

export const decode = (datagram: Uint8Array): Either.Either<Response, PcpError> => {
  const fail = (detail: string) => Either.left(new PcpError({ detail }))
  if (datagram.length < 4) return fail(`${datagram.length}-byte response`)
  // NAT-PMP: version 0, opcode 128 + ours, result 1 (unsupported version)
  if (datagram[0] === 0) {
    const result = (datagram[2]! << 8) | datagram[3]!
    return result === 1 && datagram[1]! >= 128 ? Either.right({ _tag: "NatPmpOnly" }) : fail("a NAT-PMP answer")
  }
  if (datagram[0] !== VERSION) return fail(`version ${datagram[0]}`)
  if ((datagram[1]! & 0x80) === 0) return fail("a request, not a response")
  if ((datagram[1]! & 0x7f) !== OPCODE_MAP) return fail(`opcode ${datagram[1]! & 0x7f}`)
  if (datagram.length < RESPONSE_LENGTH) return fail(`${datagram.length}-byte MAP response`)
  if (datagram.length > 1100 || datagram.length % 4 !== 0) return fail(`${datagram.length}-byte response`)
  const v = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength)
  const proto = datagram[36]!
  return Either.right({
    _tag: "Map",
    result: datagram[3]!,
    lifetime: v.getUint32(4),
    epoch: v.getUint32(8),
    nonce: datagram.slice(24, 36),
    protocol: proto === 6 ? "tcp" : proto === 17 ? "udp" : proto,
    internalPort: v.getUint16(40),
    externalPort: v.getUint16(42),
    externalAddress: addressText(datagram.subarray(44, 60))
  })
}

/** A MAP response as a gateway sends it (tests and fakes). */
export const mapResponse = (r: {
  readonly result: number
  readonly lifetime: number
  readonly epoch: number
  readonly nonce: Uint8Array
  readonly protocol: Protocol
  readonly internalPort: number
  readonly externalPort: number
  readonly externalAddress: string
}): Uint8Array => {
  const b = new Uint8Array(RESPONSE_LENGTH)
  const v = new DataView(b.buffer)
  b[0] = VERSION
  b[1] = 0x80 | OPCODE_MAP
  b[3] = r.result
  v.setUint32(4, r.lifetime >>> 0)
  v.setUint32(8, r.epoch >>> 0)
  b.set(r.nonce.subarray(0, NONCE_LENGTH), 24)
  b[36] = protocolNumber(r.protocol)
  v.setUint16(40, r.internalPort)
  v.setUint16(42, r.externalPort)
  b.set(mappedIpv4(r.externalAddress) ?? new Uint8Array(16), 44)
  return b
}

/** The nonce, protocol and internal port of a MAP request (what a gateway reads; tests and fakes). */
export const readRequest = (
  b: Uint8Array
): { readonly nonce: Uint8Array; readonly protocol: number; readonly internalPort: number; readonly lifetime: number; readonly client: string } | undefined => {
  if (b.length < REQUEST_LENGTH || b[0] !== VERSION || b[1] !== OPCODE_MAP) return undefined
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength)
  return {
    nonce: b.slice(24, 36),
    protocol: b[36]!,
    internalPort: v.getUint16(40),
    lifetime: v.getUint32(4),
    client: addressText(b.subarray(8, 24))
  }
}
