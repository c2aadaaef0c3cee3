/**
 * Debian's `transmission-remote` (package transmission-cli, Transmission 3.00) run against a server of ours: each
 * call is one child process, bounded in time (killed by its PID past the bound), its exit code and output returned.
 * Also what the Transmission test files share: the gate on an installed command, and their clean-up.
 */
import { afterAll } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Effect from "effect/Effect"
import { tempDir } from "../support/download.ts"

export const BINARY = "transmission-remote"

/** Whether `cmd` is on the PATH. */
export const hasCommand = (cmd: string): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** `true` to run a suite needing `cmd`; without it the suite is skipped loudly outside CI and fails in CI. */
export const gate = (cmd: string, suite: string, install: string): boolean => {
  if (hasCommand(cmd)) return true
  if (process.env["CI"]) return true
  console.warn(`\n!!! SKIPPING ${suite}: ${cmd} is not installed (${install}) !!!\n`)
  return false
}

export const shouldRun = (suite: string): boolean => gate(BINARY, suite, "apt-get install transmission-cli")

/**
 * What a test file starts and must end: child processes (killed by PID), stop functions, temporary directories
 * (removed); registered with the file's `afterAll`.
 */
export const cleanup = () => {
  const children: Array<ChildProcess> = []
  const stops: Array<() => Promise<void>> = []
  const dirs: Array<string> = []
  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, "SIGKILL")
    }
    await Promise.all(stops.map((s) => s()))
    for (const d of dirs) Fs.rmSync(d, { recursive: true, force: true })
  })
  /** A new temporary directory, removed after the file. */
  const dir = (name: string): string => {
    const d = tempDir(name)
    dirs.push(d)
    return d
  }
  return { children, stops, dir } as const
}

export interface Outcome {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** `transmission-remote 127.0.0.1:<port> ...args`, at most `timeoutMs`. */
export const remote = (port: number, args: ReadonlyArray<string>, timeoutMs = 20_000): Effect.Effect<Outcome> =>
  Effect.async<Outcome>((resume) => {
    const child = spawn(BINARY, [`127.0.0.1:${port}`, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => void (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => void (stderr += d.toString()))
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), timeoutMs)
    child.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGKILL")
    })
  })

/** The same, failing (with everything it printed) unless it exits 0. */
export const remoteOk = (port: number, args: ReadonlyArray<string>): Effect.Effect<string, Error> =>
  Effect.flatMap(remote(port, args), (o) =>
    o.code === 0
      ? Effect.succeed(o.stdout)
      : Effect.fail(new Error(`transmission-remote ${args.join(" ")} exited ${o.code}:\n${o.stdout}\n${o.stderr}`)))

/** The rows of `-l` (header and "Sum:" left out), split on runs of two or more spaces. */
export const listRows = (stdout: string): ReadonlyArray<ReadonlyArray<string>> =>
  stdout.split("\n").slice(1).filter((l) => l.trim() !== "" && !l.startsWith("Sum:")).map((l) => l.trim().split(/\s{2,}/))

/** `Key: value` lines of `-i` / `-si` output. */
export const fieldsOf = (stdout: string): ReadonlyMap<string, string> =>
  new Map(stdout.split("\n").flatMap((l) => {
    const m = /^\s+([^:]+):\s*(.*)$/.exec(l)
    return m === null ? [] : [[m[1]!.trim(), m[2]!.trim()] as const]
  }))
