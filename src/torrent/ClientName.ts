/**
 * A peer's client, for display (`Torrent.peers`): the `v` of its BEP 10 extension handshake when it sent one, else
 * what its peer id says in the Azureus style of BEP 20 (`-LT2080-…` → "libtorrent 2.0.8.0"; an unknown two-letter
 * code is shown as is), else "" (Shadow-style and random peer ids are not guessed at).
 */
import type { PeerId } from "../core/InfoHash.ts"

const KNOWN: ReadonlyMap<string, string> = new Map([
  ["ET", "effect-torrent"],
  ["LT", "libtorrent"],
  ["lt", "libTorrent (rakshasa)"],
  ["qB", "qBittorrent"],
  ["TR", "Transmission"],
  ["UT", "µTorrent"],
  ["UM", "µTorrent Mac"],
  ["BT", "BitTorrent"],
  ["DE", "Deluge"],
  ["AZ", "Azureus"],
  ["BI", "BiglyBT"],
  ["WW", "WebTorrent"],
  ["WD", "WebTorrent Desktop"],
  ["RT", "rqbit"],
  ["rQ", "rqbit"],
  ["KT", "KTorrent"],
  ["FD", "Free Download Manager"],
  ["TX", "Tixati"],
  ["AG", "Ares"],
  ["A~", "Ares"]
])

const printable = (b: number) => b >= 0x20 && b < 0x7f

/** The client named by an Azureus-style peer id, or "". */
export const fromPeerId = (peerId: PeerId | Uint8Array): string => {
  if (peerId.length < 8 || peerId[0] !== 0x2d || peerId[7] !== 0x2d) {
    // aria2: "A2-1-36-0-…"
    if (peerId.length >= 2 && peerId[0] === 0x41 && peerId[1] === 0x32 && peerId[2] === 0x2d) {
      const text = String.fromCharCode(...peerId.subarray(3, 12))
      const m = /^(\d+)-(\d+)-(\d+)-/.exec(text)
      return m === null ? "aria2" : `aria2 ${m[1]}.${m[2]}.${m[3]}`
    }
    return ""
  }
  for (let i = 1; i < 7; i++) if (!printable(peerId[i]!)) return ""
  const code = String.fromCharCode(peerId[1]!, peerId[2]!)
  const version = String.fromCharCode(...peerId.subarray(3, 7))
  const name = KNOWN.get(code) ?? code
  const digits = /^[0-9A-Za-z]{4}$/.test(version)
    ? [...version].map((c) => (/[0-9]/.test(c) ? c : String(c.charCodeAt(0) - (c >= "a" ? 87 : 55)))).join(".")
    : version
  return `${name} ${digits}`
}

/** The handshake's `v` when present and not blank, else {@link fromPeerId}. */
export const of = (v: string | undefined, peerId: PeerId | Uint8Array): string =>
  v !== undefined && v.trim() !== "" ? v : fromPeerId(peerId)
