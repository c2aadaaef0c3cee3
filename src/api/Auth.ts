/**
 * The daemon's credentials: users with passwords (HTTP Basic) and bearer tokens, stored only as salted scrypt
 * hashes, in a small JSON file (`auth.json`, written with mode 0600):
 *
 * ```json
 * { "version": 1,
 *   "users":  [{ "username": "alice", "password": "$scrypt$ln=14,r=8,p=1$<salt>$<hash>" }],
 *   "tokens": [{ "id": "3f9a0c2e", "name": "laptop", "hash": "$scrypt$ln=14,r=8,p=1$<salt>$<hash>" }] }
 * ```
 *
 * Hashes are PHC strings: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<key>`, salt (16 random bytes) and key (32 bytes)
 * in unpadded base64. A token is `<id>.<secret>` (8 hex digits, a dot, 32 random bytes base64url): the id finds
 * its entry, only the secret's hash is kept, and the whole token is shown once, when it is made.
 *
 * Checking ({@link makeAuthenticator}): the derived key is compared with `timingSafeEqual`; an unknown user or token
 * id is checked against a dummy hash so that it costs as much as a wrong password; at most two scrypt computations
 * run at once (they are ~50 ms each, on libuv's thread pool); a header that passed is remembered (by its SHA-256,
 * for 10 minutes, 256 at most) so that a client's every request does not pay for scrypt again.
 */
import * as Crypto from "node:crypto"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as AtomicFile from "../storage/AtomicFile.ts"

export interface ScryptParams {
  /** log2 of the cost N. */
  readonly logN: number
  readonly r: number
  readonly p: number
}

/** N = 2^14, r = 8, p = 1: 16 MiB and ~50 ms per hash (scrypt's interactive-login parameters). */
export const defaultParams: ScryptParams = { logN: 14, r: 8, p: 1 }

const SALT_BYTES = 16
const KEY_BYTES = 32
const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{16,88})$/

export const PasswordHash = Schema.String.pipe(
  Schema.pattern(PHC, { message: () => "expected a scrypt PHC string ($scrypt$ln=…,r=…,p=…$salt$hash)" })
).annotations({ identifier: "PasswordHash" })

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64").replace(/=+$/, "")

const scrypt = (secret: string, salt: Uint8Array, keyLength: number, params: ScryptParams) =>
  Effect.async<Buffer>((resume) => {
    const N = 2 ** params.logN
    Crypto.scrypt(secret.normalize("NFC"), salt, keyLength, { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 }, (err, key) => {
      // Parameters are checked before we get here; a failure is a broken invariant.
      if (err !== null) resume(Effect.die(err))
      else resume(Effect.succeed(key))
    })
  })

interface Parsed {
  readonly params: ScryptParams
  readonly salt: Buffer
  readonly key: Buffer
}

const parseHash = (hash: string): Parsed | undefined => {
  const m = PHC.exec(hash)
  if (m === null) return undefined
  const params = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) }
  // Bounds, so that a doctored file cannot make one check take minutes or gigabytes.
  if (params.logN < 1 || params.logN > 20 || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) {
    return undefined
  }
  const salt = Buffer.from(m[4]!, "base64")
  const key = Buffer.from(m[5]!, "base64")
  if (salt.length < 8 || key.length < 16) return undefined
  return { params, salt, key }
}

