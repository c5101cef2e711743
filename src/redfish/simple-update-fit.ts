/**
 * Whether `#UpdateService.SimpleUpdate` can take an image URL, by the action's own allowable
 * values: `TransferProtocol@Redfish.AllowableValues` and `Targets@Redfish.AllowableValues` on the
 * action, else the Parameters of its `@Redfish.ActionInfo` resource.
 *
 * Why: Lenovo XCC and XCC2 allow only SFTP and TFTP and, as Targets, only
 * `.../FirmwareInventory/BMC-Backup` (pubs.lenovo.com xcc-restapi / xcc2-restapi
 * prop_firmware_update_service_get; lenovo/python-redfish-lenovo update_firmware.py offers SFTP,
 * TFTP or HTTPPUSH to `/mfwupdate`), and OpenBMC bmcweb takes TFTP only (update_service.hpp).
 * They answer an http(s) ImageURI, or a System or Manager in Targets, with 400; such a BMC is
 * updated through its MultipartHttpPushUri instead. No allowable list: SimpleUpdate as before.
 */
import { isBmcError } from '../errors.js';
import { withoutTrailingSlashes } from './json.js';
import { parseActionInfoAllowable, type UpdateServiceInfo } from './parse.js';
import type { ReadOptions, RedfishGetter } from './resources.js';

/** What the SimpleUpdate action accepts; undefined: the BMC gives no list. */
export interface SimpleUpdateAllowed {
  transferProtocols?: string[];
  targets?: string[];
}

/** SimpleUpdate with these Targets (none: leave them out), or refused because the URL's protocol is not accepted. */
export type SimpleUpdateFit = { usable: true; targets?: string[] } | { usable: false; protocol: string; accepted: string[] };

/** The ActionInfo resource, or undefined when the BMC answers its path with an HTTP error (a BMC that names one it does not serve). */
async function readActionInfo(client: RedfishGetter, path: string, options: ReadOptions): Promise<unknown> {
  try {
    return await client.get(path, options);
  } catch (err) {
    if (isBmcError(err, 'HTTP')) return undefined;
    throw err;
  }
}

/** The allowable values of SimpleUpdate's TransferProtocol and Targets: inline on the action first, else from its ActionInfo. */
export async function readSimpleUpdateAllowed(client: RedfishGetter, service: UpdateServiceInfo, options: ReadOptions = {}): Promise<SimpleUpdateAllowed> {
  let transferProtocols = service.simpleUpdateProtocols;
  let targets = service.simpleUpdateTargets;
  const info = service.simpleUpdateActionInfo;
  if (info !== undefined && (transferProtocols === undefined || targets === undefined)) {
    // one read for both parameters
    const actionInfo = await readActionInfo(client, info, options);
    transferProtocols ??= parseActionInfoAllowable(actionInfo, 'TransferProtocol');
    targets ??= parseActionInfoAllowable(actionInfo, 'Targets');
  }
  return { ...(transferProtocols ? { transferProtocols } : {}), ...(targets ? { targets } : {}) };
}

/** The Redfish TransferProtocol of a URL: its scheme in upper case (http: → HTTP). */
export function transferProtocolOf(imageUrl: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(imageUrl)?.[1];
  return scheme === undefined ? '' : scheme.toUpperCase();
}

const sameTarget = (a: string, b: string): boolean => withoutTrailingSlashes(a) === withoutTrailingSlashes(b);

/**
 * Whether SimpleUpdate takes `imageUrl`, and which of `targets` to send: all of them when every
 * one is allowed (or no list is given), else none (XCC: "Targets is not needed" except for
 * BMC-Backup), so the BMC picks the component from the image.
 */
export function simpleUpdateFit(allowed: SimpleUpdateAllowed, imageUrl: string, targets: string[] | undefined): SimpleUpdateFit {
  const protocol = transferProtocolOf(imageUrl);
  const protocols = allowed.transferProtocols;
  if (protocols !== undefined && !protocols.some((p) => p.toUpperCase() === protocol)) return { usable: false, protocol, accepted: protocols };
  if (targets === undefined || targets.length === 0) return { usable: true };
  const list = allowed.targets;
  const allAllowed = list === undefined || targets.every((t) => list.some((a) => sameTarget(a, t)));
  return allAllowed ? { usable: true, targets } : { usable: true };
}
