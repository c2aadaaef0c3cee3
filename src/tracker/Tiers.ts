/**
 * BEP 12 announce-list tiers as a pure state machine. Trackers are tried tier by tier, in order within a tier
 * (shuffled once, at the start); the one that answers moves to the front of its tier and the next announce starts
 * again from the first tier; a failure moves on to the next tracker, and after the last one the round is
 * `exhausted` (the caller backs off, then starts over).
 *
 * Invariants (property-tested): every operation keeps the same set of URLs in the same tiers, in the same tier
 * order; a URL appears at most once; the cursor always points at a URL when there is one.
 */
export interface Tiers {
  readonly tiers: ReadonlyArray<ReadonlyArray<string>>
  /** The tracker to try next. */
  readonly cursor: { readonly tier: number; readonly index: number }
}

export interface Entry {
  readonly url: string
  readonly tier: number
}

const START = { tier: 0, index: 0 } as const

/** Tiers as given, minus blank URLs, duplicates (the first occurrence wins) and empty tiers. */
export const make = (tiers: ReadonlyArray<ReadonlyArray<string>>): Tiers => {
  const seen = new Set<string>()
  const out: Array<Array<string>> = []
  for (const tier of tiers) {
    const kept = tier.map((u) => u.trim()).filter((u) => u !== "" && !seen.has(u) && (seen.add(u), true))
    if (kept.length > 0) out.push(kept)
  }
  return { tiers: out, cursor: START }
}

/** Fisher–Yates within each tier; `random` returns a number in [0, 1). Tier order is kept. */
export const shuffle = (
  tiers: ReadonlyArray<ReadonlyArray<string>>,
  random: () => number
): ReadonlyArray<ReadonlyArray<string>> =>
  tiers.map((tier) => {
    const a = [...tier]
    for (let i = a.length - 1; i > 0; i--) {
      const r = random()
      const j = r >= 0 && r < 1 ? Math.floor(r * (i + 1)) : 0 // a misbehaving source must not lose URLs
      const t = a[i]!
      a[i] = a[j]!
      a[j] = t
    }
    return a
  })

/** The tracker to try next; `undefined` only when there are no trackers at all. */
export const current = (t: Tiers): Entry | undefined => {
  const url = t.tiers[t.cursor.tier]?.[t.cursor.index]
  return url === undefined ? undefined : { url, tier: t.cursor.tier }
}

/** Every tracker in the order they would be tried from the start. */
export const entries = (t: Tiers): ReadonlyArray<Entry> => t.tiers.flatMap((tier, i) => tier.map((url) => ({ url, tier: i })))

export const size = (t: Tiers): number => t.tiers.reduce((n, tier) => n + tier.length, 0)

/** The current tracker answered: it moves to the front of its tier, and the next round starts from the top. */
export const succeeded = (t: Tiers): Tiers => {
  const { tier, index } = t.cursor
  const row = t.tiers[tier]
  if (row === undefined || index >= row.length) return { tiers: t.tiers, cursor: START }
  const moved = [row[index]!, ...row.slice(0, index), ...row.slice(index + 1)]
  return { tiers: t.tiers.map((r, i) => (i === tier ? moved : r)), cursor: START }
}

/**
 * The current tracker failed: move on to the next one. `exhausted` is true when it was the last one, in which case
 * the cursor is back at the start for the next round.
 */
export const failed = (t: Tiers): { readonly tiers: Tiers; readonly exhausted: boolean } => {
  const { tier, index } = t.cursor
  const row = t.tiers[tier]
  if (row !== undefined && index + 1 < row.length) {
    return { tiers: { tiers: t.tiers, cursor: { tier, index: index + 1 } }, exhausted: false }
  }
  if (tier + 1 < t.tiers.length) return { tiers: { tiers: t.tiers, cursor: { tier: tier + 1, index: 0 } }, exhausted: false }
  return { tiers: { tiers: t.tiers, cursor: START }, exhausted: true }
}
