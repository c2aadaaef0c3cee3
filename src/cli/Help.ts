/**
 * What `effect-torrent --help` and `effect-torrent COMMAND --help` print, and the check of a command line against
 * the same table before anything else runs: an unknown command or option gets the closest known one and a pointer
 * to `--help`, an option missing its value says which value. @effect/cli parses the command line afterwards; its
 * own help (every option "A user-defined piece of text.", ~450 columns) is never shown. `test/cli/help.test.ts`
 * keeps this table and the commands' @effect/cli options the same.
 *
 * Plain data and string functions only: `--help` and `--version` answer without loading Effect (main.ts).
 */

export interface Opt {
  /** Long name first (`--output`), then the aliases (`-o`). */
  readonly names: ReadonlyArray<string>
  /** The value's name (`DIR`); none for a switch. */
  readonly value?: string
  readonly repeatable?: boolean
  readonly help: string
}

export interface Group {
  readonly title: string
  readonly options: ReadonlyArray<Opt>
}

export interface Cmd {
  readonly name: string
  /** Usage lines after `effect-torrent` (the first names the command). */
  readonly usage: ReadonlyArray<string>
  /** One line for the command list. */
  readonly summary: string
  /** A few lines for the command's own help. */
  readonly about?: ReadonlyArray<string>
  readonly groups: ReadonlyArray<Group>
  readonly examples?: ReadonlyArray<readonly [command: string, comment: string]>
  readonly subcommands?: ReadonlyArray<Cmd>
  /** Where it sits in the top-level list. */
  readonly section: "Transfer" | "Torrent files" | "Daemon" | "Other"
}

const opt = (names: string | ReadonlyArray<string>, value: string | undefined, help: string, repeatable = false): Opt => ({
  names: typeof names === "string" ? [names] : names,
  ...(value === undefined ? {} : { value }),
  ...(repeatable ? { repeatable } : {}),
  help
})

// Shared options.
const json = (what: string) => opt("--json", undefined, what)
const quiet = opt(["--quiet", "-q"], undefined, "print only errors")
const peer = opt("--peer", "HOST:PORT", "dial this peer too", true)
const noTrackers = opt("--no-trackers", undefined, "do not contact the torrent's trackers")
const noDht = opt("--no-dht", undefined, "do not look for peers in the DHT")
const dhtBootstrap = opt("--dht-bootstrap", "HOST:PORT", "a DHT node to start from (default: public ones)", true)
const noPex = opt("--no-pex", undefined, "do not exchange peer lists with peers (PEX)")
const noLsd = opt("--no-lsd", undefined, "do not look for peers on the local network (LSD)")
const noPortMapping = opt("--no-port-mapping", undefined, "no port forwarding on the router (PCP, NAT-PMP, UPnP)")
const noWebSeeds = opt("--no-web-seeds", undefined, "do not download from the torrent's web seeds")
const encryption = opt("--encryption", "MODE", "prefer (default), require or off")
const transport = opt("--transport", "T", "tcp (default), utp, or both (uTP first)")
const maxPeers = opt("--max-peers", "N", "connections at most (default 50)")
const port = opt("--port", "N", "port peers connect to (default 6881, else any free)")
const bind = opt("--bind", "ADDR", "address to listen on (default 0.0.0.0; :: for IPv6)")
const upLimit = opt("--up-limit", "RATE", "upload limit: 500K, 2M, 1MB/s (default none)")
const downLimit = opt("--down-limit", "RATE", "download limit (default none)")
const stateDir = opt("--state-dir", "DIR", "fast-resume records (default ~/.local/state/effect-torrent)")
const noResume = opt("--no-resume", undefined, "ignore and do not save fast-resume records")
const maxOpenFiles = opt("--max-open-files", "N", "file descriptors for the torrent's files (default 64)")
const timeout = (what: string) => opt("--timeout", "SECONDS", what)
const peerGroup = (extra: ReadonlyArray<Opt> = []): Group => ({
  title: "Peers",
  options: [peer, ...extra, noTrackers, noDht, dhtBootstrap, noPex, noLsd, noPortMapping, encryption, transport]
})
const remote: Group = {
  title: "Daemon",
  options: [
    opt("--api", "URL", "the daemon (default $EFFECT_TORRENT_API or http://127.0.0.1:9091)"),
    opt("--token", "TOKEN", "an API token (default $EFFECT_TORRENT_TOKEN)"),
    opt("--user", "NAME", "a user ($EFFECT_TORRENT_USER; password in $EFFECT_TORRENT_PASSWORD)")
  ]
}
const refs = (name: string, summary: string, extra: ReadonlyArray<Opt> = []): Cmd => ({
  name,
  usage: [`${name} <id | info-hash>... [options]`],
  summary,
  groups: [...(extra.length > 0 ? [{ title: "Options", options: extra }] : []), remote],
  section: "Daemon"
})
const authFile = opt("--file", "FILE", "the credentials file (created when missing)")

