/**
 * Redfish quirks of real BMCs the simulator can show (see quirks.ts). Each entry names a
 * behaviour seen on real firmware and the real client the tests prove to survive it on the
 * simulator (test/integration/quirk-matrix-redfish.test.ts runs curl against each). The
 * simulator's Redfish side implements them in src/sim/redfish/quirks.ts.
 */
import type { SimQuirkInfo } from './quirk-info.js';
import type { SimVariantName } from './machine.js';

export const REDFISH_QUIRKS = {
  'redfish-no-sessions': {
    protocol: 'redfish',
    description: 'no SessionService: the service root names none, a session POST is answered 400 Bad Request and other SessionService paths 404; only HTTP Basic authenticates',
    seenOn: 'iDRAC 7 and 8 (2.65, 2.82): SessionService answers 400 (dell/iDRAC-Redfish-Scripting#219); OpenStack sushy and bmclib fall back to Basic',
    survivedBy: 'curl',
  },
  'redfish-sessions-exhausted': {
    protocol: 'redfish',
    description: 'every session POST is answered as a BMC whose session slots are all taken answers it, whatever the sessions open; HTTP Basic still authenticates. The answer is the machine\'s `sessionsExhaustedAnswer` (SESSIONS_EXHAUSTED_ANSWERS): iDRAC\'s 503 {"error":{"code":"Base.1.7.GeneralError","@Message.ExtendedInfo":[{"MessageId":"IDRAC.2.4.RAC0218","Message":"The maximum number of user sessions is reached."}]}} by default, or Lenovo XCC\'s 503 SessionLimitExceeded (that choice by tests only; the control API sets the quirk with iDRAC\'s answer). A state, not a model: set per machine (tests, the control API), in no variant',
    seenOn: 'iDRAC 9 whose session slots operators\' scripts, exporters or a GUI left taken (idle sessions last 30 minutes): stmcginnis/gofish#75, bb-Ricardo/check_redfish#89, Yogibaer75/Check_MK-Things#41; Lenovo XCC3 documents 503 SessionLimitExceeded for its session POST (pubs.lenovo.com/xcc3-restapi/create_a_session_post), the DMTF Base registry\'s message. redhat-eets/glpi-helper-scripts#132 and theforeman/smart-proxy#895 fall back to Basic',
    survivedBy: 'curl',
  },
  'redfish-basic-refused': {
    protocol: 'redfish',
    description: 'HTTP Basic credentials are refused 401 Base.1.18.AccessDenied "The authentication credentials included with this request are missing or invalid.", right or wrong, without a WWW-Authenticate header; sessions work',
    seenOn: 'iDRAC10 1.30.10.50 and iDRAC9 7.30.10.50 set HTTP Basic Authentication to "Unadvertised" by default (dell/iDRAC-Redfish-Scripting#371, Dell KB 000437501); scripts relying on Basic break until it is enabled again',
    survivedBy: 'curl',
  },
  'redfish-session-200': {
    protocol: 'redfish',
    description: 'a session POST is answered 200 instead of 201, the token header is spelled x-auth-token, and Location is an absolute URL',
    seenOn: 'OpenBMC bmcweb before 2019 answered 200 (openbmc/openbmc#3353; DMTF Redfish-Profile-Simulator#22 had the same); header case differs between AMI and Insyde builds',
    survivedBy: 'curl',
  },
  'redfish-no-etag': {
    protocol: 'redfish',
    description: 'resources carry no ETag (neither header nor @odata.etag); a PATCH is accepted with any If-Match, and without one except on a vendor that requires If-Match (the Lenovo-like variant), which refuses it 412',
    seenOn: 'Supermicro X10/X11 before Redfish 1.6, older MegaRAC builds; go-hal sends If-Match: * for them. Lenovo XCC answered a PATCH without If-Match 412 "The ETag supplied did not match" (fwupd/fwupd#6347)',
    survivedBy: 'curl',
  },
  'redfish-weak-etag': {
    protocol: 'redfish',
    description: 'ETags are weak (W/"…"); a PATCH with If-Match naming one is refused 412, without If-Match (or with *) it is accepted',
    seenOn: 'Gigabyte (AMI MegaRAC) BIOS settings refusing their own weak ETag (ansible-collections/community.general#6434)',
    survivedBy: 'curl',
  },
  'redfish-if-match-refused': {
    protocol: 'redfish',
    description: 'resources carry no ETag and a PATCH with any If-Match (even *) is refused 412; only an unconditional PATCH is accepted',
    seenOn: 'newer Lenovo XCC refusing If-Match on PATCH (ansible-collections/community.general#11261, #11270; #3268 added an option to send none)',
    survivedBy: 'curl',
  },
  'redfish-etag-412-once': {
    protocol: 'redfish',
    description: 'the first conditional PATCH is refused 412 and the ETag moves (as when a sensor reading changed in between); the next, with the ETag read again, is accepted',
    seenOn: 'Lenovo XCC and iDRAC, whose ETags move with readings (ansible-collections/community.general#3268, #11261); sushy and go-hal read again and retry',
    survivedBy: 'curl',
  },
  'redfish-action-target-moved': {
    protocol: 'redfish',
    description: 'the System reset action lives at an OEM path given only as the Actions target, its ResetType values only in @Redfish.ActionInfo; the usual path answers 404',
    seenOn: 'DSP0266 forbids building action URIs; OEM targets on HPE iLO and Dell, ActionInfo-only values on Lenovo XCC and OpenBMC',
    survivedBy: 'curl',
  },
  'redfish-reset-state-conflict': {
    protocol: 'redfish',
    description: 'a reset that changes nothing is refused: On or ForceOn while on, ForceOff or GracefulShutdown while off, 409 with a Dell ExtendedInfo (PSU501/PSU502); PowerCycle, ForceRestart or GracefulRestart while off, 400 InvalidOperationForSystemState',
    seenOn: 'iDRAC 409 IDRAC.1.6.PSU501 "Server is already powered ON." (dell/dellemc-openmanage-ansible-modules#132); iLO 400 InvalidOperationForSystemState; bmclib and ironic read PowerState first',
    survivedBy: 'curl',
  },
  'redfish-boot-mode-readonly': {
    protocol: 'redfish',
    description: 'the System shows Boot.BootSourceOverrideMode, but a PATCH that contains it is refused whole with 400 PropertyNotWritable naming it',
    seenOn: 'HPE iLO 5 (ansible-collections/community.general#3509, fixed by #3581; ironcore-dev/metal-operator#608); bmclib retries with Target and Enabled only for the HP DL160 Gen10',
    survivedBy: 'curl',
  },
  'redfish-boot-partly-applied': {
    protocol: 'redfish',
    description: 'a Boot PATCH asking BootSourceOverrideEnabled Continuous is answered 200 with the rest applied, the override left Once, and BootSourceOverrideEnabled@Message.ExtendedInfo PropertyValueNotInList naming #/Boot/BootSourceOverrideEnabled',
    seenOn: 'DSP0266 lets a service apply a PATCH in part and list what it left in a 200\'s message annotations (Redfish Protocol Validator REQ_PATCH_MIXED_PROPS); bmcweb marks such a property with <Property>@Message.ExtendedInfo (ibm-openbmc/bmcweb#70); Lenovo SMM3 leaves read-only or unimplemented properties unchanged',
    survivedBy: 'curl',
  },
  'redfish-patch-ignored': {
    protocol: 'redfish',
    description: 'a PATCH of the System, its settings object or the Chassis is checked as usual (If-Match, properties, values) and answered 204 No Content with no message, and nothing of it is applied: a GET afterwards shows the values it had',
    seenOn: 'a Supermicro AS-1015CS-TNR-EU (AMI-based, Redfish 1.22.2) answered a Pxe/Once/UEFI override 200 and read back Disabled and Legacy (bmc-toolbox/bmclib#459, commit 503abbc re-reads the System after the PATCH); kubevirtbmc/kubevirtbmc#166 answers 204 to a mode it ignores; sushy, gofish and go-hal take any 2xx as done',
    survivedBy: 'curl',
  },
  'redfish-boot-mode-ignored': {
    protocol: 'redfish',
    description: 'a PATCH of the System or its settings object is answered 204 No Content with no message; a Boot change is applied but its BootSourceOverrideMode, which stays as it was',
    seenOn: 'Supermicro firmware that keeps its own boot mode whatever a PATCH names (bmc-toolbox/bmclib#459: Mode read back Legacy after a 200 to UEFI); kubevirtbmc/kubevirtbmc#166 (204, BootSourceOverrideMode left Legacy)',
    survivedBy: 'curl',
  },
  'redfish-boot-settings-object': {
    protocol: 'redfish',
    description: 'the System names a settings object (@Redfish.Settings SettingsObject {system}/SD) and refuses a PATCH with Boot properties with 400 Ami.1.0.OperationSupportedInFutureStateURI; the settings object takes Boot, with If-Match required (428 without)',
    seenOn: 'AMI MegaRAC "Redfish Server" builds (ASRock Rack, Gigabyte): "Support of this Operation for Boot Properties is moved to FutureState URI(/redfish/v1/Systems/Self/SD)" (DMTF/Redfish-Tacklebox#111, #144, its --workaround; siderolabs/omni-infra-provider-bare-metal#68 reads the SD ETag and PATCHes Boot there with If-Match)',
    survivedBy: 'curl',
  },
  'redfish-multi-system': {
    protocol: 'redfish',
    description: 'the Systems collection lists a sibling node first; only the Manager\'s Links.ManagerForServers names the machine this BMC controls',
    seenOn: 'multi-node and blade chassis, sushy-tools and OpenBMC multi-host (bmc-toolbox/bmclib#400, #401)',
    survivedBy: 'curl',
  },
  'redfish-legacy-power-only': {
    protocol: 'redfish',
    description: 'the Chassis has only the deprecated Power resource: no PowerSubsystem and no EnvironmentMetrics',
    seenOn: 'firmware from before Redfish 2020.4 (Supermicro X10/X11, iDRAC 8, XCC 1.x)',
    survivedBy: 'curl',
  },
  'redfish-503-retry-after': {
    protocol: 'redfish',
    description: 'for 2 s after the quirk shows (the BMC\'s web server restarting), every request is answered 503 with Retry-After: 1',
    seenOn: 'iDRAC 9 answers 503 ServiceTemporarilyUnavailable (SYS518, "Retry in 30 seconds") while its data sources start (ironcore-dev/metal-operator#170); curl --retry honours Retry-After',
    survivedBy: 'curl',
  },
  'redfish-connection-close': {
    protocol: 'redfish',
    description: 'every response carries Connection: close and the connection is closed after it',
    seenOn: 'lighttpd- and GoAhead-based BMC web servers (older Supermicro, MegaRAC) that do not keep connections alive',
    survivedBy: 'curl',
  },
  'redfish-slow': {
    protocol: 'redfish',
    description: 'every answer takes 1.5 s',
    seenOn: 'Supermicro X10/X11 and XCC take seconds per Redfish request under load (bmclib and go-hal raise their timeouts)',
    survivedBy: 'curl',
  },
  'redfish-bom': {
    protocol: 'redfish',
    description: 'JSON bodies start with a UTF-8 byte-order mark (EF BB BF)',
    seenOn: 'BMC web stacks built on .NET or Windows tooling; RFC 8259 §8.1 forbids it and lets parsers ignore it',
    survivedBy: 'curl',
  },
  'redfish-trailing-bytes': {
    protocol: 'redfish',
    description: 'JSON bodies are followed by a NUL byte and CR LF, counted in Content-Length',
    seenOn: 'embedded HTTP servers that send a C string buffer whole',
    survivedBy: 'curl',
  },
  'redfish-legacy-tls': {
    protocol: 'redfish',
    description: 'TLS 1.2 only, ECDHE-RSA with AES-CBC-SHA ciphers, SHA-1 handshake signatures only, an RSA-1024 certificate signed with SHA-1',
    seenOn: 'iDRAC 7/8, older MegaRAC and H3C HDM firmware (mrlhansen/idrac_exporter#205, ansible-collections/community.general#8533, DMTF/python-redfish-library#182)',
    survivedBy: 'curl',
  },
  'redfish-task-monitor-204': {
    protocol: 'redfish',
    description: 'a task monitor answers 204 with no body once the task has ended, whatever its outcome, then 404; the Task resource stays readable and holds the final state',
    seenOn: 'OpenBMC bmcweb (redfish-core/lib/task.hpp populateResp: 202 with the Task while running, 204 once when done, Exception included, then 404)',
    survivedBy: 'curl',
  },
  'redfish-task-completed-critical': {
    protocol: 'redfish',
    description: 'a failed update ends TaskState Completed with TaskStatus Critical instead of Exception',
    seenOn: 'Supermicro X12 (bmclib providers/supermicro x12 rejects TaskState Completed unless TaskStatus is OK); bmcweb sets TaskStatus Warning on a failed activation',
    survivedBy: 'curl',
  },
  'redfish-smc-upload-accepted': {
    protocol: 'redfish',
    description: 'a multipart push is answered 202 with {"Accepted":{"@Message.ExtendedInfo":[{"MessageId":"SMC.1.0.OemSimpleupdateAcceptedMessage","MessageArgs":["/redfish/v1/TaskService/Tasks/N"]}]}}, no Location and no Task body',
    seenOn: 'Supermicro X11/X12/H12 (bmclib internal/redfishwrapper/firmware.go FirmwareUpload, taskIDFromResponseBody; fwupd plugins/redfish/fu-redfish-smc-device.c)',
    survivedBy: 'curl',
  },
  'redfish-bmc-reboot-after-update': {
    protocol: 'redfish',
    description: 'a BMC image\'s task reads Running to its end; then the BMC takes the version its image name carries (none: unchanged), forgets its tasks and sessions and answers 503 with Retry-After: 1 for 2 s',
    seenOn: 'every BMC restarts into new firmware: bmcweb update_service.hpp ("the task may never \'complete\' unless it is an error"), bmclib PR #222 (ASRockRack "the BMC resets a few seconds after an update")',
    survivedBy: 'curl',
  },
  'redfish-login-refused-after-reboot': {
    protocol: 'redfish',
    description: 'after the BMC restarted (into a new image: redfish-bmc-reboot-after-update, redfish-update-no-task) and its 503 window ended, logins (session POST, Basic) are refused 401, its user service still starting: the first one after the restart, and every one for 3 s more',
    seenOn: 'OpenBMC: bmcweb answers before phosphor-user-manager is up and fails authorization until it is (ibm-openbmc/bmcweb#222, "bmcweb requires the user manager to be up and running ... while checking the user authorization"; openbmc/openbmc#2974 asks logins to wait for BMC_READY)',
    survivedBy: 'curl',
  },
  'redfish-update-no-task': {
    protocol: 'redfish',
    description: 'SimpleUpdate and pushes are answered 200 with {"error":{"code":"iLO.0.10.ExtendedInfo","@Message.ExtendedInfo":[{"MessageId":"Base.1.4.Success"}]}}, no Location and no task; the image is flashed in the background (as long as a task would take) and a BMC image then restarts the BMC into the version its name carries, as redfish-bmc-reboot-after-update does',
    seenOn: 'HPE iLO 5 (SimpleUpdate 200 with Base.Success in an "error" object, progress only in UpdateService Oem.Hpe.State: HewlettPackard/python-ilorest-library examples update_firmware_with_simple_update.py; bmclib has no iLO firmware provider for it)',
    survivedBy: 'curl',
  },
  'redfish-hpe-update-state': {
    protocol: 'redfish',
    description: 'SimpleUpdate and pushes are answered 202 with iLO\'s Base.Success in an "error" object, no Location and no task; the UpdateService\'s Oem.Hpe.State goes Idle, Verifying, Updating (with FlashProgressPercent), then Complete, or Error with Result.MessageId iLO.2.25.UpdateInvalidFile for an image that fails; a BMC image then restarts the BMC into its version (Idle again)',
    seenOn: 'HPE iLO 5/6: HPEDevCom/redfishdocs ilo6_other_resourcedefns170.md and ilo5_other_resourcedefns309.md (Oem.Hpe.State Idle, Uploading, Verifying, Writing, Updating, Complete, Error; FlashProgressPercent valid while Updating); openstack/proliantutils redfish/resources/update_service.py and ilorest FirmwareUpdateCommand.py poll it',
    survivedBy: 'curl',
  },
  'redfish-simpleupdate-sftp-tftp-only': {
    protocol: 'redfish',
    description: 'SimpleUpdate advertises TransferProtocol@Redfish.AllowableValues ["SFTP","TFTP"] and Targets@Redfish.AllowableValues [".../FirmwareInventory/BMC-Backup"] (inline and in its ActionInfo); an http(s) ImageURI is refused 400 ActionParameterNotSupported, a Targets value not listed 400 PropertyValueNotInList; the MultipartHttpPushUri takes the image',
    seenOn: 'Lenovo XCC/XCC2 (pubs.lenovo.com xcc-restapi and xcc2-restapi prop_firmware_update_service_get, MultipartHttpPushUri /mfwupdate; lenovo/python-redfish-lenovo update_firmware.py: SFTP, TFTP or HTTPPUSH); OpenBMC bmcweb takes TFTP only (update_service.hpp)',
    survivedBy: 'curl',
  },
  'redfish-no-multipart-push': {
    protocol: 'redfish',
    description: 'the UpdateService has no MultipartHttpPushUri (UpdateService before v1_6_0, 2019.3): only the deprecated HttpPushUri is named, and the push path answers 404',
    seenOn: 'a Kontron BMC\'s UpdateService v1_5_0 with HttpPushUri only (DMTF/Redfish-Tacklebox#99: "Service does not support SimpleUpdate"); MultipartHttpPushUri came with UpdateService v1_6_0, so firmware implementing an earlier version has none',
    survivedBy: 'curl',
  },
  'redfish-ami-oem-parameters': {
    protocol: 'redfish',
    description: 'a multipart push is refused 400 without a JSON part OemParameters {"ImageType":"BIOS"|"BMC"} beside UpdateParameters, and with an @Redfish.OperationApplyTime in UpdateParameters',
    seenOn: 'AMI MegaRAC (Gigabyte and other AMI-based BMCs): community.general#8825 ("AMI BMC needs the OemParameters to be a separate json file instead of a key/value in UpdateParameters", update_image_type BMC) and #8824 (AMI refuses @Redfish.OperationApplyTime)',
    survivedBy: 'curl',
  },
  'redfish-simpleupdate-targets-refused': {
    protocol: 'redfish',
    description: 'SimpleUpdate with a Targets parameter is refused 400 ActionParameterNotSupported; without it the image names its component',
    seenOn: 'Dell iDRAC: "Targets parameter for SimpleUpdate action is not supported by iDRAC" (dell/iDRAC-Redfish-Scripting#247, Dell\'s maintainer); Dell\'s SimpleUpdate examples post ImageURI (and TransferProtocol) only, as the Go metal-bmc does',
    survivedBy: 'curl',
  },
  'redfish-job-scheduled-until-reset': {
    protocol: 'redfish',
    description: 'a good BIOS image\'s task ends in TaskState Running with Oem.Dell.JobState Scheduled and message IDRAC.2.8.JCP001 "Task successfully scheduled." until the host is reset (a power-on or restart); then it is Completed and the BIOS is recorded',
    seenOn: 'Dell iDRAC8, and iDRAC9 without OperationApplyTime Immediate (dell/iDRAC-Redfish-Scripting#166); bmclib providers/dell/firmware.go maps JobState Scheduled (JCP001) to "power cycle needed"',
    survivedBy: 'curl',
  },
  'redfish-task-state-nonstandard': {
    protocol: 'redfish',
    description: 'a firmware task ends in a TaskState outside DSP0268: a good image\'s in UserIntervention at PercentComplete 100 (the firmware recorded at the host\'s next boot), a bad image\'s in lower-case "failed"',
    seenOn: 'Dell iDRAC9 UserIntervention: Dell\'s DeviceFirmwareSimpleUpdateREDFISH.py and DeviceFirmwareMultipartUploadREDFISH.py (dell/iDRAC-Redfish-Scripting) take it at 100 % as done, needing a server reboot or a virtual A/C cycle; bmclib\'s redfishwrapper task.go lowercases TaskState and maps "failed" and "scheduled"',
    survivedBy: 'curl',
  },
  'redfish-certificate-renewed-after-update': {
    protocol: 'redfish',
    description: 'a BMC that restarts into a new image (redfish-bmc-reboot-after-update, redfish-update-no-task) comes back with another self-signed TLS certificate; the connections of before the restart are gone',
    seenOn: 'BMC firmware that brings or generates its own certificate: Supermicro keeps the BMC certificate across an update only with Oem.Supermicro PreserveSsl (Supermicro Redfish reference guide; metal-bmc sends it, an update from the web UI or another tool may not), and a BMC reset to defaults makes a new self-signed one',
    survivedBy: 'curl',
  },
} as const satisfies Record<string, SimQuirkInfo>;

