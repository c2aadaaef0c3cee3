// End to end through the CLI: `download --transport utp` from a uTP-only libtorrent seeder; compares SHA-256.
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { tempDir } from "../test/support/download.ts"
import * as Lt from "../test/support/libtorrentSession.ts"
import { build } from "../test/support/seeder.ts"

const b = build({ name: "cli-utp", pieceLength: 262_144, files: [{ path: ["a.bin"], length: 5_000_000 }, { path: ["b.txt"], length: 1234 }] })
const main = async () => {
  const lt = await Lt.start({ enable_outgoing_tcp: false, enable_incoming_tcp: false, enable_outgoing_utp: true, enable_incoming_utp: true })
  try {
    await lt.seed("t", b)
    const dir = tempDir("utp-cli")
    const torrent = Path.join(dir, "t.torrent")
    Fs.writeFileSync(torrent, b.bytes)
    const out = Path.join(dir, "out")
    const stdout = execFileSync("npx", ["tsx", "src/cli/main.ts", "download", "--transport", "utp", "--peer", `127.0.0.1:${lt.port}`,
      "--no-trackers", "--no-dht", "--no-peers-timeout", "20", "-q", "-o", out, torrent], { encoding: "utf8", timeout: 120_000 })
    const sha = (x: Uint8Array) => createHash("sha256").update(x).digest("hex")
    const same = b.metainfo.files.every((f, i) => sha(Fs.readFileSync(Path.join(out, ...f.path))) === sha(b.files[i]!))
    console.log(JSON.stringify({ same, stdout: stdout.slice(-200) }))
    const bad = execFileSync("npx", ["tsx", "src/cli/main.ts", "download", "--transport", "udp", "-o", out, torrent], { encoding: "utf8", timeout: 60_000, stdio: "pipe" }).toString()
    console.log(bad)
  } catch (e) {
    console.log("error:", (e as { stderr?: string; status?: number }).status, String((e as { stderr?: string }).stderr ?? e).slice(-400))
  } finally {
    await lt.stop()
  }
}
main().then(() => process.exit(0))
