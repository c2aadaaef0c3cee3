/**
 * The `effect-torrent/api` entry: the daemon's typed HTTP API (an `HttpApi` for `HttpApiClient` or your own
 * server), its error type, the server over a `Session`, and the typed remote client the CLI's `add`/`list`/… use.
 */
export * as Api from "./api/Api.ts"
export * as ApiError from "./api/ApiError.ts"
export * as RemoteClient from "./api/RemoteClient.ts"
export * as Server from "./api/Server.ts"
