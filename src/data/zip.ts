import { unzipSync } from 'fflate';
import { DataError } from '../_utils/errors.js';

/** Most entries a zip archive may list (Omniglot's two archives list about 35,000 together). */
export const MAX_ZIP_ENTRIES = 1 << 20;
/** Most bytes one entry of a zip archive may inflate to (16 MiB). */
export const MAX_ZIP_ENTRY_BYTES = 16 << 20;
/** Most bytes the entries read from one zip archive may inflate to in all (1 GiB). */
export const MAX_ZIP_TOTAL_BYTES = 1 << 30;

/**
 * The entries of a zip archive's bytes that `wanted` accepts by name, inflated. The sizes the
 * archive declares are checked against {@link MAX_ZIP_ENTRIES}, {@link MAX_ZIP_ENTRY_BYTES} and
 * {@link MAX_ZIP_TOTAL_BYTES} before anything is inflated (an entry never inflates past its declared
 * size); a damaged archive or one beyond those limits is a one-line `DataError` naming `file`.
 */
export function readZipEntries(bytes: Uint8Array, file: string, wanted: (name: string) => boolean): Record<string, Uint8Array> {
  let entries = 0;
  let total = 0;
  const refuse = (why: string) => new DataError(`the zip archive '${file}' ${why}: it is damaged or not the dataset's; delete it and download it again`);
  try {
    return unzipSync(bytes, {
      filter: (f) => {
        if (++entries > MAX_ZIP_ENTRIES) throw refuse(`lists more than ${MAX_ZIP_ENTRIES} entries`);
        if (!wanted(f.name)) return false;
        if (f.originalSize > MAX_ZIP_ENTRY_BYTES) throw refuse(`has an entry of ${f.originalSize} bytes, more than the ${MAX_ZIP_ENTRY_BYTES >> 20} MiB one may hold`);
        total += f.originalSize;
        if (total > MAX_ZIP_TOTAL_BYTES) throw refuse(`holds more than ${MAX_ZIP_TOTAL_BYTES >> 20} MiB`);
        return true;
      },
    });
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`cannot read the zip archive '${file}' (${e instanceof Error ? e.message : String(e)}): it is damaged or incomplete; delete it and download it again`, { cause: e });
  }
}
