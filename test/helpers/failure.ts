/** The error a promise that should fail fails with. */
import { expect } from 'vitest';
import { BmcError } from '../../src/errors.js';

/** The BmcError `p` rejects with; the test fails where `p` resolves, or rejects with anything else. */
export async function failure(p: Promise<unknown>): Promise<BmcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BmcError);
  return err as BmcError;
}
