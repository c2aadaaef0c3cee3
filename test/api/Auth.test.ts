/**
 * Credentials at rest and at the door: scrypt hashes (salted, PHC strings, constant-time comparison), the auth
 * file (format, validation, mode 0600), tokens shown once, the Authorization header's two schemes.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Auth from "../../src/api/Auth.ts"

const fast: Auth.ScryptParams = { logN: 4, r: 8, p: 1 }

describe("hashPassword / verifyPassword", () => {
  it.effect("a PHC scrypt string with a fresh salt; the password verifies, others do not", () =>
    Effect.gen(function*() {
      const a = yield* Auth.hashPassword("s3cret:with colon ✓")
      const b = yield* Auth.hashPassword("s3cret:with colon ✓")
      expect(a).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
      expect(a).not.toBe(b)
      expect(a).not.toContain("s3cret")
      expect(yield* Auth.verifyPassword("s3cret:with colon ✓", a)).toBe(true)
      expect(yield* Auth.verifyPassword("s3cret:with colon ✓", b)).toBe(true)
      expect(yield* Auth.verifyPassword("s3cret:with colon", a)).toBe(false)
      expect(yield* Auth.verifyPassword("", a)).toBe(false)
    }))

  it.effect("the parameters travel with the hash; Unicode is normalized (NFC)", () =>
    Effect.gen(function*() {
      const h = yield* Auth.hashPassword("caf\u00e9", fast)
      expect(h.startsWith("$scrypt$ln=4,r=8,p=1$")).toBe(true)
      expect(yield* Auth.verifyPassword("cafe\u0301", h)).toBe(true)
    }))

  it.effect("malformed or out-of-bounds hashes never verify (and never throw)", () =>
    Effect.gen(function*() {
      const good = yield* Auth.hashPassword("x", fast)
      for (const bad of ["", "plain", good.replace("ln=4", "ln=40"), good.replace("r=8", "r=0"), good.replace(/\$[^$]+$/, "$AAAA"), "$scrypt$ln=4,r=8,p=1$$"]) {
        expect(yield* Auth.verifyPassword("x", bad)).toBe(false)
      }
    }))
})

describe("the auth file", () => {
  it.effect("users and tokens: added, replaced, removed; a token is id.secret and only its hash is kept", () =>
    Effect.gen(function*() {
      let file = yield* Auth.addUser(Auth.empty, "alice", "one")
      file = yield* Auth.addUser(file, "alice", "two")
      expect(file.users.map((u) => u.username)).toEqual(["alice"])
      expect(yield* Auth.verifyPassword("two", file.users[0]!.password)).toBe(true)
      const made = yield* Auth.addToken(file, "laptop")
      expect(made.token).toMatch(/^[0-9a-f]{8}\.[A-Za-z0-9_-]{43}$/)
      const [id, secret] = made.token.split(".")
      expect(made.file.tokens).toEqual([{ id, name: "laptop", hash: expect.stringMatching(/^\$scrypt\$/) }])
      expect(Auth.render(made.file)).not.toContain(secret)
      expect(yield* Auth.verifyPassword(secret!, made.file.tokens[0]!.hash)).toBe(true)
      expect(Auth.removeToken(made.file, "laptop").tokens).toEqual([])
      expect(Auth.removeToken(made.file, id!).tokens).toEqual([])
      expect(Auth.isEmpty(Auth.removeUser(Auth.removeToken(made.file, id!), "alice"))).toBe(true)
    }))

  it.effect("render and parse round-trip; anything else is refused with a reason", () =>
    Effect.gen(function*() {
      const file = (yield* Auth.addToken(yield* Auth.addUser(Auth.empty, "bob", "pw"), "t")).file
      expect(yield* Auth.parse(Auth.render(file))).toEqual(file)
      const hash = file.users[0]!.password
      for (const text of [
        "not json",
        "{}",
        JSON.stringify({ version: 2, users: [], tokens: [] }),
        JSON.stringify({ version: 1, users: [{ username: "a:b", password: hash }], tokens: [] }),
        JSON.stringify({ version: 1, users: [{ username: "a", password: "plaintext" }], tokens: [] }),
        JSON.stringify({ version: 1, users: [], tokens: [], extra: true }),
        JSON.stringify({ version: 1, users: [{ username: "a", password: hash.replace(/ln=\d+/, "ln=30") }], tokens: [] })
      ]) {
        const e = yield* Effect.flip(Auth.parse(text, "auth.json"))
        expect(e.reason).toBe("invalid")
        expect(e.message.startsWith("auth.json")).toBe(true)
      }
    }))

  it.scoped("written atomically with mode 0600, read back", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const path = Path.join(dir, "auth.json")
      const file = yield* Auth.addUser(Auth.empty, "carol", "pw")
      yield* Auth.writeFile(path, file)
      expect(Fs.statSync(path).mode & 0o777).toBe(0o600)
      expect(yield* Auth.readFile(path)).toEqual(file)
      const missing = yield* Effect.flip(Auth.readFile(Path.join(dir, "none.json")))
      expect(missing.reason).toBe("unreadable")
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})

describe("the Authorization header", () => {
  it("parses bearer tokens and Basic (RFC 7617: the password may hold ':'), case-insensitive schemes", () => {
    const basic = (s: string) => `Basic ${Buffer.from(s).toString("base64")}`
    expect(Auth.parseAuthorization("Bearer abcd1234.s3cr.et")).toEqual({ _tag: "Bearer", id: "abcd1234", secret: "s3cr.et" })
    expect(Auth.parseAuthorization("bearer  x.y ")).toEqual({ _tag: "Bearer", id: "x", secret: "y" })
    expect(Auth.parseAuthorization(basic("alice:a:b:c"))).toEqual({ _tag: "Basic", username: "alice", password: "a:b:c" })
    expect(Auth.parseAuthorization(basic("ünï:cødé"))).toEqual({ _tag: "Basic", username: "ünï", password: "cødé" })
    for (const h of [undefined, "", "Bearer", "Bearer nodot", "Basic", basic("nocolon"), "Basic ***", "Digest a=b", "Bearer a.b extra"]) {
      expect(Auth.parseAuthorization(h)).toBeUndefined()
    }
  })

  it.effect("the authenticator: valid credentials pass (then from its memory), anything else fails", () =>
    Effect.gen(function*() {
      const made = yield* Auth.addToken(yield* Auth.addUser(Auth.empty, "alice", "pw:1"), "cli")
      const authenticator = yield* Auth.makeAuthenticator(made.file)
      const basic = (s: string) => `Basic ${Buffer.from(s).toString("base64")}`
      expect(yield* authenticator.check(`Bearer ${made.token}`)).toBe(true)
      expect(yield* authenticator.check(`Bearer ${made.token}`)).toBe(true)
      expect(yield* authenticator.check(basic("alice:pw:1"))).toBe(true)
      for (const h of [undefined, `Bearer ${made.token}0`, "Bearer 00000000.x", basic("alice:pw"), basic("mallory:pw:1"), basic(":pw:1")]) {
        expect(yield* authenticator.check(h)).toBe(false)
      }
    }))
})
