/**
 * The long fuzz campaign: `npm run fuzz -- [--cases N] [--seed S] [--only name,name]`. Runs N cases per decoder
 * (default 200,000), prints cases/second, the slowest case and any failing seed; exits 1 on a failure.
 */
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { fuzz } from "./engine.ts"
import { targets } from "./targets.ts"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const cases = Number(arg("cases") ?? 200_000)
const seed = Number(arg("seed") ?? Date.now() % 2 ** 31)
const only = arg("only")?.split(",")
const fixtures = resolve(import.meta.dirname, "../../shared/fixtures")

console.log(`fuzz: ${cases} cases per decoder, seed ${seed}${existsSync(fixtures) ? "" : " (no ../shared/fixtures corpus)"}`)
let failed = false
let total = 0
const t0 = performance.now()
for (const target of targets(existsSync(fixtures) ? fixtures : undefined)) {
  if (only !== undefined && !only.includes(target.name)) continue
  const o = fuzz(target, cases, seed)
  total += o.cases
  console.log(
    `${o.target.padEnd(14)} ${String(o.cases).padStart(8)} cases  ${String(o.casesPerSecond).padStart(7)}/s  ` +
      `slowest ${o.slowestMs} ms  ${o.failure === undefined ? "ok" : `FAILED: ${o.failure}`}`
  )
  if (o.failure !== undefined) failed = true
}
console.log(`total ${total} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${failed ? "FAILURES" : "no failure"}`)
process.exit(failed ? 1 : 0)
