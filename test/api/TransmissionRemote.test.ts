/**
 * Issue 15 part 1, as a user runs it: the built CLI's `effect-torrent daemon` (a child process) driven only by
 * Debian's `transmission-remote` 3.00 (Transmission's own client, nobody here wrote it), downloading from
 * python3-libtorrent seeders found through a real opentracker.
 *
 * 1. A `.torrent` file added with `-a` and one file left out (`-G`): the peer shows in `-pi` while it downloads,
 *    `-l` reaches 100 %, the wanted files equal the seeder's byte for byte and the unwanted one is "No" in `-f`;
 *    `-i`, `-it`, `-si`, `-st` read back what the daemon knows; `-g` fetches the file left out; `-S`/`-s` stop and
 *    start it; a byte corrupted on disk is found by `-v` and fetched again; adding the same file again is a
 *    duplicate; `--remove-and-delete` removes it and its data.
 * 2. A magnet link (`-a magnet:…` with the tracker, `-w` another directory): metadata from the seeder, then the data,
 *    byte-identical; `-t <hash> -i` names it; `-r` removes it and keeps the data.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Daemon from "../support/daemon.ts"
import * as Opentracker from "../support/opentracker.ts"
import * as Real from "../support/realSeeders.ts"
import { build, type Built } from "../support/seeder.ts"
import * as Tracked from "../support/tracked.ts"
import { cleanup, fieldsOf, listRows, remote, shouldRun } from "./TransmissionSupport.ts"

const KiB = 1024
const PIECE = 32 * KiB

const enabled = shouldRun("transmission-remote interop") && Real.shouldRun("libtorrent") &&
  Opentracker.shouldRun("transmission-remote interop")

const { children, stops, dir } = cleanup()

const run = (port: number, args: ReadonlyArray<string>) => Effect.runPromise(remote(port, args))

/** transmission-remote's stdout; its whole output in the failure when it does not exit 0. */
const ok = async (port: number, args: ReadonlyArray<string>): Promise<string> => {
  const o = await run(port, args)
  expect({ args, code: o.code, out: o.code === 0 ? "" : o.stdout + o.stderr }).toEqual({ args, code: 0, out: "" })
  return o.stdout
}

/** `-l`'s row of torrent `id` as [id, done, have, eta, up, down, ratio, status, name]. */
const rowOf = async (port: number, id: number): Promise<ReadonlyArray<string> | undefined> =>
  listRows(await ok(port, ["-l"])).find((r) => r[0] === String(id) || r[0] === `${id}*`)

const same = (a: string, b: string): boolean => Fs.readFileSync(a).equals(Fs.readFileSync(b))

