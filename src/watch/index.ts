/** virtform watch: the continuous controller, its HTTP listener, metrics and logs. */
export {
  WatchController, EmptyManifestsError, isIgnoredPath,
  type WatchOptions, type WatchStatus, type RunInfo, type RunOutcome, type TriggerSource, type ConnectionState,
} from './controller.js';
export { startStatusServer, parseListen, isLoopbackHost, type StatusServer, type ListenAddress } from './http.js';
export { WatchMetrics, Registry, Counter, Gauge, Histogram } from './metrics.js';
export { jsonLogger, silentLogger, isLogLevel, type Logger, type LogLevel } from './logger.js';
