import { EXIT } from '../common.js';

export async function runWatch(_dir: string, _o: Record<string, unknown>): Promise<number> {
  process.stderr.write('virtform watch: not available in this build\n');
  return EXIT.failure;
}