export const commands: ReadonlyArray<Cmd> = [
  {
    name: "download",
    usage: ["download <file.torrent | magnet> [-o DIR] [options]", "<file.torrent | magnet> [-d DIR] [options]"],
    summary: "download a torrent (resumes from the data already there)",
    about: [
      "Downloads into DIR (default: the current directory), checking and keeping",
      "what is already there. Exit 0 once every wanted file is complete and verified."
    ],
    groups: [
      {
        title: "Options",
        options: [
          opt(["--output", "-o"], "DIR", "where to download (default: the current directory)"),
          opt("--only", "N|GLOB", "only this file: its number in `info`, or a glob", true),
          opt("--save-torrent", "FILE", "also write the .torrent (a magnet's, once fetched)"),
          opt("--no-peers-timeout", "SECONDS", "give up when no peer is found (default 60)")
        ]
      },
      { title: "Seeding afterwards", options: [
        opt("--seed", undefined, "keep seeding after the download completes"),
        opt("--seed-ratio", "R", "with --seed: stop at this upload ratio"),
        opt("--seed-time", "SECONDS", "with --seed: stop after this long")
      ] },
      peerGroup([maxPeers, noWebSeeds]),
      { title: "Network", options: [port, bind, upLimit, downLimit] },
      { title: "Files and resume", options: [
        stateDir,
        noResume,
        opt("--resume-interval", "SECONDS", "between fast-resume saves (default 10)"),
        maxOpenFiles
      ] },
      { title: "Output", options: [json("one JSON object per event and line"), quiet] }
    ],
    examples: [
      ["ubuntu.torrent", "download into the current directory"],
      ["download ubuntu.torrent -o ~/Downloads --seed", "then keep seeding"],
      ["download \"magnet:?xt=urn:btih:…\" -o ~/Downloads", "a magnet link"],
      ["download big.torrent --only 2 --only \"*.srt\"", "two of its files"]
    ],
    section: "Transfer"
  },
  {
    name: "seed",
    usage: ["seed <file.torrent> <DIR> [options]", "<file.torrent> -s <DIR> [options]"],
    summary: "check a torrent's data in DIR and seed it until Ctrl-C",
    about: [
      "DIR is where `download -o DIR` put the data: the folder holding the",
      "torrent's own folder (or its single file), not that folder itself."
    ],
    groups: [
      peerGroup([maxPeers]),
      { title: "Network", options: [port, bind, upLimit] },
      { title: "Files and resume", options: [stateDir, noResume, maxOpenFiles] },
      { title: "Output", options: [json("one JSON object per event and line"), quiet] }
    ],
    examples: [["seed ubuntu.torrent ~/Downloads", "seed what `download -o ~/Downloads` wrote"]],
    section: "Transfer"
  },
  {
    name: "verify",
    usage: ["verify <file.torrent> <DIR> [options]"],
    summary: "re-hash the data in DIR and report every file (read-only)",
    groups: [{ title: "Options", options: [
      opt("--only", "N|GLOB", "check only this file: its number in `info`, or a glob", true),
      json("print the report as one JSON document")
    ] }],
    examples: [["verify ubuntu.torrent ~/Downloads", ""]],
    section: "Transfer"
  },
  {
    name: "info",
    usage: ["info <file.torrent | magnet> [options]"],
    summary: "show a torrent's or magnet's files, trackers and hashes",
    groups: [
      { title: "Options", options: [
        json("print one JSON document"),
        opt("--fetch", undefined, "for a magnet: fetch the metadata from peers first"),
        timeout("with --fetch: give up after this long (default 60)"),
        stateDir
      ] },
      { title: "Peers (with --fetch)", options: peerGroup().options }
    ],
    examples: [["info ubuntu.torrent", ""], ["info --fetch \"magnet:?xt=urn:btih:…\"", ""]],
    section: "Torrent files"
  },
  {
    name: "create",
    usage: ["create <file | DIR> [-t URL]... [-o FILE] [options]"],
    summary: "make a .torrent of a file or directory",
    groups: [
      { title: "Options", options: [
        opt(["--output", "-o"], "FILE", "where to write it (default: NAME.torrent here)"),
        opt(["--tracker", "-t"], "URL", "announce URL; each one a tier, \"A,B\" share one", true),
        opt(["--web-seed", "-w"], "URL", "web seed URL (BEP 19)", true),
        opt(["--piece-length", "-l"], "SIZE", "256K, 1M, … or 14-27 as a power of 2 (default: auto)"),
        opt(["--private", "-p"], undefined, "set the private flag (no DHT, no PEX)"),
        opt(["--comment", "-c"], "TEXT", "a comment"),
        opt("--date", "DATE", "seconds since 1970 or ISO date (default: now)"),
        opt("--no-date", undefined, "leave the creation date out (reproducible)"),
        opt("--v2", undefined, "BitTorrent v2 only (BEP 52)"),
        opt("--hybrid", undefined, "v1 and v2 in one torrent: every client loads it"),
        opt(["--force", "-f"], undefined, "overwrite the output"),
        json("print one JSON object at the end")
      ] }
    ],
    examples: [["create ./photos -t udp://tracker.example:6969/announce", ""]],
    section: "Torrent files"
  },
  {
    name: "trackers",
    usage: ["trackers <file.torrent | magnet> [options]"],
    summary: "announce to and scrape every tracker, one line each",
    groups: [{ title: "Options", options: [
      json("print a JSON array, one object per tracker"),
      timeout("for each tracker (default 10)"),
      opt("--port", "N", "the port announced (default 6881)")
    ] }],
    section: "Torrent files"
  },
  {
    name: "magnet-to-torrent",
    usage: ["magnet-to-torrent <magnet> [-o FILE] [options]"],
    summary: "fetch a magnet's metadata from peers and write a .torrent",
    groups: [
      { title: "Options", options: [
        opt(["--output", "-o"], "FILE", "where to write it (default: NAME.torrent here)"),
        opt("--force", undefined, "overwrite an existing file"),
        timeout("give up after this long (default 60)"),
        stateDir,
        quiet
      ] },
      peerGroup()
    ],
    section: "Torrent files"
  },
  {
    name: "daemon",
    usage: ["daemon [options]"],
    summary: "run the long-lived client: many torrents and an HTTP API",
    about: [
      "Serves the HTTP API (and Transmission's RPC) on 127.0.0.1:9091; `add`,",
      "`list`, `show`, … drive it. Its torrents survive restarts. Ctrl-C stops it."
    ],
    groups: [
      { title: "Options", options: [
        opt("--download-dir", "DIR", "where torrents go (default ~/Downloads)"),
        opt("--state-dir", "DIR", "the session (default ~/.local/state/effect-torrent/daemon)"),
        opt("--watch-dir", "DIR", "add the .torrent files dropped here")
      ] },
      { title: "HTTP API", options: [
        opt("--http", "HOST:PORT", "where to serve it (default 127.0.0.1:9091)"),
        opt("--auth-file", "FILE", "users and tokens (needed beyond loopback; see auth)"),
        opt("--allow-host", "NAME", "another Host name it may be reached by", true),
        opt("--web-ui", "DIR", "the web UI served at / (default: the built one; 'none': off)"),
        opt("--transmission-web", "DIR", "Transmission's web client ('none': off)")
      ] },
      { title: "Queue and limits", options: [
        opt("--max-active-downloads", "N", "downloading at once (default 5)"),
        opt("--max-active-seeds", "N", "seeding at once (default 10)"),
        opt("--max-connections", "N", "peer connections in all (default 500)"),
        opt("--max-peers", "N", "connections per torrent (default 50)"),
        opt("--seed-ratio", "R", "stop seeding at this ratio"),
        opt("--seed-time", "SECONDS", "stop seeding after this long"),
        opt("--down-limit", "RATE", "download limit (default none)"),
        opt("--up-limit", "RATE", "upload limit (default none)"),
        maxOpenFiles
      ] },
      { title: "Peers", options: [
        opt("--port", "N", "port peers connect to (default 51413)"),
        bind,
        noDht,
        dhtBootstrap,
        noPex,
        noLsd,
        noPortMapping,
        noWebSeeds,
        encryption,
        transport
      ] }
    ],
    examples: [
      ["daemon --download-dir ~/Downloads", "then, from another terminal:"],
      ["add ubuntu.torrent && effect-torrent list", ""]
    ],
    section: "Daemon"
  },
  {
    name: "add",
    usage: ["add <file.torrent | magnet | URL> [options]"],
    summary: "add a torrent to the running daemon",
    groups: [
      { title: "Options", options: [
        opt(["--output", "-o"], "DIR", "download directory (default: the daemon's)"),
        opt("--paused", undefined, "add it without starting it"),
        opt("--only", "N", "only this file, numbered as `info` lists them", true),
        json("print JSON")
      ] },
      remote
    ],
    section: "Daemon"
  },
  { name: "list", usage: ["list [options]"], summary: "list the daemon's torrents", groups: [
    { title: "Options", options: [json("print JSON")] },
    remote
  ], section: "Daemon" },
  { name: "show", usage: ["show <id | info-hash> [options]"], summary: "one torrent: files, trackers, peers", groups: [
    { title: "Options", options: [json("print JSON")] },
    remote
  ], section: "Daemon" },
  refs("pause", "pause torrents"),
  refs("resume", "resume torrents", [opt("--now", undefined, "start at once, past the queue's limits")]),
  refs("recheck", "re-check torrents' data"),
  refs("remove", "remove torrents", [opt("--delete-data", undefined, "delete the downloaded files too")]),
  {
    name: "auth",
    usage: ["auth <add-user | add-token | remove | list> --file FILE ..."],
    summary: "manage the daemon's users and API tokens",
    groups: [],
    subcommands: [
      { name: "add-user", usage: ["auth add-user <name> --file FILE"], summary: "add a user (or change its password)",
        groups: [{ title: "Options", options: [authFile] }], section: "Daemon" },
      { name: "add-token", usage: ["auth add-token <name> --file FILE"], summary: "make an API token (printed once)",
        groups: [{ title: "Options", options: [authFile] }], section: "Daemon" },
      { name: "remove", usage: ["auth remove <name | id> --file FILE"], summary: "remove a user, or tokens",
        groups: [{ title: "Options", options: [authFile] }], section: "Daemon" },
      { name: "list", usage: ["auth list --file FILE"], summary: "the users and tokens (never their secrets)",
        groups: [{ title: "Options", options: [authFile] }], section: "Daemon" }
    ],
    examples: [["auth add-token phone --file ~/.config/effect-torrent/auth.json", ""]],
    section: "Daemon"
  },
  {
    name: "demo",
    usage: ["demo [--size SIZE]"],
    summary: "seed a random payload and download it over loopback",
    groups: [{ title: "Options", options: [opt("--size", "SIZE", "payload size: 500K, 64MiB (default), 1GiB")] }],
    section: "Other"
  }
]

