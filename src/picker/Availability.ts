/**
 * Piece availability (how many connected peers have each piece) plus a bucketed index of the pieces still to be
 * picked, ordered by availability, so that rarest-first never sorts.
 *
 * Layout (libtorrent's trick): `order` lists the member pieces grouped by availability, bucket `a` being
 * `order[start[a] .. start[a + 1])`; `pos[i]` is piece i's slot or -1 when it is not a member. Moving a piece to the
 * next or previous bucket is one swap with the bucket's edge and one boundary shift, so a `have` costs O(1), and
 * adding or removing a member costs O(number of buckets) = O(peers). Mutable, single owner.
 */

export interface Availability {
  readonly size: number
  /** Peers having piece i. */
  readonly counts: Int32Array
  /** Member pieces grouped by availability; only the first `members` entries are meaningful. */
  readonly order: Int32Array
  /** Slot of piece i in `order`, or -1. */
  readonly pos: Int32Array
  /** `start[a]` is the first slot of bucket a; `start[start.length - 1]` equals `members`. */
  readonly start: Array<number>
  members: number
}

/**
 * An empty index over `size` pieces. `counts` may be shared by several indices that partition the members (the
 * picker keeps one per priority level): a piece's count is then changed once, through the index it belongs to.
 */
export const make = (size: number, counts?: Int32Array): Availability => ({
  size,
  counts: counts ?? new Int32Array(size),
  order: new Int32Array(size),
  pos: new Int32Array(size).fill(-1),
  start: [0, 0],
  members: 0
})

/** Highest bucket currently allocated. */
const top = (a: Availability): number => a.start.length - 2

const swap = (a: Availability, i: number, slot: number): void => {
  const from = a.pos[i]!
  const j = a.order[slot]!
  a.order[slot] = i
  a.order[from] = j
  a.pos[i] = slot
  a.pos[j] = from
}

const grow = (a: Availability, bucket: number): void => {
  while (top(a) < bucket) a.start.push(a.members)
}

/** Number of peers having piece i. */
export const count = (a: Availability, i: number): number => a.counts[i]!

export const isMember = (a: Availability, i: number): boolean => a.pos[i]! >= 0

/** Member pieces that at least one connected peer has. */
export const pickable = (a: Availability): number => a.members - a.start[1]!

/** One more peer has piece i. */
export const increment = (a: Availability, i: number): void => {
  const c = a.counts[i]!
  a.counts[i] = c + 1
  if (a.pos[i]! < 0) return
  grow(a, c + 1)
  // last slot of bucket c becomes the first slot of bucket c + 1
  const last = a.start[c + 1]! - 1
  swap(a, i, last)
  a.start[c + 1] = last
}

/** One fewer peer has piece i. */
export const decrement = (a: Availability, i: number): void => {
  const c = a.counts[i]!
  if (c <= 0) throw new RangeError(`availability of piece ${i} would go below zero`)
  a.counts[i] = c - 1
  if (a.pos[i]! < 0) return
  // first slot of bucket c becomes the last slot of bucket c - 1
  const first = a.start[c]!
  swap(a, i, first)
  a.start[c] = first + 1
}

/** Makes piece i a member (a candidate for picking). No-op when it already is. */
export const add = (a: Availability, i: number): void => {
  if (a.pos[i]! >= 0) return
  const c = a.counts[i]!
  grow(a, c)
  const t = top(a)
  let slot = a.members
  a.order[slot] = i
  a.pos[i] = slot
  a.members++
  a.start[t + 1] = a.members
  // bubble down from the end: swap with the first slot of each bucket above c
  for (let b = t; b > c; b--) {
    slot = a.start[b]!
    swap(a, i, slot)
    a.start[b] = slot + 1
  }
}

/** Removes piece i from the members. No-op when it is not one. */
export const remove = (a: Availability, i: number): void => {
  if (a.pos[i]! < 0) return
  const c = a.counts[i]!
  const t = top(a)
  // bubble up to the very end: swap with the last slot of each bucket from c up
  for (let b = c; b <= t; b++) {
    const last = a.start[b + 1]! - 1
    swap(a, i, last)
    a.start[b + 1] = last
  }
  a.members--
  a.pos[i] = -1
}

/**
 * The member with the lowest non-zero availability that `accept` takes, ties broken at random (each bucket is
 * scanned from a random slot, wrapping). `-1` when none.
 */
export const rarest = (a: Availability, accept: (i: number) => boolean, random: () => number): number => {
  const t = top(a)
  for (let b = 1; b <= t; b++) {
    const s = a.start[b]!
    const e = a.start[b + 1]!
    if (e === s) continue
    const r = s + Math.floor(random() * (e - s))
    for (let k = r; k < e; k++) if (accept(a.order[k]!)) return a.order[k]!
    for (let k = s; k < r; k++) if (accept(a.order[k]!)) return a.order[k]!
  }
  return -1
}

/** A uniformly placed member with non-zero availability that `accept` takes (scan from a random slot). `-1` if none. */
export const random = (a: Availability, accept: (i: number) => boolean, random: () => number): number => {
  const s = a.start[1]!
  const e = a.members
  if (e === s) return -1
  const r = s + Math.floor(random() * (e - s))
  for (let k = r; k < e; k++) if (accept(a.order[k]!)) return a.order[k]!
  for (let k = s; k < r; k++) if (accept(a.order[k]!)) return a.order[k]!
  return -1
}

/** Internal consistency of the index; returns violations (empty when sound). O(size). */
export const check = (a: Availability): Array<string> => {
  const out: Array<string> = []
  const t = top(a)
  if (a.start[0] !== 0) out.push(`bucket 0 starts at ${a.start[0]}`)
  if (a.start[t + 1] !== a.members) out.push(`sentinel ${a.start[t + 1]} != members ${a.members}`)
  for (let b = 0; b <= t; b++) {
    if (a.start[b]! > a.start[b + 1]!) out.push(`bucket ${b} has negative size`)
    for (let k = a.start[b]!; k < a.start[b + 1]!; k++) {
      const i = a.order[k]!
      if (a.pos[i] !== k) out.push(`pos[${i}] = ${a.pos[i]} but it sits at ${k}`)
      if (a.counts[i] !== b) out.push(`piece ${i} with availability ${a.counts[i]} sits in bucket ${b}`)
    }
  }
  let members = 0
  for (let i = 0; i < a.size; i++) {
    if (a.counts[i]! < 0) out.push(`availability of ${i} is negative`)
    if (a.pos[i]! >= 0) {
      members++
      if (a.pos[i]! >= a.members) out.push(`piece ${i} sits past the members`)
    }
  }
  if (members !== a.members) out.push(`${members} pieces have a slot but members = ${a.members}`)
  return out
}
