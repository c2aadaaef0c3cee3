/**
 * Failures with a way out, as the CLI prints them: one line naming the problem and what to try.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { mkdirSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { join } from "node:path"
import { cli, expectOneLineError } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { build, deadPort } from "../support/seeder.ts"

const servers: Array<Net.Server> = []
afterAll(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))))

const album = build({
  name: "album",
  pieceLength: 16384,
  files: [{ path: ["one.bin"], length: 40_000 }, { path: ["two.bin"], length: 7_000 }]
})

describe("errors with a way out", () => {
  it("a port already in use suggests --port", async () => {
    const server = Net.createServer()
    servers.push(server)
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    const port = (server.address() as Net.AddressInfo).port
    const dir = tempDir("inuse")
    const torrent = join(dir, "album.torrent")
    writeFileSync(torrent, album.bytes)
    const r = await cli(["download", torrent, "-o", dir, "--port", String(port), "--no-dht"])
    expectOneLineError(r, 1)
    expect(r.stderr).toMatch(/EADDRINUSE.*another program listens there; choose another port with --port N/)
  })

  it("the daemon's peer port in use suggests --port, its API port in use suggests --http", async () => {
    const server = Net.createServer()
    servers.push(server)
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    const port = (server.address() as Net.AddressInfo).port
    const state = tempDir("daemon-inuse")
    const spare = Net.createServer()
    await new Promise<void>((r) => spare.listen(0, "127.0.0.1", r))
    const free = (spare.address() as Net.AddressInfo).port
    await new Promise((r) => spare.close(r))
    const peer = await cli(["daemon", "--state-dir", state, "--bind", "127.0.0.1", "--port", String(port), "--http", `127.0.0.1:${free}`, "--no-dht"])
    expectOneLineError(peer, 1)
    expect(peer.stderr).toMatch(/EADDRINUSE.*another program listens there; choose another port with --port N/)
    const api = await cli(["daemon", "--state-dir", state, "--bind", "127.0.0.1", "--port", "0", "--http", `127.0.0.1:${port}`, "--no-dht"])
    expectOneLineError(api, 1)
    expect(api.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*EADDRINUSE.*choose another address with --http HOST:PORT`))
  })

  it("seed pointed at the torrent's own folder names its parent", async () => {
    const dir = tempDir("payload")
    const own = join(dir, "album")
    mkdirSync(own)
    writeFileSync(join(own, "one.bin"), album.files[0]!)
    writeFileSync(join(own, "two.bin"), album.files[1]!)
    const torrent = join(dir, "album.torrent")
    writeFileSync(torrent, album.bytes)
    const r = await cli(["seed", torrent, own, "--no-dht"])
    expectOneLineError(r, 1)
    expect(r.stderr).toContain(`${own} looks like the torrent's own folder: give the folder that holds it, ${dir}`)
  })

  it("no peers: the message gives each tracker's last answer", async () => {
    const dead = await deadPort()
    const withTracker = build({
      name: "lonely",
      pieceLength: 16384,
      announce: `http://127.0.0.1:${dead}/announce`,
      files: [{ path: ["a.bin"], length: 20_000 }]
    })
    const dir = tempDir("nopeers")
    const torrent = join(dir, "lonely.torrent")
    writeFileSync(torrent, withTracker.bytes)
    const r = await cli(["download", torrent, "-o", dir, "--no-dht", "--no-peers-timeout", "6"])
    expectOneLineError(r, 1)
    expect(r.stderr).toMatch(new RegExp(`no peers to download from within 6s.*; trackers: http://127\\.0\\.0\\.1:${dead}/announce: refused\\s*$`))
    // while waiting, the plain status line (every 5 s on a pipe) said what was being tried
    expect(r.stdout).toContain(
      `lonely  0.0%  0 B/19.5 KiB  waiting for peers: no peer address yet; 0/1 tracker answered (http://127.0.0.1:${dead}/announce refused)`
    )
  })

  it("an unusable state directory is reported in the system's words, not @effect/platform's", async () => {
    const dir = tempDir("statefile")
    const torrent = join(dir, "album.torrent")
    writeFileSync(torrent, album.bytes)
    mkdirSync(join(dir, "data", "album"), { recursive: true })
    writeFileSync(join(dir, "data", "album", "one.bin"), album.files[0]!)
    writeFileSync(join(dir, "data", "album", "two.bin"), album.files[1]!)
    const stateFile = join(dir, "state-is-a-file")
    writeFileSync(stateFile, "")
    const r = await cli(["verify", torrent, join(dir, "data")])
    expect(r.code).toBe(0)
    const seeded = await cli(["download", torrent, "-o", join(dir, "data"), "--state-dir", stateFile, "--no-dht"])
    expect(seeded.code, seeded.stderr).toBe(0)
    expect(seeded.stderr).not.toMatch(/BadResource|FileSystem\./)
    expect(seeded.stderr).toMatch(/ENOTDIR: not a directory/)
  })
})