export const program = "effect-torrent"

/** The examples of the top-level help (the README's quick start shows the same lines). */
export const examples: ReadonlyArray<readonly [string, string]> = [
  ["demo", "watch it seed and download to itself"],
  ["ubuntu.torrent", "download into the current directory"],
  ["download \"magnet:?xt=urn:btih:…\" -o ~/Downloads", ""],
  ["seed ubuntu.torrent ~/Downloads", "seed what is there"],
  ["info ubuntu.torrent", "its files, numbered for --only"],
  ["create ./photos -t udp://tracker.example:6969/announce", ""],
  ["daemon", "then: effect-torrent add FILE"]
]

const WIDTH = 80

const wrap = (text: string, width: number): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === "" ? word : `${line} ${word}`
  }
  lines.push(line)
  return lines
}

/** `label  text` rows: labels padded to one column, texts wrapped within 80 columns. */
const table = (rows: ReadonlyArray<readonly [string, string]>, indent = 2, min = 20): Array<string> => {
  const column = Math.max(min, ...rows.map(([l]) => l.length + 2).filter((n) => n <= 30))
  return rows.flatMap(([label, text]) => {
    const pad = " ".repeat(indent)
    if (text === "") return [`${pad}${label}`]
    const body = wrap(text, WIDTH - indent - column)
    const head = label.length + 2 > column ? [`${pad}${label}`, ...body.map((l) => `${pad}${" ".repeat(column)}${l}`)] : [
      `${pad}${label.padEnd(column)}${body[0]}`,
      ...body.slice(1).map((l) => `${pad}${" ".repeat(column)}${l}`)
    ]
    return head
  })
}

