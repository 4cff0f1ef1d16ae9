/**
 * A LibvirtStream nobody reads any more (a copy's download left behind when its upload failed)
 * that errors, e.g. its connection closed by the client: the error is kept, never an unhandled
 * 'error' event crashing the process.
 */
import { describe, expect, it } from 'vitest';
import { LibvirtStream, type StreamIo } from '../../../src/libvirt/stream.js';

describe('LibvirtStream errors', () => {
  it('an error with no reader is kept on the stream, not thrown as an unhandled event', async () => {
    const sent: string[] = [];
    const io = { name: 'storageVolDownload', proc: 1, download: true, transport: { sendStream: () => sent.push('stream'), endStream: () => sent.push('end') } } as unknown as StreamIo;
    const s = new LibvirtStream(io, { holes: 'objects' });
    s.attach(7);
    s.destroy(new Error('connection closed by the client'));
    await new Promise((r) => setImmediate(r));
    expect(s.lastError?.message).toBe('connection closed by the client');
    expect(s.destroyed).toBe(true);
  });
});
