/**
 * What a person sees first: `--help` (ours, Help.ts, not @effect/cli's generic text), the checks of a command line
 * before anything runs (unknown commands and options with the closest one, missing values), and the seed clients'
 * shorthand. The table in Help.ts must name exactly the options each @effect/cli command parses.
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { create } from "../../src/cli/CreateCommand.ts"
import { daemon } from "../../src/cli/DaemonCommand.ts"
import { demo } from "../../src/cli/DemoCommand.ts"
import { download } from "../../src/cli/DownloadCommand.ts"
import * as Help from "../../src/cli/Help.ts"
import { stripAnsi } from "../../src/cli/Output.ts"
import { info } from "../../src/cli/InfoCommand.ts"
import { magnetToTorrent } from "../../src/cli/MagnetCommand.ts"
import { remoteCommands } from "../../src/cli/RemoteCommands.ts"
import { seed } from "../../src/cli/SeedCommand.ts"
import { trackers } from "../../src/cli/TrackersCommand.ts"
import { verify } from "../../src/cli/VerifyCommand.ts"
import { cli, exec, bundle, cliEnv } from "../support/cli.ts"
import { tempDir } from "../support/download.ts"
import { projectRoot } from "../support/fixtures.ts"
import { build, seed as startSeeder, type Seeder } from "../support/seeder.ts"

const seeders: Array<Seeder> = []
afterAll(() => Promise.all(seeders.map((s) => s.stop())))

const version = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")).version as string

/** The option names @effect/cli knows for a command (its own generic help, scraped), without its built-ins. */
const cliOptionNames = (help: HelpDoc.HelpDoc): Array<string> => {
  const text = stripAnsi(HelpDoc.toAnsiText(help))
  const builtIn = new Set(["--help", "-h", "--version", "--wizard", "--completions", "--log-level"])
  const names = new Set<string>()
  for (const line of text.split("\n")) {
    if (!/^\(?-/.test(line)) continue
    for (const m of line.matchAll(/(?<![\w-])(--?[a-z0-9][a-z0-9-]*)/g)) if (!builtIn.has(m[1]!)) names.add(m[1]!)
  }
  return [...names].sort()
}
const ourNames = (cmd: Help.Cmd): Array<string> => cmd.groups.flatMap((g) => g.options.flatMap((o) => o.names)).sort()

describe("effect-torrent --help", () => {
  it("is ours: short, grouped, with examples, within 80 columns, naming the program", async () => {
    const r = await cli(["--help"])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe("")
    expect(r.stdout).toBe(Help.topHelp(version))
    for (const line of r.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(80)
    expect(r.stdout).not.toMatch(/user-defined|--wizard|--completions/)
    expect(r.stdout).toContain("effect-torrent <file.torrent | magnet> [-d DIR]")
    expect(r.stdout).toContain("effect-torrent <file.torrent> -s DIR")
    expect(Help.topHelp("0.1.0")).toMatchSnapshot()
    // No arguments at all: the same help, and success.
    expect((await cli([])).stdout).toBe(r.stdout)
    expect((await cli(["-h"])).stdout).toBe(r.stdout)
  })

  it("every command's help fits 80 columns, shows usage with the program name, marks repeatable options", async () => {
    for (const cmd of Help.commands) {
      const text = Help.commandHelp(cmd)
      for (const line of text.split("\n")) expect(line.length, `${cmd.name}: ${line}`).toBeLessThanOrEqual(80)
      expect(text).toMatch(new RegExp(`^Usage:\\n  effect-torrent `))
      for (const sub of cmd.subcommands ?? []) {
        for (const line of Help.commandHelp(sub).split("\n")) expect(line.length).toBeLessThanOrEqual(80)
      }
    }
    const r = await cli(["download", "--help"])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(Help.commandHelp(Help.find("download")!))
    expect(r.stdout).toMatch(/--peer HOST:PORT +dial this peer too \(repeatable\)/)
    expect(r.stdout).toContain("effect-torrent <file.torrent | magnet> [-d DIR]")
    expect(r.stdout).toMatchSnapshot()
    expect((await cli(["seed", "--help"])).stdout).toMatchSnapshot()
    expect((await cli(["help", "seed"])).stdout).toBe(Help.commandHelp(Help.find("seed")!))
    expect((await cli(["auth", "add-user", "--help"])).stdout).toContain("effect-torrent auth add-user <name> --file FILE")
  })

  it("names exactly the options each command parses", () => {
    const config = CliConfig.defaultConfig
    const pairs: Array<readonly [string, HelpDoc.HelpDoc]> = [
      ["download", Command.getHelp(download, config)],
      ["seed", Command.getHelp(seed, config)],
      ["verify", Command.getHelp(verify, config)],
      ["info", Command.getHelp(info, config)],
      ["create", Command.getHelp(create, config)],
      ["trackers", Command.getHelp(trackers, config)],
      ["magnet-to-torrent", Command.getHelp(magnetToTorrent, config)],
      ["demo", Command.getHelp(demo, config)],
      ["daemon", Command.getHelp(daemon, config)],
      ["add", Command.getHelp(remoteCommands[0], config)],
      ["list", Command.getHelp(remoteCommands[1], config)],
      ["show", Command.getHelp(remoteCommands[2], config)],
      ["pause", Command.getHelp(remoteCommands[3], config)],
      ["resume", Command.getHelp(remoteCommands[4], config)],
      ["recheck", Command.getHelp(remoteCommands[5], config)],
      ["remove", Command.getHelp(remoteCommands[6], config)]
    ]
    for (const [name, help] of pairs) expect(ourNames(Help.find(name)!), name).toEqual(cliOptionNames(help))
    expect(Help.commands.map((c) => c.name).sort()).toEqual([...pairs.map(([n]) => n), "auth"].sort())
  })

  it("--version prints the package's version", async () => {
    const r = await cli(["--version"])
    expect(r.stdout).toBe(`${version}\n`)
  })

  it("the README's examples are the ones --help shows", () => {
    const help = Help.topHelp(version)
    const examples = help.slice(help.indexOf("Examples:\n") + 10).split("\n\n")[0]!
    const block = examples.split("\n").map((l) => l.slice(2)).join("\n")
    const readme = readFileSync(join(projectRoot, "README.md"), "utf8")
    expect(readme).toContain("```sh\n" + block + "\n```")
  })
})

describe("command lines refused before anything runs: one line, exit 2, a way out", () => {
  const refused = async (args: ReadonlyArray<string>) => {
    const r = await cli(args)
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr.split("\n").filter((l) => l !== "")).toHaveLength(1)
    return r.stderr.trim()
  }

  it("an unknown command or option: the closest one and where to look", async () => {
    expect(await refused(["downlaod", "x.torrent"])).toBe(
      "effect-torrent: unknown command downlaod; did you mean download? (see `effect-torrent --help`)"
    )
    expect(await refused(["download", "x.torrent", "--outptu", "d"])).toBe(
      "effect-torrent: download: unknown option --outptu; did you mean --output? (see `effect-torrent download --help`)"
    )
    expect(await refused(["seed", "x.torrent", "d", "--prot", "1"])).toBe(
      "effect-torrent: seed: unknown option --prot; did you mean --port? (see `effect-torrent seed --help`)"
    )
    expect(await refused(["info", "x.torrent", "--frobnicate"])).toBe(
      "effect-torrent: info: unknown option --frobnicate (see `effect-torrent info --help`)"
    )
    expect(await refused(["auth", "add-usr", "bob"])).toContain("did you mean add-user?")
  })

  it("a missing value is reported as such, not as an unknown argument", async () => {
    expect(await refused(["download", "x.torrent", "-o"])).toBe(
      "effect-torrent: download: -o needs a value, DIR: where to download (default: the current directory) " +
        "(see `effect-torrent download --help`)"
    )
    expect(await refused(["download", "x.torrent", "--peer", "--json"])).toMatch(/--peer needs a value, HOST:PORT/)
    expect(await refused(["x.torrent", "-d"])).toMatch(/^effect-torrent: download: -d needs a value, DIR/)
    expect(await refused(["x.torrent", "-s"])).toMatch(/^effect-torrent: seed: -s needs a value, DIR/)
  })

  it("@effect/cli's own parse errors come out as one line too", async () => {
    expect(await refused(["download", "x.torrent", "--port", "abc"])).toBe(
      "effect-torrent: download: 'abc' is not a integer (see `effect-torrent download --help`)"
    )
    expect(await refused(["seed", "x.torrent"])).toBe(
      "effect-torrent: seed: Missing argument <path> (see `effect-torrent seed --help`)"
    )
  })
})

describe("the seed clients' shorthand", () => {
  it("a bare `effect-torrent FILE.torrent` downloads into the current directory", async () => {
    const built = build({ name: "bare", pieceLength: 16384, files: [{ path: ["a.bin"], length: 50_000 }] })
    const s = await startSeeder(built)
    seeders.push(s)
    const dir = tempDir("bare")
    writeFileSync(join(dir, "bare.torrent"), built.bytes)
    const r = await exec("sh", [
      "-c",
      `cd "${dir}" && exec "${process.execPath}" "${bundle}" bare.torrent --peer 127.0.0.1:${s.port} --no-dht`
    ], { env: cliEnv })
    expect(r.code, r.stderr).toBe(0)
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
    expect(sha(readFileSync(join(dir, "bare", "a.bin")))).toBe(sha(built.files[0]!))
  })
})
