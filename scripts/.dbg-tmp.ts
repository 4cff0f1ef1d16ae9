import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibvirtClient } from '../src/libvirt/index.js';
const c = await LibvirtClient.connect('qemu:///system');
const t = (c as any).transport;
const orig = t.onPacket.bind(t);
t.onPacket = (p: Buffer) => { const h = { type: p.readInt32BE(16), serial: p.readUInt32BE(20), status: p.readInt32BE(24), len: p.length }; if (h.type !== 1 || h.status !== 0) console.log('rx', h); orig(p); };
const dir = mkdtempSync(join(tmpdir(), 'vftest-proto-dbg'));
const POOL = 'vftest-proto-dbg';
let pool;
try {
  pool = await c.storagePoolDefineXml(`<pool type='dir'><name>${POOL}</name><target><path>${dir}</path></target></pool>`);
  await c.storagePoolCreate(pool);
  const vol = await c.storageVolCreateXml(pool, `<volume><name>a.raw</name><capacity unit='bytes'>1048576</capacity><target><format type='raw'/></target></volume>`);
  const up = await c.storageVolUpload(vol, 0, 0, 0);
  up.end(Buffer.alloc(1000, 7));
  await new Promise((res, rej) => { up.on('finish', res); up.on('error', rej); });
  console.log('upload done');
  const down = await c.storageVolDownload(vol, 0, 2000, 0);
  let n = 0;
  down.on('data', (b: Buffer) => { n += b.length; });
  await Promise.race([new Promise((res, rej) => { down.on('end', res); down.on('error', rej); }), new Promise((r) => setTimeout(() => r('TIMEOUT'), 5000))]).then((x) => console.log('download result', x, n));
} catch (e) { console.log('ERR', e); }
finally {
  const p = await c.storagePoolLookupByName(POOL).catch(() => undefined);
  if (p) { for (const v of await c.storagePoolListAllVolumes(p).catch(() => [])) await c.storageVolDelete(v).catch(() => 0); await c.storagePoolDestroy(p).catch(() => 0); await c.storagePoolUndefine(p).catch(() => 0); }
  rmSync(dir, { recursive: true, force: true });
  await c.close();
}
