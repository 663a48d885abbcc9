/**
 * Reading an identity provider's answer (the discovery document, the key set) without trusting its
 * size: a hostile or broken issuer must not make keyhole buffer megabytes. Real documents and key
 * sets are a few kilobytes (a key set with certificate chains, some tens).
 */

/** The most bytes keyhole reads of a discovery document or a key set (decompressed). */
export const MAX_METADATA_BYTES = 256 * 1024

/** The answer was larger than the limit: it is not read further. */
export class BodyTooLarge extends Error {
  override readonly name = 'BodyTooLarge'
  constructor(limit: number) {
    super(`the answer is larger than ${limit / 1024} KiB`)
  }
}

/**
 * The body of `response` as text, read up to `limit` bytes: a larger `content-length` is refused
 * before reading, a body that grows past the limit is cancelled at that point.
 * @throws BodyTooLarge; the stream's error when reading fails (a timeout's abort)
 */
export async function readBounded(
  response: Response,
  limit: number = MAX_METADATA_BYTES,
): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? 0)
  if (declared > limit) {
    await response.body?.cancel()
    throw new BodyTooLarge(limit)
  }
  const chunks: Uint8Array[] = []
  let size = 0
  if (response.body !== null) {
    const reader = response.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > limit) {
        await reader.cancel()
        throw new BodyTooLarge(limit)
      }
      chunks.push(value)
    }
  }
  return new TextDecoder().decode(Buffer.concat(chunks))
}
