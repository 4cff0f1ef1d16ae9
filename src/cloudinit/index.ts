/** NoCloud seeds for cloud-init: the ISO 9660 + Joliet writer and the seed builder. */
export { buildIso9660, IsoError, SECTOR, type IsoFile, type IsoOptions } from './iso9660.js';
export { buildNoCloudSeed, seedFiles, SeedError, SEED_LABEL, type Seed, type SeedFile, type SeedInput } from './seed.js';
