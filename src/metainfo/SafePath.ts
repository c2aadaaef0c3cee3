/**
 * Safe file paths: every path a torrent names stays inside the output directory.
 *
 * Two layers, both pure:
 *
 * 1. {@link sanitizeComponent} turns one raw path component (bytes from the .torrent) into a safe name, the way
 *    libtorrent 2.0.8 does (`sanitize_append_path_element`), so our file names match what libtorrent writes:
 *    - `.`, `..`, and components that become empty or only dots (at most two) once filtered are **dropped**;
 *    - an empty component becomes `_`;
 *    - `/`, `\`, NUL and the bidi-override code points U+202A–U+202E, U+200E, U+200F are **removed**;
 *    - control characters (< 0x20) and invalid UTF-8 become `_` (one `_` per invalid sequence, libtorrent's
 *      decoder decides the sequence length); UTF-16 surrogates encoded in UTF-8 also become `_` (libtorrent keeps
 *      them, but they are not valid UTF-8 and cannot be file names everywhere);
 *    - components longer than 240 bytes are truncated, keeping an extension of up to 9 bytes (libtorrent), and
 *      never exceed 255 bytes (our own cap for pathological input made of replacement characters).
 *    Drive letters (`C:`) and Windows reserved names (`CON`, `NUL`, ...) are left alone, as in libtorrent's POSIX
 *    build: they are ordinary names on POSIX. {@link resolveInside} rejects them when the platform is Windows.
 *    Sanitizing never rejects a torrent; a component that vanishes is simply skipped, and a file whose whole path
 *    vanished is called `_` (done by the metainfo decoder). The decoder also renames duplicate paths (`a.1.txt`)
 *    and files that collide with a directory (file `a` next to `a/b`), see `docs/METAINFO.md`.
 *
 * 2. {@link resolveInside} is the guard the storage layer uses: it joins already-sanitized components onto the
 *    output directory and **rejects** (never repairs) anything that is not a plain name, then checks the joined
 *    path is still strictly inside the directory. Property tests feed it arbitrary components.
 */
import * as Either from "effect/Either"
import * as NodePath from "node:path"
import { MetainfoError } from "./MetainfoError.ts"

/** libtorrent's UTF-8 decoder: the code point at `i` (-1 when invalid) and how many bytes to skip. */
const codePointAt = (b: Uint8Array, i: number): readonly [number, number] => {
  const c = b[i]!
  if (c < 0x80) return [c, 1]
  const len = c >> 5 === 0b110 ? 2 : c >> 4 === 0b1110 ? 3 : c >> 3 === 0b11110 ? 4 : c >> 2 === 0b111110 ? 5 : 0
  if (len === 0) return [-1, 1]
  if (len > 4) return [-1, len]
  if (len > b.length - i) return [-1, b.length - i]
  let cp = c & (len === 2 ? 0x1f : len === 3 ? 0x0f : 0x07)
  for (let k = 1; k < len; k++) {
    const x = b[i + k]!
    if (x < 0x80 || x > 0xbf) return [-1, len]
    cp = (cp << 6) | (x & 0x3f)
  }
  if ((len === 2 && cp < 0x80) || (len === 3 && cp < 0x800) || (len === 4 && cp < 0x10000)) return [-1, len]
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return [-1, len]
  return [cp, len]
}

const isFiltered = (cp: number): boolean =>
  cp === 0x2f || cp === 0x5c || cp === 0 || (cp >= 0x202a && cp <= 0x202e) || cp === 0x200e || cp === 0x200f

const MAX_COMPONENT_BYTES = 255
const utf8 = new TextDecoder()

/**
 * The safe form of one raw path component, or `undefined` when the component is dropped (`.`, `..`, or nothing
 * left after filtering). Never throws.
 */