const flagLabel = (o: Opt): string => {
  const [long, ...aliases] = o.names
  const names = [...aliases, long].join(", ")
  const label = o.value === undefined ? names : `${names} ${o.value}`
  return aliases.length === 0 ? `    ${label}` : label
}

/** Commands with their comments aligned in one column; a comment that does not fit goes on the line above. */
const exampleRows = (list: ReadonlyArray<readonly [string, string]>): Array<string> => {
  const lines = list.map(([c, comment]) => [`  ${program} ${c}`, comment] as const)
  const fits = lines.filter(([l, comment]) => comment !== "" && l.length + 4 + comment.length <= WIDTH)
  const column = Math.max(0, ...fits.filter(([l]) => l.length <= 44).map(([l]) => l.length + 2))
  return lines.flatMap(([line, comment]) => {
    if (comment === "") return [line]
    const at = Math.max(column, line.length + 2)
    return at + 2 + comment.length <= WIDTH ? [`${line.padEnd(at)}# ${comment}`] : [`  # ${comment}`, line]
  })
}

export const version = (v: string): string => `${v}\n`

/** `effect-torrent --help`. */
export const topHelp = (v: string): string => {
  const out = [
    `${program} ${v}: a BitTorrent client and library built on Effect`,
    "",
    "Usage:",
    `  ${program} <command> [options]`,
    `  ${program} <file.torrent | magnet> [-d DIR]     download (into DIR)`,
    `  ${program} <file.torrent> -s DIR                seed the data in DIR`
  ]
  for (const section of ["Transfer", "Torrent files", "Daemon", "Other"] as const) {
    out.push("", `${section}:`)
    const cmds = commands.filter((c) => c.section === section)
    const daemonRefs = ["add", "list", "show", "pause", "resume", "recheck", "remove"]
    const rows: Array<[string, string]> = []
    for (const c of cmds) {
      if (daemonRefs.includes(c.name)) continue
      rows.push([c.name, c.summary])
    }
    if (section === "Daemon") rows.splice(1, 0, [daemonRefs.join(", "), "drive a running daemon"])
    out.push(...table(rows, 2, 20))
  }
  out.push("", "Examples:", ...exampleRows(examples))
  out.push(
    "",
    `Run \`${program} <command> --help\` for a command's options;`,
    `\`${program} --version\` prints the version.`
  )
  return `${out.join("\n")}\n`
}

