/** Child processes of a test file, run to their exit with a bound and killed by PID when the file ends. */
import { type ChildProcess, spawn } from "node:child_process"

/**
 * Runs `cmd` to its exit (SIGKILL by PID after `timeoutMs`); resolves with its code and output. The child is pushed
 * onto `children`, the calling file's registry, which its `afterAll` kills.
 */
export const runChild = (
  children: Array<ChildProcess>,
  cmd: string,
  args: ReadonlyArray<string>,
  timeoutMs: number
): Promise<{ code: number | null; log: string }> =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    let log = ""
    child.stdout!.on("data", (d: Buffer) => void (log += d.toString()))
    child.stderr!.on("data", (d: Buffer) => void (log += d.toString()))
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), timeoutMs)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, log })
    })
  })