export const sanitizeComponent = (element: Uint8Array): string | undefined => {
  const n = element.length
  if (n === 0) return "_"
  if (n === 1 && element[0] === 0x2e) return undefined
  const out: Array<number> = []
  let added = 0
  let dots = 0
  let foundExtension = false
  for (let i = 0, step = 0; i < n; i += step) {
    const [cp, len] = codePointAt(element, i)
    step = len
    if (cp >= 0 && isFiltered(cp)) continue
    if (cp < 0x20) {
      out.push(0x5f)
      added++
      continue
    }
    for (let k = i; k < i + len; k++) out.push(element[k]!)
    if (cp === 0x2e) dots++
    added += len
    if (added >= 240 && !foundExtension) {
      // keep a short extension: jump to the last '.' within the final 9 bytes, or stop here
      let dot = -1
      for (let j = n - 1; j > Math.max(n - 10, i); j--) {
        if (element[j] === 0x2e) {
          dot = j
          break
        }
      }
      if (dot === -1) break
      foundExtension = true
      step = dot - i
    }
  }
  if (added === dots && added <= 2) return undefined
  if (out.length > MAX_COMPONENT_BYTES) {
    let cut = MAX_COMPONENT_BYTES
    while (cut > 0 && (out[cut]! & 0xc0) === 0x80) cut--
    out.length = cut
  }
  return utf8.decode(Uint8Array.from(out))
}

/** Sanitizes a text component (its UTF-8 bytes), for callers that hold strings. */
export const sanitizeText = (component: string): string | undefined =>
  sanitizeComponent(new TextEncoder().encode(component))

/**
 * Text for display fields (comment, created by): invalid UTF-8 sequences become `_`, as libtorrent's
 * `verify_encoding` does; valid text is returned unchanged.
 */
export const lossyUtf8 = (bytes: Uint8Array): string => {
  let valid = true
  const out: Array<number> = []
  for (let i = 0; i < bytes.length; ) {
    const [cp, len] = codePointAt(bytes, i)
    if (cp < 0) {
      valid = false
      out.push(0x5f)
    } else {
      for (let k = i; k < i + len; k++) out.push(bytes[k]!)
    }
    i += len
  }
  return utf8.decode(valid ? bytes : Uint8Array.from(out))
}

export type Platform = "posix" | "win32"

const WINDOWS_RESERVED = /^(con|prn|aux|nul|clock\$|com[0-9]|lpt[0-9])(\..*)?$/i

/** Why a component is not a plain file name on `platform`, or `undefined` when it is. */
export const unsafeComponentReason = (component: string, platform: Platform): string | undefined => {
  if (component.length === 0) return "empty component"
  if (component === "." || component === "..") return `component ${JSON.stringify(component)}`
  if (component.includes("/")) return "component contains '/'"
  for (let i = 0; i < component.length; i++) {
    if (component.charCodeAt(i) < 0x20) return "component contains a control character"
  }
  if (platform === "win32") {
    if (/[\\:*?"<>|]/.test(component)) return "component contains a character Windows forbids"
    if (WINDOWS_RESERVED.test(component)) return "component is a reserved Windows name"
    if (/[. ]$/.test(component)) return "component ends with '.' or ' ' (Windows)"
  }
  return undefined
}

/**
 * Joins `components` onto `outputDir` and returns the absolute path, or fails with `unsafe-path` if any component
 * is not a plain name (see {@link unsafeComponentReason}) or the result would not be strictly inside `outputDir`.
 * Pure: touches no file system (so it cannot see symlinks that already exist on disk; storage must not follow
 * them).
 */
export const resolveInside = (
  outputDir: string,
  components: ReadonlyArray<string>,
  platform: Platform = process.platform === "win32" ? "win32" : "posix"
): Either.Either<string, MetainfoError> => {
  const path = platform === "win32" ? NodePath.win32 : NodePath.posix
  const fail = (detail: string) => Either.left(new MetainfoError({ reason: "unsafe-path", detail }))
  if (components.length === 0) return fail("empty path")
  for (const c of components) {
    const why = unsafeComponentReason(c, platform)
    if (why !== undefined) return fail(`${why} in ${JSON.stringify(components.join("/"))}`)
  }
  const root = path.resolve(outputDir)
  const full = path.resolve(root, ...components)
  const rel = path.relative(root, full)
  if (rel === "" || rel === ".." || rel.startsWith(".." + path.sep) || path.isAbsolute(rel)) {
    return fail(`${JSON.stringify(components.join("/"))} leaves the output directory`)
  }
  return Either.right(full)
}
