import * as Bencode from "../src/bencode/Bencode.ts"
import { readFileSync } from "node:fs"
const t = (s: string, o?: Bencode.DecodeOptions) => console.log(JSON.stringify(s), Bencode.decode(new TextEncoder().encode(s), o))
t("i42e"); t("i-0e"); t("i03e"); t("4:spam"); t("5:spam"); t("d1:bi1e1:ai2ee"); t("d1:bi1e1:ai2ee", { mode: "lenient" }); t("i9007199254740993e"); t("i99999999999999999999e"); t("l".repeat(101) + "e".repeat(101))
const buf = readFileSync("../shared/fixtures/torrents/anacrolix-torrent/23516C72685E8DB0C8F15553382A927F185C4F01.torrent")
const r = Bencode.decode(buf, { mode: "lenient" })
if (r._tag === "Right" && Bencode.isDict(r.right)) {
  const { createHash } = await import("node:crypto")
  console.log(createHash("sha1").update(Bencode.rawOf(buf, r.right.get("info")!)!).digest("hex"))
}
