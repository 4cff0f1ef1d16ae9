/** libvirt XML builders and parsers (self-contained: no imports from the rest of virtform). */
export * from './types.js';
export { buildDomainXml, parseDomainXml, GUEST_AGENT_CHANNEL } from './domain.js';
export { buildNetworkXml, buildDhcpHostXml, parseNetworkXml } from './network.js';
export { buildPoolXml, parsePoolXml } from './pool.js';
export { buildVolumeXml, parseVolumeXml } from './volume.js';
export { buildSnapshotXml, parseSnapshotXml } from './snapshot.js';
export { capabilitiesHostUuid, parseCapabilities, parseDomainCapabilities, chooseDomainType, type DomainTypeChoice, type HostCapabilities, type GuestCapability } from './capabilities.js';
export { OWNER_NS, OWNER_PREFIX } from './marker.js';
export { escapeAttr, escapeText, decodeEntities } from './xml-util.js';
export {
  EXTRA_DEVICE_ELEMENTS, MODELLED_DEVICE_ELEMENTS, HOST_DEVICE_ELEMENTS, parseFragment, canonicalFragment, fragOf, fragmentMatches,
  extraDevicesMatch, extraDevicesOf, hostReachOf, implicitDevice, type Frag, type FragmentParse, type HostReach,
} from './extra-devices.js';
