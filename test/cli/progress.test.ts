/**
 * What a person watches: the progress and seeding lines fitted to the terminal's width (pure, at several widths,
 * and once through a real pseudo-terminal made by util-linux `script`, resized with `stty`), the summaries at the
 * end (transferred vs already there, average speed, where the files are, uploaded and ratio), and what Ctrl-C says.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as DownloadCommand from "../../src/cli/DownloadCommand.ts"
import { stripAnsi } from "../../src/cli/Output.ts"
import * as Progress from "../../src/cli/Progress.ts"
import { bundle, cli, cliEnv as env, exec } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { build, seed, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const MiB = 1024 * 1024
const view: Progress.DownloadView = {
  name: "ubuntu-24.04.1-desktop-amd64.iso",
  done: 9.2 * MiB,
  total: 21.9 * MiB,
  downRate: 3.1 * MiB,
  upRate: 120 * 1024,
  peers: 5,
  seeds: 2
}

describe("the progress line", () => {
  it("fits every width from 40 columns up, dropping fields by priority", () => {
    const lines = [40, 50, 60, 80, 100, 140].map((w) => {
      const line = Progress.downloadLine(view, w, { bar: true, color: false })
      expect(line.length, `${w}: ${line}`).toBeLessThan(w)
      return `${String(w).padStart(3)}|${line}`
    })
    expect(lines.join("\n")).toMatchInlineSnapshot(`
      " 40|42.0%  9.20 MiB/21.9 MiB  ↓ 3.10 MiB/s
       50|42.0%  9.20 MiB/21.9 MiB  ↓ 3.10 MiB/s  ETA 00:04
       60|ubuntu-…  42.0%  9.20 MiB/21.9 MiB  ↓ 3.10 MiB/s  ETA 00:04
       80|ubuntu-2…  42.0%  9.20 MiB/21.9 MiB  ↓ 3.10 MiB/s  5 peers (2 seeds)  ETA 00:04
      100|ubuntu-24.04.1-…  42.0%  9.20 MiB/21.9 MiB  ↓ 3.10 MiB/s  ↑ 120 KiB/s  5 peers (2 seeds)  ETA 00:04
      140|ubuntu-24.04.1-desktop-amd64.iso  ████████░░░░░░░░░░░░  42.0%  9.20 MiB/21.9 MiB  ↓ 3.10 MiB/s  ↑ 120 KiB/s  5 peers (2 seeds)  ETA 00:04"
    `)
    // Colours do not count against the width.
    expect(stripAnsi(Progress.downloadLine(view, 140, { bar: true, color: true }))).toBe(
      Progress.downloadLine(view, 140, { bar: true, color: false })
    )
  })

  it("while no peer is connected, says what is being tried, fitted to the width", () => {
    const waiting: Progress.WaitingView = {
      name: "ubuntu-24.04.1-desktop-amd64.iso",
      done: 0,
      total: 21.9 * MiB,
      candidates: 3,
      dialling: 2,
      lastAttempt: "10.0.0.7:6881: peer 10.0.0.7:6881 closed (connect-failed): tcp connect-failed (10.0.0.7:6881): connect ECONNREFUSED 10.0.0.7:6881",
      trackers: [
        { url: "udp://tracker.example:6969", status: "error", message: "tracker udp://tracker.example:6969: timed out after 15s" },
        { url: "http://t2.example/announce", status: "working", message: "" }
      ],
      dht: true,
      lsd: true,
      webSeeds: 0
    }
    const lines = [40, 60, 80, 140, Number.POSITIVE_INFINITY].map((w) => {
      const line = Progress.waitingLine(waiting, w)
      if (Number.isFinite(w)) expect(line.length, `${w}: ${line}`).toBeLessThan(w)
      return `${String(w).padStart(3)}|${line}`
    })
    expect(lines.join("\n")).toMatchInlineSnapshot(`
      " 40|0.0%  waiting for peers: trying 2 of 3…
       60|ubuntu-24.0…  0.0%  waiting for peers: trying 2 of 3 known…
       80|ubuntu-24.0…  0.0%  waiting for peers: trying 2 of 3 known, last 10.0.0.7:6881…
      140|ubuntu-24.0…  0.0%  waiting for peers: trying 2 of 3 known, last 10.0.0.7:6881 refused; 1/2 trackers answered (udp://tracker.example:6969 …
      Infinity|ubuntu-24.04.1-desktop-amd64.iso  0.0%  0 B/21.9 MiB  waiting for peers: trying 2 of 3 known, last 10.0.0.7:6881 refused; 1/2 trackers answered (udp://tracker.example:6969 timed out); asking DHT, LSD"
    `)
    expect(Progress.waitingText({ ...waiting, candidates: 0, dialling: 0, lastAttempt: undefined, trackers: [], dht: false, lsd: false, webSeeds: 1 }))
      .toBe("waiting for peers: no peer address yet; asking 1 web seed")
  })

  it("tells a connection error in a word", () => {
    expect(Progress.brief("tcp connect-failed (1.2.3.4:5): connect ECONNREFUSED 1.2.3.4:5")).toBe("refused")
    expect(Progress.brief("connect EHOSTUNREACH 1.2.3.4:5")).toBe("unreachable")
    expect(Progress.brief("tracker http://x/announce: request timed out")).toBe("timed out")
    expect(Progress.brief("tracker http://x/announce: tracker says: unregistered torrent")).toBe("unregistered torrent")
    expect(Progress.brief("EWHATEVER")).toBe("EWHATEVER")
    expect(Progress.brief("")).toBe("")
  })

  it("says 1 peer, and rates in one format", () => {
    expect(Progress.formatPeers(1, undefined)).toBe("1 peer")
    expect(Progress.formatPeers(1, 1)).toBe("1 peer (1 seed)")
    expect(Progress.formatPeers(0, 0)).toBe("0 peers")
    expect([0, 512, 999, 1000, 1536, 16384, 10.5 * MiB, 123.4 * MiB, 2048 * MiB].map(Progress.formatRate)).toEqual([
      "0 B/s",
      "512 B/s",
      "999 B/s",
      "0.98 KiB/s",
      "1.50 KiB/s",
      "16.0 KiB/s",
      "10.5 MiB/s",
      "123 MiB/s",
      "2.00 GiB/s"
    ])
  })

  it("the seeding line fits too, with the name, upload rate, ratio and peers", () => {
    const v = { name: "album", uploaded: 30 * MiB, total: 21.9 * MiB, upRate: 2.5 * MiB, peers: 1 }
    expect([40, 80].map((w) => Progress.seedLine(v, w))).toEqual([
      "album  seeding  ↑ 2.50 MiB/s  30 MiB up",
      "album  seeding  ↑ 2.50 MiB/s  30 MiB up  ratio 1.37  1 peer"
    ])
  })
})

describe("the summary at the end", () => {
  it("tells transferred from already there, the average speed, where the files are, uploaded and ratio", () => {
    const base = { name: "album", where: "/home/me/Downloads/album", total: 21.9 * MiB, uploaded: 2 * MiB, seconds: 4.2 }
    expect(DownloadCommand.summary({ ...base, downloaded: 21.9 * MiB, alreadyThere: 0 })).toMatchInlineSnapshot(`
      "album: complete, 21.9 MiB in /home/me/Downloads/album
        downloaded 21.9 MiB in 4.2 s (5.21 MiB/s on average)
        uploaded 2 MiB (ratio 0.09)
      "
    `)
    expect(DownloadCommand.summary({ ...base, downloaded: 12 * MiB, alreadyThere: 9.9 * MiB })).toMatchInlineSnapshot(`
      "album: complete, 21.9 MiB in /home/me/Downloads/album
        downloaded 12 MiB in 4.2 s (2.86 MiB/s on average); 9.90 MiB was already there
        uploaded 2 MiB (ratio 0.09)
      "
    `)
    expect(DownloadCommand.summary({ ...base, downloaded: 0, alreadyThere: 21.9 * MiB, uploaded: 0 })).toMatchInlineSnapshot(`
      "album: complete, 21.9 MiB in /home/me/Downloads/album
        nothing to download: all of it was already there
      "
    `)
  })
})

const big = build({ name: "big.bin", single: true, files: [{ path: ["big.bin"], length: 4_000_000 }], pieceLength: 65536 })

describe("as the CLI prints them", () => {
  it("in a real terminal of 50 and 80 columns every redraw fits; the summary follows", async () => {
    // 4 MB at 1 MiB/s: about four seconds, so several redraws whatever the machine's speed
    const s = await seed(big, { blockDelayMs: 15 })
    seeders.push(s)
    for (const cols of [50, 80]) {
      const out = tempDir(`pty${cols}`)
      const torrent = join(out, "big.torrent")
      writeFileSync(torrent, big.bytes)
      const command = `stty cols ${cols} rows 24; exec "${process.execPath}" "${bundle}" download "${torrent}" ` +
        `-o "${join(out, "data")}" --peer 127.0.0.1:${s.port} --no-dht --down-limit 1M`
      const { NO_COLOR: _, ...colour } = env
      const r = await exec("script", ["-q", "-e", "-c", command, "/dev/null"], { env: { ...colour, TERM: "xterm" } })
      expect(r.code, r.stdout).toBe(0)
      const screen = r.stdout.replace(/\r\n/g, "\n")
      // A redraw is what lies between two clears; the last piece is the summary.
      const redraws = screen.split("\r\x1b[K").filter((l) => l !== "" && !l.includes("\n")).map(stripAnsi)
      expect(redraws.length).toBeGreaterThan(1)
      for (const line of redraws) expect([...line].length, line).toBeLessThan(cols)
      expect(redraws.some((l) => /\d+\.\d%/.test(l) && /↓ /.test(l))).toBe(true)
      expect(stripAnsi(screen)).toContain(`big.bin: complete, 3.81 MiB in ${join(out, "data", "big.bin")}`)
    }
  })

  it("a second run over complete data says nothing was downloaded; a resumed one what was already there", async () => {
    const s = await seed(big)
    seeders.push(s)
    const out = tempDir("resumed")
    const torrent = join(out, "big.torrent")
    writeFileSync(torrent, big.bytes)
    const data = join(out, "data")
    mkdirSync(data)
    // Half the file already there (a crash without a resume record): checked and kept.
    writeFileSync(join(data, "big.bin"), big.payload.subarray(0, 2_000_000))
    const args = ["download", torrent, "-o", data, "--peer", `127.0.0.1:${s.port}`, "--no-resume"]
    const first = await cli(args)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/downloaded 1\.9\d MiB in [\d.]+ s \([\d.]+ [KMG]?i?B\/s on average\); 1\.8\d MiB was already there/)
    expect(first.stdout).toMatch(/uploaded 0 B \(ratio 0\.00\)/)
    const again = await cli(args)
    expect(again.code).toBe(0)
    expect(again.stdout).toContain(`big.bin: complete, 3.81 MiB in ${join(data, "big.bin")}\n  nothing to download: all of it was already there\n`)
  })

  it("Ctrl-C says where it stopped and that running it again resumes", async () => {
    const s = await seed(big, { blockDelayMs: 20 })
    seeders.push(s)
    const out = tempDir("sigint")
    const torrent = join(out, "big.torrent")
    writeFileSync(torrent, big.bytes)
    const child = spawn(process.execPath, [bundle, "download", torrent, "-o", out, "--peer", `127.0.0.1:${s.port}`], {
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    child.stdout.on("data", (d: Buffer) => void (stdout += d.toString()))
    const code = await new Promise<number | null>((resolve) => {
      // Interrupted once some blocks have been served (the seeder's counter, polled).
      const poll = setInterval(() => {
        if (s.served() >= 20) {
          clearInterval(poll)
          child.kill("SIGINT")
        }
      }, 50)
      child.once("exit", (c) => {
        clearInterval(poll)
        resolve(c)
      })
    })
    expect(code).toBe(130)
    expect(stdout).toMatch(
      new RegExp(`^big\\.bin: stopped at \\d+\\.\\d% \\([\\d.]+ [KM]?i?B of 3\\.81 MiB\\) in ${out}; run the same command again to resume\\n$`, "m")
    )
  })
})