/** A salted scrypt hash of `password`, as a PHC string. */
export const hashPassword = (password: string, params: ScryptParams = defaultParams): Effect.Effect<string> =>
  Effect.gen(function*() {
    const salt = Crypto.randomBytes(SALT_BYTES)
    const key = yield* scrypt(password, salt, KEY_BYTES, params)
    return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`
  })

/** Whether `password` is the one `hash` was made from (false for a malformed hash). Constant-time comparison. */
export const verifyPassword = (password: string, hash: string): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    const parsed = parseHash(hash)
    if (parsed === undefined) return Effect.succeed(false)
    return Effect.map(scrypt(password, parsed.salt, parsed.key.length, parsed.params), (key) => Crypto.timingSafeEqual(key, parsed.key))
  })

// ---------------------------------------------------------------------------------------------------------------
// The file

export const User = Schema.Struct({
  username: Schema.String.pipe(
    Schema.minLength(1),
    Schema.pattern(/^[^:\s]+$/, { message: () => "a user name has no ':' and no spaces" })
  ),
  password: PasswordHash
})
export type User = typeof User.Type

export const Token = Schema.Struct({
  id: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{8}$/)),
  name: Schema.String,
  hash: PasswordHash
})
export type Token = typeof Token.Type

export const AuthFile = Schema.Struct({
  version: Schema.Literal(1),
  users: Schema.Array(User),
  tokens: Schema.Array(Token)
}).annotations({ identifier: "AuthFile" })
export type AuthFile = typeof AuthFile.Type

export const empty: AuthFile = { version: 1, users: [], tokens: [] }

/** No user and no token: authentication is not configured. */
export const isEmpty = (file: AuthFile): boolean => file.users.length === 0 && file.tokens.length === 0

export class AuthError extends Data.TaggedError("AuthError")<{
  readonly reason: "unreadable" | "invalid" | "unwritable"
  readonly path: string
  readonly message: string
  readonly cause?: unknown
}> {}

/** Adds a user, or changes the password of one already there. */
export const addUser = (file: AuthFile, username: string, password: string): Effect.Effect<AuthFile> =>
  Effect.map(hashPassword(password), (hash) => ({
    ...file,
    users: [...file.users.filter((u) => u.username !== username), { username, password: hash }]
  }))

export const removeUser = (file: AuthFile, username: string): AuthFile => ({
  ...file,
  users: file.users.filter((u) => u.username !== username)
})

/** Makes a token: the new file (which keeps only its hash) and the token itself, to show once. */
export const addToken = (file: AuthFile, name: string): Effect.Effect<{ readonly file: AuthFile; readonly token: string }> =>
  Effect.gen(function*() {
    let id = Crypto.randomBytes(4).toString("hex")
    while (file.tokens.some((t) => t.id === id)) id = Crypto.randomBytes(4).toString("hex")
    const secret = Crypto.randomBytes(32).toString("base64url")
    const hash = yield* hashPassword(secret)
    return { file: { ...file, tokens: [...file.tokens, { id, name, hash }] }, token: `${id}.${secret}` }
  })

/** Removes the tokens with this id or name. */
export const removeToken = (file: AuthFile, idOrName: string): AuthFile => ({
  ...file,
  tokens: file.tokens.filter((t) => t.id !== idOrName && t.name !== idOrName)
})

export const render = (file: AuthFile): string => JSON.stringify(Schema.encodeSync(AuthFile)(file), null, 2) + "\n"

export const parse = (text: string, path = "auth file"): Effect.Effect<AuthFile, AuthError> =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (cause) => new AuthError({ reason: "invalid", path, message: `${path}: not JSON`, cause })
  }).pipe(
    Effect.flatMap((json) =>
      Schema.decodeUnknown(AuthFile, { onExcessProperty: "error" })(json).pipe(
        Effect.mapError((cause) => new AuthError({ reason: "invalid", path, message: `${path}: ${cause.message}`, cause }))
      )
    ),
    Effect.filterOrFail(
      (file) => [...file.users.map((u) => u.password), ...file.tokens.map((t) => t.hash)].every((h) => parseHash(h) !== undefined),
      () => new AuthError({ reason: "invalid", path, message: `${path}: a hash has parameters out of bounds` })
    )
  )

/** Reads and checks the file; warns when others than its owner can read it. */
export const readFile = (path: string): Effect.Effect<AuthFile, AuthError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((cause) => new AuthError({ reason: "unreadable", path, message: `${path}: ${cause.message}`, cause }))
    )
    const info = yield* Effect.option(fs.stat(path))
    if (info._tag === "Some" && (info.value.mode & 0o077) !== 0) {
      yield* Effect.logWarning(`${path} can be read by other users than its owner (chmod 600 it)`)
    }
    return yield* parse(text, path)
  })

/** Writes the file atomically, readable by its owner only. */
export const writeFile = (path: string, file: AuthFile): Effect.Effect<void, AuthError, FileSystem.FileSystem> =>
  AtomicFile.write(path, new TextEncoder().encode(render(file)), { mode: 0o600 }).pipe(
    Effect.mapError((cause) => new AuthError({ reason: "unwritable", path, message: cause.message, cause }))
  )

// ---------------------------------------------------------------------------------------------------------------
// Checking a request

export interface Authenticator {
  /** Whether an `Authorization` header value carries valid credentials. */
  readonly check: (authorization: string | undefined) => Effect.Effect<boolean>
}

const CACHE_TTL_MS = 10 * 60 * 1000
const CACHE_SIZE = 256

type Presented =
  | { readonly _tag: "Bearer"; readonly id: string; readonly secret: string }
  | { readonly _tag: "Basic"; readonly username: string; readonly password: string }

/** The credentials in an `Authorization` header (RFC 6750 bearer, RFC 7617 basic: the password may hold ':'). */
export const parseAuthorization = (header: string | undefined): Presented | undefined => {
  if (header === undefined) return undefined
  const m = /^\s*(\S+)\s+(\S+)\s*$/.exec(header)
  if (m === null) return undefined
  const scheme = m[1]!.toLowerCase()
  const value = m[2]!
  if (scheme === "bearer") {
    const dot = value.indexOf(".")
    if (dot < 0) return undefined
    return { _tag: "Bearer", id: value.slice(0, dot), secret: value.slice(dot + 1) }
  }
  if (scheme === "basic") {
    if (!/^[A-Za-z0-9+/]+=*$/.test(value)) return undefined
    const decoded = Buffer.from(value, "base64").toString("utf8")
    const colon = decoded.indexOf(":")
    if (colon < 0) return undefined
    return { _tag: "Basic", username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
  }
  return undefined
}

export const makeAuthenticator = (file: AuthFile): Effect.Effect<Authenticator> =>
  Effect.gen(function*() {
    const dummy = yield* hashPassword(Crypto.randomBytes(16).toString("hex"))
    const users = new Map(file.users.map((u) => [u.username, u.password]))
    const tokens = new Map(file.tokens.map((t) => [t.id, t.hash]))
    const permits = yield* Effect.makeSemaphore(2)
    const passed = new Map<string, number>() // sha256(header) -> expiry (ms)

    const verify = (presented: Presented): Effect.Effect<boolean> => {
      const [secret, hash] = presented._tag === "Bearer"
        ? [presented.secret, tokens.get(presented.id)]
        : [presented.password, users.get(presented.username)]
      return permits.withPermits(1)(
        Effect.map(verifyPassword(secret, hash ?? dummy), (ok) => ok && hash !== undefined)
      )
    }

    const check = (authorization: string | undefined): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        const presented = parseAuthorization(authorization)
        if (presented === undefined) return false
        const digest = Crypto.createHash("sha256").update(authorization!).digest("hex")
        const now = yield* Clock.currentTimeMillis
        const expiry = passed.get(digest)
        if (expiry !== undefined && expiry > now) return true
        const ok = yield* verify(presented)
        if (ok) {
          passed.delete(digest)
          passed.set(digest, now + CACHE_TTL_MS)
          if (passed.size > CACHE_SIZE) passed.delete(passed.keys().next().value!)
        }
        return ok
      })

    return { check }
  })
