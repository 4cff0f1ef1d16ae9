import { describe, expect, it } from 'vitest';
import { CoalescingQueue } from '../../../src/watch/index.js';
import { sleep } from './helpers.js';

describe('CoalescingQueue', () => {
  it('coalesces adds into one item with every source, and tells the runner on each add', () => {
    const seen: string[] = [];
    const q = new CoalescingQueue((s) => seen.push(s));
    expect(q.dirty).toBe(false);
    expect(q.take()).toEqual([]);
    q.add('file');
    q.add('event');
    q.add('file');
    expect(q.dirty).toBe(true);
    expect(seen).toEqual(['file', 'event', 'file']);
    expect(q.take()).toEqual(['file', 'event']);
    expect(q.dirty).toBe(false);
  });

  it('addAfter: one delayed add at a time (a newer one replaces it), cancellable, dropped on shutdown', async () => {
    const q = new CoalescingQueue();
    q.addAfter('requeue', 200);
    q.addAfter('requeue', 30);
    expect(q.delayed).toMatchObject({ source: 'requeue', delayMs: 30 });
    await sleep(60);
    expect(q.take()).toEqual(['requeue']);
    await sleep(200);
    expect(q.dirty).toBe(false); // the replaced 200 ms add never fired
    q.addAfter('requeue', 20);
    q.cancelDelayed();
    await sleep(50);
    expect(q.dirty).toBe(false);
    q.addAfter('requeue', 20);
    q.add('file');
    q.shutDown();
    expect(q.add('event')).toBe(false);
    await sleep(50);
    expect(q.dirty).toBe(false);
    expect(q.delayed).toBeUndefined();
  });
});
