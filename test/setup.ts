/**
 * Test-wide setup. Under CI, property tests draw from a fixed fast-check seed so a submission's result does not
 * depend on the dice; local runs keep random seeds (and print the seed of any failure), and `npm run fuzz` explores
 * at length. Set FC_SEED to replay a particular seed anywhere.
 */
import * as FastCheck from "effect/FastCheck"

const fixed = process.env["FC_SEED"] ?? (process.env["CI"] ? "20261124" : undefined)
if (fixed !== undefined) FastCheck.configureGlobal({ ...FastCheck.readConfigureGlobal(), seed: Number(fixed) })
