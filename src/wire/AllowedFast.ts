/**
 * BEP 6 allowed-fast set: the canonical `k` pieces a peer at an IPv4 address may request from us while we choke
 * it. Deterministic from the address (its /24) and the info-hash, so a peer cannot get a new set by reconnecting
 * from a neighbouring address. Pure.
 */
import { createHash } from "node:crypto"

/** libtorrent's default `allowed_fast_set_size`. */
export const defaultSize = 5

const ipv4 = (ip: string): number | undefined => {
  const parts = ip.split(".")
  if (parts.length !== 4) return undefined
  let n = 0
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined
    n = n * 256 + Number(p)
  }
  return n
}

/**
 * The first `k` pieces of the canonical set for a peer at `ip` (IPv4 text; IPv6 peers get none, as the BEP
 * defines the set for IPv4 only), or an empty list when `pieceCount` is not above `k`.
 */
export const canonicalSet = (
  ip: string,
  infoHash: Uint8Array,
  pieceCount: number,
  k = defaultSize,
  options?: { readonly wholeAddress?: boolean | undefined }
): Array<number> => {
  const address = ipv4(ip.startsWith("::ffff:") ? ip.slice(7) : ip)
  if (address === undefined || pieceCount <= k || k <= 0) return []
  let x: Uint8Array = new Uint8Array(4 + infoHash.length)
  // `wholeAddress`: libtorrent 2.0's variant, which hashes the whole address instead of its /24 (measured against
  // python3-libtorrent 2.0.8 in test/torrent/swarm.interop.test.ts). Only the sender's choice: receivers take any set.
  new DataView(x.buffer).setUint32(0, options?.wholeAddress === true ? address : (address & 0xffffff00) >>> 0)
  x.set(infoHash, 4)
  const out: Array<number> = []
  while (out.length < k) {
    x = new Uint8Array(createHash("sha1").update(x).digest())
    const view = new DataView(x.buffer, x.byteOffset, x.byteLength)
    for (let i = 0; i < 5 && out.length < k; i++) {
      const index = view.getUint32(i * 4) % pieceCount
      if (!out.includes(index)) out.push(index)
    }
  }
  return out
}