export type RedfishQuirkName = keyof typeof REDFISH_QUIRKS;

/**
 * redfish-sessions-exhausted: the answers to a session POST of real BMCs whose session slots are
 * all taken, one per BMC that documents or was seen giving one (src/redfish/session-limit.ts
 * recognises each). Only answers with a source: HPE iLO, Supermicro, AMI MegaRAC, Huawei iBMC and
 * Fujitsu iRMC have a session limit but no published answer to it, and upstream OpenBMC bmcweb
 * has no limit at all (its session store grows without bound).
 */
export const SESSIONS_EXHAUSTED_ANSWERS = {
  /** bb-Ricardo/check_redfish#89 logged the body, stmcginnis/gofish#75 the same with IDRAC.2.1 */
  idrac: { status: 503, messageId: 'IDRAC.2.4.RAC0218' },
  /**
   * pubs.lenovo.com/xcc3-restapi/create_a_session_post: 503 with SessionLimitExceeded; the body and
   * its registry version are not published, the simulator sends the DMTF form of its Base.1.8
   */
  xcc: { status: 503, messageId: 'Base.1.8.SessionLimitExceeded' },
} as const satisfies Record<string, { status: number; messageId: string }>;

export type SessionsExhaustedAnswer = keyof typeof SESSIONS_EXHAUSTED_ANSWERS;

/**
 * The Redfish quirks each vendor variant shows by default, as its real counterpart is known to
 * (citations in REDFISH_QUIRKS[name].seenOn). Only quirks metal-bmc handles with its defaults are
 * on by default; `redfish-legacy-tls` needs METAL_BMC_REDFISH_LEGACY_TLS and stays opt-in.
 */
export const REDFISH_VARIANT_QUIRKS: Partial<Record<SimVariantName, ReadonlyArray<RedfishQuirkName>>> = {
  supermicro: ['redfish-no-etag', 'redfish-smc-upload-accepted'],
  lenovo: ['redfish-etag-412-once'],
  gigabyte: ['redfish-weak-etag', 'redfish-ami-oem-parameters', 'redfish-boot-settings-object'],
  dell: ['redfish-503-retry-after', 'redfish-reset-state-conflict', 'redfish-job-scheduled-until-reset', 'redfish-simpleupdate-targets-refused'],
  'dell-old-bios': ['redfish-no-sessions'],
};
