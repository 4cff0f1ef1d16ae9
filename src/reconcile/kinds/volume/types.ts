/** The Volume kind's types: its config, desired resource and step operations (shared by `index.ts` and `data.ts`). */
import type { VolumeFormat } from '../../../model/definitions.js';
import type { ImportRules } from '../../../manifest/index.js';
import type { DesiredBase } from '../../core/resource.js';
import type { HostId } from '../../../model/kinds.js';

export interface VolumeConfig {
  pool: string;
  /** libvirt volume name (file name inside the pool directory). */
  volName: string;
  path: string;
  format: VolumeFormat;
  /**
   * Declared virtual size. Absent only for an imported image without `spec.capacity`: the image's
   * virtual size, known once it is imported (recorded as the fact `imageVirtualSize`).
   */
  capacityBytes?: number;
  backingVolume?: string;
  backingPath?: string;
  /**
   * The imported image, by content: the sha256 of a local `source` file or of a URL's bytes. Its
   * path or URL is not part of the config (the same image elsewhere is no change).
   */
  sourceSha256?: string;
  /** Recorded by virtform before sources were identified by content; read for migration only. */
  sourcePath?: string;
  /**
   * `Retain`: when the manifest is removed the file is kept and only the record is dropped. Absent
   * means `Delete` (kept out of the config, so the spec hash of such volumes is what it always was).
   * Recorded with the config, so a removed manifest still knows it.
   */
  deletionPolicy?: 'Retain';
}
/** Where an imported image comes from (outside the config: a new path or URL of the same image is no change). */
export type VolumeImage =
  | { kind: 'url'; url: string; sha256: string; rules?: ImportRules }
  | { kind: 'file'; path: string; sha256: string; size: number; format: VolumeFormat; virtualSize: number };
/**
 * `backingFormat`: the backing volume's format (a qcow2 clone of a raw volume has raw backing
 * data). Outside the config: the backing path's extension already tells it (`.img` raw, `.qcow2`),
 * so it changes exactly when `backingPath` does, and recorded configs keep their spec hash.
 */
export type DesiredVolume = DesiredBase<'Volume', VolumeConfig> & {
  image?: VolumeImage; backingFormat?: VolumeFormat;
  /** The backing volume's pool and file name (outside the config, like backingFormat): its size is checked before the clone is made. */
  backingVolName?: { pool: string; volName: string };
};

export type VolumeOp =
  /** `recreate`: an existing file is ours with unknown contents; `ifMissing`: keep the file when it exists. */
  | { op: 'volume.create'; recreate?: boolean; ifMissing?: boolean }
  | { op: 'volume.resize'; capacityBytes: number }
  /** `movedTo`: a cold move's source, deleted after its copy on that host verified (checked there first). */
  | { op: 'volume.delete'; pool: string; volName: string; movedTo?: HostId }
  /** A cold move's copy: the source volume (`pool`/`volName` on host `from`) streamed into this host's, hashed on the way. */
  | { op: 'volume.moveCopy'; from: HostId; pool: string; volName: string }
  /** A cold move's check: the copy read back through a download stream, its sha256 compared with the source's. */
  | { op: 'volume.moveVerify'; from: HostId };

/** `details.facts.move` of a volume copied here by a cold move. */
export interface MoveFact {
  from: HostId;
  /** sha256 of the logical content as it left the source (holes as zeros). */
  sha256: string;
  /** Logical bytes (data and holes); `data`: bytes sent as data. */
  bytes: number;
  data: number;
  verified: boolean;
}
