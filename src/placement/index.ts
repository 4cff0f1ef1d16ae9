/** The fleet's scheduler (issue 21): pure, deterministic, no I/O. See schedule.ts for the rules. */
export * from './types.js';
export { schedule } from './schedule.js';
export { IMBALANCE_POINTS } from './rebalance.js';
export { allocatable, matchesSelector } from './state.js';
export { explainLines, moveLine, placementLine, resultJson, scoreText, stayLines, unschedulableLines, unschedulableText, type ScheduleJson } from './explain.js';
