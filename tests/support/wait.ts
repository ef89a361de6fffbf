/** Polls an eventually-consistent read (visibility, an async log write) until it yields. */
export async function waitFor<T>(probe: () => Promise<T | undefined | null>, timeoutMs = 10_000): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    const v = await probe();
    if (v !== undefined && v !== null) return v;
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, delay));
  }
}
