/**
 * How long a run waited on libvirt: the libvirt client times every call (`HostPort.setCallObserver`,
 * from the request to its reply), and the clock keeps each call's interval. A run's libvirt time is
 * the union of the intervals inside the run (calls overlap: pipelined definition reads), so the
 * run's own time (parsing, validating, diffing, planning, the state DB) is its duration minus it.
 */
export class CallClock {
  #intervals: [number, number][] = [];
  #from: number | undefined;

  /** Start keeping intervals (a run begins); earlier ones are dropped. */
  begin(now = performance.now()): void {
    this.#intervals = [];
    this.#from = now;
  }

  /** One call that took `ms` and ended now. */
  record(ms: number, now = performance.now()): void {
    if (this.#from === undefined) return;
    this.#intervals.push([now - ms, now]);
  }

  /** The time inside [from, to] during which at least one call was outstanding, and the number of calls; stops keeping. */
  end(to = performance.now()): { busyMs: number; calls: number } {
    const from = this.#from ?? to;
    const xs = this.#intervals.map(([a, b]): [number, number] => [Math.max(a, from), Math.min(b, to)]).filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
    let busy = 0;
    let cur: [number, number] | undefined;
    for (const [a, b] of xs) {
      if (cur && a <= cur[1]) cur[1] = Math.max(cur[1], b);
      else {
        if (cur) busy += cur[1] - cur[0];
        cur = [a, b];
      }
    }
    if (cur) busy += cur[1] - cur[0];
    const calls = this.#intervals.length;
    this.#intervals = [];
    this.#from = undefined;
    return { busyMs: busy, calls };
  }
}
