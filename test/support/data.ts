/** Writing a built torrent's files to disk, as a completed download would have left them (for seeding tests). */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Built } from "./seeder.ts"

/** Writes the torrent's files under `dir` (pad files left out). */
export const writeData = (built: Built, dir: string): void => {
  built.metainfo.files.forEach((f, i) => {
    if (f.pad) return
    const full = Path.join(dir, ...f.path)
    Fs.mkdirSync(Path.dirname(full), { recursive: true })
    Fs.writeFileSync(full, built.files[i]!)
  })
}
