/**
 * File-list post-processing shared by the v1 and v2 extractors: symlink validation and duplicate-path renaming,
 * both following libtorrent 2.0.8 (`file_storage::sanitize_symlinks`, `resolve_duplicate_filenames_slow`) so that
 * our on-disk names agree with the reference client.
 */

/** One file while the list is being built. Paths are sanitized components joined with "/". */
export interface Entry {
  /** Path below the torrent's root directory (`a/b/c.txt`); for a single-file torrent, the file name. */
  internal: string
  /** True when the file lives under the torrent's root directory (`name/...`), as in every multi-file torrent. */
  rooted: boolean
  length: number
  pad: boolean
  executable: boolean
  hidden: boolean
  /** Symlink target (sanitized, relative to the root directory) before validation; `undefined` if no symlink. */
  symlink: string | undefined
  mtime: number
  rawPath: ReadonlyArray<string>
  piecesRoot: Uint8Array | undefined
}

export const fullPath = (e: Entry, name: string): string => (e.rooted ? `${name}/${e.internal}` : e.internal)

const branchOf = (p: string): string => {
  const i = p.lastIndexOf("/")
  return i < 0 ? "" : p.slice(0, i)
}

const join = (a: string, b: string): string => (a === "" ? b : b === "" ? a : `${a}/${b}`)

/**
 * Symlinks may only point at files or directories of this torrent (possibly through other symlinks); any other
 * target is rewritten to point at the link itself, which makes it harmless.
 */
export const sanitizeSymlinks = (entries: Array<Entry>): void => {
  if (!entries.some((e) => e.symlink !== undefined)) return
  const fileMap = new Map<string, number>()
  entries.forEach((e, i) => {
    if (!fileMap.has(e.internal)) fileMap.set(e.internal, i)
  })
  const paths: Array<string> = []
  const pathSet = new Set<string>()
  for (const e of entries) {
    if (!e.rooted) continue
    const b = branchOf(e.internal)
    if (!pathSet.has(b)) {
      pathSet.add(b)
      paths.push(b)
    }
  }
  const dirMap = new Set<string>()
  for (const p of paths) for (let pv = p; pv !== ""; pv = branchOf(pv)) dirMap.add(pv)
  const dirLinks = new Map<string, string>()
  const toValidate: Array<number> = []

  entries.forEach((e, i) => {
    if (e.symlink === undefined) return
    const target = e.symlink
    const hit = fileMap.get(target)
    if (hit !== undefined) {
      if (entries[hit]!.symlink !== undefined) dirLinks.set(e.internal, target)
      return
    }
    if (dirMap.has(target)) {
      dirLinks.set(e.internal, target)
      return
    }
    if (e.rooted) {
      // relative to the link's own directory, for backwards compatibility
      const rel = join(branchOf(e.internal), target)
      if (pathSet.has(rel) || dirMap.has(rel)) {
        e.symlink = rel
        dirLinks.set(e.internal, rel)
        return
      }
      const relHit = fileMap.get(rel)
      if (relHit !== undefined) {
        e.symlink = rel
        if (entries[relHit]!.symlink !== undefined) dirLinks.set(e.internal, rel)
        return
      }
    }
    dirLinks.set(e.internal, target)
    toValidate.push(i)
  })

  for (const i of toValidate) {
    const e = entries[i]!
    let target = e.symlink!
    const traversed = new Set<string>()
    let ok = true
    let branch = firstBranch(target, 0)
    while (branch.length < target.length) {
      if (!dirMap.has(branch)) {
        const link = dirLinks.get(branch)
        if (link === undefined || traversed.has(branch)) {
          ok = false
          break
        }
        traversed.add(branch)
        target = join(link, target.slice(branch.length + 1))
        branch = firstBranch(target, 0)
        continue
      }
      branch = firstBranch(target, branch.length + 1)
    }
    if (ok && !fileMap.has(target) && !dirMap.has(target)) ok = false
    if (!ok) e.symlink = e.internal
  }
}

/** The prefix of `p` up to the first "/" at or after `from` (the whole string if there is none). */
const firstBranch = (p: string, from: number): string => {
  const i = p.indexOf("/", from === 0 ? 1 : from)
  return i < 0 ? p : p.slice(0, i)
}

const lower = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase())

/**
 * Renames files whose path (compared case-insensitively, ASCII only, as libtorrent does) equals an earlier file's
 * or any directory of the torrent's non-pad files: `dir/a.txt` becomes `dir/a.1.txt`, then `.2`, ... Pad files of equal size may
 * share a path. Returns the final full paths, in file order.
 */
export const resolveDuplicates = (entries: ReadonlyArray<Entry>, name: string): Array<string> => {
  const full = entries.map((e) => fullPath(e, name))
  // lower-case path -> index of the file holding it, or -1 for a directory
  const seen = new Map<string, number>()
  for (const [i, e] of entries.entries()) {
    // a pad's directory (`name/.pad`) is never created, so it takes no name (libtorrent 2.0.8: the tail pad of a
    // single-file v2 torrent, `x.iso/.pad/N`, leaves the file `x.iso` as it is)
    if (!e.rooted || e.pad) continue
    for (let d = branchOf(full[i]!); d !== ""; d = branchOf(d)) seen.set(lower(d), -1)
  }
  entries.forEach((e, i) => {
    const key = lower(full[i]!)
    const other = seen.get(key)
    if (other === undefined) {
      seen.set(key, i)
      return
    }
    if (other >= 0 && e.pad && entries[other]!.pad && entries[other]!.length === e.length) return
    const f = full[i]!
    const slash = f.lastIndexOf("/")
    const dot = f.lastIndexOf(".")
    const ext = dot > slash ? f.slice(dot) : ""
    const base = f.slice(0, f.length - ext.length)
    for (let n = 1; ; n++) {
      const candidate = `${base}.${n}${ext}`
      if (!seen.has(lower(candidate))) {
        seen.set(lower(candidate), i)
        full[i] = candidate
        break
      }
    }
  })
  return full
}
