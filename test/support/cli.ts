/**
 * Running the built CLI (`dist/cli.mjs`, rebuilt by `npm test`) as a user would, in a child process with colours off
 * and the loopback-only guard on, and the shared expectation for its one-line errors.
 */
import { expect } from "@effect/vitest"
import { execFile } from "node:child_process"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { projectRoot } from "./fixtures.ts"

export const bundle = join(projectRoot, "dist/cli.mjs")

/**
 * The environment CLI tests run under: no colours, no destination outside 127.0.0.0/8 and ::1, resume records in a
 * temp state directory (not the user's).
 */
export const cliEnv = {
  ...process.env,
  NO_COLOR: "1",
  EFFECT_TORRENT_LOOPBACK_ONLY: "1",
  XDG_STATE_HOME: join(tmpdir(), "effect-torrent-test-state")
}

export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs any command and collects its exit code and output (code -1 when it was killed or could not start). */
export const exec = (
  cmd: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string | undefined>; readonly timeout?: number } = {}
): Promise<Run> =>
  new Promise((resolve) => {
    execFile(cmd, [...args], { env: options.env ?? cliEnv, timeout: options.timeout ?? 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }))
  })

/** Runs `effect-torrent ARGS`. */
export const cli = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly timeout?: number } = {}
): Promise<Run> => exec(process.execPath, [bundle, ...args], { env: { ...cliEnv, ...options.env }, timeout: options.timeout ?? 60_000 })

/** The CLI failed the way it promises: exit `code`, exactly one line on stderr naming the problem, no stack trace. */
export const expectOneLineError = (r: Run, code: number): void => {
  expect(r.code).toBe(code)
  const lines = r.stderr.trim().split("\n")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^effect-torrent: /)
  expect(r.stderr).not.toMatch(/\n\s+at /)
}
