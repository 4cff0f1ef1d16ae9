/** virtform watch: the continuous controller, its sources, queue, runner, HTTP listener, metrics and logs. */
export {
  WatchController, EmptyManifestsError, isIgnoredPath,
  type WatchOptions, type WatchStatus, type RunInfo, type RunOutcome, type TriggerSource, type ConnectionState,
  type StalledResource, type RequeueInfo,
} from './controller.js';
export { CoalescingQueue, type BuiltinTrigger } from './queue.js';
export { Runner, type RunnerOptions } from './runner.js';
export { RequestHandlers, refuseRequests, serveRequests, type RequestContext, type RequestHandler } from './requests.js';
export { ManifestState } from './manifests.js';
export * from './sources/index.js';
export { startStatusServer, parseListen, parseAllowedHost, allowedHostHeaders, isLoopbackHost, type StatusServer, type StatusSource, type ListenAddress } from './http.js';
export { WatchMetrics, DEFAULT_DURATION_BUCKETS } from './metrics.js';
export { jsonLogger, silentLogger, isLogLevel, type Logger, type LogLevel } from './logger.js';
