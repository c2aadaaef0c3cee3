/**
 * Loading the bundled commands (`dist/cli/run.cjs`, scripts/build.mjs) with V8's code cache, so that a command
 * starts from the bytecode of its last successful run instead of parsing and compiling ~1.2 MB of JavaScript again.
 * Node 20 has no compile cache for ES modules (`module.enableCompileCache` is Node 22), hence a CommonJS bundle run
 * through `vm.Script` with `cachedData`. Measured (docs/PERFORMANCE.md): a 16 MiB download 0.32 CPU s instead of
 * 0.42, `info` 0.13 s instead of 0.18.
 *
 * One cache file per command (`download`'s cache holds the functions a download compiled, `info`'s those of `info`),
 * named by a hash of the bundle's text, Node's version, the architecture and Node's flags: V8 checks only the
 * source's length and its own version and flags, and a cache of other source text would run the wrong bytecode.
 * A cache V8 rejects anyway (corrupt, truncated) costs one ordinary compile and is written again.
 *
 * Written after a run that exits with code 0 when none was used (`createCachedData` then includes every function
 * compiled so far), to the first directory that takes it: beside the bundle, else the user's cache directory
 * (`$XDG_CACHE_HOME` or `~/.cache`, `effect-torrent/code-cache`). Never a shared temporary directory: a cache file
 * is code we run. `EFFECT_TORRENT_CODE_CACHE=off` turns it off; an absolute path there is the only directory used.
 * Written to a temporary name and renamed, so a concurrent start reads a whole file or none.
 */
import { isAscii } from "node:buffer"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Vm from "node:vm"

export interface Loaded<A> {
  /** The bundle's `module.exports`. */
  readonly exports: A
  /** Whether V8 accepted a cache file (the bundle was not compiled from source). */
  readonly fromCache: boolean
  /** The cache file's name (in whichever directory). */
  readonly name: string
  /**
   * Writes the cache when none was used: `"written"` (with the directory), `"cached"` (one was used: nothing to do),
   * `"off"` (no directories), or `"unwritable"` (every directory refused; the reasons are in `errors`).
   */
  readonly save: () => SaveResult
}

export type SaveResult =
  | { readonly _tag: "written"; readonly dir: string }
  | { readonly _tag: "cached" }
  | { readonly _tag: "off" }
  | { readonly _tag: "unwritable"; readonly errors: ReadonlyArray<string> }

/**
 * Where caches are looked for and written, in order: beside the bundle, then the user's cache directory; none when
 * `EFFECT_TORRENT_CODE_CACHE` is `off` (`0`, `false`), only that directory when it is an absolute path.
 */
export const defaultDirs = (bundle: string, env: NodeJS.ProcessEnv = process.env): ReadonlyArray<string> => {
  const setting = env["EFFECT_TORRENT_CODE_CACHE"] ?? ""
  if (/^(off|0|false)$/i.test(setting)) return []
  if (Path.isAbsolute(setting)) return [setting]
  const dirs = [Path.join(Path.dirname(bundle), "code-cache")]
  const xdg = env["XDG_CACHE_HOME"]
  let home: string | undefined
  try {
    home = Os.homedir()
  } catch {
    home = undefined // no home directory (a system account): the bundle's directory only
  }
  const base = xdg !== undefined && Path.isAbsolute(xdg) ? xdg : home !== undefined && home !== "" ? Path.join(home, ".cache") : undefined
  if (base !== undefined) dirs.push(Path.join(base, "effect-torrent", "code-cache"))
  return dirs
}

/** The cache file's name for `source` run as `key` by this Node with these flags. */
export const cacheName = (
  key: string,
  source: string | Uint8Array,
  execArgv: ReadonlyArray<string> = process.execArgv
): string => {
  const h = createHash("sha256")
  h.update(source).update("\0").update(process.version).update("\0").update(process.arch)
  for (const a of execArgv) h.update("\0").update(a)
  return `${key.replace(/[^A-Za-z0-9_-]/g, "_")}-${h.digest("hex").slice(0, 20)}.bin`
}

const readFirst = (dirs: ReadonlyArray<string>, name: string): Buffer | undefined => {
  for (const dir of dirs) {
    try {
      return Fs.readFileSync(Path.join(dir, name))
    } catch {
      // missing or unreadable here: try the next directory (none: compile from source)
    }
  }
  return undefined
}

/**
 * Runs the CommonJS file `file` (its `require` resolves from its own directory) and returns its exports, compiled
 * from the cache file for `key` when there is one V8 accepts.
 */
export const load = <A>(file: string, key: string, dirs: ReadonlyArray<string> = defaultDirs(file)): Loaded<A> => {
  // Read as bytes and hashed as such (the same digest as the text's UTF-8); an ASCII bundle (esbuild escapes the rest)
  // is decoded as latin1, a copy: together ~7 ms less per start than reading it as UTF-8 and encoding it again.
  const bytes = Fs.readFileSync(file)
  const source = isAscii(bytes) ? bytes.toString("latin1") : bytes.toString("utf8")
  const name = cacheName(key, bytes)
  const cachedData = readFirst(dirs, name)
  // The wrapper stays on the bundle's first line, so line numbers in stack traces are the file's own. Strict, as the
  // ES modules it was bundled from (the bundle's own "use strict" follows its banner, so it is no directive).
  const script = new Vm.Script(`(function (exports, require, module, __filename, __dirname) {"use strict";${source}\n})`, {
    filename: file,
    ...(cachedData === undefined ? {} : { cachedData })
  })
  const fromCache = cachedData !== undefined && script.cachedDataRejected !== true
  const module = { exports: {} as A }
  const fn = script.runInThisContext() as (
    exports: A,
    require: NodeJS.Require,
    module: { exports: A },
    filename: string,
    dirname: string
  ) => void
  fn.call(module.exports, module.exports, createRequire(file), module, file, Path.dirname(file))
  let saved = false
  const save = (): SaveResult => {
    if (dirs.length === 0) return { _tag: "off" }
    if (fromCache || saved) return { _tag: "cached" }
    const data = script.createCachedData()
    const errors: Array<string> = []
    for (const dir of dirs) {
      const target = Path.join(dir, name)
      const temp = `${target}.${process.pid}.tmp`
      try {
        Fs.mkdirSync(dir, { recursive: true })
        Fs.writeFileSync(temp, data)
        Fs.renameSync(temp, target)
        saved = true
        return { _tag: "written", dir }
      } catch (e) {
        errors.push(`${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
        try {
          Fs.rmSync(temp, { force: true })
        } catch {
          // the temporary file could not be written either: nothing to remove
        }
      }
    }
    return { _tag: "unwritable", errors }
  }
  return { exports: module.exports, fromCache, name, save }
}
