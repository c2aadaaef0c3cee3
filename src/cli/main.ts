/**
 * The `effect-torrent` command line. This entry stays small: it rewrites the seed clients' shorthand, answers
 * `--help` and `--version` and refuses unknown commands and options (Help.ts) without loading Effect, then loads
 * Run.ts, which loads only the command asked for.
 */
import * as Help from "./Help.ts"

// Set by scripts/build.mjs from package.json.
declare const EFFECT_TORRENT_VERSION: string | undefined
const version = typeof EFFECT_TORRENT_VERSION === "string" ? EFFECT_TORRENT_VERSION : "0.0.0-dev"
// Set by scripts/build.mjs: the commands' CommonJS bundle, relative to this file, loaded with V8's code cache
// (CodeCache.ts). From the TS sources (tsx, vitest) Run.ts is imported as it is.
declare const EFFECT_TORRENT_RUN_BUNDLE: string | undefined

type RunModule = typeof import("./Run.ts")
const loadRun = async (command: string): Promise<RunModule> => {
  if (typeof EFFECT_TORRENT_RUN_BUNDLE !== "string") return import("./Run.ts")
  const { fileURLToPath } = await import("node:url")
  const CodeCache = await import("./CodeCache.ts")
  const loaded = CodeCache.load<RunModule>(fileURLToPath(new URL(EFFECT_TORRENT_RUN_BUNDLE, import.meta.url)), command)
  // Only a run that succeeded leaves a cache: it holds what that command compiles, not an early failure's subset.
  process.once("exit", (code) => {
    try {
      if (code === 0) loaded.save()
    } catch {
      // a cache is only an optimisation: never a failure of the command that already succeeded
    }
  })
  return loaded.exports
}

/**
 * The seed clients' shorthand (aria2c, transmission-cli): `effect-torrent FILE` downloads into the current
 * directory, `FILE -d DIR` into DIR (`download FILE -o DIR`), `FILE -s DIR` seeds DIR (`seed FILE DIR`).
 */
export const rewrite = (args: ReadonlyArray<string>): ReadonlyArray<string> | string => {
  const [first, ...rest] = args
  // Only a .torrent path or a magnet link: subcommand names (and their own -d/-s flags) pass through untouched.
  if (first === undefined || !/\.torrent$|^magnet:/i.test(first)) return args
  const flag = rest.findIndex((a) => a === "-d" || a === "-s")
  if (flag < 0) return ["download", first, ...rest]
  const dir = rest[flag + 1]
  if (rest[flag] === "-s") {
    if (dir === undefined) return "seed: -s needs a value, DIR: the folder holding the torrent's data (see `effect-torrent seed --help`)"
    return ["seed", ...rest.slice(0, flag), ...rest.slice(flag + 2), first, dir]
  }
  if (dir === undefined) return "download: -d needs a value, DIR: where to download (see `effect-torrent download --help`)"
  const out = [...rest]
  out[flag] = "-o"
  return ["download", first, ...out]
}

const args = rewrite(process.argv.slice(2))
const parsed: Help.Parsed = typeof args === "string" ? { _tag: "Usage", message: args } : Help.parse(args, version)
switch (parsed._tag) {
  case "Help":
    process.stdout.write(parsed.text)
    break
  case "Version":
    process.stdout.write(Help.version(version))
    break
  case "Usage":
    process.stderr.write(`effect-torrent: ${parsed.message}\n`)
    process.exitCode = 2
    break
  case "Run": {
    try {
      const { run } = await loadRun(parsed.command.name)
      await run([process.argv[0]!, process.argv[1]!, ...(args as ReadonlyArray<string>)], parsed.command.name, version)
    } catch (e) {
      // The commands' code is loaded on demand (dist/cli/run.cjs): out of descriptors, loading it fails before any
      // of our error handling exists. Anything else is a real defect and keeps its stack.
      const code = (e as NodeJS.ErrnoException | undefined)?.code
      if (code !== "EMFILE" && code !== "ENFILE") throw e
      process.stderr.write(`effect-torrent: too many open files to load the program (${code}); raise the limit (ulimit -n)\n`)
      process.exitCode = 1
    }
  }
}
