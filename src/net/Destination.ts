/**
 * Which network destinations a process may contact. Tests and sandboxes set `EFFECT_TORRENT_LOOPBACK_ONLY=1` so that
 * no packet, and no DNS query, leaves 127.0.0.0/8 and ::1, whatever addresses a torrent or a peer hands us.
 */
import { isIP } from "node:net"

/** `127.0.0.0/8`, `::1`, `::ffff:127.x.y.z` and the name `localhost`. */
export const isLoopbackHost = (host: string): boolean => {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host
  if (h.toLowerCase() === "localhost") return true
  const v = isIP(h)
  if (v === 4) return h.startsWith("127.")
  if (v === 6) {
    const lower = h.toLowerCase()
    return lower === "::1" || lower === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(lower)
  }
  return false
}

/** True when the environment restricts this process to loopback destinations. */
export const loopbackOnly = (): boolean => {
  const v = process.env["EFFECT_TORRENT_LOOPBACK_ONLY"]
  return v !== undefined && v !== "" && v !== "0"
}

/** The host of a URL (brackets removed), or `undefined` when the text is not a URL. */
export const hostOf = (url: string): string | undefined => {
  try {
    const h = new URL(url).hostname
    return h.startsWith("[") ? h.slice(1, -1) : h
  } catch {
    return undefined
  }
}
