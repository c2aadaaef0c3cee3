/**
 * The CI slice of the fuzz campaign (fuzz/): a modest number of arbitrary and mutated-valid inputs per decoder,
 * with a fixed seed so a failure is reproducible. `npm run fuzz` runs the long campaign.
 */
import { describe, expect, it } from "@effect/vitest"
import { fuzz } from "../fuzz/engine.ts"
import { targets } from "../fuzz/targets.ts"
import { fixturesDir, fixturesPresent } from "./support/fixtures.ts"

describe("fuzzing every decoder (CI slice)", () => {
  for (const target of targets(fixturesPresent ? fixturesDir : undefined)) {
    it(`${target.name}: never throws, never hangs`, () => {
      const o = fuzz(target, 1500, 20261124)
      expect(o.failure).toBeUndefined()
    }, 60_000)
  }
})
