/**
 * The fuzzing engine: fast-check feeds each target arbitrary bytes and mutations of its valid corpus (bit flips,
 * byte sets, inserts, deletes, duplicated ranges, truncation). A case fails when the decoder throws or takes longer
 * than `slowMs`. Seedable; a failure reports fast-check's seed and path so it can be replayed and kept as a
 * regression test.
 */
import * as FastCheck from "effect/FastCheck"
import type { Target } from "./targets.ts"

type Op =
  | { readonly k: "flip"; readonly at: number; readonly bit: number }
  | { readonly k: "set"; readonly at: number; readonly v: number }
  | { readonly k: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly k: "delete"; readonly at: number; readonly n: number }
  | { readonly k: "dup"; readonly at: number; readonly n: number }
  | { readonly k: "truncate"; readonly at: number }

const op: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  FastCheck.record({ k: FastCheck.constant("flip" as const), at: FastCheck.nat(), bit: FastCheck.integer({ min: 0, max: 7 }) }),
  FastCheck.record({ k: FastCheck.constant("set" as const), at: FastCheck.nat(), v: FastCheck.constantFrom(0, 0x30, 0x39, 0x3a, 0x64, 0x65, 0x69, 0x6c, 0x7f, 0xff) }),
  FastCheck.record({ k: FastCheck.constant("insert" as const), at: FastCheck.nat(), bytes: FastCheck.uint8Array({ minLength: 1, maxLength: 16 }) }),
  FastCheck.record({ k: FastCheck.constant("delete" as const), at: FastCheck.nat(), n: FastCheck.integer({ min: 1, max: 64 }) }),
  FastCheck.record({ k: FastCheck.constant("dup" as const), at: FastCheck.nat(), n: FastCheck.integer({ min: 1, max: 64 }) }),
  FastCheck.record({ k: FastCheck.constant("truncate" as const), at: FastCheck.nat() })
)

const apply = (input: Uint8Array, ops: ReadonlyArray<Op>): Uint8Array => {
  let b = input
  for (const o of ops) {
    const at = b.length === 0 ? 0 : o.at % (b.length + 1)
    switch (o.k) {
      case "flip":
        if (b.length > 0) {
          b = new Uint8Array(b)
          b[at % b.length] = b[at % b.length]! ^ (1 << o.bit)
        }
        break
      case "set":
        if (b.length > 0) {
          b = new Uint8Array(b)
          b[at % b.length] = o.v
        }
        break
      case "insert": {
        const out = new Uint8Array(b.length + o.bytes.length)
        out.set(b.subarray(0, at))
        out.set(o.bytes, at)
        out.set(b.subarray(at), at + o.bytes.length)
        b = out
        break
      }
      case "delete": {
        const out = new Uint8Array(b.length - Math.min(o.n, b.length - at))
        out.set(b.subarray(0, at))
        out.set(b.subarray(at + o.n), at)
        b = out
        break
      }
      case "dup": {
        const piece = b.subarray(at, at + o.n)
        const out = new Uint8Array(b.length + piece.length)
        out.set(b.subarray(0, at + piece.length))
        out.set(piece, at + piece.length)
        out.set(b.subarray(at + piece.length), at + 2 * piece.length)
        b = out
        break
      }
      case "truncate":
        b = b.subarray(0, at)
        break
    }
  }
  return b
}

/** Arbitrary inputs for a target: half raw bytes, half mutated corpus entries. */
export const inputs = (target: Target): FastCheck.Arbitrary<Uint8Array> => {
  const raw = FastCheck.uint8Array({ maxLength: 512 })
  if (target.corpus.length === 0) return raw
  const mutated = FastCheck.tuple(FastCheck.nat(target.corpus.length - 1), FastCheck.array(op, { minLength: 1, maxLength: 6 }))
    .map(([i, ops]) => apply(target.corpus[i]!, ops))
  return FastCheck.oneof(raw, mutated)
}

export interface Outcome {
  readonly target: string
  readonly cases: number
  readonly seconds: number
  readonly casesPerSecond: number
  readonly slowestMs: number
  readonly failure?: string | undefined
}

/** Runs `cases` cases against one target. Never throws: a failure is in the outcome. */
export const fuzz = (target: Target, cases: number, seed: number, slowMs = 1000): Outcome => {
  let slowest = 0
  const started = performance.now()
  const details = FastCheck.check(
    FastCheck.property(inputs(target), (input) => {
      const t0 = performance.now()
      target.run(input)
      const dt = performance.now() - t0
      if (dt > slowest) slowest = dt
      if (dt > slowMs) throw new Error(`took ${dt.toFixed(0)} ms on ${input.length} bytes`)
    }),
    { numRuns: cases, seed }
  )
  const seconds = (performance.now() - started) / 1000
  const failure = details.failed
    ? `seed ${details.seed} path "${details.counterexamplePath}": ${String(details.errorInstance ?? details.error).split("\n")[0]} ` +
      `(input ${JSON.stringify(Array.from((details.counterexample?.[0] as Uint8Array | undefined) ?? []).slice(0, 64))}…)`
    : undefined
  return {
    target: target.name,
    cases: details.numRuns,
    seconds,
    casesPerSecond: Math.round(details.numRuns / Math.max(seconds, 1e-9)),
    slowestMs: Math.round(slowest * 10) / 10,
    failure
  }
}
