/**
 * A state file only this user may read (mode 0600), replaced atomically: written to a temporary
 * file beside it, then renamed over it, so a reader (or a crash) never sees half of it.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writePrivateFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}