/** `effect-torrent COMMAND --help` (`auth add-user --help` too). */
export const commandHelp = (cmd: Cmd): string => {
  const out = ["Usage:", ...cmd.usage.map((u) => `  ${program} ${u}`), ""]
  out.push(...(cmd.about ?? [`${cmd.summary[0]!.toUpperCase()}${cmd.summary.slice(1)}.`]))
  if (cmd.subcommands !== undefined) {
    out.push("", "Commands:", ...table(cmd.subcommands.map((s) => [s.name, s.summary]), 2, 14))
  }
  const labels = cmd.groups.flatMap((g) => g.options.map((o) => flagLabel(o).length + 2)).filter((n) => n <= 26)
  const column = Math.max(16, ...labels)
  for (const g of cmd.groups) {
    const rows = g.options.map((o) => [flagLabel(o), o.repeatable === true ? `${o.help} (repeatable)` : o.help] as const)
    out.push("", `${g.title}:`, ...table(rows, 2, column))
  }
  if (cmd.examples !== undefined && cmd.examples.length > 0) out.push("", "Examples:", ...exampleRows(cmd.examples))
  return `${out.join("\n")}\n`
}

// ---- checking a command line -----------------------------------------------------------------------------------

/** Options @effect/cli adds to every command. */
const builtIn: ReadonlyArray<Opt> = [
  opt(["--help", "-h"], undefined, ""),
  opt("--log-level", "LEVEL", ""),
  opt("--completions", "SHELL", ""),
  opt("--wizard", undefined, "")
]

