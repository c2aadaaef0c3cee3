/**
 * BEP 14 Local Service Discovery announces: HTTP-like text in one UDP multicast datagram.
 *
 *     BT-SEARCH * HTTP/1.1\r\n
 *     Host: 239.192.152.143:6771\r\n
 *     Port: 6881\r\n
 *     Infohash: <40 hex>\r\n        (may repeat)
 *     cookie: <hex>\r\n             (optional; lets a client drop its own announces looped back)
 *     \r\n
 *     \r\n
 *
 * `decode` is as lenient as libtorrent's parser (method and header names case-insensitive, `\n` line ends, unknown
 * headers ignored, a malformed info-hash skipped) and never throws: any datagram on the group may be garbage.
 */
import * as Either from "effect/Either"
import * as Data from "effect/Data"
import * as Bytes from "../core/Bytes.ts"

export const GROUP_V4 = "239.192.152.143"
export const GROUP_V6 = "ff15::efc0:988f"
export const PORT = 6771
/** Largest datagram read or written: one Ethernet MTU's payload (BEP 14 keeps announces under it). */
export const MAX_SIZE = 1400

export class LsdMessageError extends Data.TaggedError("LsdMessageError")<{ readonly detail: string }> {
  override get message(): string {
    return `LSD announce: ${this.detail}`
  }
}

export interface Announce {
  /** The TCP/uTP port the announcing client accepts peers on. */
  readonly port: number
  /** 20-byte info-hashes (v1, or a v2 hash truncated as on the wire). */
  readonly infoHashes: ReadonlyArray<Uint8Array>
  /** Lower-case hex, as sent; absent when the sender gave none. */
  readonly cookie?: string | undefined
}

/** The `Host` header's value for a group. */
const hostHeader = (family: 4 | 6): string => (family === 4 ? `${GROUP_V4}:${PORT}` : `[${GROUP_V6}]:${PORT}`)

/** The datagram announcing `infoHashes` (one, as libtorrent and Transmission send, or several within MAX_SIZE). */
export const encode = (announce: Announce, family: 4 | 6 = 4): Uint8Array => {
  const lines = ["BT-SEARCH * HTTP/1.1", `Host: ${hostHeader(family)}`, `Port: ${announce.port}`]
  for (const h of announce.infoHashes) lines.push(`Infohash: ${Bytes.toHex(h)}`)
  if (announce.cookie !== undefined) lines.push(`cookie: ${announce.cookie}`)
  return Bytes.encodeUtf8(lines.join("\r\n") + "\r\n\r\n\r\n")
}

/** How many info-hashes fit one datagram with these other fields (each `Infohash: …\r\n` line is 52 bytes). */
export const capacity = (port: number, cookie: string | undefined, family: 4 | 6 = 4): number =>
  Math.floor((MAX_SIZE - encode({ port, infoHashes: [], cookie }, family).length) / 52)

const HEX40 = /^[0-9a-fA-F]{40}$/

export const decode = (datagram: Uint8Array): Either.Either<Announce, LsdMessageError> => {
  const fail = (detail: string) => Either.left(new LsdMessageError({ detail }))
  if (datagram.length > MAX_SIZE * 2) return fail(`${datagram.length} bytes, too large`)
  // Latin-1: every byte maps to one character, so no decoding can fail; the protocol's text is ASCII.
  const text = Bytes.toBinaryString(datagram)
  const end = text.search(/\r?\n\r?\n/)
  if (end < 0) return fail("headers not terminated")
  const lines = text.slice(0, end).split(/\r?\n/)
  const request = lines[0]!.split(" ")
  if (request[0]?.toLowerCase() !== "bt-search") return fail("not a BT-SEARCH request")
  let port: number | undefined
  let cookie: string | undefined
  const infoHashes: Array<Uint8Array> = []
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":")
    if (colon < 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === "port") {
      if (!/^[0-9]{1,5}$/.test(value)) return fail(`port ${JSON.stringify(value.slice(0, 16))} is not a number`)
      port = Number(value)
    } else if (name === "infohash") {
      // libtorrent skips a malformed one and keeps the others; an all-zero hash names no torrent.
      if (HEX40.test(value) && !/^0{40}$/.test(value)) infoHashes.push(Bytes.fromHex(value.toLowerCase())!)
    } else if (name === "cookie") {
      cookie = value.toLowerCase()
    }
  }
  if (port === undefined) return fail("no Port header")
  if (port < 1 || port > 65535) return fail(`port ${port} out of range`)
  return Either.right({ port, infoHashes, ...(cookie !== undefined ? { cookie } : {}) })
}
