/**
 * Where a peer's address came from (issue 19 item 5), as libtorrent's `peer_source_flags`: every source that named an
 * address is kept as a bit of a small integer, and the first one to name it is remembered besides (what a peer list
 * shows in one word). An inbound connection's source is "incoming"; a web seed's "webseed".
 *
 * - `tracker`: an announce answer; `dht`: a DHT lookup (or a peer announced to our own node); `pex`: BEP 11;
 *   `lsd`: BEP 14; `manual`: given by the user or the embedder (`--peer`, a magnet's `x.pe`, the API's `peers`);
 *   `incoming`: it connected to us; `webseed`: a BEP 19 HTTP source.
 */
export const sources = ["tracker", "dht", "pex", "lsd", "manual", "incoming", "webseed"] as const
export type PeerSource = (typeof sources)[number]

/** A set of sources as bits (bit i: `sources[i]`). */
export type Flags = number

export const flag = (source: PeerSource): Flags => 1 << sources.indexOf(source)

export const has = (flags: Flags, source: PeerSource): boolean => (flags & flag(source)) !== 0

/** The sources of `flags`, in the order of `sources`. */
export const toArray = (flags: Flags): ReadonlyArray<PeerSource> => sources.filter((s) => has(flags, s))

export const fromArray = (list: ReadonlyArray<PeerSource>): Flags => list.reduce((f, s) => f | flag(s), 0)

/** What is known of one address: the first source that named it and all that did. */
export interface Origin {
  readonly first: PeerSource
  readonly flags: Flags
}

/** `origin` after `source` named the address again (the first stays first). */
export const note = (origin: Origin | undefined, source: PeerSource): Origin =>
  origin === undefined ? { first: source, flags: flag(source) } : { first: origin.first, flags: origin.flags | flag(source) }

/**
 * Transmission's `peersFrom` key of a peer (its `TR_PEER_FROM_*`): a peer counts once, under its first source.
 * Transmission has no "manual" source; peers given by hand are counted like resume-file peers (`fromCache`), and it
 * lists web seeds apart (`webseedsSendingToUs`), so they count nowhere.
 */
export const transmissionKey = (
  source: PeerSource
): "fromTracker" | "fromDht" | "fromPex" | "fromLpd" | "fromIncoming" | "fromCache" | undefined => {
  switch (source) {
    case "tracker":
      return "fromTracker"
    case "dht":
      return "fromDht"
    case "pex":
      return "fromPex"
    case "lsd":
      return "fromLpd"
    case "incoming":
      return "fromIncoming"
    case "manual":
      return "fromCache"
    case "webseed":
      return undefined
  }
}

/** A peer address handed to a torrent, with where it came from (absent: given by hand, "manual"). */
export interface Address {
  readonly host: string
  readonly port: number
  readonly source?: PeerSource | undefined
}
