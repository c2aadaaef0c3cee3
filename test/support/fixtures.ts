/**
 * Access to the shared real-world fixtures (`../shared/fixtures` beside the project). Tests skip loudly only when
 * the folder is absent and CI is unset; in CI its absence is a failure.
 */
import { existsSync, readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
export const fixturesDir = resolve(projectRoot, "../shared/fixtures")
export const torrentsDir = join(fixturesDir, "torrents")

export const fixturesPresent = existsSync(join(torrentsDir, "manifest.json"))

/** Throws in CI when the fixtures are missing; outside CI, warns and returns false so the caller can skip. */
export const requireFixtures = (what: string): boolean => {
  if (fixturesPresent) return true
  if (process.env["CI"]) throw new Error(`${what}: ../shared/fixtures is missing (required in CI)`)
  console.warn(`\n*** SKIPPING ${what}: ../shared/fixtures not found at ${fixturesDir} ***\n`)
  return false
}

export interface ManifestEntry {
  readonly file: string
  readonly accepted_by_libtorrent: boolean
  readonly error: string | null
  readonly info_hash_v1: string | null
  readonly info_hash_v2: string | null
  readonly name: string | null
  readonly total_size: number | null
  readonly piece_length: number | null
  readonly num_pieces: number | null
  readonly category: string
  readonly tags: ReadonlyArray<string>
}

export const manifest = (): ReadonlyArray<ManifestEntry> =>
  fixturesPresent ? (JSON.parse(readFileSync(join(torrentsDir, "manifest.json"), "utf8")) as Array<ManifestEntry>) : []