const distance = (a: string, b: string): number => {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!
    d[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return d[b.length]!
}

/** The closest of `names` to `word` when it is close enough to be a typo. */
export const closest = (word: string, names: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestD = Number.POSITIVE_INFINITY
  for (const n of names) {
    const dist = n.startsWith(word) && word.length >= 3 ? 0.5 : distance(word, n)
    if (dist < bestD) {
      best = n
      bestD = dist
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined
}

export const find = (name: string | undefined): Cmd | undefined => commands.find((c) => c.name === name)

export type Parsed =
  | { readonly _tag: "Help"; readonly text: string }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Usage"; readonly message: string }
  | { readonly _tag: "Run"; readonly command: Cmd }

const see = (path: string) => `(see \`${program} ${path}--help\`)`

/**
 * What to do with `args` (the command line after the program name, after the shorthand's rewrite): print a help,
 * the version, a usage error, or run a command whose options are all known and have their values.
 */
export const parse = (args: ReadonlyArray<string>, v: string): Parsed => {
  const [first, ...rest] = args
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    const topic = first === "help" ? find(rest[0]) : undefined
    return { _tag: "Help", text: topic === undefined ? topHelp(v) : commandHelp(topic) }
  }
  if (first === "--version" || first === "-V") return { _tag: "Version" }
  if (first.startsWith("-")) {
    return { _tag: "Usage", message: `${first}: expected a command first ${see("")}` }
  }
  const cmd = find(first)
  if (cmd === undefined) {
    const near = closest(first, commands.map((c) => c.name))
    const hint = near === undefined ? "" : `; did you mean ${near}?`
    return { _tag: "Usage", message: `unknown command ${first}${hint} ${see("")}` }
  }
  let target = cmd
  let tail = rest
  let path = `${cmd.name} `
  if (cmd.subcommands !== undefined) {
    const [sub, ...subRest] = rest
    if (sub === undefined || sub === "--help" || sub === "-h") return { _tag: "Help", text: commandHelp(cmd) }
    const found = cmd.subcommands.find((s) => s.name === sub)
    if (found === undefined) {
      const near = closest(sub, cmd.subcommands.map((s) => s.name))
      const hint = near === undefined ? "" : `; did you mean ${near}?`
      return { _tag: "Usage", message: `unknown command ${cmd.name} ${sub}${hint} ${see(path)}` }
    }
    target = found
    tail = subRest
    path = `${cmd.name} ${found.name} `
  }
  const options = [...target.groups.flatMap((g) => g.options), ...builtIn]
  const names = options.flatMap((o) => o.names)
  for (let i = 0; i < tail.length; i++) {
    const a = tail[i]!
    if (a === "--") break
    if (!a.startsWith("-") || a === "-" || /^-\d/.test(a)) continue
    if (a === "--help" || a === "-h") return { _tag: "Help", text: commandHelp(target) }
    const eq = a.indexOf("=")
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a
    const o = options.find((x) => x.names.includes(name))
    if (o === undefined) {
      const near = closest(name, names.filter((n) => n.startsWith("--") === name.startsWith("--")))
      const hint = near === undefined ? "" : `; did you mean ${near}?`
      return { _tag: "Usage", message: `${target === cmd ? cmd.name : path.trim()}: unknown option ${name}${hint} ${see(path)}` }
    }
    if (o.value !== undefined && name === a) {
      const next = tail[i + 1]
      if (next === undefined || (next.startsWith("-") && next !== "-" && !/^-\d/.test(next))) {
        const where = target === cmd ? cmd.name : path.trim()
        return { _tag: "Usage", message: `${where}: ${name} needs a value, ${o.value}: ${o.help} ${see(path)}` }
      }
      i++
    }
  }
  return { _tag: "Run", command: cmd }
}
