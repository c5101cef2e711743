/** A clock the test moves by hand (for code that takes a `now()`), starting at an arbitrary 1,000,000 ms. */
export function manualClock(): { now: () => number; advance: (ms: number) => number } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}
