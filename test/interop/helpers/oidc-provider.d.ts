/**
 * The part of oidc-provider 9 (a JavaScript package without declarations) the interop suite uses:
 * the Provider, its Grant model and its interaction helpers. Written from the package's own
 * lib/provider.js and lib/models/grant.js.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  export interface InteractionDetails {
    readonly uid: string
    readonly params: Readonly<Record<string, unknown>>
    readonly grantId?: string
  }

  export class Grant {
    constructor(fields: { accountId: string; clientId: string })
    addOIDCScope(scope: string): void
    addResourceScope(resource: string, scope: string): void
    save(): Promise<string>
  }

  export class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>)
    readonly issuer: string
    readonly Grant: typeof Grant
    callback(): (request: IncomingMessage, response: ServerResponse) => void
    interactionDetails(
      request: IncomingMessage,
      response: ServerResponse,
    ): Promise<InteractionDetails>
    interactionFinished(
      request: IncomingMessage,
      response: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>
  }

  export default Provider
}
