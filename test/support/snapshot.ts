/** A directory tree as a comparable value, to assert that a command changed nothing in it. */
import * as Fs from "node:fs"
import * as Path from "node:path"

/** Every entry under `dir` (and `dir` itself) with its type, size and mtime in ns; empty when `dir` does not exist. */
export const snapshot = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const visit = (p: string, rel: string) => {
    const st = Fs.lstatSync(p, { bigint: true })
    const type = st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : st.isFile() ? "f" : "?"
    out[rel] = `${type} ${st.size} ${st.mtimeNs}`
    if (st.isDirectory()) for (const name of Fs.readdirSync(p).sort()) visit(Path.join(p, name), `${rel}/${name}`)
  }
  if (Fs.existsSync(dir)) visit(dir, ".")
  return out
}