describe.runIf(enabled)("transmission-remote 3.00 driving the daemon (built CLI) with libtorrent seeders", () => {
  let multi: Built
  let solo: Built
  let tracker: Opentracker.Opentracker
  const seeders = new Map<Built, Real.RealSeeder>()

  beforeAll(async () => {
    const pre = [
      build({
        name: "album",
        pieceLength: PIECE,
        files: [
          { path: ["a", "one.bin"], length: 300 * KiB + 123 },
          { path: ["a", "two.bin"], length: 200_000 },
          { path: ["b", "three.bin"], length: 500 * KiB + 7 }
        ]
      }),
      build({ name: "solo.bin", pieceLength: PIECE, files: [{ path: ["solo.bin"], length: 700 * KiB + 11 }], single: true })
    ]
    tracker = await Opentracker.start(pre.map(Tracked.hexOf))
    stops.push(tracker.stop)
    ;[multi, solo] = pre.map((b) => Tracked.withAnnounce(b, tracker.httpUrl)) as [Built, Built]
    // Capped, so that a download lasts long enough to see its peer.
    for (const b of [multi, solo]) {
      const s = await Real.libtorrent(b, { upLimit: 256 * KiB })
      stops.push(s.stop)
      seeders.set(b, s)
    }
    await Promise.all([multi, solo].map((b) => Tracked.untilSeeders(tracker.port, b, 1)))
  }, 120_000)

  it("a .torrent with a file left out, peers, details, the file fetched later, stop/start, verify repairing a byte, duplicate, remove with data", async () => {
    const out = dir("tr-remote-out")
    const daemon = await Daemon.start(children, { downloadDir: out, stateDir: dir("tr-remote-state") })
    const port = daemon.apiPort
    const file = Path.join(dir("tr-remote-torrents"), "album.torrent")
    Fs.writeFileSync(file, multi.bytes)
    const seeder = seeders.get(multi)!
    const theirs = (...p: Array<string>) => Path.join(seeder.dataDir, "album", ...p)
    const ours = (...p: Array<string>) => Path.join(out, "album", ...p)

    const added = await ok(port, ["-a", file, "-G", "1"])
    expect(added).toMatch(/responded: "success"/)
    const first = await rowOf(port, 1)
    expect(first?.at(-1)).toBe("album")

    // The seeder, as transmission-remote shows peers, while the download runs: once its bitfield is in, all
    // pieces, and libtorrent's name (from its extension handshake or its peer id).
    const seederRow = /\n127\.0\.0\.1\s+(\S+\s+)?100\.0\s+[\d.]+\s+[\d.]+\s+libtorrent/i
    const peers = await Daemon.until("the seeder in -pi", async () => {
      const text = await ok(port, ["-t", "1", "-pi"])
      return seederRow.test(text) ? text : undefined
    }, 60_000)
    expect(peers.split("\n")[0]).toMatch(/^Address\s+Flags\s+Done\s+Down\s+Up\s+Client/)

    await Daemon.until("album at 100%", async () => ((await rowOf(port, 1))?.[1] === "100%" ? true : undefined), 90_000)
    expect(same(ours("a", "one.bin"), theirs("a", "one.bin"))).toBe(true)
    expect(same(ours("b", "three.bin"), theirs("b", "three.bin"))).toBe(true)
    const files = await ok(port, ["-t", "1", "-f"])
    expect(files).toContain("album (3 files):")
    expect(files).toMatch(/0: 100% Normal\s+Yes\s+307\.3 kB\s+album\/a\/one\.bin/)
    // the pieces it shares with its neighbours only
    expect(files).toMatch(/1:\s+\d\d?% Normal\s+No\s+200\.0 kB\s+album\/a\/two\.bin/)
    expect(files).toMatch(/2: 100% Normal\s+Yes\s+512\.0 kB\s+album\/b\/three\.bin/)

    // "Downloading" while the last bytes still count in the download rate, then seeding
    const info = await Daemon.until("seeding", async () => {
      const i = fieldsOf(await ok(port, ["-t", "1", "-i"]))
      return /^(Seeding|Idle|Uploading)$/.test(i.get("State") ?? "") ? i : undefined
    }, 30_000)
    expect(info.get("Hash")).toBe(Tracked.hexOf(multi))
    expect(info.get("Location")).toBe(out)
    expect(info.get("Percent Done")).toBe("100%")
    // wanted: whole pieces, the two shared with two.bin included (Transmission counts the same way)
    expect(info.get("Total size")).toBe("1.02 MB (855.5 kB wanted)")
    expect(info.get("Piece Count")).toBe(String(multi.metainfo.pieceCount))
    expect(info.get("Piece Size")).toBe("32.00 KiB")
    expect(Number(/^([\d.]+) kB$/.exec(info.get("Downloaded") ?? "")?.[1])).toBeGreaterThanOrEqual(819)
    const trackers = await ok(port, ["-t", "1", "-it"])
    expect(trackers).toContain(`Tracker 0: http://127.0.0.1:${tracker.port}`)
    expect(trackers).toContain("Active in tier 0")
    expect(trackers).toMatch(/Got a list of \d+ peers/)

    const session = fieldsOf(await ok(port, ["-si"]))
    expect(session.get("Download directory")).toBe(out)
    expect(session.get("Listenport")).toBe(String(daemon.peerPort))
    expect(session.get("Distributed hash table enabled")).toBe("No")
    const stats = await ok(port, ["-st"])
    expect(stats).toMatch(/CURRENT SESSION\n\s+Uploaded:\s+\S.*\n\s+Downloaded:\s+[\d.]+ kB/)

    // The file left out, wanted now.
    await ok(port, ["-t", "1", "-g", "1"])
    await Daemon.until("two.bin complete", async () => (/1: 100% Normal\s+Yes/.test(await ok(port, ["-t", "1", "-f"])) ? true : undefined), 60_000)
    expect(same(ours("a", "two.bin"), theirs("a", "two.bin"))).toBe(true)

    // Stop, start.
    await ok(port, ["-t", "1", "-S"])
    expect((await rowOf(port, 1))?.at(-2)).toBe("Stopped")
    await ok(port, ["-t", "1", "-s"])
    await Daemon.until("running again", async () => ((await rowOf(port, 1))?.at(-2) !== "Stopped" ? true : undefined), 30_000)

    // A byte broken on disk: -v finds it, and the piece comes again from the seeder.
    const fd = Fs.openSync(ours("b", "three.bin"), "r+")
    const one = Buffer.alloc(1)
    Fs.readSync(fd, one, 0, 1, 100_000)
    Fs.writeSync(fd, Buffer.from([one[0]! ^ 0xff]), 0, 1, 100_000)
    Fs.closeSync(fd)
    expect(same(ours("b", "three.bin"), theirs("b", "three.bin"))).toBe(false)
    await ok(port, ["-t", "1", "-v"])
    await Daemon.until("repaired", async () =>
      (await rowOf(port, 1))?.[1] === "100%" && same(ours("b", "three.bin"), theirs("b", "three.bin")) ? true : undefined, 60_000)

    // The same file again: a duplicate, nothing added.
    expect(await ok(port, ["-a", file])).toMatch(/responded: "success"/)
    expect(listRows(await ok(port, ["-l"])).length).toBe(1)

    await ok(port, ["-t", "1", "--remove-and-delete"])
    expect(listRows(await ok(port, ["-l"]))).toEqual([])
    expect(Fs.existsSync(ours("a", "one.bin"))).toBe(false)
    daemon.signal("SIGTERM")
    expect((await daemon.exited).code).toBe(0)
  }, 240_000)

  it("a magnet link into another directory, named by its hash; -r keeps the data", async () => {
    const daemon = await Daemon.start(children, { downloadDir: dir("tr-remote-default"), stateDir: dir("tr-remote-state2") })
    const port = daemon.apiPort
    const elsewhere = dir("tr-remote-elsewhere")
    const hash = Tracked.hexOf(solo)
    const magnet = `magnet:?xt=urn:btih:${hash}&dn=solo.bin&tr=${encodeURIComponent(tracker.httpUrl)}`
    expect(await ok(port, ["-a", magnet, "-w", elsewhere])).toMatch(/responded: "success"/)
    await Daemon.until("solo at 100%", async () => ((await rowOf(port, 1))?.[1] === "100%" ? true : undefined), 90_000)
    expect(same(Path.join(elsewhere, "solo.bin"), Path.join(seeders.get(solo)!.dataDir, "solo.bin"))).toBe(true)
    const info = fieldsOf(await ok(port, ["-t", hash, "-i"]))
    expect([info.get("Name"), info.get("Location"), info.get("Magnet")?.startsWith(`magnet:?xt=urn:btih:${hash}`)]).toEqual(["solo.bin", elsewhere, true])
    await ok(port, ["-t", hash, "-r"])
    expect(listRows(await ok(port, ["-l"]))).toEqual([])
    expect(Fs.existsSync(Path.join(elsewhere, "solo.bin"))).toBe(true)
    daemon.signal("SIGTERM")
    expect((await daemon.exited).code).toBe(0)
  }, 180_000)
})
