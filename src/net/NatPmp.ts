/**
 * NAT-PMP (RFC 6886) messages: what a client sends to its gateway's UDP port 5351 and what comes back. Pure; `decode`
 * never throws (any datagram may arrive on the socket).
 *
 * Requests: external address (version 0, opcode 0), and a mapping (opcode 1 UDP, 2 TCP: internal port, suggested
 * external port, lifetime in seconds; lifetime 0 deletes). Responses carry opcode + 128, a result code, and the
 * gateway's seconds since its epoch; a mapping response says the external port actually granted and its lifetime.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

export const PORT = 5351

export type Protocol = "udp" | "tcp"

export class NatPmpError extends Data.TaggedError("NatPmpError")<{ readonly detail: string }> {
  override get message(): string {
    return `NAT-PMP: ${this.detail}`
  }
}

/** RFC 6886 §3.5 result codes. */
export const resultText = (code: number): string =>
  [
    "success",
    "unsupported version",
    "not authorized or refused",
    "network failure",
    "out of resources",
    "unsupported opcode"
  ][code] ?? `result code ${code}`

export type Response =
  | { readonly _tag: "ExternalAddress"; readonly result: number; readonly epoch: number; readonly address: string }
  | {
    readonly _tag: "Mapping"
    readonly protocol: Protocol
    readonly result: number
    readonly epoch: number
    readonly internalPort: number
    readonly externalPort: number
    readonly lifetime: number
  }

export const externalAddressRequest = (): Uint8Array => new Uint8Array([0, 0])

export const mappingRequest = (
  protocol: Protocol,
  internalPort: number,
  externalPort: number,
  lifetime: number
): Uint8Array => {
  const b = new Uint8Array(12)
  const v = new DataView(b.buffer)
  b[1] = protocol === "udp" ? 1 : 2
  v.setUint16(4, internalPort)
  v.setUint16(6, externalPort)
  v.setUint32(8, lifetime)
  return b
}

export const decode = (datagram: Uint8Array): Either.Either<Response, NatPmpError> => {
  const fail = (detail: string) => Either.left(new NatPmpError({ detail }))
  if (datagram.length < 8) return fail(`${datagram.length}-byte response`)
  const v = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength)
  if (datagram[0] !== 0) return fail(`version ${datagram[0]}`)
  const op = datagram[1]!
  const result = v.getUint16(2)
  const epoch = v.getUint32(4)
  if (op === 128) {
    // An error response may stop after the epoch (RFC 6886 §3.5); a success carries the address.
    if (result !== 0) return Either.right({ _tag: "ExternalAddress", result, epoch, address: "" })
    if (datagram.length < 12) return fail("external address response too short")
    return Either.right({ _tag: "ExternalAddress", result, epoch, address: Array.from(datagram.subarray(8, 12)).join(".") })
  }
  if (op === 129 || op === 130) {
    const protocol: Protocol = op === 129 ? "udp" : "tcp"
    if (datagram.length < 16) {
      if (result !== 0) return Either.right({ _tag: "Mapping", protocol, result, epoch, internalPort: 0, externalPort: 0, lifetime: 0 })
      return fail("mapping response too short")
    }
    return Either.right({
      _tag: "Mapping",
      protocol,
      result,
      epoch,
      internalPort: v.getUint16(8),
      externalPort: v.getUint16(10),
      lifetime: v.getUint32(12)
    })
  }
  return fail(`opcode ${op}`)
}

/** Encodes a response (what a gateway sends): tests and the codec's round trip. */
export const encodeResponse = (r: Response): Uint8Array => {
  const b = new Uint8Array(r._tag === "ExternalAddress" ? 12 : 16)
  const v = new DataView(b.buffer)
  b[1] = r._tag === "ExternalAddress" ? 128 : r.protocol === "udp" ? 129 : 130
  v.setUint16(2, r.result)
  v.setUint32(4, r.epoch)
  if (r._tag === "ExternalAddress") {
    r.address.split(".").forEach((o, i) => (b[8 + i] = Number(o)))
  } else {
    v.setUint16(8, r.internalPort)
    v.setUint16(10, r.externalPort)
    v.setUint32(12, r.lifetime)
  }
  return b
}

/**
 * The IPv4 default gateway from Linux's `/proc/net/route` text (the first default route: destination 00000000,
 * flags RTF_UP|RTF_GATEWAY; addresses little-endian hex). Undefined when there is none or the text is not that file.
 */
export const defaultGateway = (procNetRoute: string): string | undefined => {
  for (const line of procNetRoute.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 4 || f[1] !== "00000000") continue
    const flags = Number.parseInt(f[3]!, 16)
    if (!Number.isFinite(flags) || (flags & 0x3) !== 0x3 || !/^[0-9A-Fa-f]{8}$/.test(f[2]!)) continue
    const n = Number.parseInt(f[2]!, 16)
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join(".")
  }
  return undefined
}
